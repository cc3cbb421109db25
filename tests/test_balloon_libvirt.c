/*
 * test_balloon_libvirt.c - the balloon bridge's libvirt driver
 * (balloon-bridge/libvirt.c) against real libvirt: its test driver
 * (test:///default), a URI and a domain that are not there, and a
 * "libvirtd" that accepts the connection and never answers.  Suite
 * 'balloon', test 'balloon_libvirt'.
 *
 * How: each case drives one bridge as pagekeeperd does, from an epoll
 * loop on this thread: pk_balloon_fd() is watched, pk_balloon_io() runs
 * when it is ready and pk_balloon_tick() when its time comes; events are
 * counted.  Every pk_balloon_* call the loop makes is timed and the
 * longest is asserted small (the bridge must never block the loop that
 * serves faults) and printed.  test:///default is per connection: each
 * virConnectOpen starts from the driver's built-in state (domain "test",
 * 2 GiB of 8 GiB), and a change through one connection is invisible to
 * any other.  So nothing here opens a second connection to check: the
 * bridge's own info (actual from virDomainMemoryStats after
 * virDomainSetMemoryFlags) and its events are the evidence.  The test
 * driver's stats are synthetic but deterministic: actual = the current
 * memory, "available" (MemTotal) = actual, "unused" (MemFree) and
 * "usable" (MemAvailable) = actual / 2, in KiB; the bridge must report
 * them in bytes.
 *
 * Cases: targets down and up (actual follows, CHANGED events; one target
 * asked before the link is up is sent when it is); the stats and their
 * units; targets the bridge refuses (-EINVAL) and one libvirt refuses
 * (above the domain's maxMemory: FAILED with libvirt's reason); a URI
 * that does not connect and a domain that is not there (a clear why,
 * link CONNECTING, retries 1 s then 2 s apart, never a blocked caller);
 * a hung libvirtd (a UNIX socket that never answers: the caller still
 * never blocks, and pk_balloon_close() returns within its bound); closes
 * with a target in flight, many times.
 *
 * Why real libvirt and no mock: the driver's job is to live with
 * libvirt's threads, errors and units as they are.
 */
#include "balloon-bridge/balloon.h"
#include "tests/daemon_fixture.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define KIB 1024ull
#define MIB (1024ull * 1024ull)
#define GIB (1024ull * MIB)
/* test:///default's domain "test" (its built-in XML). */
#define TEST_DOM_MEM (2 * GIB)
#define TEST_DOM_MAX (8 * GIB)
#define CHAN "test:///default|test"
/*
 * The longest any pk_balloon_* call in the loop may take: it takes a
 * mutex the worker holds for microseconds, never across a libvirt call.
 * 50 ms leaves room for this shared 2-core machine's scheduling.
 */
#define MAX_CALL_MS 50.0
/* A local libvirt call (test driver) and the loop's turn-around. */
#define LV_CALL_MS 2000
/* pk_balloon_close(): at most its 100 ms join bound plus slack. */
#define CLOSE_MAX_MS 400.0

struct h {
	struct pk_balloon *b;
	int ep;
	int watched; /* the fd in ep, -1 none */
	uint64_t next_tick;
	double max_call_ms;
	const char *max_call;
	double open_ms;
	int n_ev[PK_BLN_EV_MIGRATION + 1];
	long gone_ms[16];
	int n_gone;
};

static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Run expr, timing it as one pk_balloon_* call of the loop. */
#define TIMED(hh, name, expr)                                           \
	do {                                                            \
		double t0_ = mono_ms();                                 \
		expr;                                                   \
		double d_ = mono_ms() - t0_;                            \
		if (d_ > (hh)->max_call_ms) {                           \
			(hh)->max_call_ms = d_;                         \
			(hh)->max_call = (name);                        \
		}                                                       \
	} while (0)

