/*
 * test_balloon.c - the balloon bridge's QMP and lab drivers, driven
 * directly through balloon.h by the test's own event loop (suite
 * 'balloon', in the default run).
 *
 * What:
 *  - hostile QMP peers, each a real UNIX socket server on a thread of
 *    this test: silent (no greeting), a greeting then silence, garbage
 *    after the greeting, a command never answered, a reply cut by a
 *    close, a line over the 64 KiB limit.  Each must end in
 *    PK_BLN_EV_GONE with an info.why that names the fault, the link back
 *    to CONNECTING, never UP, and a reconnect (the peer counts a second
 *    accept); timeouts must take at least cfg.timeout_ms;
 *  - the same for the lab driver (no greeting, a greeting of another
 *    version, garbage, stats never answered, a close mid-line, a line
 *    over 4096 bytes);
 *  - the loop never blocks: every pk_balloon_* call the loop makes is
 *    timed and the longest (printed) must stay under 50 ms x
 *    pk_test_time_scale(), while the peers' timeouts are 400 ms;
 *  - bad input: targets above RAM, below 1 MiB, not a multiple of 4096,
 *    an empty channel, channel paths too long: -EINVAL and a why that
 *    says so; a socket that does not exist yet is retried until it does;
 *  - protocol flow against a MOCK of QEMU's QMP (a script in this test
 *    that answers as QEMU 7.2 does; allowed for this default-suite flow
 *    test only - the real QEMU is the 'qemu' suite case below):
 *    greeting, capabilities, query-balloon, the device found by qom-list,
 *    the stats polling interval set on it, guest-stats mapped to info,
 *    balloon targets and BALLOON_CHANGE, a refused target
 *    (PK_BLN_EV_FAILED), no balloon device (NO_DRIVER, -ENODEV) then one,
 *    and the monitor restarted (a target set meanwhile is sent once the
 *    link is back);
 *  - lab_real_guest: the lab driver against real lab guests
 *    (pk-guestsim --no-daemon --balloon, $PK_GUESTSIM): UP, stats, an
 *    inflate from 64 to 32 MiB past the guest's free memory (its own
 *    swap_out must grow), a deflate back, and a --locked 0.8 guest whose
 *    balloon stalls short (PK_BLN_EV_STALLED, shortfall, why);
 *  - suite 'qemu' (CK_RUN_SUITE=qemu, meson test 'balloon_qemu', slow):
 *    qmp_real_qemu, a real TCG guest of tools/guest-image (256 MiB,
 *    virtio-balloon-pci with free-page-reporting=on, its checker over 64
 *    MiB): the bridge comes UP on QEMU's own QMP socket, its guest-stats
 *    total matches the guest's MemTotal, 256 -> 176 -> 256 MiB through
 *    `balloon`, MemTotal follows (80 MiB less, then back), the checker
 *    finds 0 errors; inflate and deflate rates are printed (MEASURE).
 *
 * How: each peer is a thread that accepts, runs its script on the
 * connection, and counts accepts; the bridge runs in this thread's
 * poll(2) loop (pk_balloon_fd, _io, _tick), and every wait is for a
 * condition with a deadline derived from the timeouts and back-offs it
 * spans, times pk_test_time_scale().
 *
 * Why: the loop that owns a bridge serves page faults; a balloon peer
 * that lies, hangs or floods must cost one bounded call and be reported.
 */
#include "balloon-bridge/balloon.h"
#include "tests/daemon_fixture.h"
#include "tests/qemu_guest.h"

#include <check.h>
#include <ftw.h>
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024ull * 1024ull)
/* The bridge's request timeout in these tests, and its first back-off. */
#define TIMEOUT_MS 400u
#define BACKOFF_MS 1000u
/* The longest any pk_balloon_* call may take, before the build scale. */
#define MAX_CALL_MS 50.0
/* A voluntary context switch in a call this long or longer is a wait. */
#define WAIT_MS 2.0

/*
 * Every socket, page file and directory of this run lives under run_dir,
 * made by main() and removed by it after all cases: a case that fails
 * (Check's fork mode _exit()s, no teardown) leaves nothing behind.
 */
static char run_dir[32];

static void fresh_dir(char *dir, size_t len, const char *tag)
{
	snprintf(dir, len, "%s/%s-XXXXXX", run_dir, tag);
	ck_assert_msg(mkdtemp(dir), "mkdtemp %s: %s", dir, strerror(errno));
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* ---- a peer: a UNIX socket server on a thread ---------------------- */

struct conn {
	int fd;
	char buf[8192];
	size_t len;
};

struct peer;
typedef void peer_script(struct peer *p, struct conn *c);

struct peer {
	char dir[64];
	char path[108];
	int lfd;
	pthread_t th;
	peer_script *script;
	atomic_int accepts;
	atomic_int stop;
	/* The mock's knobs and what it saw. */
	atomic_int no_balloon;	 /* query-balloon: DeviceNotActive */
	atomic_int refuse;	 /* balloon: an error */
	atomic_int hangup;	 /* close the connection now */
	atomic_llong actual;	 /* bytes */
	atomic_llong last_value; /* the last balloon value */
	atomic_llong interval;	 /* qom-set guest-stats-polling-interval */
	char set_path[128];	 /* the qom-set path */
	atomic_int commands;
};

static void *peer_main(void *arg)
{
	struct peer *p = arg;

	while (!atomic_load(&p->stop)) {
		struct pollfd pf = { .fd = p->lfd, .events = POLLIN };
		struct conn c = { .fd = -1 };

		if (poll(&pf, 1, 20) <= 0)
			continue;
		c.fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c.fd < 0)
			continue;
		atomic_fetch_add(&p->accepts, 1);
		p->script(p, &c);
		close(c.fd);
	}
	return NULL;
}

/* A peer listening at a fresh path, or (listen 0) only the path. */
static void peer_start(struct peer *p, peer_script *script, int listen_now)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(p, 0, sizeof(*p));
	p->lfd = -1;
	p->script = script;
	atomic_store(&p->actual, (long long)(512 * MIB));
	fresh_dir(p->dir, sizeof(p->dir), "peer");
	snprintf(p->path, sizeof(p->path), "%s/peer.sock", p->dir);
	if (!listen_now)
		return;
	strcpy(sa.sun_path, p->path);
	p->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(p->lfd, 0);
	ck_assert_msg(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
		      "bind %s: %s", p->path, strerror(errno));
	ck_assert_int_eq(listen(p->lfd, 8), 0);
	ck_assert_int_eq(pthread_create(&p->th, NULL, peer_main, p), 0);
}

static void peer_listen_late(struct peer *p)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	strcpy(sa.sun_path, p->path);
	p->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(p->lfd, 0);
	ck_assert_int_eq(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(p->lfd, 8), 0);
	ck_assert_int_eq(pthread_create(&p->th, NULL, peer_main, p), 0);
}

