/*
 * preload.c - libpagekeeper-preload.so: attach an unmodified QEMU's guest
 * RAM to pagekeeperd.  This file decides, once, at load time, whether and
 * how: the rest happens when QEMU maps its RAM (ram.c, wrap.c).
 *
 * Use:
 *   LD_PRELOAD=/usr/local/lib/x86_64-linux-gnu/libpagekeeper-preload.so \
 *   qemu-system-x86_64 -name guest=vm1 \
 *       -object memory-backend-memfd,id=ram,size=4G,share=on \
 *       -machine q35,memory-backend=ram -m 4G \
 *       -qmp unix:/run/vm1.qmp,server=on,wait=off ...
 *
 * libvirt, per domain (the shim needs shared memfd or file RAM):
 *   <domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
 *     <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>
 *     <qemu:commandline>
 *       <qemu:env name='LD_PRELOAD' value='/usr/local/lib/x86_64-linux-gnu/libpagekeeper-preload.so'/>
 *       <qemu:env name='PAGEKEEPER_BALLOON' value='libvirt:qemu:///system'/>
 *     </qemu:commandline>
 *   </domain>
 * libvirt passes its monitor socket as an fd and stays its only client,
 * so the shim gives no QMP channel then; PAGEKEEPER_BALLOON names the
 * libvirt connection the balloon bridge should use instead.  The QEMU
 * process must be able to reach the daemon's socket and, as non-root
 * without vm.unprivileged_userfaultfd, open /dev/userfaultfd (the same
 * access postcopy migration needs).
 *
 * Environment:
 *   PAGEKEEPER_DISABLE=1       do nothing at all;
 *   PAGEKEEPER_SOCKET=PATH     the daemon (default PK_DEFAULT_SOCKET);
 *   PAGEKEEPER_VM_NAME=NAME    instead of -name guest=;
 *   PAGEKEEPER_SHARE_DOMAIN=D  the sharing domain to register;
 *   PAGEKEEPER_BALLOON=none | qmp:PATH | libvirt:URI
 *                              instead of the first QMP monitor's socket;
 *   PAGEKEEPER_SHARES=N        the VM's shares (1..1000000);
 *   PAGEKEEPER_MIN=SIZE        its reservation (bytes, or K/M/G/T);
 *   PAGEKEEPER_MAX=SIZE        its limit;
 *   PAGEKEEPER_NO_BALLOON=1    never balloon it (swap instead).
 * The last four go with the registration of the backend that carries the
 * balloon (the guest's main RAM); the admin's [vm NAME] section and
 * `pagekeeper set` override them, and a QEMU that runs as neither root
 * nor the daemon's admin group may only lower its claim (shares up to
 * the default, no min, no opt-out; PROTOCOL.md, REGISTER): a refused
 * registration leaves QEMU's RAM unmanaged, with the daemon's reason.
 * A value that does not parse is ignored, with a line on stderr.
 *
 * The shim never stops QEMU: whatever goes wrong, QEMU runs with its RAM
 * unmanaged and one line on stderr says why.  It acts only in a process
 * whose executable is qemu-system-*, qemu-kvm or kvm, so the programs
 * QEMU runs (exec: migration, helper scripts) inherit LD_PRELOAD
 * harmlessly.
 *
 * The state: one static struct pk_preload, reached through
 * pk_preload_state().  A preload library has no caller that could pass a
 * context to the mmap() QEMU calls, so this one static is unavoidable;
 * it is written only here, before QEMU's main(), and under its lock
 * afterwards.
 */
#include "engine/preload/preload.h"
#include "engine/preload/backend.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct pk_preload state = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.balloon_backend = -1,
};

struct pk_preload *pk_preload_state(void)
{
	return &state;
}

void pk_say(const char *fmt, ...)
{
	char line[600];
	va_list ap;
	int n;

	memcpy(line, PK_LOG_PREFIX, sizeof(PK_LOG_PREFIX) - 1);
	va_start(ap, fmt);
	n = vsnprintf(line + sizeof(PK_LOG_PREFIX) - 1,
		      sizeof(line) - sizeof(PK_LOG_PREFIX), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	n += (int)sizeof(PK_LOG_PREFIX) - 1;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n); /* one write: one line */
}

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && v[0] ? v : NULL;
}

