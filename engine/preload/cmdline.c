/*
 * cmdline.c - read QEMU's argv the way QEMU does, for the preload shim.
 *
 * How: one pass over argv.  Each option the shim cares about is decoded
 * with QEMU's own rules (qopts.c: QemuOpts or JSON).  References that
 * can point forward (-mon chardev=X, -machine memory-backend=X, ...) are
 * collected and resolved at the end, because QEMU accepts options in any
 * order.
 *
 * Why this much: the shim must never manage memory QEMU shares with
 * someone else (ivshmem backends, vhost-user back ends), and it must give
 * the daemon a name and a QMP socket the operator recognises.  Guessing
 * from the first memfd QEMU maps would get both wrong on NUMA guests or
 * guests with ivshmem.
 *
 * What it does not read: -readconfig files and -set.  Options this file
 * does not know are skipped one argument at a time, so an unknown option
 * whose value is exactly "-incoming" (say) would be misread; QEMU's own
 * values never look like that.
 */
#include "engine/preload/cmdline.h"
#include "engine/preload/qopts.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHARDEVS 16
#define MAX_MONITORS 16
#define MAX_REFS 64

struct chardev {
	char id[PK_QC_ID_MAX];
	char path[PK_QC_PATH_MAX];
	int fd_passed;
};

struct monitor {
	char chardev[PK_QC_ID_MAX]; /* "" for -qmp with a direct path */
	char path[PK_QC_PATH_MAX];
};

/* Parse-time scratch: forward references resolved at the end. */
struct parse {
	struct pk_qemu_cmdline *c;
	struct chardev chardevs[MAX_CHARDEVS];
	unsigned n_chardevs;
	struct monitor monitors[MAX_MONITORS];
	unsigned n_monitors;
	char refs[MAX_REFS][PK_QC_ID_MAX]; /* backends used as guest RAM */
	unsigned n_refs;
	int mem_prealloc;
	int too_many;
};

