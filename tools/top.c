/*
 * top.c - `pagekeeper top` (a live per-VM view) and `pagekeeper vm VM`
 * (one VM in detail).
 *
 * What: top fetches the daemon's status (the same STATUS request and
 * JSON as `pagekeeper status`, through pk_cli_status_rc()) every -d
 * SECONDS and draws one frame: the memory state, free %, budget, the
 * host's rates (faults/s, swap-ins/s, swap-outs/s from the counters of
 * two consecutive snapshots) and one line per VM with its granted,
 * active, target, ballooned, swapped and shared MiB.  vm prints every
 * figure the status has for one VM with its unit.
 *
 * How: on a terminal the frame is drawn from the home position after an
 * ANSI clear, cut to the terminal's size (TIOCGWINSZ, read again each
 * frame, so a resize redraws at once through SIGWINCH), and stdin is in
 * non-canonical mode so 'q' quits without Enter; the terminal's mode is
 * restored on every exit.  When stdout is not a terminal each frame is
 * printed plainly, one per interval, for scripts and logs; -n N stops
 * after N frames.  The first frame has no rates yet ("-").
 *
 * Why a second request per frame and no daemon-side rates: the daemon's
 * own faults_per_s is per 1 s tick; deltas over the interval the user
 * chose are what top's header promises, and a VM that comes or goes
 * between frames only drops out of the sums.
 */
#include "tools/cli.h"

#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define TOP_DEFAULT_S 2.0
#define TOP_MIN_S 0.1
#define TOP_MAX_VMS 1024

/* One VM's counters in a snapshot, for the rates. */
struct vm_count {
	char name[64];
	long long id;
	double faults, swapins, swapouts;
};

struct top {
	const char *sock;
	double interval_s;
	long frames; /* -n; 0: until q */
	int tty_out, tty_in;
	struct termios saved;
	int saved_ok;
	struct vm_count prev[TOP_MAX_VMS], cur[TOP_MAX_VMS];
	int n_prev, n_cur;
	double prev_t;
	int have_prev;
};

/* SIGWINCH/SIGINT/SIGTERM only set these (a handler can reach nothing
 * else): the loop does the rest. */
static volatile sig_atomic_t got_winch, got_stop;

static void on_signal(int sig)
{
	if (sig == SIGWINCH)
		got_winch = 1;
	else
		got_stop = 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static double num(json_object *o, const char *key)
{
	json_object *v = get(o, key);

	return v ? json_object_get_double(v) : 0.0;
}

static const char *str(json_object *o, const char *key)
{
	json_object *v = get(o, key);

	return v && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v) : "?";
}

/* ---- frames ----------------------------------------------------------- */

struct frame {
	char lines[TOP_MAX_VMS + 16][256];
	int n;
};