/* PAGEKEEPER_BALLOON, else the first QMP monitor with a socket path. */
static void pick_balloon(struct pk_preload *s, const char *raw_name)
{
	const char *b = env("PAGEKEEPER_BALLOON");

	s->balloon_kind = PK_BALLOON_NONE;
	if (!b) {
		if (s->cmd.qmp_path[0]) {
			s->balloon_kind = PK_BALLOON_QMP;
			snprintf(s->balloon_channel, sizeof(s->balloon_channel),
				 "%s", s->cmd.qmp_path);
		}
		return;
	}
	if (!strncmp(b, "qmp:", 4) && b[4]) {
		s->balloon_kind = PK_BALLOON_QMP;
		snprintf(s->balloon_channel, sizeof(s->balloon_channel), "%s",
			 b + 4);
	} else if (!strncmp(b, "libvirt:", 8) && b[8]) {
		/* The libvirt domain is QEMU's -name guest=, unsanitized. */
		s->balloon_kind = PK_BALLOON_LIBVIRT;
		snprintf(s->balloon_channel, sizeof(s->balloon_channel),
			 "%s|%s", b + 8, raw_name);
	} else if (strcmp(b, "none") != 0) {
		pk_say("ignoring PAGEKEEPER_BALLOON=%s (want none, qmp:PATH or "
		       "libvirt:URI)", b);
	}
}

/* "N", "NK", "NM", "NG", "NT" (binary) into *out: 0, or -EINVAL. */
static int parse_size(const char *v, uint64_t *out)
{
	char *end;
	unsigned long long n;
	int shift = 0;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno || end == v || v[0] == '-')
		return -EINVAL;
	switch (*end) {
	case 'K': case 'k': shift = 10, end++; break;
	case 'M': case 'm': shift = 20, end++; break;
	case 'G': case 'g': shift = 30, end++; break;
	case 'T': case 't': shift = 40, end++; break;
	}
	if (*end || (shift && n > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)n << shift;
	return 0;
}

/* A size in whole pages from the environment variable name into *out:
 * 1, or 0 when it is unset or does not parse (said on stderr). */
static int env_pages(const char *name, const char *example, uint64_t *out)
{
	const char *v = env(name);
	uint64_t n;

	if (!v)
		return 0;
	if (parse_size(v, &n) || n % PK_PAGE_SIZE) {
		pk_say("ignoring %s=%s (want a size in whole pages, e.g. %s)",
		       name, v, example);
		return 0;
	}
	*out = n;
	return 1;
}

/* PAGEKEEPER_SHARES, _MIN, _MAX, _NO_BALLOON: the VM's own settings. */
static void pick_settings(struct pk_preload *s)
{
	const char *v;
	uint64_t n;

	memset(&s->settings, 0, sizeof(s->settings));
	if ((v = env("PAGEKEEPER_SHARES"))) {
		if (parse_size(v, &n) || strpbrk(v, "KkMmGgTt") || n == 0 ||
		    n > PK_PROTO_SHARES_MAX)
			pk_say("ignoring PAGEKEEPER_SHARES=%s (want 1 to %u)", v,
			       PK_PROTO_SHARES_MAX);
		else
			s->settings.shares = (uint32_t)n, s->has_settings = 1;
	}
	if (env_pages("PAGEKEEPER_MIN", "512M", &s->settings.min_bytes))
		s->has_settings = 1;
	if (env_pages("PAGEKEEPER_MAX", "2G", &s->settings.max_bytes))
		s->has_settings = 1;
	if ((v = env("PAGEKEEPER_NO_BALLOON")) && strcmp(v, "0") != 0) {
		s->settings.no_balloon = 1;
		s->has_settings = 1;
	}
}