static void on_event(struct pk_balloon *b, enum pk_balloon_event ev,
		     void *data)
{
	struct h *h = data;

	(void)b;
	h->n_ev[ev]++;
	if (ev == PK_BLN_EV_GONE && h->n_gone < 16)
		h->gone_ms[h->n_gone++] = pk_test_now_ms();
}

static struct h *h_open(const char *chan, uint64_t ram, unsigned period_ms)
{
	struct pk_balloon_cfg cfg = {
		.driver = PK_BLN_LIBVIRT,
		.channel = chan,
		.ram_bytes = ram,
		.stats_period_ms = period_ms,
		.on_event = on_event,
	};
	struct h *h = calloc(1, sizeof(*h));
	char err[256] = "";
	int rc;

	ck_assert_ptr_nonnull(h);
	cfg.data = h;
	h->watched = -1;
	h->ep = epoll_create1(EPOLL_CLOEXEC);
	ck_assert_int_ge(h->ep, 0);
	/* Timed apart: the first open in a process also starts libvirt's
	 * event loop (virInitialize, the loop's thread). */
	h->open_ms = mono_ms();
	rc = pk_balloon_open(&h->b, &cfg, err, sizeof(err));
	h->open_ms = mono_ms() - h->open_ms;
	ck_assert_msg(rc == 0, "pk_balloon_open(%s): %s (%s)", chan,
		      strerror(-rc), err);
	return h;
}

/* Close the bridge (timed: its bound), print the longest call. */
static void h_close(struct h *h, const char *what)
{
	double t0 = mono_ms(), close_ms;

	pk_balloon_close(h->b);
	close_ms = mono_ms() - t0;
	close(h->ep);
	printf("%s: longest pk_balloon_* call in the loop %.3f ms (%s), "
	       "open %.3f ms, close %.3f ms\n", what, h->max_call_ms,
	       h->max_call ? h->max_call : "-", h->open_ms, close_ms);
	ck_assert_msg(h->max_call_ms < MAX_CALL_MS * pk_test_time_scale(),
		      "%s: %s took %.3f ms: the bridge blocked its caller",
		      what, h->max_call, h->max_call_ms);
	ck_assert_msg(h->open_ms < MAX_CALL_MS * pk_test_time_scale(),
		      "%s: pk_balloon_open took %.3f ms", what, h->open_ms);
	ck_assert_msg(close_ms < CLOSE_MAX_MS * pk_test_time_scale(),
		      "%s: pk_balloon_close took %.3f ms", what, close_ms);
	free(h);
}

/* One turn of the owner's loop, waiting at most max_ms. */
static void pump(struct h *h, int max_ms)
{
	struct epoll_event ev;
	uint32_t want = 0;
	int fd, n, wait_ms = max_ms;
	uint64_t now = (uint64_t)pk_test_now_ms();

	TIMED(h, "pk_balloon_fd", fd = pk_balloon_fd(h->b, &want));
	if (fd != h->watched) {
		if (h->watched >= 0)
			epoll_ctl(h->ep, EPOLL_CTL_DEL, h->watched, NULL);
		h->watched = -1;
		if (fd >= 0) {
			struct epoll_event e = { .events = want };
			ck_assert_int_eq(epoll_ctl(h->ep, EPOLL_CTL_ADD, fd, &e),
					 0);
			h->watched = fd;
		}
	}
	if (h->next_tick && h->next_tick < now + (uint64_t)wait_ms)
		wait_ms = h->next_tick > now ? (int)(h->next_tick - now) : 0;
	n = epoll_wait(h->ep, &ev, 1, wait_ms);
	if (n == 1)
		TIMED(h, "pk_balloon_io", pk_balloon_io(h->b, ev.events));
	now = (uint64_t)pk_test_now_ms();
	if (now >= h->next_tick)
		TIMED(h, "pk_balloon_tick",
		      h->next_tick = pk_balloon_tick(h->b, now));
}