static void line(struct frame *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void line(struct frame *f, const char *fmt, ...)
{
	va_list ap;

	if (f->n >= (int)(sizeof(f->lines) / sizeof(f->lines[0])))
		return;
	va_start(ap, fmt);
	vsnprintf(f->lines[f->n++], sizeof(f->lines[0]), fmt, ap);
	va_end(ap);
}

static const struct vm_count *find_prev(const struct top *t, const char *name,
					long long id)
{
	for (int i = 0; i < t->n_prev; i++)
		if (t->prev[i].id == id && !strcmp(t->prev[i].name, name))
			return &t->prev[i];
	return NULL;
}

/* A rate from the previous snapshot, or "-" on the first frame. */
static const char *rate(char *buf, size_t len, int have, double per_s)
{
	if (!have)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1f", per_s);
	return buf;
}

static void build_frame(struct top *t, json_object *root, struct frame *f)
{
	json_object *vms = get(root, "vms");
	size_t n = vms ? json_object_array_length(vms) : 0;
	double now = now_s(), dt = t->have_prev ? now - t->prev_t : 0;
	double d_faults = 0, d_in = 0, d_out = 0;
	char clock[16], r1[32], r2[32], r3[32];
	time_t wall = time(NULL);
	struct tm tm;

	/* This snapshot's counters, and the deltas from the last one. */
	t->n_cur = 0;
	for (size_t i = 0; i < n && t->n_cur < TOP_MAX_VMS; i++) {
		json_object *vm = json_object_array_get_idx(vms, i);
		struct vm_count *c = &t->cur[t->n_cur++];
		snprintf(c->name, sizeof(c->name), "%s", str(vm, "name"));
		c->id = (long long)num(vm, "id");
		c->faults = num(vm, "faults_total");
		c->swapins = num(vm, "swapins");
		c->swapouts = num(vm, "evictions");
		const struct vm_count *p = find_prev(t, c->name, c->id);
		if (p) {
			d_faults += c->faults - p->faults;
			d_in += c->swapins - p->swapins;
			d_out += c->swapouts - p->swapouts;
		}
	}
	int have = t->have_prev && dt > 0;
	localtime_r(&wall, &tm);
	strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
	f->n = 0;
	line(f, "pagekeeper top - %s  state %s  free %.1f %%  budget %.1f MiB  "
	     "used %.1f MiB", clock, str(root, "state"), num(root, "free_pct"),
	     num(root, "budget_mib"), num(root, "used_mib"));
	line(f, "VMs %zu (%zu waiting)  faults %s /s  swap-ins %s pages/s  "
	     "swap-outs %s pages/s  every %.1f s%s", n,
	     get(root, "waiting_vms") ? json_object_array_length(
						get(root, "waiting_vms")) : 0,
	     rate(r1, sizeof(r1), have, have ? d_faults / dt : 0),
	     rate(r2, sizeof(r2), have, have ? d_in / dt : 0),
	     rate(r3, sizeof(r3), have, have ? d_out / dt : 0),
	     t->interval_s, t->tty_in ? "  (q quits)" : "");
	line(f, "%s", "");
	line(f, "%-20s %11s %11s %11s %11s %11s %11s %9s", "VM", "GRANTED",
	     "ACTIVE", "TARGET", "BALLOONED", "SWAPPED", "SHARED", "FAULTS/s");
	line(f, "%-20s %11s %11s %11s %11s %11s %11s %9s", "", "MiB", "MiB",
	     "MiB", "MiB", "MiB", "MiB", "");
	for (size_t i = 0; i < n; i++) {
		json_object *vm = json_object_array_get_idx(vms, i);
		const struct vm_count *c = i < (size_t)t->n_cur ? &t->cur[i] : NULL;
		const struct vm_count *p = c ? find_prev(t, c->name, c->id) : NULL;
		line(f, "%-20.20s %11.1f %11.1f %11.1f %11.1f %11.1f %11.1f %9s",
		     str(vm, "name"), num(vm, "granted_mib"), num(vm, "active_mib"),
		     num(vm, "target_mib"), num(vm, "ballooned_mib"),
		     num(vm, "swapped_mib"), num(vm, "shared_mib"),
		     rate(r1, sizeof(r1), have && p,
			  have && p ? (c->faults - p->faults) / dt : 0));
	}
	if (!n)
		line(f, "(no VMs registered)");
	memcpy(t->prev, t->cur, sizeof(t->cur[0]) * (size_t)t->n_cur);
	t->n_prev = t->n_cur;
	t->prev_t = now;
	t->have_prev = 1;
}

static void draw(const struct top *t, const struct frame *f)
{
	if (!t->tty_out) {
		for (int i = 0; i < f->n; i++)
			printf("%s\n", f->lines[i]);
		printf("\n");
		fflush(stdout);
		return;
	}
	struct winsize ws = { .ws_row = 24, .ws_col = 80 };
	ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws);
	if (!ws.ws_row)
		ws.ws_row = 24;
	if (!ws.ws_col)
		ws.ws_col = 80;
	int rows = ws.ws_row, shown = f->n;
	if (shown > rows) /* the last row says how many are cut */
		shown = rows - 1;
	fputs("\033[H\033[2J", stdout);
	for (int i = 0; i < shown; i++)
		printf("%.*s\033[K%s", (int)ws.ws_col, f->lines[i],
		       i + 1 < rows ? "\r\n" : "");
	if (shown < f->n)
		printf("... %d more VMs (a larger terminal shows them)",
		       f->n - shown);
	fflush(stdout);
}