/* The first managed backend in command-line order carries the balloon. */
static int first_managed(const struct pk_qemu_cmdline *c)
{
	for (unsigned i = 0; i < c->n_backends; i++) {
		const struct pk_qc_backend *b = &c->backends[i];
		if (b->ram && b->share &&
		    (b->type == PK_QC_BE_MEMFD || b->type == PK_QC_BE_FILE))
			return (int)i;
	}
	return -1;
}

static int read_cmdline(struct pk_qemu_cmdline *cmd)
{
	char *buf, **argv;
	size_t len;
	int argc, rc = pk_proc_cmdline(&buf, &len);

	if (rc)
		return rc;
	argv = calloc(len + 1, sizeof(*argv)); /* at most one arg per byte */
	if (!argv) {
		free(buf);
		return -ENOMEM;
	}
	argc = pk_qc_split(buf, len, argv, (int)len + 1);
	rc = pk_qc_parse(argc, argv, cmd);
	free(argv);
	free(buf);
	return rc == -E2BIG ? 0 : rc; /* extra backends: just not managed */
}

static int configure(struct pk_preload *s)
{
	const char *name = env("PAGEKEEPER_VM_NAME");
	const char *v;
	int rc;

	rc = read_cmdline(&s->cmd);
	if (rc) {
		pk_say("runs unmanaged: cannot read the command line: %s",
		       strerror(-rc));
		return rc;
	}
	if (s->cmd.no_guest)
		return -ENODEV; /* -version, -machine none: nothing to manage */
	if (!name)
		name = s->cmd.name;
	if (pk_backend_sanitize(name, s->name, sizeof(s->name)) < 0)
		snprintf(s->name, sizeof(s->name), "qemu-%d", (int)getpid());
	if (s->cmd.problem[0])
		pk_say("VM '%s': ignoring part of the command line: %s",
		       s->name, s->cmd.problem);
	snprintf(s->socket, sizeof(s->socket), "%s",
		 (v = env("PAGEKEEPER_SOCKET")) ? v : PK_DEFAULT_SOCKET);
	snprintf(s->share_domain, sizeof(s->share_domain), "%s",
		 (v = env("PAGEKEEPER_SHARE_DOMAIN")) ? v : "");
	pick_balloon(s, name);
	pick_settings(s);

	if (s->cmd.conflict[0]) {
		pk_say("VM '%s' runs unmanaged: %s lets another process or a "
		       "device use guest RAM directly, and it would read "
		       "evicted pages as zeros", s->name, s->cmd.conflict);
		return -EBUSY;
	}
	if (pk_qc_managed_count(&s->cmd) == 0) {
		pk_say("VM '%s' runs unmanaged: no shared guest RAM backend on "
		       "the command line (use -object memory-backend-memfd,"
		       "id=ram,size=...,share=on -machine memory-backend=ram)",
		       s->name);
		return -ENODEV;
	}
	s->several = pk_qc_managed_count(&s->cmd) > 1;
	s->balloon_backend = first_managed(&s->cmd);
	for (unsigned i = 0; i < s->cmd.n_backends; i++)
		if (s->cmd.backends[i].mem_path[0])
			s->mem_paths[i] =
				pk_proc_abs_path(s->cmd.backends[i].mem_path);
	if (s->cmd.incoming) {
		/*
		 * QEMU registers guest RAM on its own userfaultfd for an
		 * incoming postcopy migration, and a range has one uffd.
		 * Wait until the guest runs and QEMU holds no uffd: QEMU
		 * exports runstate_is_running() (its modules link against
		 * the executable), so ask it.
		 */
		s->runstate_is_running = (bool (*)(void))dlsym(
			RTLD_DEFAULT, "runstate_is_running");
		if (!s->runstate_is_running) {
			pk_say("VM '%s' runs unmanaged: -incoming given and this "
			       "QEMU does not export runstate_is_running(), so "
			       "the end of the migration cannot be seen",
			       s->name);
			return -ENOSYS;
		}
		s->deferred = 1;
	}
	return 0;
}

__attribute__((constructor)) static void pk_preload_init(void)
{
	const char *off = env("PAGEKEEPER_DISABLE");

	if ((off && strcmp(off, "0") != 0) || !pk_proc_exe_is_qemu())
		return;
	state.active = configure(&state) == 0;
}