static const struct pk_balloon_info *info(struct h *h)
{
	const struct pk_balloon_info *in;

	TIMED(h, "pk_balloon_info", in = pk_balloon_info(h->b));
	return in;
}

/* Pump until cond holds; fail naming what after work_ms (scaled). */
#define WAIT(hh, cond, work_ms, what)                                       \
	do {                                                                \
		long dl_ = pk_test_deadline_ms(work_ms);                    \
		while (!(cond) && pk_test_now_ms() < dl_)                   \
			pump((hh), 20);                                     \
		ck_assert_msg((cond), "timed out after %ld ms waiting for " \
			      "%s (link %s, actual %llu bytes, why '%s')",  \
			      (long)((work_ms) * pk_test_time_scale()),     \
			      (what), pk_balloon_link_name(info(hh)->link), \
			      (unsigned long long)info(hh)->actual_bytes,   \
			      info(hh)->why);                               \
	} while (0)

static int set_target(struct h *h, uint64_t bytes, char *why, size_t len)
{
	int rc;

	why[0] = '\0';
	TIMED(h, "pk_balloon_set_target",
	      rc = pk_balloon_set_target(h->b, bytes, why, len));
	return rc;
}

START_TEST(test_targets_down_and_up)
{
	struct h *h = h_open(CHAN, TEST_DOM_MAX, 0);
	char why[256];
	int changed;

	/* Asked before the link is up: kept, sent on UP. */
	ck_assert_int_eq(info(h)->link, PK_BLN_CONNECTING);
	ck_assert_int_eq(set_target(h, 1536 * MIB, why, sizeof(why)), 0);
	WAIT(h, info(h)->link == PK_BLN_READY, LV_CALL_MS, "the link up");
	ck_assert_int_eq(h->n_ev[PK_BLN_EV_UP], 1);
	WAIT(h, info(h)->actual_bytes == 1536 * MIB, LV_CALL_MS,
	     "actual 1536 MiB (the target asked while connecting)");
	ck_assert_uint_eq(info(h)->target_bytes, 1536 * MIB);

	/* Down. */
	changed = h->n_ev[PK_BLN_EV_CHANGED];
	ck_assert_int_eq(set_target(h, 512 * MIB, why, sizeof(why)), 0);
	WAIT(h, info(h)->actual_bytes == 512 * MIB, LV_CALL_MS,
	     "actual 512 MiB");
	ck_assert_int_gt(h->n_ev[PK_BLN_EV_CHANGED], changed);
	/* Up, past where it started (maxMemory is 8 GiB). */
	changed = h->n_ev[PK_BLN_EV_CHANGED];
	ck_assert_int_eq(set_target(h, 3 * GIB, why, sizeof(why)), 0);
	WAIT(h, info(h)->actual_bytes == 3 * GIB, LV_CALL_MS,
	     "actual 3 GiB");
	ck_assert_int_gt(h->n_ev[PK_BLN_EV_CHANGED], changed);
	/* The newest of many quick targets is the one that holds (the
	 * worker takes them slower than they come: it must not keep an
	 * older one). */
	for (int i = 0; i < 50; i++)
		ck_assert_int_eq(set_target(h, (uint64_t)(1024 + 16 * i) * MIB,
					    why, sizeof(why)), 0);
	ck_assert_int_eq(set_target(h, 768 * MIB, why, sizeof(why)), 0);
	WAIT(h, info(h)->actual_bytes == 768 * MIB, LV_CALL_MS,
	     "actual 768 MiB, the last of 51 targets");
	/* It stays there: no older target lands after it. */
	long until = pk_test_now_ms() + 300;
	while (pk_test_now_ms() < until)
		pump(h, 20);
	ck_assert_uint_eq(info(h)->actual_bytes, 768 * MIB);
	ck_assert_int_eq(h->n_ev[PK_BLN_EV_FAILED], 0);
	ck_assert_int_eq(h->n_ev[PK_BLN_EV_GONE], 0);
	ck_assert_str_eq(info(h)->why, "");
	h_close(h, "targets");
}
END_TEST