static void peer_stop(struct peer *p)
{
	atomic_store(&p->stop, 1);
	if (p->lfd >= 0) {
		pthread_join(p->th, NULL);
		close(p->lfd);
	}
	unlink(p->path);
	rmdir(p->dir);
}

static void conn_send(struct conn *c, const char *s)
{
	size_t n = strlen(s), off = 0;

	while (off < n) {
		ssize_t w = send(c->fd, s + off, n - off, MSG_NOSIGNAL);
		if (w <= 0)
			return;	/* the bridge closed: the script ends */
		off += (size_t)w;
	}
}

/*
 * The next line from the bridge, parsed: 1 (*o), 0 when the peer is
 * asked to stop or hang up, -1 when the bridge closed the connection.
 */
static int conn_read(struct peer *p, struct conn *c, json_object **o)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		struct pollfd pf = { .fd = c->fd, .events = POLLIN };
		ssize_t n;

		if (nl) {
			*nl = '\0';
			*o = json_tokener_parse(c->buf);
			c->len -= (size_t)(nl + 1 - c->buf);
			memmove(c->buf, nl + 1, c->len);
			if (*o)
				return 1;
			continue;
		}
		if (atomic_load(&p->stop) || atomic_load(&p->hangup))
			return 0;
		if (poll(&pf, 1, 20) <= 0)
			continue;
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (n <= 0)
			return -1;
		c->len += (size_t)n;
	}
}

/* Say nothing until the bridge closes or the test ends. */
static void hold(struct peer *p, struct conn *c)
{
	json_object *o;

	while (conn_read(p, c, &o) == 1)
		json_object_put(o);
}

static const char *str_of(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ?
	       json_object_get_string(v) : "";
}

static long long id_of(json_object *o)
{
	json_object *v;

	return json_object_object_get_ex(o, "id", &v) ?
	       json_object_get_int64(v) : -1;
}

static void reply(struct conn *c, long long id, const char *ret_json)
{
	char line[2048];

	snprintf(line, sizeof(line), "{\"return\": %s, \"id\": %lld}\r\n",
		 ret_json, id);
	conn_send(c, line);
}

#define GREETING "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, " \
	"\"minor\": 2, \"major\": 7}, \"package\": \"\"}, " \
	"\"capabilities\": [\"oob\"]}}\r\n"

/* Greet and answer qmp_capabilities; 1, or 0 if the bridge left. */
static int qmp_hello(struct peer *p, struct conn *c)
{
	json_object *o;

	conn_send(c, GREETING);
	if (conn_read(p, c, &o) != 1)
		return 0;
	reply(c, id_of(o), "{}");
	json_object_put(o);
	return 1;
}

/* ---- hostile QMP scripts -------------------------------------------- */

static void qmp_silent(struct peer *p, struct conn *c)
{
	hold(p, c);
}

static void qmp_greet_then_silence(struct peer *p, struct conn *c)
{
	conn_send(c, GREETING);
	hold(p, c);
}

static void qmp_garbage(struct peer *p, struct conn *c)
{
	json_object *o;

	conn_send(c, GREETING);
	if (conn_read(p, c, &o) != 1)
		return;
	json_object_put(o);
	conn_send(c, "Segmentation fault (core dumped) {\"return\"\n");
	hold(p, c);
}

static void qmp_never_answers(struct peer *p, struct conn *c)
{
	if (qmp_hello(p, c))
		hold(p, c);	/* query-balloon: never answered */
}

static void qmp_close_mid_reply(struct peer *p, struct conn *c)
{
	json_object *o;

	if (!qmp_hello(p, c) || conn_read(p, c, &o) != 1)
		return;
	json_object_put(o);
	conn_send(c, "{\"return\": {\"actual\": 5368");	/* and close */
}

static void qmp_long_line(struct peer *p, struct conn *c)
{
	static char big[70 * 1024];
	json_object *o;

	if (!qmp_hello(p, c) || conn_read(p, c, &o) != 1)
		return;
	json_object_put(o);
	memset(big, 'x', sizeof(big) - 1);
	memcpy(big, "{\"return\": \"", 12);
	conn_send(c, big);	/* no newline in 70 KiB */
	hold(p, c);
}

/* ---- hostile lab scripts --------------------------------------------- */

#define LAB_HELLO "{\"lab-balloon\": 1, \"ram\": 536870912, " \
	"\"actual\": 536870912}\n"

static void lab_silent(struct peer *p, struct conn *c)
{
	hold(p, c);
}

static void lab_version(struct peer *p, struct conn *c)
{
	conn_send(c, "{\"lab-balloon\": 7, \"ram\": 536870912}\n");
	hold(p, c);
}

static void lab_garbage(struct peer *p, struct conn *c)
{
	conn_send(c, LAB_HELLO);
	conn_send(c, "{\"event\": \"balloon\", \"actual\": 5}}}\n");
	hold(p, c);
}

static void lab_never_answers(struct peer *p, struct conn *c)
{
	conn_send(c, LAB_HELLO);
	hold(p, c);	/* "stats": never answered */
}

static void lab_close_mid_line(struct peer *p, struct conn *c)
{
	json_object *o;

	conn_send(c, LAB_HELLO);
	if (conn_read(p, c, &o) != 1)
		return;
	json_object_put(o);
	conn_send(c, "{\"return\": \"stats\", \"actual\": 53");
}

static void lab_long_line(struct peer *p, struct conn *c)
{
	static char big[5000];

	conn_send(c, LAB_HELLO);
	memset(big, ' ', sizeof(big) - 1);
	big[0] = '{';
	conn_send(c, big);
	hold(p, c);
}

/* ---- the owner: this thread's event loop ------------------------------ */

struct owner {
	struct pk_balloon *b;
	int ev[16];
	int link_after[16];	/* info.link right after each kind */
	char gone_why[PK_BALLOON_WHY_MAX]; /* info.why at the last GONE */
	char failed_why[PK_BALLOON_WHY_MAX];
	uint64_t gone_ms;	/* when the first GONE came */
	int up_at_gone;		/* UP events before the first GONE */
	uint64_t next_tick;
	double max_call_ms;
	const char *max_call;
	unsigned timeout_ms;	/* the bridge's request timeout */
	const char *blocked_call; /* the first call that waited */
	double blocked_ms;
	long preempted;		/* calls preempted: their time not counted */
};