/* ---- the terminal ------------------------------------------------------ */

/* Back to the terminal's mode (every return of pk_cli_top() passes here;
 * SIGINT and SIGTERM only end its loop). */
static void tty_restore(struct top *t)
{
	if (t->saved_ok) {
		tcsetattr(STDIN_FILENO, TCSANOW, &t->saved);
		t->saved_ok = 0;
	}
	if (t->tty_out)
		fputs("\r\n", stdout);
}

static void tty_raw(struct top *t)
{
	struct termios raw;

	if (!t->tty_in || tcgetattr(STDIN_FILENO, &t->saved) < 0)
		return;
	raw = t->saved;
	raw.c_lflag &= (tcflag_t) ~(ICANON | ECHO);
	raw.c_cc[VMIN] = 0;
	raw.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
		t->saved_ok = 1;
}

/* Wait up to the interval for 'q' or a signal: 1 to quit. */
static int wait_key(struct top *t, double until)
{
	for (;;) {
		double left = until - now_s();
		if (got_stop)
			return 1;
		if (got_winch) {
			got_winch = 0;
			return 0; /* redraw now, at the new size */
		}
		if (left <= 0)
			return 0;
		struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
		int r = poll(&p, t->tty_in ? 1 : 0, (int)(left * 1000) + 1);
		if (r > 0 && (p.revents & (POLLHUP | POLLERR)))
			t->tty_in = 0; /* stdin went away: keep drawing */
		if (r > 0 && (p.revents & POLLIN)) {
			char ch;
			ssize_t k = read(STDIN_FILENO, &ch, 1);
			if (k == 1 && (ch == 'q' || ch == 'Q'))
				return 1;
			if (k == 0)
				t->tty_in = 0;
		}
	}
}

static int parse_double(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return !*s || *end || errno || !(*out >= 0) ? -1 : 0;
}

static void top_usage(FILE *f)
{
	fprintf(f, "usage: pagekeeper [--socket PATH] top [-d SECONDS] [-n N]\n"
		"  -d SECONDS   refresh interval, >= %.1f (default %.0f)\n"
		"  -n N         stop after N frames (default: until q)\n"
		"  q quits; not on a terminal, one plain frame per interval\n",
		TOP_MIN_S, TOP_DEFAULT_S);
}