START_TEST(test_stats_in_bytes)
{
	/* 1 s is the shortest period libvirt takes (it counts seconds). */
	struct h *h = h_open(CHAN, TEST_DOM_MAX, 1000);
	const struct pk_balloon_info *in;
	uint64_t first;
	char why[256];

	WAIT(h, h->n_ev[PK_BLN_EV_STATS] >= 1, LV_CALL_MS, "the first stats");
	in = info(h);
	first = in->stats_ms;
	ck_assert_uint_gt(first, 0);
	ck_assert_uint_eq(in->actual_bytes, TEST_DOM_MEM);
	ck_assert_int_eq(in->total_bytes, (int64_t)TEST_DOM_MEM);
	ck_assert_int_eq(in->free_bytes, (int64_t)(TEST_DOM_MEM / 2));
	ck_assert_int_eq(in->available_bytes, (int64_t)(TEST_DOM_MEM / 2));
	ck_assert_int_eq(in->swap_in_bytes, 0);
	ck_assert_int_eq(in->swap_out_bytes, 0);
	ck_assert_int_eq(in->major_faults, 0);
	ck_assert_int_eq(in->minor_faults, 0);
	/* libvirt 9.0 has no OOM-kill or stall counters. */
	ck_assert_int_eq(in->oom_kills, -1);
	ck_assert_int_eq(in->alloc_stalls, -1);
	printf("stats: actual %llu MiB, total %lld MiB, free %lld MiB, "
	       "available %lld MiB\n",
	       (unsigned long long)(in->actual_bytes / MIB),
	       (long long)(in->total_bytes / (int64_t)MIB),
	       (long long)(in->free_bytes / (int64_t)MIB),
	       (long long)(in->available_bytes / (int64_t)MIB));

	/* Polled again every period: two more within about 2 s. */
	WAIT(h, h->n_ev[PK_BLN_EV_STATS] >= 3, 3 * 1000 + LV_CALL_MS,
	     "two more stats polls at 1 s");
	ck_assert_uint_gt(info(h)->stats_ms, first);

	/* The guest's figures follow a target, in bytes (KiB * 1024). */
	ck_assert_int_eq(set_target(h, 1000 * MIB + 4 * KIB, why,
				    sizeof(why)), 0);
	WAIT(h, info(h)->actual_bytes == 1000 * MIB + 4 * KIB, LV_CALL_MS,
	     "actual 1000 MiB + 4 KiB");
	in = info(h);
	ck_assert_int_eq(in->total_bytes, (int64_t)(1000 * MIB + 4 * KIB));
	ck_assert_int_eq(in->free_bytes, (int64_t)(500 * MIB + 2 * KIB));
	h_close(h, "stats");
}
END_TEST

START_TEST(test_bad_targets)
{
	struct h *h = h_open(CHAN, 16 * GIB, 0);
	char why[256];
	uint64_t bad[] = { 0, 4096, MIB - 4096, 512 * MIB + 1,
			   16 * GIB + 4096, UINT64_MAX };

	WAIT(h, info(h)->link == PK_BLN_READY, LV_CALL_MS, "the link up");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(set_target(h, bad[i], why, sizeof(why)),
				 -EINVAL);
		ck_assert_msg(strstr(why, "multiple of 4096"),
			      "why for %llu bytes: '%s'",
			      (unsigned long long)bad[i], why);
	}
	ck_assert_uint_eq(info(h)->target_bytes, 0);
	/* Within the bridge's RAM but above the domain's maxMemory (8 GiB):
	 * libvirt refuses, the bridge says why. */
	ck_assert_int_eq(set_target(h, 12 * GIB, why, sizeof(why)), 0);
	WAIT(h, h->n_ev[PK_BLN_EV_FAILED] == 1, LV_CALL_MS,
	     "libvirt's refusal of 12 GiB");
	ck_assert_msg(strstr(info(h)->why, "libvirt refused the target "
			     "12288 MiB for domain 'test': "),
		      "why: '%s'", info(h)->why);
	printf("refused: %s\n", info(h)->why);
	ck_assert_int_eq(info(h)->link, PK_BLN_READY);
	/* And it still works. */
	ck_assert_int_eq(set_target(h, 1 * GIB, why, sizeof(why)), 0);
	WAIT(h, info(h)->actual_bytes == 1 * GIB, LV_CALL_MS, "actual 1 GiB");
	ck_assert_str_eq(info(h)->why, "");
	h_close(h, "bad targets");
}
END_TEST