static void on_event(struct pk_balloon *b, enum pk_balloon_event ev,
		     void *data)
{
	struct owner *o = data;
	const struct pk_balloon_info *in = pk_balloon_info(b);

	o->ev[ev]++;
	o->link_after[ev] = in->link;
	if (ev == PK_BLN_EV_GONE) {
		snprintf(o->gone_why, sizeof(o->gone_why), "%s", in->why);
		if (!o->gone_ms) {
			o->gone_ms = (uint64_t)pk_test_now_ms();
			o->up_at_gone = o->ev[PK_BLN_EV_UP];
		}
	}
	if (ev == PK_BLN_EV_FAILED)
		snprintf(o->failed_why, sizeof(o->failed_why), "%s", in->why);
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 +
	       (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/*
 * A call of the bridge, timed: wall time, and this thread's voluntary
 * and involuntary context switches across it (getrusage RUSAGE_THREAD).
 * A call that waits (a blocking recv, poll, connect) switches
 * voluntarily (counted when the call took WAIT_MS or more); a call preempted by QEMU's vCPU threads on 2 cores only
 * involuntarily, and its wall time is then not its own.
 */
struct call {
	struct timespec t0;
	struct rusage ru;
};

static void call_start(struct call *c)
{
	getrusage(RUSAGE_THREAD, &c->ru);
	clock_gettime(CLOCK_MONOTONIC, &c->t0);
}

static void timed(struct owner *o, const char *what, struct call *c)
{
	double ms = ms_since(&c->t0);
	struct rusage ru;
	long vol, invol;

	getrusage(RUSAGE_THREAD, &ru);
	vol = ru.ru_nvcsw - c->ru.ru_nvcsw;
	invol = ru.ru_nivcsw - c->ru.ru_nivcsw;
	/* Waits of the process's own, not the call's: a major fault
	 * (the first run of code paged in from disk), a short wait on the
	 * mm's lock taken by the peer thread. */
	if (ru.ru_majflt != c->ru.ru_majflt || ms < WAIT_MS)
		vol = 0;
	if (vol && !o->blocked_call) {
		o->blocked_call = what;
		o->blocked_ms = ms;
	}
	if (invol) {
		o->preempted++;
		return;
	}
	if (ms > o->max_call_ms) {
		o->max_call_ms = ms;
		o->max_call = what;
	}
}

static void owner_open_cfg(struct owner *o, enum pk_balloon_driver d,
			   const char *path, unsigned stats_ms,
			   uint64_t ram_bytes, unsigned timeout_ms)
{
	struct pk_balloon_cfg cfg = {
		.driver = d, .channel = path, .ram_bytes = ram_bytes,
		.stats_period_ms = stats_ms, .timeout_ms = timeout_ms,
		.on_event = on_event, .data = o,
	};
	char err[256] = "";
	struct call t0;

	memset(o, 0, sizeof(*o));
	call_start(&t0);
	ck_assert_msg(pk_balloon_open(&o->b, &cfg, err, sizeof(err)) == 0,
		      "pk_balloon_open(%s): %s", path, err);
	timed(o, "pk_balloon_open", &t0);
	o->next_tick = 0;
	o->timeout_ms = timeout_ms;
}

static void owner_open(struct owner *o, enum pk_balloon_driver d,
		       const char *path, unsigned stats_ms)
{
	owner_open_cfg(o, d, path, stats_ms, 512 * MIB, TIMEOUT_MS);
}

/* One turn of the loop: poll the bridge's fd until its next timer. */
static void owner_turn(struct owner *o)
{
	struct call t0;
	uint32_t ev;
	int fd, rc;
	uint64_t now = (uint64_t)pk_test_now_ms();
	int wait = 20;
	struct pollfd pf = { .fd = -1 };

	call_start(&t0);
	fd = pk_balloon_fd(o->b, &ev);
	timed(o, "pk_balloon_fd", &t0);
	if (o->next_tick > now && o->next_tick - now < (uint64_t)wait)
		wait = (int)(o->next_tick - now);
	if (o->next_tick <= now)
		wait = 0;
	pf.fd = fd;
	pf.events = (short)((ev & EPOLLIN ? POLLIN : 0) |
			    (ev & EPOLLOUT ? POLLOUT : 0));
	rc = poll(&pf, fd >= 0 ? 1 : 0, wait);
	if (rc > 0 && pf.revents) {
		uint32_t got = (pf.revents & POLLIN ? EPOLLIN : 0) |
			       (pf.revents & POLLOUT ? EPOLLOUT : 0) |
			       (pf.revents & POLLHUP ? EPOLLHUP : 0) |
			       (pf.revents & POLLERR ? EPOLLERR : 0);
		call_start(&t0);
		pk_balloon_io(o->b, got);
		timed(o, "pk_balloon_io", &t0);
	}
	now = (uint64_t)pk_test_now_ms();
	if (now >= o->next_tick) {
		call_start(&t0);
		o->next_tick = pk_balloon_tick(o->b, now);
		timed(o, "pk_balloon_tick", &t0);
	}
}

/*
 * Run the loop until cond holds, at most budget_ms x the build scale;
 * fails naming what it waited for.
 */
#define RUN_UNTIL(o, cond, budget_ms, ...)                                   \
	do {                                                                 \
		long dl_ = pk_test_deadline_ms(budget_ms);                   \
		while (!(cond) && pk_test_now_ms() < dl_)                    \
			owner_turn(o);                                       \
		ck_assert_msg((cond), "waited %.0f ms for " __VA_ARGS__);    \
	} while (0)

/* The same with a budget already scaled (qemu_guest.h's budgets). */
#define RUN_UNTIL_SCALED(o, cond, budget_ms, ...)                            \
	do {                                                                 \
		long dl_ = pk_test_now_ms() + (budget_ms);                   \
		while (!(cond) && pk_test_now_ms() < dl_)                    \
			owner_turn(o);                                       \
		ck_assert_msg((cond), "waited %ld ms for " __VA_ARGS__);     \
	} while (0)

static void owner_close(struct owner *o)
{
	struct call t0;

	call_start(&t0);
	pk_balloon_close(o->b);
	timed(o, "pk_balloon_close", &t0);
	o->b = NULL;
}

static void check_calls(struct owner *o, const char *name)
{
	double limit = MAX_CALL_MS * pk_test_time_scale();

	fprintf(stderr, "%s: longest pk_balloon_* call %.3f ms (%s), limit "
		"%.0f ms, request timeout %u ms; calls that waited: %s; calls "
		"preempted (not timed): %ld\n", name, o->max_call_ms,
		o->max_call ? o->max_call : "-", limit, o->timeout_ms,
		o->blocked_call ? o->blocked_call : "none", o->preempted);
	ck_assert_msg(!o->blocked_call, "%s: %s waited (a voluntary context "
		      "switch, %.1f ms): the bridge blocked its owner's loop",
		      name, o->blocked_call, o->blocked_ms);
	ck_assert_msg(o->max_call_ms < limit, "%s: %s took %.1f ms (limit "
		      "%.0f ms): the bridge blocked its owner's loop", name,
		      o->max_call, o->max_call_ms, limit);
}

/*
 * A hostile peer: the bridge must report want (in info.why at GONE),
 * never come UP, fall back to CONNECTING and connect again; a timeout
 * must not fire before min_ms.
 */
static void hostile(enum pk_balloon_driver d, peer_script *script,
		    const char *name, const char *want, unsigned min_ms,
		    int up_first)
{
	struct peer p;
	struct owner o;
	long t0;

	peer_start(&p, script, 1);
	t0 = pk_test_now_ms();
	owner_open(&o, d, p.path, 60000);
	/* The fault shows within the timeout; the reconnect after the
	 * first back-off; then the peer's second accept. */
	RUN_UNTIL(&o, o.ev[PK_BLN_EV_GONE] >= 1 &&
		  atomic_load(&p.accepts) >= 2,
		  TIMEOUT_MS * 2 + BACKOFF_MS + 1000,
		  "%s: GONE and a reconnect (GONE %d, accepts %d, why \"%s\")",
		  (double)(TIMEOUT_MS * 2 + BACKOFF_MS + 1000) *
		  pk_test_time_scale(), name, o.ev[PK_BLN_EV_GONE],
		  atomic_load(&p.accepts), pk_balloon_info(o.b)->why);
	fprintf(stderr, "%s: GONE after %lu ms: \"%s\"; reconnected (accept "
		"%d)\n", name, (unsigned long)(o.gone_ms - (uint64_t)t0),
		o.gone_why, atomic_load(&p.accepts));
	ck_assert_msg(strstr(o.gone_why, want), "%s: why \"%s\" does not "
		      "say \"%s\"", name, o.gone_why, want);
	ck_assert_msg(strstr(o.gone_why, p.path), "%s: why \"%s\" does not "
		      "name the socket", name, o.gone_why);
	ck_assert_int_eq(o.link_after[PK_BLN_EV_GONE], PK_BLN_CONNECTING);
	/* A peer that greets again may be UP again by now. */
	if (!up_first)
		ck_assert_int_eq(pk_balloon_info(o.b)->link,
				 PK_BLN_CONNECTING);
	ck_assert_int_eq(o.up_at_gone, up_first);
	ck_assert_msg(o.gone_ms - (uint64_t)t0 >= min_ms, "%s: gave up after "
		      "%lu ms, before the %u ms timeout", name,
		      (unsigned long)(o.gone_ms - (uint64_t)t0), min_ms);
	check_calls(&o, name);
	owner_close(&o);
	peer_stop(&p);
}

START_TEST(qmp_hostile)
{
	hostile(PK_BLN_QMP, qmp_silent, "qmp silent",
		"no QMP greeting within 400 ms", TIMEOUT_MS, 0);
	hostile(PK_BLN_QMP, qmp_greet_then_silence, "qmp greeting+silence",
		"no reply to qmp_capabilities within 400 ms", TIMEOUT_MS, 0);
	hostile(PK_BLN_QMP, qmp_garbage, "qmp garbage",
		"garbage from QEMU: not a JSON object: \"Segmentation", 0, 0);
	hostile(PK_BLN_QMP, qmp_never_answers, "qmp never answers",
		"no reply to query-balloon within 400 ms", TIMEOUT_MS, 0);
	hostile(PK_BLN_QMP, qmp_close_mid_reply, "qmp close mid-reply",
		"QEMU closed the socket mid-reply (26 bytes", 0, 0);
	hostile(PK_BLN_QMP, qmp_long_line, "qmp long line",
		"a line over 65536 bytes", 0, 0);
}
END_TEST

START_TEST(lab_hostile)
{
	hostile(PK_BLN_LAB, lab_silent, "lab silent",
		"no greeting from the guest within 400 ms", TIMEOUT_MS, 0);
	hostile(PK_BLN_LAB, lab_version, "lab version",
		"unsupported protocol version", 0, 0);
	hostile(PK_BLN_LAB, lab_garbage, "lab garbage",
		"garbage from the guest: not a JSON object", 0, 1);
	hostile(PK_BLN_LAB, lab_never_answers, "lab never answers",
		"no reply to stats within 400 ms", TIMEOUT_MS, 1);
	hostile(PK_BLN_LAB, lab_close_mid_line, "lab close mid-line",
		"closed the socket mid-line (32 bytes", 0, 1);
	hostile(PK_BLN_LAB, lab_long_line, "lab long line",
		"a line over 4096 bytes", 0, 1);
}
END_TEST

/* ---- bad input --------------------------------------------------------- */

static void open_fails(enum pk_balloon_driver d, const char *channel,
		       const char *want)
{
	struct pk_balloon_cfg cfg = { .driver = d, .channel = channel,
				      .ram_bytes = 512 * MIB };
	struct pk_balloon *b = (struct pk_balloon *)1;
	char err[256] = "";
	int rc = pk_balloon_open(&b, &cfg, err, sizeof(err));

	fprintf(stderr, "bad channel (%s, %zu bytes): %d \"%s\"\n",
		pk_balloon_driver_name(d), channel ? strlen(channel) : 0, rc,
		err);
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_ptr_null(b);
	ck_assert_msg(strstr(err, want), "\"%s\" does not say \"%s\"", err,
		      want);
}

static void target_fails(struct owner *o, uint64_t bytes)
{
	char why[256] = "";
	uint64_t before = pk_balloon_info(o->b)->target_bytes;
	int rc = pk_balloon_set_target(o->b, bytes, why, sizeof(why));

	fprintf(stderr, "bad target %llu bytes: %d \"%s\"\n",
		(unsigned long long)bytes, rc, why);
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(strstr(why, "multiple of 4096 bytes from 1 MiB to the "
			     "guest's RAM (512 MiB)"), "why: %s", why);
	ck_assert_uint_eq(pk_balloon_info(o->b)->target_bytes, before);
}

START_TEST(bad_input)
{
	char longpath[300];
	struct peer p;
	struct owner o;

	open_fails(PK_BLN_QMP, "", "empty");
	open_fails(PK_BLN_LAB, "", "empty");
	open_fails(PK_BLN_QMP, NULL, "empty");
	memset(longpath, 'a', sizeof(longpath));
	longpath[0] = '/';
	longpath[200] = '\0';
	open_fails(PK_BLN_QMP, longpath, "too long (200 bytes, at most 107)");
	open_fails(PK_BLN_LAB, longpath, "too long (200 bytes, at most 107)");
	longpath[200] = 'a';
	longpath[299] = '\0';
	open_fails(PK_BLN_QMP, longpath, "too long");

	/* Nothing listens yet: the bridge says so and keeps trying. */
	peer_start(&p, qmp_never_answers, 0);
	owner_open(&o, PK_BLN_QMP, p.path, 60000);
	fprintf(stderr, "no socket yet: \"%s\"\n", pk_balloon_info(o.b)->why);
	ck_assert_msg(strstr(pk_balloon_info(o.b)->why,
			     "No such file or directory"), "why: %s",
		      pk_balloon_info(o.b)->why);
	target_fails(&o, 512 * MIB + 4096);
	target_fails(&o, MIB - 4096);
	target_fails(&o, 0);
	target_fails(&o, 256 * MIB + 512);
	peer_listen_late(&p);
	RUN_UNTIL(&o, atomic_load(&p.accepts) >= 1, BACKOFF_MS * 4 + 1000,
		  "a connect once the socket exists (why \"%s\")",
		  (double)(BACKOFF_MS * 4 + 1000) * pk_test_time_scale(),
		  pk_balloon_info(o.b)->why);
	check_calls(&o, "bad input");
	owner_close(&o);
	peer_stop(&p);
}
END_TEST

/* ---- protocol flow against a mock of QEMU's QMP ------------------------ */

#define STATS_JSON "{\"stat-swap-out\": 4096, \"stat-available-memory\": " \
	"300000000, \"stat-free-memory\": 200000000, \"stat-minor-faults\": " \
	"12345, \"stat-major-faults\": 67, \"stat-total-memory\": 500000000, " \
	"\"stat-swap-in\": 8192, \"stat-disk-caches\": 1000, " \
	"\"stat-htlb-pgalloc\": 0, \"stat-htlb-pgfail\": 0}"

/* Answers as QEMU 7.2 does, as far as the bridge asks. */
static void qmp_mock(struct peer *p, struct conn *c)
{
	json_object *o, *args;
	long long last_update = 1733400000;

	conn_send(c, GREETING);
	while (conn_read(p, c, &o) == 1) {
		const char *cmd = str_of(o, "execute");
		long long id = id_of(o);
		char buf[1024];

		atomic_fetch_add(&p->commands, 1);
		args = NULL;
		json_object_object_get_ex(o, "arguments", &args);
		if (!strcmp(cmd, "qmp_capabilities")) {
			reply(c, id, "{}");
		} else if (!strcmp(cmd, "query-balloon")) {
			if (atomic_load(&p->no_balloon)) {
				snprintf(buf, sizeof(buf), "{\"id\": %lld, "
					 "\"error\": {\"class\": "
					 "\"DeviceNotActive\", \"desc\": \"No "
					 "balloon device has been activated\"}}"
					 "\r\n", id);
				conn_send(c, buf);
			} else {
				snprintf(buf, sizeof(buf), "{\"actual\": %lld}",
					 atomic_load(&p->actual));
				reply(c, id, buf);
			}
		} else if (!strcmp(cmd, "qom-list")) {
			if (!strcmp(str_of(args, "path"), "/machine/peripheral"))
				reply(c, id, "[{\"name\": \"type\", \"type\": "
				      "\"string\"}, {\"name\": \"balloon0\", "
				      "\"type\": \"child<virtio-balloon-pci>\"}]");
			else
				reply(c, id, "[{\"name\": \"type\", \"type\": "
				      "\"string\"}]");
		} else if (!strcmp(cmd, "qom-set")) {
			json_object *v = NULL;

			snprintf(p->set_path, sizeof(p->set_path), "%s/%s",
				 str_of(args, "path"), str_of(args, "property"));
			json_object_object_get_ex(args, "value", &v);
			atomic_store(&p->interval, json_object_get_int64(v));
			reply(c, id, "{}");
		} else if (!strcmp(cmd, "qom-get")) {
			snprintf(buf, sizeof(buf), "{\"stats\": %s, "
				 "\"last-update\": %lld}", STATS_JSON,
				 ++last_update);
			reply(c, id, buf);
		} else if (!strcmp(cmd, "balloon")) {
			json_object *v = NULL;
			long long val;

			json_object_object_get_ex(args, "value", &v);
			val = json_object_get_int64(v);
			atomic_store(&p->last_value, val);
			if (atomic_load(&p->refuse)) {
				snprintf(buf, sizeof(buf), "{\"id\": %lld, "
					 "\"error\": {\"class\": "
					 "\"GenericError\", \"desc\": "
					 "\"Parameter 'value' is bad\"}}\r\n",
					 id);
				conn_send(c, buf);
			} else {
				reply(c, id, "{}");
				atomic_store(&p->actual, val);
				snprintf(buf, sizeof(buf), "{\"timestamp\": "
					 "{\"seconds\": 1, \"microseconds\": "
					 "2}, \"event\": \"BALLOON_CHANGE\", "
					 "\"data\": {\"actual\": %lld}}\r\n",
					 val);
				conn_send(c, buf);
			}
		} else {
			snprintf(buf, sizeof(buf), "{\"id\": %lld, \"error\": "
				 "{\"class\": \"CommandNotFound\", \"desc\": "
				 "\"The command %s has not been found\"}}\r\n",
				 id, cmd);
			conn_send(c, buf);
		}
		json_object_put(o);
	}
	atomic_store(&p->hangup, 0);
}

START_TEST(qmp_flow_mock)
{
	struct peer p;
	struct owner o;
	const struct pk_balloon_info *in;
	char why[256] = "";
	int rc;

	peer_start(&p, qmp_mock, 1);
	owner_open(&o, PK_BLN_QMP, p.path, 500);
	in = pk_balloon_info(o.b);
	RUN_UNTIL(&o, o.ev[PK_BLN_EV_UP] == 1, TIMEOUT_MS * 6,
		  "UP (why \"%s\")", (double)TIMEOUT_MS * 6 *
		  pk_test_time_scale(), in->why);
	ck_assert_int_eq(in->link, PK_BLN_READY);
	ck_assert_uint_eq(in->actual_bytes, 512 * MIB);
	ck_assert_str_eq(p.set_path,
			 "/machine/peripheral/balloon0/guest-stats-polling-interval");
	ck_assert_int_eq(atomic_load(&p.interval), 1);	/* 500 ms -> 1 s */

	RUN_UNTIL(&o, o.ev[PK_BLN_EV_STATS] >= 2, 500 * 3 + TIMEOUT_MS,
		  "two stats polls (%d)", (double)(500 * 3 + TIMEOUT_MS) *
		  pk_test_time_scale(), o.ev[PK_BLN_EV_STATS]);
	ck_assert_int_eq(in->total_bytes, 500000000);
	ck_assert_int_eq(in->free_bytes, 200000000);
	ck_assert_int_eq(in->available_bytes, 300000000);
	ck_assert_int_eq(in->swap_in_bytes, 8192);
	ck_assert_int_eq(in->swap_out_bytes, 4096);
	ck_assert_int_eq(in->major_faults, 67);
	ck_assert_int_eq(in->minor_faults, 12345);
	ck_assert_int_eq(in->oom_kills, -1);	/* not in QEMU 7.2 */
	ck_assert_int_eq(in->alloc_stalls, -1);
	ck_assert_uint_gt(in->stats_ms, 0);

	rc = pk_balloon_set_target(o.b, 384 * MIB, why, sizeof(why));
	ck_assert_msg(rc == 0, "set_target: %d %s", rc, why);
	RUN_UNTIL(&o, in->actual_bytes == 384 * MIB, TIMEOUT_MS * 2,
		  "actual 384 MiB (%llu MiB)", (double)TIMEOUT_MS * 2 *
		  pk_test_time_scale(),
		  (unsigned long long)(in->actual_bytes / MIB));
	ck_assert_int_eq(atomic_load(&p.last_value), (long long)(384 * MIB));
	ck_assert_int_ge(o.ev[PK_BLN_EV_CHANGED], 1);
	ck_assert_uint_eq(in->target_bytes, 384 * MIB);

	atomic_store(&p.refuse, 1);
	ck_assert_int_eq(pk_balloon_set_target(o.b, 300 * MIB, why,
					       sizeof(why)), 0);
	RUN_UNTIL(&o, o.ev[PK_BLN_EV_FAILED] == 1, TIMEOUT_MS * 2,
		  "FAILED", (double)TIMEOUT_MS * 2 * pk_test_time_scale());
	fprintf(stderr, "refused target: \"%s\"\n", o.failed_why);
	ck_assert_msg(strstr(o.failed_why, "balloon to 300 MiB: GenericError: "
			     "Parameter 'value' is bad"), "%s", o.failed_why);
	ck_assert_int_eq(in->link, PK_BLN_READY);
	atomic_store(&p.refuse, 0);

	/* The monitor goes away and comes back; a target set meanwhile
	 * is sent once the link is up again. */
	atomic_store(&p.hangup, 1);
	RUN_UNTIL(&o, o.ev[PK_BLN_EV_GONE] == 1, TIMEOUT_MS * 2,
		  "GONE after the monitor closed", (double)TIMEOUT_MS * 2 *
		  pk_test_time_scale());
	fprintf(stderr, "monitor closed: \"%s\"\n", o.gone_why);
	ck_assert_msg(strstr(o.gone_why, "QEMU closed the socket"), "%s",
		      o.gone_why);
	ck_assert_int_eq(in->link, PK_BLN_CONNECTING);
	rc = pk_balloon_set_target(o.b, 256 * MIB, why, sizeof(why));
	ck_assert_msg(rc == 0, "set_target while connecting: %d %s", rc, why);
	RUN_UNTIL(&o, o.ev[PK_BLN_EV_UP] == 2 && in->actual_bytes == 256 * MIB,
		  BACKOFF_MS + TIMEOUT_MS * 6, "UP again and 256 MiB (UP %d, "
		  "actual %llu MiB, why \"%s\")", (double)(BACKOFF_MS +
		  TIMEOUT_MS * 6) * pk_test_time_scale(), o.ev[PK_BLN_EV_UP],
		  (unsigned long long)(in->actual_bytes / MIB), in->why);
	ck_assert_int_eq(atomic_load(&p.accepts), 2);
	ck_assert_int_eq(atomic_load(&p.last_value), (long long)(256 * MIB));
	check_calls(&o, "qmp flow (mock)");
	owner_close(&o);
	peer_stop(&p);
}
END_TEST

START_TEST(qmp_no_device_mock)
{
	struct peer p;
	struct owner o;
	const struct pk_balloon_info *in;
	char why[256] = "";

	peer_start(&p, qmp_mock, 1);
	atomic_store(&p.no_balloon, 1);
	owner_open(&o, PK_BLN_QMP, p.path, 500);
	in = pk_balloon_info(o.b);
	RUN_UNTIL(&o, o.ev[PK_BLN_EV_NO_DRIVER] == 1, TIMEOUT_MS * 4,
		  "NO_DRIVER (why \"%s\")", (double)TIMEOUT_MS * 4 *
		  pk_test_time_scale(), in->why);
	fprintf(stderr, "no balloon device: \"%s\"\n", in->why);
	ck_assert_int_eq(in->link, PK_BLN_NO_DRIVER);
	ck_assert_msg(strstr(in->why, "DeviceNotActive: No balloon device has "
			     "been activated"), "%s", in->why);
	ck_assert_int_eq(pk_balloon_set_target(o.b, 256 * MIB, why,
					       sizeof(why)), -ENODEV);
	ck_assert_msg(strstr(why, "no balloon driver"), "%s", why);
	/* Still polled: a device that appears brings the link up. */
	atomic_store(&p.no_balloon, 0);
	RUN_UNTIL(&o, o.ev[PK_BLN_EV_UP] == 1, 500 + TIMEOUT_MS * 6,
		  "UP once the device is there", (double)(500 + TIMEOUT_MS *
		  6) * pk_test_time_scale());
	ck_assert_int_eq(o.ev[PK_BLN_EV_GONE], 0);
	ck_assert_int_eq(atomic_load(&p.accepts), 1);
	check_calls(&o, "qmp no device (mock)");
	owner_close(&o);
	peer_stop(&p);
}
END_TEST

/* ---- the lab driver against a real lab guest (pk-guestsim --balloon) --- */

struct labguest {
	pid_t pid;
	char dir[64];
	char sock[108];
	char page_file[108];
};

/* pk-guestsim --no-daemon --balloon: its balloon driver on dir/lab.sock. */
static void labguest_start(struct labguest *lg, const char *size,
			   const char *locked)
{
	const char *exe = getenv("PK_GUESTSIM");

	ck_assert_msg(exe && exe[0], "PK_GUESTSIM is not set (meson sets it)");
	fresh_dir(lg->dir, sizeof(lg->dir), "lab");
	snprintf(lg->sock, sizeof(lg->sock), "%s/lab.sock", lg->dir);
	snprintf(lg->page_file, sizeof(lg->page_file), "%s/page", lg->dir);
	fflush(NULL);
	lg->pid = fork();
	ck_assert_int_ge(lg->pid, 0);
	if (lg->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(exe, exe, "--no-daemon", "--balloon", "--size", size,
		      "--balloon-socket", lg->sock, "--page-file", lg->page_file,
		      "--workload", "random", "--duration", "600", "--locked",
		      locked, "--quiet", (char *)NULL);
		_exit(127);
	}
}

static void labguest_stop(struct labguest *lg)
{
	long dl = pk_test_deadline_ms(5000);
	int st = 0;

	kill(lg->pid, SIGTERM);
	while (waitpid(lg->pid, &st, WNOHANG) == 0) {
		if (pk_test_now_ms() > dl) {
			kill(lg->pid, SIGKILL);
			waitpid(lg->pid, &st, 0);
			break;
		}
		usleep(10000);
	}
	unlink(lg->sock);
	unlink(lg->page_file);
	rmdir(lg->dir);
}

/* Guest paging floor for the balloon's moves: MiB/s, before the scale. */
#define LAB_BALLOON_MIN_MIB_S 2

static double lab_move_to(struct owner *o, uint64_t target, const char *what)
{
	const struct pk_balloon_info *in = pk_balloon_info(o->b);
	uint64_t from = in->actual_bytes;
	double mib = (double)(from > target ? from - target : target - from) /
		     (double)MIB, ms;
	long budget = (long)(mib * 1000 / LAB_BALLOON_MIN_MIB_S) + 2000;
	char why[256] = "";
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_msg(pk_balloon_set_target(o->b, target, why, sizeof(why)) == 0,
		      "set_target: %s", why);
	RUN_UNTIL(o, in->actual_bytes == target, budget, "actual %llu MiB "
		  "(now %llu MiB, why \"%s\")", (double)budget *
		  pk_test_time_scale(), (unsigned long long)(target / MIB),
		  (unsigned long long)(in->actual_bytes / MIB), in->why);
	ms = ms_since(&t0);
	fprintf(stderr, "lab: %s %llu -> %llu MiB in %.0f ms (%.1f MiB/s)\n",
		what, (unsigned long long)(from / MIB),
		(unsigned long long)(target / MIB), ms, mib * 1000 / ms);
	return mib * 1000 / ms;
}

/* Fresh stats (a poll after now). */
static void lab_fresh_stats(struct owner *o)
{
	const struct pk_balloon_info *in = pk_balloon_info(o->b);
	uint64_t since = (uint64_t)pk_test_now_ms();

	RUN_UNTIL(o, in->stats_ms > since, 500 * 2 + TIMEOUT_MS,
		  "fresh stats", (double)(500 * 2 + TIMEOUT_MS) *
		  pk_test_time_scale());
}

/*
 * A real lab guest: its balloon driver comes UP, reports stats, inflates
 * from 64 to 32 MiB past its free memory (the guest pages out: its
 * swap_out grows) and deflates back; a guest with 80% of its memory
 * locked stalls short of a deep target and says by how much.
 */
START_TEST(lab_real_guest)
{
	struct labguest lg, locked;
	struct owner o;
	const struct pk_balloon_info *in;
	int64_t out_before;
	double down, up;

	labguest_start(&lg, "64M", "0");
	owner_open(&o, PK_BLN_LAB, lg.sock, 500);
	in = pk_balloon_info(o.b);
	/* The socket appears once the guest runs: retried each back-off. */
	RUN_UNTIL(&o, o.ev[PK_BLN_EV_UP] == 1 && o.ev[PK_BLN_EV_STATS] >= 1,
		  BACKOFF_MS * 7 + 2000, "the lab guest UP with stats (why "
		  "\"%s\")", (double)(BACKOFF_MS * 7 + 2000) *
		  pk_test_time_scale(), in->why);
	ck_assert_uint_eq(in->actual_bytes, 64 * MIB);
	ck_assert_int_gt(in->total_bytes, 0);
	ck_assert_int_ge(in->swap_out_bytes, 0);
	ck_assert_int_ge(in->major_faults, 0);
	out_before = in->swap_out_bytes;
	down = lab_move_to(&o, 32 * MIB, "inflate");
	lab_fresh_stats(&o);
	fprintf(stderr, "lab: guest swap out %lld -> %lld bytes, total %lld, "
		"free %lld bytes\n", (long long)out_before,
		(long long)in->swap_out_bytes, (long long)in->total_bytes,
		(long long)in->free_bytes);
	ck_assert_msg(in->swap_out_bytes > out_before, "inflating past the "
		      "guest's free memory paged nothing out (%lld -> %lld "
		      "bytes)", (long long)out_before,
		      (long long)in->swap_out_bytes);
	up = lab_move_to(&o, 64 * MIB, "deflate");
	ck_assert_int_eq(o.ev[PK_BLN_EV_GONE], 0);
	ck_assert_int_eq(in->stalled, 0);
	fprintf(stderr, "MEASURE lab balloon: inflate %.1f MiB/s, deflate "
		"%.1f MiB/s (32 MiB of a 64 MiB lab guest, random workload)\n",
		down, up);
	check_calls(&o, "lab real guest");
	owner_close(&o);
	labguest_stop(&lg);

	labguest_start(&locked, "64M", "0.8");
	owner_open(&o, PK_BLN_LAB, locked.sock, 500);
	in = pk_balloon_info(o.b);
	RUN_UNTIL(&o, o.ev[PK_BLN_EV_UP] == 1, BACKOFF_MS * 7 + 2000,
		  "the locked lab guest UP (why \"%s\")", (double)(BACKOFF_MS
		  * 7 + 2000) * pk_test_time_scale(), in->why);
	ck_assert_int_eq(pk_balloon_set_target(o.b, 16 * MIB, NULL, 0), 0);
	RUN_UNTIL(&o, o.ev[PK_BLN_EV_STALLED] == 1, 48 * 1000 /
		  LAB_BALLOON_MIN_MIB_S + 2000, "STALLED (actual %llu MiB)",
		  (double)(48 * 1000 / LAB_BALLOON_MIN_MIB_S + 2000) *
		  pk_test_time_scale(),
		  (unsigned long long)(in->actual_bytes / MIB));
	fprintf(stderr, "lab: locked 0.8 guest: stalled at %llu MiB, "
		"shortfall %llu MiB, why \"%s\"\n",
		(unsigned long long)(in->actual_bytes / MIB),
		(unsigned long long)(in->shortfall_bytes / MIB), in->why);
	ck_assert_int_eq(in->stalled, 1);
	ck_assert_uint_gt(in->actual_bytes, 16 * MIB);
	ck_assert_uint_gt(in->shortfall_bytes, 0);
	ck_assert_msg(strstr(in->why, "stalled"), "%s", in->why);
	check_calls(&o, "lab locked guest");
	owner_close(&o);
	labguest_stop(&locked);
}
END_TEST

/* ---- a real QEMU guest (suite 'qemu', slow) ---------------------------- */

/* Why the guest image could not be built ("" when it was). */
static char image_error[1024];

static void wait_rounds(struct qemu_guest *g, long rounds,
			struct pkcheck_status *st)
{
	ck_assert_msg(qemu_guest_wait_rounds(g, rounds,
					     qemu_guest_rounds_budget_ms(g, rounds),
					     st) == 0, "%s: %s", g->name, g->error);
}

/* Set the target and run the loop until actual reaches it: MiB/s. */
static double move_to(struct owner *o, uint64_t target)
{
	const struct pk_balloon_info *in = pk_balloon_info(o->b);
	uint64_t from = in->actual_bytes;
	double mib = (double)(from > target ? from - target : target - from) /
		     (double)MIB;
	long budget = qemu_guest_mib_budget_ms(mib, QEMU_BALLOON_MIN_MIB_S);
	int changed = o->ev[PK_BLN_EV_CHANGED];
	char why[256] = "";
	struct timespec t0;
	double ms;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = pk_balloon_set_target(o->b, target, why, sizeof(why));
	ck_assert_msg(rc == 0, "set_target %llu MiB: %d %s",
		      (unsigned long long)(target / MIB), rc, why);
	RUN_UNTIL_SCALED(o, in->actual_bytes == target, budget,
			 "actual %llu MiB (now %llu MiB, why \"%s\")", budget,
			 (unsigned long long)(target / MIB),
			 (unsigned long long)(in->actual_bytes / MIB), in->why);
	ms = ms_since(&t0);
	fprintf(stderr, "qemu: balloon %llu -> %llu MiB through QMP in %.0f ms "
		"(%.1f MiB/s, %d BALLOON_CHANGE updates)\n",
		(unsigned long long)(from / MIB),
		(unsigned long long)(target / MIB), ms, mib * 1000.0 / ms,
		o->ev[PK_BLN_EV_CHANGED] - changed);
	ck_assert_int_gt(o->ev[PK_BLN_EV_CHANGED], changed);
	return mib * 1000.0 / ms;
}

/* The next fresh stats whose total fits [lo, hi] MiB. */
static void stats_total_within(struct owner *o, long lo, long hi)
{
	const struct pk_balloon_info *in = pk_balloon_info(o->b);
	long budget = (long)((1000 * 4 + QEMU_GUEST_QMP_MS) *
			     pk_test_time_scale());

	RUN_UNTIL_SCALED(o, in->total_bytes >= lo * (long)MIB &&
			 in->total_bytes <= hi * (long)MIB, budget,
			 "guest-stats total in %ld..%ld MiB (%lld bytes)",
			 budget, lo, hi, (long long)in->total_bytes);
	fprintf(stderr, "qemu: guest stats: total %.1f MiB, free %.1f MiB, "
		"available %.1f MiB, swap in %lld B, out %lld B, major faults "
		"%lld, minor faults %lld, oom kills %lld, alloc stalls %lld\n",
		(double)in->total_bytes / MIB, (double)in->free_bytes / MIB,
		(double)in->available_bytes / MIB, (long long)in->swap_in_bytes,
		(long long)in->swap_out_bytes, (long long)in->major_faults,
		(long long)in->minor_faults, (long long)in->oom_kills,
		(long long)in->alloc_stalls);
	ck_assert_int_ge(in->free_bytes, 0);
	ck_assert_int_le(in->free_bytes, in->total_bytes);
	ck_assert_int_ge(in->available_bytes, 0);
	ck_assert_int_gt(in->minor_faults, 0);
}

/*
 * A real TCG guest (256 MiB, virtio-balloon-pci with free page reporting
 * and its checker over 64 MiB): the bridge comes UP through QEMU's own
 * QMP, reads the guest's stats, inflates to 176 MiB and deflates back;
 * the guest's MemTotal (from its checker on the serial console) and the
 * stats follow, the checker finds 0 errors, no call of the loop blocks.
 */
START_TEST(qmp_real_qemu)
{
	static const char *const args[] = {
		"-global", "virtio-balloon-pci.free-page-reporting=on", NULL };
	struct qemu_guest_opts opts = {
		.name = "pk-bln-qmp", .mem_mib = 256,
		.append = "pkcheck.mib=64 pkcheck.rewrite=0.1", .args = args };
	struct qemu_guest g;
	struct pkcheck_status before, inflated, after;
	struct owner o;
	const struct pk_balloon_info *in;
	long drop, qmp = qemu_guest_qmp_budget_ms();
	char line[512];
	double down, up;

	ck_assert_msg(!image_error[0], "%s", image_error);
	ck_assert_msg(qemu_guest_start(&g, &opts) == 0, "%s", g.error);
	ck_assert_msg(qemu_guest_wait_line(&g, "pkguest: ready",
					   qemu_guest_boot_budget_ms(1), line,
					   sizeof(line)) == 0, "%s", g.error);
	wait_rounds(&g, 2, &before);

	owner_open_cfg(&o, PK_BLN_QMP, g.qmp, 1000, 256 * MIB,
		       (unsigned)QEMU_GUEST_QMP_MS);
	in = pk_balloon_info(o.b);
	RUN_UNTIL_SCALED(&o, o.ev[PK_BLN_EV_UP] == 1, qmp * 3,
			 "the bridge UP on QEMU's QMP (why \"%s\")", qmp * 3,
			 in->why);
	ck_assert_uint_eq(in->actual_bytes, 256 * MIB);
	stats_total_within(&o, before.mem_total_mib - 1,
			   before.mem_total_mib + 1);

	down = move_to(&o, 176 * MIB);
	wait_rounds(&g, before.round + 2, &inflated);
	wait_rounds(&g, inflated.round + 2, &inflated);
	drop = before.mem_total_mib - inflated.mem_total_mib;
	fprintf(stderr, "qemu: guest MemTotal %ld -> %ld MiB, checker round "
		"%ld, %lld errors\n", before.mem_total_mib,
		inflated.mem_total_mib, inflated.round, inflated.errors);
	ck_assert_int_eq(inflated.errors, 0);
	ck_assert_msg(drop >= 72 && drop <= 88, "MemTotal %ld -> %ld MiB: "
		      "want about 80 MiB less", before.mem_total_mib,
		      inflated.mem_total_mib);
	stats_total_within(&o, inflated.mem_total_mib - 1,
			   inflated.mem_total_mib + 1);

	up = move_to(&o, 256 * MIB);
	wait_rounds(&g, inflated.round + 2, &after);
	wait_rounds(&g, after.round + 2, &after);
	ck_assert_int_eq(after.errors, 0);
	ck_assert_int_eq(after.mem_total_mib, before.mem_total_mib);
	stats_total_within(&o, after.mem_total_mib - 1,
			   after.mem_total_mib + 1);
	fprintf(stderr, "MEASURE qmp balloon: inflate %.1f MiB/s, deflate "
		"%.1f MiB/s (80 MiB, TCG guest of 256 MiB, checker running)\n",
		down, up);
	ck_assert_int_eq(o.ev[PK_BLN_EV_GONE], 0);
	ck_assert_msg(qemu_guest_alive(&g), "%s", g.error);
	check_calls(&o, "qmp real qemu");
	owner_close(&o);
	qemu_guest_stop(&g);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("balloon");
	Suite *q = suite_create("qemu");
	TCase *qc = tcase_create("qmp_real_qemu");
	SRunner *sr;
	int failed;
	struct {
		const char *name;
		const TTest *test;
		int timeout_s;
	} cases[] = {
		{ "qmp_hostile", qmp_hostile, 60 },
		{ "lab_hostile", lab_hostile, 60 },
		{ "bad_input", bad_input, 30 },
		{ "qmp_flow_mock", qmp_flow_mock, 30 },
		{ "qmp_no_device_mock", qmp_no_device_mock, 30 },
		{ "lab_real_guest", lab_real_guest, 120 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TCase *tc = tcase_create(cases[i].name);

		tcase_add_test(tc, cases[i].test);
		tcase_set_timeout(tc, cases[i].timeout_s *
				  pk_test_time_scale());
		suite_add_tcase(s, tc);
	}
	tcase_add_test(qc, qmp_real_qemu);
	tcase_set_timeout(qc, 400 * pk_test_time_scale());
	suite_add_tcase(q, qc);
	/* The image only for the qemu suite (CK_RUN_SUITE picks one). */
	if (getenv("CK_RUN_SUITE") && !strcmp(getenv("CK_RUN_SUITE"), "qemu"))
		qemu_guest_build_image(image_error, sizeof(image_error));
	snprintf(run_dir, sizeof(run_dir), "/tmp/pk-balloon-XXXXXX");
	if (!mkdtemp(run_dir)) {
		perror("mkdtemp /tmp/pk-balloon-XXXXXX");
		return EXIT_FAILURE;
	}
	sr = srunner_create(s);
	srunner_add_suite(sr, q);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (nftw(run_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0) {
		fprintf(stderr, "removing %s: %s\n", run_dir, strerror(errno));
		failed++;
	}
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