int pk_cli_top(const char *sock, int argc, char **argv)
{
	struct top *t = calloc(1, sizeof(*t));
	int rc = PK_EXIT_OK;

	if (!t) {
		fprintf(stderr, "pagekeeper: out of memory\n");
		return PK_EXIT_FAILED;
	}
	t->sock = sock;
	t->interval_s = TOP_DEFAULT_S;
	for (int i = 1; i < argc; i++) {
		double v;
		if (!strcmp(argv[i], "-d") && i + 1 < argc &&
		    parse_double(argv[i + 1], &v) == 0 && v >= TOP_MIN_S) {
			t->interval_s = v;
			i++;
		} else if (!strcmp(argv[i], "-n") && i + 1 < argc &&
			   parse_double(argv[i + 1], &v) == 0 && v >= 1 &&
			   v == (double)(long)v) {
			t->frames = (long)v;
			i++;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			top_usage(stdout);
			free(t);
			return PK_EXIT_OK;
		} else {
			fprintf(stderr, "pagekeeper: top: bad argument '%s'%s\n",
				argv[i], !strcmp(argv[i], "-d")
				? " (want -d SECONDS, at least 0.1)"
				: !strcmp(argv[i], "-n") ? " (want -n N, N >= 1)" : "");
			top_usage(stderr);
			free(t);
			return PK_EXIT_USAGE;
		}
	}
	t->tty_out = isatty(STDOUT_FILENO);
	t->tty_in = t->tty_out && isatty(STDIN_FILENO);
	/* SA_RESTART: a status request in flight finishes; poll() in
	 * wait_key() still wakes at once (it never restarts). */
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
	sigaction(SIGWINCH, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct frame *f = malloc(sizeof(*f));
	if (!f) {
		fprintf(stderr, "pagekeeper: out of memory\n");
		free(t);
		return PK_EXIT_FAILED;
	}
	tty_raw(t);
	for (long k = 0; !t->frames || k < t->frames; k++) {
		double next = now_s() + t->interval_s;
		json_object *root = pk_cli_status_rc(sock, 0, &rc);
		if (!root)
			break; /* the message is out; rc says why */
		rc = PK_EXIT_OK;
		build_frame(t, root, f);
		json_object_put(root);
		draw(t, f);
		if ((t->frames && k + 1 >= t->frames) || wait_key(t, next))
			break;
	}
	tty_restore(t);
	free(f);
	free(t);
	return rc;
}

/* ---- pagekeeper vm VM ------------------------------------------------ */

/* A status key's unit, from its suffix (PROTOCOL.md's convention). */
static const struct {
	const char *suffix, *unit;
} units[] = {
	{ "_mib_per_s", "MiB/s" }, { "_per_s", "/s" },	 { "_mib", "MiB" },
	{ "_bytes", "bytes" },	   { "_ms", "ms" },	 { "_us", "us" },
	{ "_percent", "%" },	   { "_s", "s" },
};

static void print_field(const char *key, json_object *v)
{
	const char *unit = "";
	size_t kl = strlen(key);

	for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
		size_t sl = strlen(units[u].suffix);
		if (kl > sl && !strcmp(key + kl - sl, units[u].suffix)) {
			unit = units[u].unit;
			break;
		}
	}
	printf("  %-28s ", key); /* the key PROTOCOL.md documents */
	if (!v)
		printf("-\n"); /* nobody reported it */
	else if (json_object_is_type(v, json_type_boolean))
		printf("%s\n", json_object_get_boolean(v) ? "yes" : "no");
	else if (json_object_is_type(v, json_type_double))
		printf("%.2f%s%s\n", json_object_get_double(v), *unit ? " " : "",
		       unit);
	else if (json_object_is_type(v, json_type_int))
		printf("%lld%s%s\n", (long long)json_object_get_int64(v),
		       *unit ? " " : "", *unit ? unit : "");
	else
		printf("%s\n", json_object_get_string(v));
}

int pk_cli_vm(const char *sock, int argc, char **argv)
{
	json_object *root, *vms, *found = NULL;
	int rc = PK_EXIT_OK;

	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: pagekeeper [--socket PATH] vm VM\n");
		return argc == 2 && !strcmp(argv[1], "--help") ? PK_EXIT_OK
							       : PK_EXIT_USAGE;
	}
	root = pk_cli_status_rc(sock, 0, &rc);
	if (!root)
		return rc;
	vms = get(root, "vms");
	for (size_t i = 0; vms && i < json_object_array_length(vms); i++) {
		json_object *vm = json_object_array_get_idx(vms, i);
		if (!strcmp(str(vm, "name"), argv[1]))
			found = vm;
	}
	if (!found) {
		fprintf(stderr, "pagekeeper: vm: no VM '%s' is registered (or "
			"it is not yours); `pagekeeper status` lists them\n",
			argv[1]);
		json_object_put(root);
		return PK_EXIT_FAILED;
	}
	printf("VM %s\n", argv[1]);
	json_object_object_foreach(found, key, val) {
		if (strcmp(key, "name"))
			print_field(key, val);
	}
	json_object_put(root);
	return PK_EXIT_OK;
}