/*
 * A channel that never connects: GONE with why, CONNECTING, retries at
 * 1 s then 2 s, and a target asked meanwhile is kept, not refused.
 */
static void never_connects(const char *chan, const char *why_has)
{
	struct h *h = h_open(chan, TEST_DOM_MAX, 0);
	char why[256];
	long gap1, gap2;

	WAIT(h, h->n_gone >= 1, LV_CALL_MS, "the first failure");
	printf("%s: %s\n", chan, info(h)->why);
	ck_assert_msg(strstr(info(h)->why, why_has), "why: '%s', wants '%s'",
		      info(h)->why, why_has);
	ck_assert_int_eq(info(h)->link, PK_BLN_CONNECTING);
	ck_assert_int_eq(set_target(h, 1 * GIB, why, sizeof(why)), 0);
	WAIT(h, h->n_gone >= 3, 1000 + 2000 + 2 * LV_CALL_MS,
	     "two retries (1 s, then 2 s later)");
	gap1 = h->gone_ms[1] - h->gone_ms[0];
	gap2 = h->gone_ms[2] - h->gone_ms[1];
	printf("%s: retries %ld ms, then %ld ms apart\n", chan, gap1, gap2);
	ck_assert_msg(gap1 >= 950 && gap2 >= 1950 && gap2 > gap1,
		      "retries %ld ms then %ld ms apart: want 1 s doubling",
		      gap1, gap2);
	ck_assert_int_eq(info(h)->link, PK_BLN_CONNECTING);
	ck_assert_int_eq(h->n_ev[PK_BLN_EV_UP], 0);
	ck_assert_uint_eq(info(h)->actual_bytes, 0);
	h_close(h, chan);
}

START_TEST(test_bad_uri)
{
	never_connects("nosuch:///x|test",
		       "cannot connect to libvirt at nosuch:///x: ");
}
END_TEST

