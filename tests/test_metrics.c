/*
 * test_metrics.c - pagekeeperd's GET /metrics (issue 18, item 3).
 *
 * What:
 *  - parser: the strict checker of the text format 0.0.4 below rejects
 *    each rule's violation and takes a good document, so a pass means
 *    something.
 *  - tcp: a daemon with --metrics-listen 127.0.0.1:PORT and a lab guest
 *    that faulted its RAM in; curl's scrape passes the checker; the VM's
 *    figures equal `status` (granted, configured, swapped), the host's
 *    faults counter and the latency histogram saw the guest's faults, one
 *    state gauge is 1.
 *  - unix: [metrics] listen = unix:PATH from the configuration file; the
 *    socket is mode 0600 without an admin group (nobody but the daemon's
 *    user learns VM names from it); 404 for another path, 405 for POST;
 *    a non-loopback address is refused at start with exit code 2.
 *  - slow clients: with 60 VMs (an answer far larger than the kernel's
 *    socket buffers), clients that send a request and never read, and
 *    idle ones, fill the connection cap; one more is closed at once; a
 *    lab guest's workload meanwhile finishes with its worst fault
 *    latency bounded (a blocked loop would stall it for good); the hung
 *    connections are closed by the idle timeout.
 *
 * How: real processes: pagekeeperd (tests/daemon_fixture.h), pk-guestsim
 * (tests/guest_proc.h), curl; in-process guests are real memfd mappings
 * with a userfaultfd.  promtool is not used: Debian ships it only in the
 * prometheus package, which installs and starts a server.
 *
 * Why: a scrape that fails to parse is a silent gap in an admin's
 * dashboards, and a metrics client must never be able to stall a guest.
 */
#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"
#include "engine/protocol.h"
#include "engine/uffd_compat.h"

#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB 1048576.0

/* ---- a strict checker of the Prometheus text format 0.0.4 ------------- */

#define MAX_FAMILIES 256
#define MAX_SERIES 4096

struct fam {
	char name[160];
	char type[16]; /* "" until TYPE */
	int help, samples, closed;
};

struct hist_series { /* one histogram's label set (without le) */
	char fam[160], labels[256];
	double last_le, last_count, inf_count, count;
	int n_buckets, has_inf, has_count, has_sum;
};

struct checker {
	struct fam fams[MAX_FAMILIES];
	int n_fams, cur; /* the family samples go to now, -1: none */
	char *series[MAX_SERIES];
	int n_series;
	struct hist_series hs[MAX_SERIES / 8];
	int n_hs;
	char *err;
	size_t errlen;
	int line;
};

static int bad(struct checker *c, const char *fmt, const char *what)
{
	snprintf(c->err, c->errlen, "line %d: %s%s%s", c->line, fmt,
		 what ? ": " : "", what ? what : "");
	return -1;
}