static void problem(struct parse *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void problem(struct parse *p, const char *fmt, ...)
{
	va_list ap;

	if (p->c->problem[0])
		return; /* keep the first */
	va_start(ap, fmt);
	vsnprintf(p->c->problem, sizeof(p->c->problem), fmt, ap);
	va_end(ap);
}

/* Fetch key into out; a value too long is a problem, reported once. */
static int get(struct parse *p, const char *opt, const char *arg,
	       const char *implied, const char *key, char *out,
	       size_t out_len)
{
	int rc = pk_qc_value(arg, implied, key, out, out_len);

	if (rc == -ENAMETOOLONG)
		problem(p, "%s: the value of %s is too long", opt, key);
	if (rc != 1)
		out[0] = '\0';
	return rc == 1;
}

static void add_ref(struct parse *p, const char *id)
{
	if (id[0] && p->n_refs < MAX_REFS)
		snprintf(p->refs[p->n_refs++], PK_QC_ID_MAX, "%s", id);
}

static void note_conflict(struct parse *p, const char *driver)
{
	static const char *const prefixes[] = { "vhost-user", "vfio-",
						"vhost-vdpa" };

	if (p->c->conflict[0])
		return;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (!strncmp(driver, prefixes[i], strlen(prefixes[i])))
			snprintf(p->c->conflict, sizeof(p->c->conflict), "%s",
				 driver);
}

static void do_name(struct parse *p, const char *arg)
{
	get(p, "-name", arg, "guest", "guest", p->c->name,
	    sizeof(p->c->name));
}

static void do_qmp(struct parse *p, const char *arg)
{
	struct monitor *m;

	if (p->n_monitors >= MAX_MONITORS)
		return;
	m = &p->monitors[p->n_monitors];
	memset(m, 0, sizeof(*m));
	/* Chardev shorthand: only "unix:PATH[,opts]" names a socket. */
	if (strncmp(arg, "unix:", 5) != 0 ||
	    !get(p, "-qmp", arg + 5, "path", "path", m->path, sizeof(m->path)))
		return;
	p->n_monitors++;
}

static void do_mon(struct parse *p, const char *arg)
{
	char mode[32];
	struct monitor *m;

	if (p->n_monitors >= MAX_MONITORS)
		return;
	m = &p->monitors[p->n_monitors];
	memset(m, 0, sizeof(*m));
	/* QEMU's -mon defaults to mode=readline (HMP). */
	if (!get(p, "-mon", arg, "chardev", "mode", mode, sizeof(mode)) ||
	    strcmp(mode, "control") != 0)
		return;
	if (get(p, "-mon", arg, "chardev", "chardev", m->chardev,
		sizeof(m->chardev)))
		p->n_monitors++;
}

static void do_chardev(struct parse *p, const char *arg)
{
	char backend[32], fd[16];
	struct chardev *ch;

	if (p->n_chardevs >= MAX_CHARDEVS)
		return;
	ch = &p->chardevs[p->n_chardevs];
	memset(ch, 0, sizeof(*ch));
	if (!get(p, "-chardev", arg, "backend", "backend", backend,
		 sizeof(backend)) ||
	    strcmp(backend, "socket") != 0 ||
	    !get(p, "-chardev", arg, "backend", "id", ch->id, sizeof(ch->id)))
		return;
	get(p, "-chardev", arg, "backend", "path", ch->path, sizeof(ch->path));
	ch->fd_passed = get(p, "-chardev", arg, "backend", "fd", fd, sizeof(fd));
	if (ch->path[0] || ch->fd_passed)
		p->n_chardevs++;
}

static void do_machine(struct parse *p, const char *arg)
{
	char v[PK_QC_ID_MAX];

	if (get(p, "-machine", arg, "type", "type", v, sizeof(v)) &&
	    !strcmp(v, "none"))
		p->c->no_guest = 1;
	if (get(p, "-machine", arg, "type", "memory-backend", v, sizeof(v)))
		add_ref(p, v);
}

static void do_numa(struct parse *p, const char *arg)
{
	char type[16], v[PK_QC_ID_MAX];

	if (get(p, "-numa", arg, "type", "type", type, sizeof(type)) &&
	    !strcmp(type, "node") &&
	    get(p, "-numa", arg, "type", "memdev", v, sizeof(v)))
		add_ref(p, v);
}

/* Devices whose memdev is guest RAM (not a region shared with others). */
static int ram_device(const char *driver)
{
	return !strcmp(driver, "pc-dimm") || !strcmp(driver, "nvdimm") ||
	       !strncmp(driver, "virtio-mem", 10) ||
	       !strncmp(driver, "virtio-pmem", 11);
}

static void do_device(struct parse *p, const char *opt, const char *arg,
		      const char *implied)
{
	char driver[PK_QC_ID_MAX], v[PK_QC_ID_MAX];

	if (!get(p, opt, arg, implied, implied, driver, sizeof(driver)))
		return;
	note_conflict(p, driver);
	if (ram_device(driver) &&
	    get(p, opt, arg, implied, "memdev", v, sizeof(v)))
		add_ref(p, v);
}

static void do_object(struct parse *p, const char *arg)
{
	char type[PK_QC_ID_MAX], v[16];
	struct pk_qc_backend *b;

	if (!get(p, "-object", arg, "qom-type", "qom-type", type,
		 sizeof(type)) ||
	    strncmp(type, "memory-backend-", 15) != 0)
		return;
	if (p->c->n_backends >= PK_QC_MAX_BACKENDS) {
		p->too_many = 1;
		return;
	}
	b = &p->c->backends[p->c->n_backends];
	memset(b, 0, sizeof(*b));
	if (!get(p, "-object", arg, "qom-type", "id", b->id, sizeof(b->id))) {
		problem(p, "-object %s: no id", type);
		return;
	}
	b->type = !strcmp(type, "memory-backend-memfd")  ? PK_QC_BE_MEMFD
		  : !strcmp(type, "memory-backend-file") ? PK_QC_BE_FILE
							 : PK_QC_BE_OTHER;
	/* QEMU's defaults: memfd backends are shared, the others not. */
	b->share = b->type == PK_QC_BE_MEMFD;
	if (get(p, "-object", arg, "qom-type", "share", v, sizeof(v)))
		b->share = pk_qc_bool(v);
	if (get(p, "-object", arg, "qom-type", "discard-data", v, sizeof(v)))
		b->discard_data = pk_qc_bool(v);
	if (get(p, "-object", arg, "qom-type", "prealloc", v, sizeof(v)))
		b->prealloc = pk_qc_bool(v);
	get(p, "-object", arg, "qom-type", "mem-path", b->mem_path,
	    sizeof(b->mem_path));
	p->c->n_backends++;
}

static void resolve(struct parse *p)
{
	struct pk_qemu_cmdline *c = p->c;

	for (unsigned i = 0; i < p->n_refs; i++) {
		int b = pk_qc_find_backend(c, p->refs[i]);
		if (b >= 0)
			c->backends[b].ram = 1;
	}
	for (unsigned i = 0; i < c->n_backends && p->mem_prealloc; i++)
		c->backends[i].prealloc = 1;
	/* The first QMP monitor that has a UNIX socket. */
	for (unsigned m = 0; m < p->n_monitors; m++) {
		const struct monitor *mon = &p->monitors[m];
		if (!mon->chardev[0]) {
			snprintf(c->qmp_path, sizeof(c->qmp_path), "%s",
				 mon->path);
			return;
		}
		for (unsigned i = 0; i < p->n_chardevs; i++) {
			const struct chardev *ch = &p->chardevs[i];
			if (strcmp(ch->id, mon->chardev) != 0)
				continue;
			if (ch->fd_passed) {
				c->qmp_fd_passed = 1;
				return;
			}
			snprintf(c->qmp_path, sizeof(c->qmp_path), "%s",
				 ch->path);
			return;
		}
	}
}

/* "--opt" is "-opt" to QEMU. */
static const char *option_name(const char *a)
{
	if (a[0] != '-')
		return NULL;
	return a[1] == '-' && a[2] ? a + 1 : a;
}

int pk_qc_parse(int argc, char *const argv[], struct pk_qemu_cmdline *out)
{
	static const char *const with_value[] = {
		"-name", "-qmp", "-qmp-pretty", "-mon", "-chardev", "-machine",
		"-M", "-numa", "-device", "-netdev", "-nic", "-object",
		"-incoming",
	};
	struct parse *p = calloc(1, sizeof(*p));
	int rc;

	memset(out, 0, sizeof(*out));
	if (!p) {
		snprintf(out->problem, sizeof(out->problem), "out of memory");
		return -ENOMEM;
	}
	p->c = out;
	for (int i = 1; i < argc; i++) {
		const char *o = option_name(argv[i]), *v;
		size_t k, n = sizeof(with_value) / sizeof(with_value[0]);

		if (!o)
			continue; /* a stray value: QEMU would reject it */
		if (!strcmp(o, "-mem-prealloc"))
			p->mem_prealloc = 1;
		if (!strcmp(o, "-version") || !strcmp(o, "-help") ||
		    !strcmp(o, "-h"))
			out->no_guest = 1;
		for (k = 0; k < n && strcmp(o, with_value[k]) != 0; k++)
			;
		if (k == n)
			continue;
		if (i + 1 >= argc) {
			problem(p, "%s needs a value", o);
			if (!strcmp(o, "-incoming"))
				out->incoming = 1;
			break;
		}
		v = argv[++i];
		if (!strcmp(o, "-name"))
			do_name(p, v);
		else if (!strcmp(o, "-qmp") || !strcmp(o, "-qmp-pretty"))
			do_qmp(p, v);
		else if (!strcmp(o, "-mon"))
			do_mon(p, v);
		else if (!strcmp(o, "-chardev"))
			do_chardev(p, v);
		else if (!strcmp(o, "-machine") || !strcmp(o, "-M"))
			do_machine(p, v);
		else if (!strcmp(o, "-numa"))
			do_numa(p, v);
		else if (!strcmp(o, "-device"))
			do_device(p, o, v, "driver");
		else if (!strcmp(o, "-netdev") || !strcmp(o, "-nic"))
			do_device(p, o, v, "type");
		else if (!strcmp(o, "-object"))
			do_object(p, v);
		else if (!strcmp(o, "-incoming"))
			out->incoming = 1;
	}
	resolve(p);
	rc = p->too_many ? -E2BIG : 0;
	free(p);
	return rc;
}

int pk_qc_find_backend(const struct pk_qemu_cmdline *c, const char *id)
{
	for (unsigned i = 0; i < c->n_backends; i++)
		if (!strcmp(c->backends[i].id, id))
			return (int)i;
	return -1;
}

unsigned pk_qc_managed_count(const struct pk_qemu_cmdline *c)
{
	unsigned n = 0;

	for (unsigned i = 0; i < c->n_backends; i++) {
		const struct pk_qc_backend *b = &c->backends[i];
		n += b->ram && b->share &&
		     (b->type == PK_QC_BE_MEMFD || b->type == PK_QC_BE_FILE);
	}
	return n;
}