/* libvirt's whole message, past 128 bytes (PK_BALLOON_WHY_MAX). */
START_TEST(test_long_why)
{
	char chan[256], want[256], name[181];

	memset(name, 'd', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	snprintf(chan, sizeof(chan), "test:///default|%s", name);
	snprintf(want, sizeof(want), "domain '%s': Domain not found", name);
	never_connects(chan, want);
}
END_TEST

START_TEST(test_no_domain)
{
	never_connects("test:///default|nosuchdomain",
		       "cannot connect to libvirt at test:///default: "
		       "domain 'nosuchdomain': Domain not found");
}
END_TEST

/* A "libvirtd" that takes connections and never says a word. */
struct mute {
	char dir[64];
	char path[96];
	int fd; /* the listener, closed by mute_serve() */
	pthread_t thr;
	int release_ms;
};

/*
 * Accepts and holds every connection, answers nothing; at release_ms it
 * closes them and the listener, so libvirt's call fails (EOF) whatever
 * the bridge does: a bridge that blocks fails an assertion then instead
 * of hanging the test.
 */
static void *mute_serve(void *arg)
{
	struct mute *m = arg;
	long until = pk_test_now_ms() + m->release_ms;
	int held[16], n = 0;

	for (long now; (now = pk_test_now_ms()) < until;) {
		struct pollfd p = { .fd = m->fd, .events = POLLIN };

		if (poll(&p, 1, (int)(until - now)) == 1 && n < 16) {
			int c = accept4(m->fd, NULL, NULL, SOCK_CLOEXEC);
			if (c >= 0)
				held[n++] = c;
		}
	}
	while (n > 0)
		close(held[--n]);
	close(m->fd);
	return NULL;
}

static void mute_start(struct mute *m, int release_ms)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	snprintf(m->dir, sizeof(m->dir), "/tmp/pk-blv-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(m->dir));
	snprintf(m->path, sizeof(m->path), "%.80s/sock", m->dir);
	memcpy(a.sun_path, m->path, strlen(m->path) + 1);
	m->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(m->fd, 0);
	ck_assert_int_eq(bind(m->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(m->fd, 8), 0);
	m->release_ms = release_ms;
	ck_assert_int_eq(pthread_create(&m->thr, NULL, mute_serve, m), 0);
}

static void mute_stop(struct mute *m)
{
	pthread_join(m->thr, NULL);
	unlink(m->path);
	rmdir(m->dir);
}

START_TEST(test_hung_libvirtd)
{
	/* The hang lasts far longer than any call may take. */
	int hang_ms = (int)(3000 * pk_test_time_scale());
	struct mute m;
	char chan[256], why[256];
	struct h *h;
	long until;

	mute_start(&m, hang_ms);
	snprintf(chan, sizeof(chan), "test+unix:///default?socket=%s|test",
		 m.path);
	h = h_open(chan, TEST_DOM_MAX, 0);
	/* The worker sits in virConnectOpen, waiting for an answer. */
	until = pk_test_now_ms() + 500;
	while (pk_test_now_ms() < until)
		pump(h, 20);
	ck_assert_int_eq(info(h)->link, PK_BLN_CONNECTING);
	ck_assert_int_eq(set_target(h, 1 * GIB, why, sizeof(why)), 0);
	until = pk_test_now_ms() + 500;
	while (pk_test_now_ms() < until)
		pump(h, 20);
	ck_assert_int_eq(h->n_ev[PK_BLN_EV_UP], 0);
	/* Close with the worker stuck in libvirt: bounded, not a hang. */
	h_close(h, "hung libvirtd");
	mute_stop(&m);
}
END_TEST

START_TEST(test_close_in_flight)
{
	char why[256];
	int i, rounds = 20;

	for (i = 0; i < rounds; i++) {
		struct h *h = h_open(CHAN, TEST_DOM_MAX, 0);

		if (i % 2)
			WAIT(h, info(h)->link == PK_BLN_READY, LV_CALL_MS,
			     "the link up");
		ck_assert_int_eq(set_target(h, (uint64_t)(256 + i) * MIB, why,
					    sizeof(why)), 0);
		if (i % 4 == 3)
			pump(h, 0);
		h_close(h, "close in flight");
	}
	/* A bridge that never connected, closed mid-retry. */
	struct h *h = h_open("test:///default|nosuchdomain", TEST_DOM_MAX, 0);
	WAIT(h, h->n_gone >= 1, LV_CALL_MS, "the first failure");
	h_close(h, "close while retrying");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("balloon_libvirt");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	setvbuf(stdout, NULL, _IOLBF, 0);
	tcase_set_timeout(tc, 60 * pk_test_time_scale());
	tcase_add_test(tc, test_targets_down_and_up);
	tcase_add_test(tc, test_stats_in_bytes);
	tcase_add_test(tc, test_bad_targets);
	tcase_add_test(tc, test_bad_uri);
	tcase_add_test(tc, test_long_why);
	tcase_add_test(tc, test_no_domain);
	tcase_add_test(tc, test_hung_libvirtd);
	tcase_add_test(tc, test_close_in_flight);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