static int metric_name_ok(const char *s, size_t n)
{
	if (!n || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
			return 0;
	return 1;
}

static int label_name_ok(const char *s, size_t n)
{
	if (!n || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return 0;
	if (n >= 2 && s[0] == '_' && s[1] == '_')
		return 0; /* reserved */
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
			return 0;
	return 1;
}

/* A sample value: a float, NaN, +Inf or -Inf; nothing else. */
static int value_parse(const char *s, double *v)
{
	char *end;

	if (!strcmp(s, "NaN")) {
		*v = NAN;
		return 0;
	}
	if (!strcmp(s, "+Inf") || !strcmp(s, "-Inf")) {
		*v = s[0] == '+' ? INFINITY : -INFINITY;
		return 0;
	}
	if (!*s || isspace((unsigned char)*s) ||
	    strpbrk(s, "xXpP") /* no hex floats */ ||
	    !strncasecmp(s, "nan", 3) || !strncasecmp(s, "inf", 3))
		return -1;
	errno = 0;
	*v = strtod(s, &end);
	return *end || errno == ERANGE ? -1 : 0;
}

static struct fam *fam_get(struct checker *c, const char *name, int create)
{
	for (int i = 0; i < c->n_fams; i++)
		if (!strcmp(c->fams[i].name, name))
			return &c->fams[i];
	if (!create || c->n_fams == MAX_FAMILIES)
		return NULL;
	struct fam *f = &c->fams[c->n_fams++];
	memset(f, 0, sizeof(*f));
	snprintf(f->name, sizeof(f->name), "%s", name);
	return f;
}

static int descriptor(struct checker *c, const char *line)
{
	char kind[8], name[160];
	int n = 0;

	if (sscanf(line, "# %7s %159s %n", kind, name, &n) < 2 ||
	    (strcmp(kind, "HELP") && strcmp(kind, "TYPE")))
		return 0; /* a plain comment */
	if (!metric_name_ok(name, strlen(name)))
		return bad(c, "bad metric name in descriptor", name);
	struct fam *f = fam_get(c, name, 1);
	if (!f)
		return bad(c, "too many families", NULL);
	if (f->closed || f->samples)
		return bad(c, "HELP/TYPE after the family's samples", name);
	if (!strcmp(kind, "HELP")) {
		if (f->help++)
			return bad(c, "second HELP", name);
		if (!line[n])
			return bad(c, "empty HELP", name);
		for (const char *p = line + n; *p; p++)
			if (*p == '\\' && p[1] != '\\' && p[1] != 'n')
				return bad(c, "bad escape in HELP", name);
		return 0;
	}
	if (f->type[0])
		return bad(c, "second TYPE", name);
	const char *t = line + n;
	if (strcmp(t, "counter") && strcmp(t, "gauge") &&
	    strcmp(t, "histogram") && strcmp(t, "summary") &&
	    strcmp(t, "untyped"))
		return bad(c, "bad TYPE", t);
	snprintf(f->type, sizeof(f->type), "%s", t);
	return 0;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && !strcmp(s + a - b, suffix);
}

/*
 * Labels of one sample: name="value" pairs, escapes \\ \" \n only, no
 * duplicate names.  canon gets them without le; *le the le value.
 */
static int labels_parse(struct checker *c, const char **pp, char *canon,
			size_t clen, char *le, size_t lelen)
{
	const char *p = *pp;
	char names[16][64];
	int n = 0;
	size_t cl = 0;

	canon[0] = le[0] = '\0';
	p++; /* '{' */
	while (*p != '}') {
		const char *ns = p;
		while (*p && *p != '=' && *p != '}' && *p != ',')
			p++;
		if (*p != '=' || !label_name_ok(ns, (size_t)(p - ns)))
			return bad(c, "bad label name", NULL);
		if (n == 16 || (size_t)(p - ns) >= 64)
			return bad(c, "too many labels", NULL);
		memcpy(names[n], ns, (size_t)(p - ns));
		names[n][p - ns] = '\0';
		for (int i = 0; i < n; i++)
			if (!strcmp(names[i], names[n]))
				return bad(c, "duplicate label", names[n]);
		p++;
		if (*p != '"')
			return bad(c, "label value not quoted", names[n]);
		p++;
		char val[256];
		size_t vl = 0;
		while (*p && *p != '"') {
			char ch = *p;
			if (ch == '\\') {
				p++;
				if (*p != '\\' && *p != '"' && *p != 'n')
					return bad(c, "bad escape in label value",
						   names[n]);
				ch = *p == 'n' ? '\n' : *p;
			}
			if (vl + 1 < sizeof(val))
				val[vl++] = ch;
			p++;
		}
		if (*p != '"')
			return bad(c, "unterminated label value", names[n]);
		val[vl] = '\0';
		p++;
		if (!strcmp(names[n], "le")) {
			if (vl >= lelen)
				return bad(c, "le value too long", NULL);
			memcpy(le, val, vl + 1);
		}
		else
			cl += (size_t)snprintf(canon + cl, clen - cl, "%s%s=%s",
					       cl ? "," : "", names[n], val);
		n++;
		if (*p == ',')
			p++;
		else if (*p != '}')
			return bad(c, "want , or } after a label", NULL);
	}
	*pp = p + 1;
	return 0;
}

static struct hist_series *hist_get(struct checker *c, const char *fam,
				    const char *labels)
{
	for (int i = 0; i < c->n_hs; i++)
		if (!strcmp(c->hs[i].fam, fam) && !strcmp(c->hs[i].labels, labels))
			return &c->hs[i];
	if (c->n_hs == (int)(sizeof(c->hs) / sizeof(c->hs[0])))
		return NULL;
	struct hist_series *h = &c->hs[c->n_hs++];
	memset(h, 0, sizeof(*h));
	snprintf(h->fam, sizeof(h->fam), "%s", fam);
	snprintf(h->labels, sizeof(h->labels), "%s", labels);
	h->last_le = -INFINITY;
	return h;
}

static int sample(struct checker *c, const char *line)
{
	const char *p = line;
	char name[160], canon[512], le[64], series[800];
	double v;

	while (*p && *p != '{' && *p != ' ')
		p++;
	if (!metric_name_ok(line, (size_t)(p - line)) ||
	    (size_t)(p - line) >= sizeof(name))
		return bad(c, "bad metric name", line);
	memcpy(name, line, (size_t)(p - line));
	name[p - line] = '\0';
	canon[0] = le[0] = '\0';
	if (*p == '{' && labels_parse(c, &p, canon, sizeof(canon), le,
				      sizeof(le)) < 0)
		return -1;
	if (*p != ' ')
		return bad(c, "want one space before the value", name);
	p++;
	char val[64];
	const char *sp = strchr(p, ' ');
	size_t vl = sp ? (size_t)(sp - p) : strlen(p);
	if (vl >= sizeof(val))
		return bad(c, "value too long", name);
	memcpy(val, p, vl);
	val[vl] = '\0';
	if (value_parse(val, &v) < 0)
		return bad(c, "bad value", val);
	if (sp) { /* a timestamp: an integer */
		char *end;
		strtoll(sp + 1, &end, 10);
		if (end == sp + 1 || *end)
			return bad(c, "bad timestamp", sp + 1);
	}
	/* Its family: the name, or the histogram/summary it belongs to. */
	struct fam *f = fam_get(c, name, 0);
	const char *suffix = "";
	if (!f) {
		static const char *const sfx[] = { "_bucket", "_sum", "_count" };
		for (int i = 0; i < 3 && !f; i++)
			if (ends_with(name, sfx[i])) {
				char base[160];
				snprintf(base, sizeof(base), "%.*s",
					 (int)(strlen(name) - strlen(sfx[i])), name);
				f = fam_get(c, base, 0);
				if (f && strcmp(f->type, "histogram") &&
				    strcmp(f->type, "summary"))
					f = NULL;
				suffix = sfx[i];
			}
	}
	if (!f || !f->type[0] || !f->help)
		return bad(c, "sample without HELP and TYPE before it", name);
	if (f->closed)
		return bad(c, "family's samples not together", f->name);
	if (c->cur >= 0 && &c->fams[c->cur] != f)
		c->fams[c->cur].closed = 1;
	c->cur = (int)(f - c->fams);
	f->samples++;
	snprintf(series, sizeof(series), "%s{%s%s%s}", name, canon,
		 le[0] ? ",le=" : "", le);
	for (int i = 0; i < c->n_series; i++)
		if (!strcmp(c->series[i], series))
			return bad(c, "duplicate series", series);
	if (c->n_series == MAX_SERIES)
		return bad(c, "too many series", NULL);
	c->series[c->n_series++] = strdup(series);
	if (!strcmp(f->type, "counter")) {
		if (!ends_with(name, "_total"))
			return bad(c, "counter not named *_total", name);
		if (!(v >= 0))
			return bad(c, "counter below 0 or NaN", name);
	}
	if (!strcmp(f->type, "histogram")) {
		struct hist_series *h = hist_get(c, f->name, canon);
		if (!h)
			return bad(c, "too many histograms", NULL);
		if (!strcmp(suffix, "_bucket")) {
			double lev;
			if (!le[0] || value_parse(le, &lev) < 0)
				return bad(c, "bucket without a valid le", name);
			if (h->has_count || h->has_sum)
				return bad(c, "bucket after _sum/_count", name);
			if (!(lev > h->last_le))
				return bad(c, "le not increasing", le);
			if (v < h->last_count)
				return bad(c, "buckets not cumulative", le);
			h->last_le = lev;
			h->last_count = v;
			h->n_buckets++;
			if (isinf(lev)) {
				h->has_inf = 1;
				h->inf_count = v;
			}
		} else if (le[0]) {
			return bad(c, "le on a histogram's _sum/_count", name);
		} else if (!strcmp(suffix, "_count")) {
			h->has_count = 1;
			h->count = v;
		} else if (!strcmp(suffix, "_sum")) {
			h->has_sum = 1;
		} else {
			return bad(c, "histogram sample without a suffix", name);
		}
	}
	return 0;
}

/* 0 when text is a valid exposition; -1 and err naming the line. */
static int prom_check(const char *text, char *err, size_t errlen)
{
	struct checker *c = calloc(1, sizeof(*c));
	const char *p = text;
	char line[4096];
	int r = 0;

	ck_assert_ptr_nonnull(c);
	c->err = err;
	c->errlen = errlen;
	c->cur = -1;
	if (!*text) {
		snprintf(err, errlen, "empty document");
		r = -1;
	}
	while (!r && *p) {
		const char *nl = strchr(p, '\n');
		c->line++;
		if (!nl) {
			r = bad(c, "last line without a newline", NULL);
			break;
		}
		size_t len = (size_t)(nl - p);
		if (len >= sizeof(line)) {
			r = bad(c, "line too long", NULL);
			break;
		}
		memcpy(line, p, len);
		line[len] = '\0';
		p = nl + 1;
		if (memchr(line, '\r', len) || memchr(line, '\t', len))
			r = bad(c, "CR or TAB in a line", NULL);
		else if (!len)
			r = bad(c, "empty line", NULL);
		else if (line[0] == '#')
			r = descriptor(c, line);
		else
			r = sample(c, line);
	}
	for (int i = 0; !r && i < c->n_hs; i++) {
		struct hist_series *h = &c->hs[i];
		c->line = 0;
		if (!h->has_inf)
			r = bad(c, "histogram without le=\"+Inf\"", h->fam);
		else if (!h->has_count || !h->has_sum)
			r = bad(c, "histogram without _sum or _count", h->fam);
		else if (h->inf_count != h->count)
			r = bad(c, "+Inf bucket differs from _count", h->fam);
	}
	for (int i = 0; !r && i < c->n_fams; i++)
		if (!c->fams[i].samples && strcmp(c->fams[i].type, "histogram")) {
			c->line = 0;
			r = bad(c, "family without samples", c->fams[i].name);
		}
	for (int i = 0; i < c->n_series; i++)
		free(c->series[i]);
	free(c);
	return r;
}

/* The value of one series ("name" or "name{vm=\"x\"}"); NAN if absent. */
static double prom_value(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (!strncmp(p, series, n) && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return NAN;
}

/* ---- the checker's own test ------------------------------------------ */

START_TEST(test_parser_rejects)
{
	static const char good[] =
		"# HELP a_total A.\n# TYPE a_total counter\na_total 1\n"
		"# HELP h H.\n# TYPE h histogram\n"
		"h_bucket{x=\"q\\\"\",le=\"0.1\"} 1\nh_bucket{x=\"q\\\"\",le=\"+Inf\"} 2\n"
		"h_sum{x=\"q\\\"\"} 0.3\nh_count{x=\"q\\\"\"} 2\n"
		"# HELP g G.\n# TYPE g gauge\ng{vm=\"a\"} NaN\ng{vm=\"b\"} -1.5e3\n";
	static const char *const bads[] = {
		"a 1\n",					  /* no TYPE */
		"# TYPE a gauge\na 1\n",			  /* no HELP */
		"# HELP a A.\n# TYPE a gauge\na 1\na 2\n",	  /* duplicate */
		"# HELP a A.\n# TYPE a gauge\na x\n",		  /* value */
		"# HELP a A.\n# TYPE a gauge\na 1",		  /* no newline */
		"# HELP a A.\n# TYPE a gauge\na{vm=\"\\t\"} 1\n", /* escape */
		"# HELP a A.\n# TYPE a gauge\na{vm=a} 1\n",	  /* unquoted */
		"# HELP 1a A.\n# TYPE 1a gauge\n1a 1\n",	  /* name */
		"# HELP a A.\n# TYPE a counter\na 1\n",		  /* _total */
		"# HELP a A.\n# TYPE a gauge\na 1\n# HELP b B.\n# TYPE b gauge\n"
		"b 1\na{x=\"1\"} 1\n",				  /* split */
		"# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
		"h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",  /* cumulative */
		"# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
		"h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",  /* +Inf!=count */
		"# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
		"h_sum 1\nh_count 1\n",				  /* no +Inf */
		"# HELP a A.\n# TYPE a gauge\n\na 1\n",		  /* empty line */
		"# HELP a A.\n# TYPE a gauge\na{vm=\"x\",vm=\"y\"} 1\n",
	};
	char err[256];

	ck_assert_msg(prom_check(good, err, sizeof(err)) == 0, "good: %s", err);
	for (unsigned i = 0; i < sizeof(bads) / sizeof(bads[0]); i++)
		ck_assert_msg(prom_check(bads[i], err, sizeof(err)) < 0,
			      "checker took bad document %u:\n%s", i, bads[i]);
}
END_TEST

/* ---- helpers ---------------------------------------------------------- */

/* Run argv, its stdout into out (stderr too if both); exit status. */
static int run_capture(char *const argv[], char *out, size_t len, int both)
{
	return pk_test_run_capture(argv, out, len, both, -1);
}

/* A loopback port nobody listens on now. */
static int loopback_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/*
 * pagekeeperd listens on /metrics just after its control socket, which
 * is what the fixture waits for: wait for the endpoint too (connect
 * refused until then).
 */
static void wait_endpoint(int port, const char *unix_path)
{
	long deadline = pk_test_deadline_ms(5000);

	for (;;) {
		int fd, ok;
		if (unix_path) {
			struct sockaddr_un a = { .sun_family = AF_UNIX };
			snprintf(a.sun_path, sizeof(a.sun_path), "%s", unix_path);
			fd = socket(AF_UNIX, SOCK_STREAM, 0);
			ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
		} else {
			struct sockaddr_in a = {
				.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
			fd = socket(AF_INET, SOCK_STREAM, 0);
			ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
		}
		close(fd);
		if (ok)
			return;
		ck_assert_msg(pk_test_now_ms() < deadline, "the metrics "
			      "endpoint never accepted a connection");
		usleep(10 * 1000);
	}
}

static char *scrape_buf;
#define SCRAPE_MAX (1 << 20)

/* curl the URL (unix: a socket path, or NULL); the body, checked. */
static const char *scrape(const char *url, const char *unix_path)
{
	char *argv[12];
	int n = 0, rc;
	char err[512];

	if (!scrape_buf)
		scrape_buf = malloc(SCRAPE_MAX);
	ck_assert_ptr_nonnull(scrape_buf);
	argv[n++] = "curl";
	argv[n++] = "-sS";
	argv[n++] = "--fail";
	argv[n++] = "--max-time";
	argv[n++] = "30";
	if (unix_path) {
		argv[n++] = "--unix-socket";
		argv[n++] = (char *)unix_path;
	}
	argv[n++] = (char *)url;
	argv[n] = NULL;
	rc = run_capture(argv, scrape_buf, SCRAPE_MAX, 0);
	ck_assert_msg(rc == 0, "curl %s: exit %d (curl missing? tools/bootstrap "
		      "installs it)", url, rc);
	ck_assert_msg(prom_check(scrape_buf, err, sizeof(err)) == 0,
		      "scrape of %s fails the format check: %s", url, err);
	return scrape_buf;
}

/* curl's HTTP status for a request. */
static int http_status(const char *url, const char *unix_path,
		       const char *method)
{
	char out[64];
	char *argv[] = { "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
			 "--max-time", "30", "-X", (char *)method,
			 "--unix-socket", (char *)unix_path, (char *)url, NULL };

	run_capture(argv, out, sizeof(out), 0);
	return atoi(out);
}

static double vm_metric(const char *text, const char *family, const char *vm)
{
	char series[256];

	snprintf(series, sizeof(series), "%s{vm=\"%s\"}", family, vm);
	return prom_value(text, series);
}

/*
 * Remove dir when this test's process ends, however it ends (a failed
 * assertion _exits): a cleaner in its own process group waits for EOF
 * on a pipe only this process holds.
 */
static void on_exit_rm(const char *dir)
{
	int p[2];

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	pid_t c = fork();
	ck_assert_int_ge(c, 0);
	if (c == 0) {
		char b;
		close(p[1]);
		setpgid(0, 0);
		while (read(p[0], &b, 1) > 0)
			;
		execlp("rm", "rm", "-rf", dir, NULL);
		_exit(127);
	}
	close(p[0]);
}

/* ---- scrapes ---------------------------------------------------------- */

START_TEST(test_scrape_tcp)
{
	struct pk_test_daemon d;
	struct guest g;
	char args[256], url[128];
	static const char *const gargs[] = { "--size", "16M", "--workload",
					     "random", "--duration", "0.5",
					     "--hold", NULL };
	int port = loopback_port();

	snprintf(args, sizeof(args), "--metrics-listen 127.0.0.1:%d "
		 "--scan-rate 0 --swap-size 16M --budget 1G", port);
	ck_assert_msg(pk_test_daemon_start(&d, args) == 0, "%s", d.error);
	wait_endpoint(port, NULL);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
	const char *t = scrape(url, NULL);
	ck_assert_msg(prom_value(t, "pagekeeper_vms") == 0, "%.300s", t);

	guest_start(&g, d.sock, "mg1", gargs);
	guest_expect(&g, "HOLDING", NULL, pk_test_deadline_ms(20000),
		     "the guest's run");
	t = scrape(url, NULL);
	const char *keys[] = { "granted_mib", "configured_mib", "swapped_mib",
			       "shared_mib", "faults_total", NULL };
	double st[5];
	vm_fields(&d, "mg1", keys, st);
	ck_assert_msg(vm_metric(t, "pagekeeper_vm_configured_bytes", "mg1") ==
			      16 * MIB, "configured: %.300s", t);
	double granted = vm_metric(t, "pagekeeper_vm_granted_bytes", "mg1");
	ck_assert_msg(granted > 0 && granted == st[0] * MIB,
		      "granted %.0f B, status %.3f MiB", granted, st[0]);
	ck_assert_msg(vm_metric(t, "pagekeeper_vm_swapped_bytes", "mg1") ==
			      st[2] * MIB, "swapped differs from status");
	ck_assert_msg(vm_metric(t, "pagekeeper_vm_shared_bytes", "mg1") ==
			      st[3] * MIB, "shared differs from status");
	double vf = vm_metric(t, "pagekeeper_vm_faults_total", "mg1");
	double hf = prom_value(t, "pagekeeper_faults_total");
	double hc = prom_value(t, "pagekeeper_fault_latency_seconds_count");
	ck_assert_msg(vf > 0 && vf == st[4] && hf >= vf,
		      "faults: vm %.0f, status %.0f, host %.0f", vf, st[4], hf);
	ck_assert_msg(hc > 0 && hc <= hf, "latency histogram counted %.0f of "
		      "%.0f faults", hc, hf);
	double ones = 0;
	static const char *const states[] = { "high", "soft", "hard", "low" };
	for (int i = 0; i < 4; i++) {
		char s[64];
		snprintf(s, sizeof(s), "pagekeeper_state{state=\"%s\"}", states[i]);
		double v = prom_value(t, s);
		ck_assert_msg(v == 0 || v == 1, "%s = %g", s, v);
		ones += v;
	}
	ck_assert_msg(ones == 1, "%g states are current", ones);
	ck_assert_msg(prom_value(t, "pagekeeper_budget_bytes") == 1024 * MIB,
		      "budget");
	fprintf(stderr, "metrics tcp: %zu bytes, %.0f faults, %.0f timed, "
		"max %.6f s\n", strlen(t), hf, hc,
		prom_value(t, "pagekeeper_fault_latency_max_seconds"));
	ck_assert_int_eq(guest_finish(&g, 2000), 0);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

START_TEST(test_scrape_unix)
{
	struct pk_test_daemon d;
	char conf[160], dir[64], sock[160], args[256], out[2048];
	struct stat st;
	FILE *f;

	snprintf(dir, sizeof(dir), "/tmp/pk-metrics-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	on_exit_rm(dir);
	snprintf(conf, sizeof(conf), "%s/pagekeeper.conf", dir);
	snprintf(sock, sizeof(sock), "%s/metrics.sock", dir);
	f = fopen(conf, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[metrics]\nlisten = unix:%s\n", sock);
	fclose(f);
	snprintf(args, sizeof(args), "--config %s --scan-rate 0", conf);
	if (pk_test_daemon_start(&d, args) != 0) {
		unlink(conf);
		rmdir(dir);
		ck_abort_msg("%s", d.error);
	}
	wait_endpoint(0, sock);
	ck_assert_msg(stat(sock, &st) == 0, "no %s: %s", sock, strerror(errno));
	ck_assert_msg(S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600,
		      "%s has mode %o, want a socket with 0600 (no admin group)",
		      sock, st.st_mode & 0777);
	const char *t = scrape("http://localhost/metrics", sock);
	ck_assert_msg(prom_value(t, "pagekeeper_metrics_scrapes_total") >= 1,
		      "%.300s", t);
	ck_assert_int_eq(http_status("http://localhost/nope", sock, "GET"), 404);
	ck_assert_int_eq(http_status("http://localhost/metrics", sock, "POST"),
			 405);
	pk_test_daemon_stop_ok(&d);
	ck_assert_msg(access(sock, F_OK) != 0, "%s left after the stop", sock);

	/* Only loopback: the endpoint shows VM names. */
	char *argv[] = { (char *)getenv("PK_DAEMON"), "--metrics-listen",
			 "0.0.0.0:9187", "--foreground", NULL };
	int rc = run_capture(argv, out, sizeof(out), 1);
	ck_assert_msg(rc == 2 && strstr(out, "not a loopback address"),
		      "--metrics-listen 0.0.0.0:9187: exit %d: %s", rc, out);
	unlink(conf);
	rmdir(dir);
}
END_TEST

/* ---- slow clients ----------------------------------------------------- */

#define N_VMS 60
#define N_HUNG 4
#define PK_IDLE_S 5 /* PK_METRICS_IDLE_MS (engine/metrics.h) */

static int tcp_connect(int port, int rcvbuf)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	if (rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0,
		      "connect: %s", strerror(errno));
	return fd;
}

/* Register a one-page in-process VM; returns its connection. */
static int small_vm(struct pk_test_daemon *d, struct pk_test_guest *g,
		    const char *name)
{
	static uint64_t buf[PK_PROTO_MAX_MSG / sizeof(uint64_t)];
	struct pk_region_desc r;
	struct pk_reply_msg reply;
	char err[256] = "";
	int conn, rc;

	ck_assert_int_eq(pk_test_guest_create(g, 4096, 4096), 0);
	g->uffd = pk_test_uffd_open(PK_UFFD_FEATURES, err, sizeof(err));
	ck_assert_msg(g->uffd >= 0, "userfaultfd: %s", err);
	ck_assert_int_eq(pk_test_uffd_register(g->uffd, g->addr, 4096), 0);
	r = (struct pk_region_desc){ .host_addr = (uint64_t)(uintptr_t)g->addr,
				     .length = 4096, .page_size = PK_PAGE_SIZE };
	struct pk_registration reg = { .vm_name = name, .share_domain = "",
				       .balloon_channel = "", .n_regions = 1,
				       .regions = &r };
	int len = pk_register_encode(buf, sizeof(buf), &reg);
	ck_assert_int_gt(len, 0);
	int fds[2] = { g->uffd, g->memfd };
	rc = pk_test_request(d->sock, buf, (size_t)len, fds, 2, &reply, &conn);
	ck_assert_msg(rc == 0 && reply.status == 0, "register %s: %d %s", name,
		      rc, reply.reason);
	return conn;
}

/* Wait until the peer closed fd (recv 0 or an error); 1 if it did. */
static int closed_by_peer(int fd, long deadline)
{
	char buf[65536];

	for (;;) {
		long left = deadline - pk_test_now_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (left <= 0)
			return 0;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN))
			return 1;
	}
}

START_TEST(test_slow_clients)
{
	struct pk_test_daemon d;
	struct pk_test_guest vms[N_VMS];
	int vm_conn[N_VMS], conns[16], n_conns = 0;
	char args[256], url[128], name[32];
	int port = loopback_port();
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";

	snprintf(args, sizeof(args), "--metrics-listen 127.0.0.1:%d "
		 "--scan-rate 0 --swap-size 16M --budget 1G", port);
	ck_assert_msg(pk_test_daemon_start(&d, args) == 0, "%s", d.error);
	wait_endpoint(port, NULL);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
	for (int i = 0; i < N_VMS; i++) {
		snprintf(name, sizeof(name), "small-%02d", i);
		vm_conn[i] = small_vm(&d, &vms[i], name);
	}
	size_t answer = strlen(scrape(url, NULL));
	int base = pk_test_daemon_settled_fd_count(&d);

	/* Clients that ask and never read: the answer cannot fit in
	 * their receive buffers, so the daemon's send hits EAGAIN. */
	for (int i = 0; i < N_HUNG; i++) {
		conns[n_conns] = tcp_connect(port, 1024);
		ck_assert_int_eq(send(conns[n_conns], req, sizeof(req) - 1, 0),
				 (ssize_t)(sizeof(req) - 1));
		n_conns++;
	}
	/* Idle ones up to the cap (16). */
	while (n_conns < 16)
		conns[n_conns++] = tcp_connect(port, 0);
	ck_assert_msg(pk_test_daemon_wait_fd_count(&d, base + 16, 3000) ==
			      base + 16, "the daemon holds %d fds, want %d",
		      pk_test_daemon_fd_count(&d), base + 16);
	/* One more is closed at once: the cap. */
	int extra = tcp_connect(port, 0);
	ck_assert_msg(closed_by_peer(extra, pk_test_deadline_ms(2000)),
		      "a 17th connection was not closed");
	close(extra);
	/* The hung readers' answers are still being written (EAGAIN, the
	 * daemon waits for EPOLLOUT): the test does make its send block. */
	int held = pk_test_daemon_fd_count(&d);
	ck_assert_msg(held == base + 16, "%d fds (base %d): the hung clients' "
		      "answers fit in their buffers, the test proves nothing",
		      held, base);

	/* A guest faults meanwhile: its run finishes, no fault stalls. */
	struct guest g;
	json_object *res = NULL;
	static const char *const gargs[] = { "--size", "32M", "--workload",
					     "random", "--duration", "1",
					     "--json", NULL };
	long t0 = pk_test_now_ms();
	guest_start(&g, d.sock, "mslow", gargs);
	guest_expect(&g, NULL, &res, pk_test_deadline_ms(15000),
		     "the guest's run while metrics clients hang");
	ck_assert_int_eq(guest_finish(&g, 2000), 0);
	ck_assert_ptr_nonnull(res);
	long run_ms = pk_test_now_ms() - t0;
	double rmax = jnum(res, "read_max_us"), wmax = jnum(res, "write_max_us");
	json_object_put(res);

	/* The idle timeout closes every one of them, the hung readers
	 * too (they have read nothing: no progress). */
	int left = pk_test_daemon_wait_fd_count(
		&d, base, (int)(1000 * (PK_IDLE_S + 3) * pk_test_time_scale()));
	ck_assert_msg(left == base, "the daemon still holds %d fds (base %d) "
		      "after the idle timeout", left, base);
	for (int i = 0; i < n_conns; i++)
		ck_assert_msg(closed_by_peer(conns[i], pk_test_deadline_ms(2000)),
			      "connection %d (%s) not closed by the idle "
			      "timeout", i, i < N_HUNG ? "hung reader" : "idle");
	const char *t = scrape(url, NULL);
	double fmax = prom_value(t, "pagekeeper_fault_latency_max_seconds");
	fprintf(stderr, "metrics slow clients: answer %zu bytes, guest run "
		"%ld ms, guest worst read %.0f us, write %.0f us, daemon "
		"worst fault %.6f s; refused %.0f, timed out %.0f\n", answer,
		run_ms, rmax, wmax, fmax,
		prom_value(t, "pagekeeper_metrics_refused_total"),
		prom_value(t, "pagekeeper_metrics_timeouts_total"));
	ck_assert_msg(fmax < 0.25 * pk_test_time_scale(),
		      "worst fault took %.3f s while clients hung", fmax);
	ck_assert_msg(prom_value(t, "pagekeeper_metrics_refused_total") >= 1 &&
			      prom_value(t, "pagekeeper_metrics_timeouts_total") >=
				      16, "refused/timeouts not counted");
	for (int i = 0; i < n_conns; i++)
		close(conns[i]);
	for (int i = 0; i < N_VMS; i++) {
		close(vm_conn[i]);
		pk_test_guest_destroy(&vms[i]);
	}
	pk_test_daemon_stop_ok(&d);
}
END_TEST

static Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_parser_rejects);
	tcase_add_test(tc, test_scrape_tcp);
	tcase_add_test(tc, test_scrape_unix);
	tcase_add_test(tc, test_slow_clients);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(metrics_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
