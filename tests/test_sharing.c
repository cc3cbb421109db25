/*
 * test_sharing.c - the sharing scanner against a real daemon and real lab
 * guests: zero-page reclaim, duplicate merging, sharing domains.
 *
 * Tcase "zero":
 *  - zero_pages_idle: an idle guest whose RAM is half zero pages; the
 *    scanner reclaims them (zero_mib reaches the guest's zero fraction
 *    within 2%, resident + zero = configured), and every page verifies
 *    afterwards, the reclaimed ones refaulting as zeros.
 *  - zero_pages_racing_writers: writers keep writing (zipf: a hot set,
 *    and a cold tail that is written now and then) while the scanner
 *    reclaims the cold zero pages at 2 GiB/s; thousands of pages are
 *    reclaimed, many are written again afterwards (refaults), and every
 *    page verifies.  Zipf's cold pages are written too seldom for a write
 *    to land inside a reclaim more than now and then, so a racer guest
 *    (below) runs beside it: its reclaims must be aborted by its writes
 *    (evict_aborts > 0) and none of its writes may be lost.
 * Tcase "rate":
 *  - scan_rate_follows_work: while a guest fills its RAM and its pages
 *    turn stable, the scanner's rate doubles each second from --scan-rate
 *    to --scan-rate-max, the CPU share (5%) holds the reads below that
 *    rate and is never exceeded, and with nothing new left the rate
 *    comes back down to --scan-rate.  Its deadline is the work left
 *    (passes over the guest) at the rate 5% of a core permits.
 * Tcase "merge" (also run against pagekeeperd-collide, whose page hashes
 * are 8 bits, so pages collide on the hash all the time: every merge
 * must be proved by content):
 *  - identical_guests_savings: N guests of one seed in one domain; the
 *    savings, measured as the memory the guests' RAM files really hold
 *    (st_blocks of each memfd) minus the daemon's canonical store, match
 *    the savings the content model predicts page by page within 2%.
 *  - write_after_merge: merged guests then write every page; each guest
 *    reads back its own content, the references drop to zero and every
 *    canonical copy is freed.
 *  - swap_dedup: a guest with the content of two merged guests is evicted
 *    as soon as it has filled (the daemon merges a page only after 3
 *    stable passes, so the scanner leaves it alone for 4 s); its
 *    duplicate pages take references on the canonical copies instead of
 *    swap slots (any the scanner got to first are merged: none is
 *    written), and all its pages verify.
 *  - swap_slot_dedup: no scanner, so no canonical copies; two guests of
 *    one domain with the same content are evicted one after the other,
 *    and the second one's duplicate pages take references on the first
 *    one's swap slots (read back and compared first).  A third guest of
 *    the same content in another domain writes slots of its own.  Every
 *    page verifies through the shared slots, and when the guests are
 *    gone no slot and no index entry is left.  In the collide run the
 *    first candidate of an 8-bit hash is nearly always other content:
 *    the read-back must refuse it (misses > 0) and every page verifies.
 *  - remove_merged_pages: two guests of the test process itself, merged
 *    with each other; the first discards half its RAM with MADV_REMOVE,
 *    the second with MADV_DONTNEED (a balloon, free page reporting).  The
 *    discarded merged and zero-reclaimed pages are removed at once (their
 *    references dropped: shared_mib, zero_mib, ballooned_mib), read back
 *    as zeros, never as the old bytes, and once neither guest references
 *    a copy any more it is freed (canonical_frames); the other half
 *    still reads its content.
 * Tcase "race" (not in the collide run: zipf leaves a cold tail stable
 * only in a large guest, and with 8-bit hashes every page of it would be
 * compared with thousands of candidates):
 *  - merge_racing_writers: zipf writers race merges at 2 GiB/s; thousands
 *    of pages merged, every page of both guests verifies; and a racer
 *    guest's merges must be aborted by its writes, none of them lost.
 * Tcase "domains":
 *  - domains_never_merge: guests with identical content in different
 *    domains, or in none, never share a page (zero pages are still
 *    reclaimed in each); a daemon --share-domain override joins one of
 *    them to a domain, where it does merge.
 *
 * The racer guest: RAM of the test process itself (a memfd attached with
 * the client library), whose threads write a stamp into a random page
 * and, half a millisecond later, check that it is still there and put
 * the page's base content back.  Every page is thus back to content the
 * scanner reclaims (all zeros, or a duplicate of a second guest) almost
 * all the time, stable for passes on end, and written 200 times a
 * second: reclaim after reclaim races a write, so a daemon's abort path
 * runs every second or so, and a write a reclaim threw away is a stamp
 * that has vanished.  A daemon that never aborts, or that ever loses a
 * write, fails.
 *
 * No wait relies on luck: each one polls a condition (a guest's fill
 * seen in its RAM file, scanner passes, a status figure) with a deadline
 * made from the work it waits for (pages, MiB, passes) at the floor
 * rates below, times pk_test_time_scale() for the build, and its
 * message names what it waited for.
 */
#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"

#include "engine/client/pagekeeper-client.h"
#include "tools/guestsim/content.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024.0 * 1024.0)
#define PAGE 4096u

/*
 * Floors for deadlines, in an optimised build on a loaded 2-core machine
 * (what is measured there is several times more); a deadline is the
 * work divided by them, times pk_test_time_scale():
 *  - a lab guest fills its RAM through the daemon at FILL_MIB_PER_S;
 *  - the scanner reads SCAN_MIB_PER_CPU_S per second of its CPU (about
 *    1100 measured in an optimised build, 700 under ASan), of which it
 *    has its --scan-cpu share (SCAN_CPU_DEFAULT unless given), and a
 *    VM's passes start at least a second apart (scan.c);
 *  - a guest's faults on reclaimed pages are served at REFAULTS_PER_S;
 *  - STATUS_SLACK_MS covers a process start, a status request, a tick.
 */
#define FILL_MIB_PER_S 50.0
#define SCAN_MIB_PER_CPU_S 400.0
#define SCAN_CPU_DEFAULT 50.0
#define REFAULTS_PER_S 2000.0
#define STATUS_SLACK_MS 2000L

/* Milliseconds one scanner pass over mib of RAM (all VMs together) may
 * take at rate_mib and a cpu_pct share: the slower of the two, and never
 * under the second between a VM's passes. */
static long pass_ms(double mib, double rate_mib, double cpu_pct)
{
	double r = SCAN_MIB_PER_CPU_S * cpu_pct / 100, ms;

	if (rate_mib < r)
		r = rate_mib;
	ms = 1e3 * mib / r;
	return (ms > 1000 ? (long)ms : 1000) + 100;
}

/* Milliseconds guests of mib MiB in all may take to fill their RAM. */
static long fill_ms(double mib)
{
	return (long)(1e3 * mib / FILL_MIB_PER_S) + STATUS_SLACK_MS;
}

/*
 * End a lab guest's workload (SIGTERM); its --verify then reads every
 * page, each of them a fault at worst, prints its result and exits.
 */
static void finish_and_verify(struct guest *g, double pages)
{
	json_object *res;
	char what[64];

	kill(g->pid, SIGTERM);
	snprintf(what, sizeof(what), "verify of its %.0f pages", pages);
	guest_expect(g, NULL, &res, pk_test_deadline_ms(
			     (long)(1e3 * pages / REFAULTS_PER_S) +
			     STATUS_SLACK_MS), what);
	ck_assert_msg(res, "guest %s printed no result", g->name);
	ck_assert_double_eq(jnum(res, "mismatches"), 0);
	ck_assert_double_eq(jnum(res, "pages_verified"), pages);
	json_object_put(res);
	ck_assert_int_eq(guest_finish(g, STATUS_SLACK_MS), 0);
}

/* A page figure of one VM, in pages. */
static double vm_pages(struct pk_test_daemon *d, const char *name,
		       const char *mib_key)
{
	return vm_field(d, name, mib_key) * 256;
}

/* /proc/PID/fd/N of the guest's RAM file (its memfd) into path. */
static void memfd_path(pid_t pid, char *path, size_t len)
{
	ck_assert_msg(proc_fd_find(pid, "/memfd:", path, len),
		      "guest %d has no memfd open", (int)pid);
}

/*
 * Bytes the guest's RAM file really holds: st_blocks of its memfd.  This
 * is machine memory, not a counter of the daemon's.
 */
static double memfd_allocated_mib(pid_t pid)
{
	char path[PATH_MAX];
	struct stat st;

	memfd_path(pid, path, sizeof(path));
	ck_assert_msg(stat(path, &st) == 0, "stat %s: %s", path,
		      strerror(errno));
	return (double)st.st_blocks * 512 / MIB;
}

/* Pages of each class in a guest of seed/name/fractions (content.c). */
static void class_counts(uint64_t seed, const char *name, double zero,
			 double shared, uint64_t pages, uint64_t *n_zero,
			 uint64_t *n_shared)
{
	struct gs_content c;

	gs_content_init(&c, seed, name, zero, shared);
	*n_zero = *n_shared = 0;
	for (uint64_t p = 0; p < pages; p++) {
		enum gs_class k = gs_content_class(&c, p);
		*n_zero += k == GS_CLASS_ZERO;
		*n_shared += k == GS_CLASS_SHARED;
	}
}

/*
 * Guest sizes are divided by $PK_TEST_SIZE_DIVISOR (default 1): the
 * collide build compares every page with every candidate of its 8-bit
 * hash, so it runs the same tests on smaller guests.
 */
static unsigned size_divisor(void)
{
	const char *s = getenv("PK_TEST_SIZE_DIVISOR");
	unsigned v = s ? (unsigned)atoi(s) : 1;
	return v ? v : 1;
}

/* "--size" argument for mib / div. */
static const char *size_arg(char *buf, size_t len, unsigned mib, unsigned div)
{
	snprintf(buf, len, "%uM", mib / div);
	return buf;
}

/*
 * Data pages of the RAM file fd (pages long) that do not hold their base
 * content (model, version 0) yet.  done[] remembers the pages seen right:
 * base content stays until the workload starts, which the callers hold
 * back.  Holes are skipped: after every page was touched, a hole is a
 * page the scanner reclaimed, stable for a second, long filled.
 */
static uint64_t pages_unfilled(int fd, const struct gs_content *model,
			       uint64_t pages, uint8_t *done)
{
	static uint64_t buf[64 * PAGE / 8], want[PAGE / 8];
	off_t pos = 0, end = (off_t)(pages * PAGE);
	uint64_t left = 0;

	while (pos < end) {
		off_t data = lseek(fd, pos, SEEK_DATA), hole;
		if (data < 0 || data >= end)
			break; /* holes to the end */
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || hole > end)
			hole = end;
		for (off_t off = data; off < hole;) {
			uint64_t first = (uint64_t)off / PAGE;
			uint64_t n = (uint64_t)(hole - off) / PAGE;
			ssize_t got;
			n = n > 64 ? 64 : n;
			got = pread(fd, buf, n * PAGE, off);
			ck_assert_msg(got == (ssize_t)(n * PAGE), "pread of a "
				      "guest's RAM file: %zd", got);
			for (uint64_t i = 0; i < n; i++) {
				if (done[first + i])
					continue;
				const char *have = (char *)buf + i * PAGE;
				gs_content_generate(model, first + i, 0, want);
				if (memcmp(have, want, PAGE) == 0)
					done[first + i] = 1;
				else
					left++;
			}
			off += (off_t)(n * PAGE);
		}
		pos = hole;
	}
	return left;
}

/*
 * Wait until lab guest g (content seed/zero/shared, mib MiB) has filled
 * its RAM: the daemon has no untouched page of it left, and every page
 * of its RAM file holds its base content.  The first alone is not
 * enough: fault-around zero-fills pages ahead of the fill's writes.
 * filling_mib: the RAM of all guests filling meanwhile (the deadline).
 */
static void wait_filled(struct pk_test_daemon *d, struct guest *g,
			uint64_t seed, double zero, double shared, unsigned mib,
			double filling_mib)
{
	uint64_t pages = (uint64_t)mib * 256, left = pages;
	struct gs_content model;
	char path[PATH_MAX];
	uint8_t *done;
	int fd;

	WAIT_FOR(vm_field(d, g->name, "untouched_mib") == 0,
		 fill_ms(filling_mib), 10, "guest %s to touch all of its %u MiB "
		 "(%.2f MiB untouched; %.0f MiB filling at >= %.0f MiB/s)",
		 g->name, mib, vm_field(d, g->name, "untouched_mib"),
		 filling_mib, FILL_MIB_PER_S);
	gs_content_init(&model, seed, g->name, zero, shared);
	memfd_path(g->pid, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	done = calloc(pages, 1);
	ck_assert(done);
	WAIT_FOR((left = pages_unfilled(fd, &model, pages, done)) == 0,
		 fill_ms(filling_mib), 20, "guest %s's fill to write the base "
		 "content of all %llu pages (%llu not yet)", g->name,
		 (unsigned long long)pages, (unsigned long long)left);
	free(done);
	close(fd);
}

/* How many passes the VM furthest behind its target still lacks. */
static double passes_short(struct pk_test_daemon *d, const char *const *names,
			   int n, const double *target)
{
	double worst = 0;

	for (int i = 0; i < n; i++) {
		double lack = target[i] - vm_field(d, names[i], "scan_passes");
		worst = lack > worst ? lack : worst;
	}
	return worst;
}

/*
 * Wait until each of the n VMs has completed `more` scanner passes
 * beyond those it has now.  The deadline: `more` passes over mib of RAM
 * (every VM's) at rate_mib and a cpu_pct share.
 */
static void wait_passes(struct pk_test_daemon *d, const char *const *names,
			int n, int more, double mib, double rate_mib,
			double cpu_pct)
{
	double target[8], lack = more;

	ck_assert_int_le(n, 8);
	for (int i = 0; i < n; i++)
		target[i] = vm_field(d, names[i], "scan_passes") + more;
	WAIT_FOR((lack = passes_short(d, names, n, target)) <= 0,
		 more * pass_ms(mib, rate_mib, cpu_pct) + STATUS_SLACK_MS, 50,
		 "%d more scanner passes over each of %d VM(s) (%.0f MiB in "
		 "all at %.0f MiB/s, %.0f%% CPU; %.0f still lacking)", more, n,
		 mib, rate_mib, cpu_pct, lack);
}

/* One look at a figure for wait_settled(). */
struct settle {
	double v;	   /* the figure since it last changed */
	double target[8]; /* each VM's passes that make it settled */
};

static bool settle_step(struct pk_test_daemon *d,
			double (*fig)(struct pk_test_daemon *),
			const char *const *names, int n, struct settle *s)
{
	double now = fig(d);

	if (now != s->v) {
		s->v = now;
		for (int i = 0; i < n; i++)
			s->target[i] = vm_field(d, names[i], "scan_passes") + 2;
		return false;
	}
	return now > 0 && passes_short(d, names, n, s->target) <= 0;
}

/*
 * Wait until fig() is above 0 and has not changed while every one of the
 * n VMs made a whole pass (two completed passes after the last change:
 * the first may have begun before it).  The deadline: the pass under
 * way, one that reads each page, stable_scans that find it stable
 * (--share-stable-scans, 1 by default) and merge it, and the two of the
 * settled reading, over mib at rate_mib (50% CPU).
 */
static double wait_settled(struct pk_test_daemon *d, const char *what,
			   double (*fig)(struct pk_test_daemon *),
			   const char *const *names, int n, double mib,
			   double rate_mib, int stable_scans)
{
	struct settle s = { .v = -1 };

	ck_assert_int_le(n, 8);
	WAIT_FOR(settle_step(d, fig, names, n, &s),
		 (4 + stable_scans) * pass_ms(mib, rate_mib, SCAN_CPU_DEFAULT) +
			 STATUS_SLACK_MS,
		 100, "%s to stay the same for a whole scanner pass over each "
		 "of %d VM(s) (now %.2f; %.0f MiB at %.0f MiB/s)", what, n, s.v,
		 mib, rate_mib);
	return s.v;
}

/*
 * A guest the test process is itself: a memfd mapped MAP_SHARED
 * (pk_test_guest_create) that holds base content of the content model
 * before it is attached with the client library (so the daemon takes
 * every page as resident), and that the test then writes, discards and
 * reads exactly when it wants to.
 */
struct own_guest {
	struct pk_test_guest g;
	struct pk_client *client;
	struct gs_content model;
	char name[32];
	uint64_t pages;
};

static void *own_page(const struct own_guest *o, uint64_t p)
{
	return (char *)o->g.addr + p * PAGE;
}

static void own_guest_start(struct own_guest *o, struct pk_test_daemon *d,
			    const char *name, const char *domain, unsigned mib,
			    uint64_t seed, double zero, double shared)
{
	struct pk_client_region r;
	struct pk_client_opts opts;
	char err[256] = "";
	int rc;

	memset(o, 0, sizeof(*o));
	snprintf(o->name, sizeof(o->name), "%s", name);
	o->pages = (uint64_t)mib * 256;
	rc = pk_test_guest_create(&o->g, o->pages * PAGE, o->pages * PAGE);
	ck_assert_msg(rc == 0, "memfd guest %s: %s", name, strerror(-rc));
	gs_content_init(&o->model, seed, name, zero, shared);
	for (uint64_t p = 0; p < o->pages; p++)
		gs_content_generate(&o->model, p, 0, own_page(o, p));
	r = (struct pk_client_region){ o->g.addr, o->pages * PAGE, 0 };
	memset(&opts, 0, sizeof(opts));
	opts.socket_path = d->sock;
	opts.vm_name = name;
	opts.ram_fd = o->g.memfd;
	opts.regions = &r;
	opts.n_regions = 1;
	opts.share_domain = domain;
	rc = pk_client_attach(&opts, &o->client, err, sizeof(err));
	ck_assert_msg(rc == 0, "attach %s: %s", name, err);
}

/* Pages of [first, first + n) that do not read their base content. */
static uint64_t own_guest_mismatches(const struct own_guest *o, uint64_t first,
				     uint64_t n)
{
	static uint64_t want[PAGE / 8];
	uint64_t bad = 0;

	for (uint64_t p = first; p < first + n; p++) {
		gs_content_generate(&o->model, p, 0, want);
		bad += memcmp(own_page(o, p), want, PAGE) != 0;
	}
	return bad;
}

/* Pages of [first, first + n) that hold any non-zero byte. */
static uint64_t own_guest_nonzero(const struct own_guest *o, uint64_t first,
				  uint64_t n)
{
	uint64_t bad = 0;

	for (uint64_t p = first; p < first + n; p++) {
		const uint64_t *w = own_page(o, p);
		for (unsigned i = 0; i < PAGE / 8; i++)
			if (w[i]) {
				bad++;
				break;
			}
	}
	return bad;
}

static void own_guest_stop(struct own_guest *o)
{
	pk_client_detach(o->client);
	o->client = NULL;
	pk_test_guest_destroy(&o->g);
}

/*
 * The racer (see the top of the file): RACE_THREADS threads, thread i
 * owning pages p with p % RACE_THREADS == i, each page written
 * RACE_WRITES_PER_S times a second on average: a stamp into word 0,
 * checked and replaced by the base content's word 0 RACE_HOLD_NS later,
 * when any reclaim that met the write has long aborted, or punched.
 */
#define RACE_THREADS 2
#define RACE_WRITES_PER_S 200.0
#define RACE_HOLD_NS (500 * 1000L)
#define RACE_RING 4096
#define RACE_STAMP 0x5a00000000000000ULL
/* Aborts a racer must see.  Its deadline: each of its pages is
 * reclaimed once per 3 passes or more often (read, stable and reclaimed,
 * written back), and a write lands inside a reclaim with odds of at
 * least RACE_WINDOW_S (a reclaim's window from write-protection to its
 * last look at the events: a copy-out and a read of the uffd at least;
 * about 10 us measured in an optimised build on a quiet machine)
 * times RACE_WRITES_PER_S. */
#define RACE_ABORTS 10
#define RACE_WINDOW_S 3e-6
/* A racer's RAM: small, so that the faults on its reclaimed pages
 * (one per page per reclaim) leave its threads time to write. */
#define RACE_MIB 8

struct racer {
	struct own_guest *o;
	unsigned id;
	atomic_bool *stop;
	pthread_t thread;
	uint64_t writes, first_lost;
	atomic_ullong lost;
};

struct race_entry {
	uint64_t page, stamp;
	long t_ns;
};

static long mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static uint64_t base_word0(const struct own_guest *o, uint64_t p)
{
	static _Thread_local uint64_t buf[PAGE / 8];

	gs_content_generate(&o->model, p, 0, buf);
	return buf[0];
}

static void *racer_run(void *arg)
{
	struct racer *r = arg;
	const struct own_guest *o = r->o;
	uint64_t mine = o->pages / RACE_THREADS, seq = 0;
	uint64_t rng = 0x9e3779b97f4a7c15ULL * (r->id + 1);
	double per_ms = RACE_WRITES_PER_S * (double)mine / 1e3, due = 0;
	struct race_entry *ring = calloc(RACE_RING, sizeof(*ring));
	uint8_t *pending = calloc(mine, 1);
	unsigned head = 0, n = 0;
	long now, last = mono_ns();

	if (!ring || !pending)
		abort();
	while (!atomic_load(r->stop) || n) {
		struct timespec nap = { 0, RACE_HOLD_NS / 2 };
		/* The writes due since the last round, at most 10 ms' worth
		 * after a stall (a fault served late, no CPU). */
		now = mono_ns();
		if (!atomic_load(r->stop))
			due += per_ms * (double)(now - last) / 1e6;
		due = due > 10 * per_ms ? 10 * per_ms : due;
		last = now;
		for (; due >= 1 && n < RACE_RING; due -= 1) {
			uint64_t k, p;
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			k = rng % mine;
			if (pending[k])
				continue;
			p = k * RACE_THREADS + r->id;
			struct race_entry *e = &ring[(head + n++) % RACE_RING];
			e->page = k;
			e->stamp = RACE_STAMP | (uint64_t)r->id << 48 | ++seq;
			*(volatile uint64_t *)own_page(o, p) = e->stamp;
			e->t_ns = mono_ns();
			pending[k] = 1;
			r->writes++;
		}
		now = mono_ns();
		while (n && now - ring[head].t_ns >= RACE_HOLD_NS) {
			struct race_entry *e = &ring[head];
			uint64_t p = e->page * RACE_THREADS + r->id;
			volatile uint64_t *w = own_page(o, p);
			if (*w != e->stamp) {
				if (!atomic_load(&r->lost))
					r->first_lost = p;
				atomic_fetch_add(&r->lost, 1);
			}
			*w = base_word0(o, p);
			pending[e->page] = 0;
			head = (head + 1) % RACE_RING;
			n--;
		}
		nanosleep(&nap, NULL);
	}
	free(pending);
	free(ring);
	return NULL;
}

struct race {
	struct own_guest *o;
	long t0_ms;
	atomic_bool stop;
	struct racer r[RACE_THREADS];
};

static void race_start(struct race *rc, struct own_guest *o)
{
	rc->o = o;
	rc->t0_ms = pk_test_now_ms();
	atomic_init(&rc->stop, false);
	for (unsigned i = 0; i < RACE_THREADS; i++) {
		rc->r[i] = (struct racer){ .o = o, .id = i, .stop = &rc->stop };
		atomic_init(&rc->r[i].lost, 0);
		ck_assert_int_eq(pthread_create(&rc->r[i].thread, NULL,
						racer_run, &rc->r[i]), 0);
	}
}

/* Writes the racer has lost so far (read while it runs: a hint only). */
static uint64_t race_lost(struct race *rc)
{
	uint64_t lost = 0;

	for (unsigned i = 0; i < RACE_THREADS; i++)
		lost += atomic_load(&rc->r[i].lost);
	return lost;
}

/* Stop the writers (each checks its last stamps first); writes made. */
static uint64_t race_stop(struct race *rc, uint64_t *lost, uint64_t *first_lost)
{
	uint64_t writes = 0;

	atomic_store(&rc->stop, true);
	*lost = 0;
	*first_lost = 0;
	for (unsigned i = 0; i < RACE_THREADS; i++) {
		/* Each checks the stamps it has out, RACE_HOLD_NS old. */
		long wait_ms = (long)(STATUS_SLACK_MS * pk_test_time_scale());
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts); /* pthread_timedjoin_np's */
		ts.tv_sec += wait_ms / 1000;
		ts.tv_nsec += wait_ms % 1000 * 1000000;
		ts.tv_sec += ts.tv_nsec / 1000000000;
		ts.tv_nsec %= 1000000000;
		int rc_join = pthread_timedjoin_np(rc->r[i].thread, NULL, &ts);
		ck_assert_msg(rc_join == 0, "timed out waiting for racer thread %u to check "
			      "its last writes", i);
		writes += rc->r[i].writes;
		if (atomic_load(&rc->r[i].lost) && !*lost)
			*first_lost = rc->r[i].first_lost;
		*lost += atomic_load(&rc->r[i].lost);
	}
	return writes;
}

/* Milliseconds a racer of pages pages may need for RACE_ABORTS aborts,
 * its passes over mib (all VMs) at rate_mib and 50% CPU. */
static long race_ms(uint64_t pages, double mib, double rate_mib)
{
	double cycle_s = 3 * pass_ms(mib, rate_mib, SCAN_CPU_DEFAULT) / 1e3;
	double reclaims_per_s = (double)pages / cycle_s;
	return (long)(1e3 * RACE_ABORTS /
		      (reclaims_per_s * RACE_WRITES_PER_S * RACE_WINDOW_S));
}

START_TEST(zero_pages_idle)
{
	const char *names[] = { "idle" };
	struct pk_test_daemon d;
	struct guest g;
	const char *extra[] = { "--size", "64M", "--content", "zero=0.5,shared=0",
				"--workload", "idle", "--duration", "3600",
				"--verify", "--json", NULL };
	double zero, resident;

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 400M") == 0, "%s",
		      d.error);
	guest_start(&g, d.sock, "idle", extra);
	wait_filled(&d, &g, 1, 0.5, 0, 64, 64);
	/* The pass under way, one that reads every filled page and one
	 * that finds it stable and reclaims it. */
	wait_passes(&d, names, 1, 3, 64, 400, SCAN_CPU_DEFAULT);
	zero = vm_field(&d, "idle", "zero_mib");
	resident = vm_field(&d, "idle", "resident_mib");
	fprintf(stderr, "zero_pages_idle: %.2f MiB zero, %.2f MiB resident\n",
		zero, resident);
	ck_assert_msg(zero >= 0.48 * 64 && zero <= 0.52 * 64,
		      "zero_mib %.2f, want 32 +- 2%%", zero);
	ck_assert_double_eq_tol(zero + resident, 64, 1e-9);
	ck_assert_double_eq(vm_field(&d, "idle", "scan_zero_reclaimed") * 4096,
			    zero * (1 << 20));
	finish_and_verify(&g, 64 * 256);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

/* The scanner's figures from the status: its rate now, measured MiB/s
 * over the last second and CPU seconds in all. */
static void scan_status(struct pk_test_daemon *d, double *rate_now,
			double *mib_per_s, double *cpu_s)
{
	json_object *root = status_root(d), *sc;

	ck_assert_msg(json_object_object_get_ex(root, "scan", &sc),
		      "status has no scan object");
	*rate_now = jnum(sc, "rate_now_mib_per_s");
	*mib_per_s = jnum(sc, "mib_per_s");
	*cpu_s = jnum(sc, "cpu_seconds_total");
	json_object_put(root);
}

/* What scan_rate_follows_work watches while the rate rises. */
struct rise {
	double rate, mib, cpu, max_rate;
	bool limited; /* the CPU share held reads below half the rate */
};

static bool rise_step(struct pk_test_daemon *d, struct rise *r)
{
	scan_status(d, &r->rate, &r->mib, &r->cpu);
	r->max_rate = r->rate > r->max_rate ? r->rate : r->max_rate;
	r->limited |= r->rate >= 800 && r->mib < r->rate / 2;
	return r->max_rate == 1600 && r->limited;
}

static bool rate_at(struct pk_test_daemon *d, struct rise *r, double want)
{
	scan_status(d, &r->rate, &r->mib, &r->cpu);
	return r->rate == want;
}

START_TEST(scan_rate_follows_work)
{
	struct pk_test_daemon d;
	struct guest g;
	const char *extra[] = { "--size", "512M", "--content", "zero=0.3,shared=0",
				"--workload", "idle", "--duration", "3600",
				"--verify", "--json", NULL };
	const char *names[] = { "rate" };
	struct rise r = { 0 };
	double cpu0, cpu_top, pages_top, t0, t1, t_top, t_done, measured, zero;
	uint64_t zero_pages, no_shared;

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 100M --scan-rate-max "
					   "1600M --scan-cpu 5") == 0,
		      "%s", d.error);
	scan_status(&d, &r.rate, &r.mib, &cpu0);
	ck_assert_double_eq(r.rate, 100);
	class_counts(1, "rate", 0.3, 0, 512 * 256, &zero_pages, &no_shared);
	t0 = pk_test_now_ms() / 1e3;
	guest_start(&g, d.sock, "rate", extra);
	/* New pages (faulted in, then stable): the rate doubles at each 1 s
	 * tick, from 100 to 1600 MiB/s in four, once the guest touches its
	 * RAM; the CPU share, 5%, holds the reads back meanwhile. */
	WAIT_FOR(rise_step(&d, &r), fill_ms(512) + 6000, 100,
		 "the scan rate to double from 100 to 1600 MiB/s (reached %.0f) "
		 "and the 5%% CPU share to hold reads below half of it (%s; "
		 "%.0f MiB/s read at %.0f allowed)", r.max_rate,
		 r.limited ? "it did" : "not yet", r.mib, r.rate);
	fprintf(stderr, "scan_rate_follows_work: rate up to %.0f MiB/s; %.0f "
		"MiB/s read at %.0f MiB/s allowed\n", r.max_rate, r.mib, r.rate);
	/* Nothing new once every page is reclaimed or a candidate.  The
	 * work for that: once the guest has filled its RAM, the pass under
	 * way (it may have read pages before the fill wrote them), one that
	 * reads every page as filled and one that finds it stable; 3 x 512
	 * MiB at most, read at the rate the CPU share permits (5% of
	 * SCAN_MIB_PER_CPU_S).  The rate may come down earlier, over pages
	 * that are not stable yet, and go up again: only after those passes
	 * is there nothing new left. */
	wait_filled(&d, &g, 1, 0.3, 0, 512, 512);
	t_top = pk_test_now_ms() / 1e3;
	pages_top = vm_field(&d, "rate", "scan_pages");
	scan_status(&d, &r.rate, &r.mib, &cpu_top);
	wait_passes(&d, names, 1, 3, 512, 1600, 5);
	measured = (vm_field(&d, "rate", "scan_pages") - pages_top) * 4096 /
		   MIB / (status_field(&d, "scan", "cpu_seconds_total") -
			  cpu_top);
	zero = vm_pages(&d, "rate", "zero_mib");
	t_done = pk_test_now_ms() / 1e3;
	/* Then back to --scan-rate: four halvings, one per 1 s tick. */
	WAIT_FOR(rate_at(&d, &r, 100), 4000 + STATUS_SLACK_MS, 100,
		 "the scan rate to come back to 100 MiB/s with nothing new "
		 "(at %.0f MiB/s; four halvings, one a second)", r.rate);
	/* The share held on average: 5% of the time since the guest
	 * started, plus the two periods' worth a tick may bank and the
	 * last step it may overspend (1 ms). */
	t1 = pk_test_now_ms() / 1e3;
	fprintf(stderr, "scan_rate_follows_work: 3 passes in %.1f s after the "
		"fill (deadline %.1f s; the scanner read %.0f MiB per CPU "
		"second, the deadline's floor is %.0f): %.0f of %llu zero pages "
		"reclaimed; the rate back to %.0f MiB/s %.1f s later; scanner "
		"CPU %.3f s in %.1f s: %.2f%% of a core\n", t_done - t_top,
		3 * pass_ms(512, 1600, 5) * pk_test_time_scale() / 1e3,
		measured, SCAN_MIB_PER_CPU_S, zero,
		(unsigned long long)zero_pages, r.rate, t1 - t_done,
		r.cpu - cpu0, t1 - t0,
		100 * (r.cpu - cpu0) / (t1 - t0));
	ck_assert_double_eq(r.rate, 100);
	ck_assert_msg(r.cpu - cpu0 <= 0.05 * (t1 - t0) + 0.002,
		      "scanner used %.3f s of CPU in %.1f s, share 5%%",
		      r.cpu - cpu0, t1 - t0);
	ck_assert_msg(zero >= 0.99 * (double)zero_pages, "only %.0f of %llu "
		      "zero pages reclaimed", zero, (unsigned long long)zero_pages);
	finish_and_verify(&g, 512 * 256);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

/* What a racing test watches: its lab guests' and its racer's figures. */
struct race_figs {
	double reclaimed; /* zero pages reclaimed, or pages merged */
	double aborts, refaults;
	double own_reclaimed, own_aborts;
	uint64_t lost;
};

/* The racing tests' condition: enough reclaims for the lab guests and
 * enough aborts for the racer; or a lost write, which ends the wait. */
static bool race_step(struct pk_test_daemon *d, const char *const *names,
		      int n, const char *own, bool merge, struct race *rc,
		      struct race_figs *f, double want_reclaimed)
{
	const char *done = merge ? "share_merged" : "scan_zero_reclaimed";

	memset(f, 0, sizeof(*f));
	for (int i = 0; i < n; i++) {
		f->reclaimed += vm_field(d, names[i], done);
		f->aborts += vm_field(d, names[i], "evict_aborts");
		f->refaults += vm_field(d, names[i], merge ? "share_refaults"
							 : "faults_total");
	}
	f->own_reclaimed = vm_field(d, own, done);
	f->own_aborts = vm_field(d, own, "evict_aborts");
	f->lost = race_lost(rc);
	return f->lost ||
	       (f->reclaimed >= want_reclaimed && f->own_aborts >= RACE_ABORTS);
}

/* After the race: the racer lost no write, met RACE_ABORTS aborts or
 * more, and every page of it reads its base content. */
static void race_check(struct race *rc, const struct race_figs *f,
		       const char *test)
{
	uint64_t lost, first_lost, writes = race_stop(rc, &lost, &first_lost);
	uint64_t bad = own_guest_mismatches(rc->o, 0, rc->o->pages);

	double s = (pk_test_now_ms() - rc->t0_ms) / 1e3;

	fprintf(stderr, "%s: racer %s: %llu writes in %.1f s, %.0f pages %s, "
		"%.0f aborted by its writes; %llu writes lost, %llu pages "
		"wrong\n", test, rc->o->name, (unsigned long long)writes, s,
		f->own_reclaimed, strstr(test, "merge") ? "merged" : "reclaimed",
		f->own_aborts, (unsigned long long)lost, (unsigned long long)bad);
	ck_assert_msg(lost == 0, "racer %s lost %llu writes (first on page "
		      "%llu): a reclaim threw a write away", rc->o->name,
		      (unsigned long long)lost, (unsigned long long)first_lost);
	ck_assert_msg(f->own_aborts >= RACE_ABORTS, "only %.0f aborts",
		      f->own_aborts);
	ck_assert_msg(bad == 0, "%llu pages of racer %s do not read their "
		      "content", (unsigned long long)bad, rc->o->name);
}

START_TEST(zero_pages_racing_writers)
{
	const char *names[] = { "race" };
	struct pk_test_daemon d;
	struct guest g;
	struct own_guest o;
	struct race rc;
	struct race_figs f;
	const char *extra[] = { "--size", "512M", "--content", "zero=0.6,shared=0",
				"--workload", "zipf", "--writers", "2",
				"--readers", "1", "--idle-before", "3600",
				"--duration", "3600", "--verify", "--json", NULL };
	const double mib = 512 + RACE_MIB;
	long work_ms;

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 2G") == 0, "%s",
		      d.error);
	guest_start(&g, d.sock, "race", extra);
	own_guest_start(&o, &d, "race-own", NULL, RACE_MIB, 3, 1.0, 0);
	/* Until the guest has filled its RAM (its verify needs a full
	 * fill); then its writers and the racer's start.  512 MiB, so that
	 * zipf's cold pages stay unwritten for the second a page must stay
	 * zero before it is reclaimed, and are then written now and then. */
	wait_filled(&d, &g, 1, 0.6, 0, 512, 512);
	kill(g.pid, SIGUSR1);
	race_start(&rc, &o);
	/* 2000 zero pages of the lab guest reclaimed (the pass under way,
	 * then two), and RACE_ABORTS of the racer's reclaims aborted. */
	work_ms = 3 * pass_ms(mib, 2048, SCAN_CPU_DEFAULT);
	if (race_ms(o.pages, mib, 2048) > work_ms)
		work_ms = race_ms(o.pages, mib, 2048);
	WAIT_FOR(race_step(&d, names, 1, o.name, false, &rc, &f, 2000),
		 work_ms + STATUS_SLACK_MS, 100, "2000 zero pages of %s "
		 "reclaimed (%.0f) and %d of %s's reclaims aborted by its "
		 "writes (%.0f, of %.0f reclaims)", g.name, f.reclaimed,
		 RACE_ABORTS, o.name, f.own_aborts, f.own_reclaimed);
	fprintf(stderr, "zero_pages_racing_writers: %.0f pages reclaimed, "
		"%.0f aborted by guest writes, %.0f refaults\n", f.reclaimed,
		f.aborts, f.refaults);
	race_check(&rc, &f, "zero_pages_racing_writers");
	ck_assert_msg(f.reclaimed >= 2000, "only %.0f zero pages reclaimed",
		      f.reclaimed);
	finish_and_verify(&g, 512 * 256);
	own_guest_stop(&o);
	ck_assert(pk_test_daemon_alive(&d));
	pk_test_daemon_stop_ok(&d);
}
END_TEST

static double fig_shared(struct pk_test_daemon *d)
{
	return status_field(d, "sharing", "shared_mib") +
	       status_field(d, "sharing", "zero_mib");
}

#define IDENTICAL_N 3
#define IDENTICAL_MIB 64

START_TEST(identical_guests_savings)
{
	const double zf = 0.1, sf = 0.5;
	struct pk_test_daemon d;
	struct guest g[IDENTICAL_N];
	const char *names[IDENTICAL_N] = { "same-a", "same-b", "same-c" };
	char size[16];
	const char *extra[] = { "--size", size_arg(size, sizeof(size), IDENTICAL_MIB,
							 size_divisor()),
				"--seed", "7", "--content",
				"zero=0.1,shared=0.5", "--share-domain", "lab",
				"--workload", "idle", "--duration", "3600",
				"--verify", "--json", NULL };
	unsigned mib = IDENTICAL_MIB / size_divisor();
	uint64_t pages = mib * 256, zero_pages = 0, shared_pages = 0;
	double expected, measured, held = 0, store;

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 1G") == 0, "%s",
		      d.error);
	for (int i = 0; i < IDENTICAL_N; i++) {
		uint64_t z, sh;
		guest_start(&g[i], d.sock, names[i], extra);
		class_counts(7, names[i], zf, sf, pages, &z, &sh);
		zero_pages += z;
		shared_pages = sh; /* the same pages in every guest */
	}
	/* Every zero page, and every shared page but one copy of each. */
	expected = (double)(zero_pages + shared_pages * (IDENTICAL_N - 1)) *
		   4096 / MIB;
	for (int i = 0; i < IDENTICAL_N; i++)
		wait_filled(&d, &g[i], 7, zf, sf, mib, IDENTICAL_N * mib);
	wait_settled(&d, "shared + zero MiB", fig_shared, names, IDENTICAL_N,
		     IDENTICAL_N * mib, 1024, 1);
	store = status_field(&d, "sharing", "store_mib");
	for (int i = 0; i < IDENTICAL_N; i++)
		held += memfd_allocated_mib(g[i].pid);
	measured = IDENTICAL_N * mib - held - store;
	fprintf(stderr, "identical_guests_savings: %d guests x %d MiB: RAM "
		"files hold %.2f MiB, store %.2f MiB (%.0f frames): saved "
		"%.2f MiB, expected %.2f MiB (%.2f%% off); daemon says %.2f MiB\n",
		IDENTICAL_N, mib, held, store,
		status_field(&d, "sharing", "canonical_frames"), measured,
		expected,
		100 * (measured - expected) / expected,
		status_field(&d, "sharing", "saved_mib"));
	ck_assert_msg(measured >= 0.98 * expected && measured <= 1.02 * expected,
		      "saved %.2f MiB, expected %.2f MiB +- 2%%", measured,
		      expected);
	ck_assert_double_eq_tol(status_field(&d, "sharing", "canonical_frames"),
				(double)shared_pages, shared_pages * 0.02);
	for (int i = 0; i < IDENTICAL_N; i++)
		finish_and_verify(&g[i], (double)pages);
	ck_assert(pk_test_daemon_alive(&d));
	pk_test_daemon_stop_ok(&d);
}
END_TEST

/* Are both canonical copies and shared references all gone? */
static bool copies_freed(struct pk_test_daemon *d)
{
	return status_field(d, "sharing", "canonical_frames") == 0 &&
	       status_field(d, "sharing", "shared_mib") == 0;
}

START_TEST(write_after_merge)
{
	struct pk_test_daemon d;
	struct guest g[2];
	const char *names[2] = { "wam-a", "wam-b" };
	char size[16];
	const char *extra[] = { "--size", size_arg(size, sizeof(size), 64, size_divisor()),
				"--seed", "11", "--content",
				"zero=0.1,shared=0.6", "--share-domain", "lab",
				"--idle-before", "3600", "--workload", "seq",
				"--writers", "1", "--readers", "1",
				"--duration", "3600", "--verify", "--json", NULL };
	unsigned mib = 64 / size_divisor();
	double frames, refaults = 0, pages = mib * 256, t0;

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 1G") == 0, "%s",
		      d.error);
	for (int i = 0; i < 2; i++)
		guest_start(&g[i], d.sock, names[i], extra);
	for (int i = 0; i < 2; i++)
		wait_filled(&d, &g[i], 11, 0.1, 0.6, mib, 2 * mib);
	wait_settled(&d, "shared + zero MiB", fig_shared, names, 2, 2 * mib,
		     1024, 1);
	frames = status_field(&d, "sharing", "canonical_frames");
	ck_assert_msg(frames > 0.5 * pages * 0.6, "only %.0f frames", frames);
	/* Both guests now sweep, writing every page: each write to a
	 * reclaimed page is a fault the daemon serves. */
	t0 = pk_test_now_ms() / 1e3;
	for (int i = 0; i < 2; i++)
		kill(g[i].pid, SIGUSR1);
	WAIT_FOR(copies_freed(&d),
		 (long)(1e3 * 2 * pages / REFAULTS_PER_S) + STATUS_SLACK_MS,
		 100, "the guests' writes to every page to free every canonical "
		 "copy (%.0f frames, %.2f MiB shared left; %.0f pages written "
		 "at >= %.0f refaults/s)",
		 status_field(&d, "sharing", "canonical_frames"),
		 status_field(&d, "sharing", "shared_mib"), 2 * pages,
		 REFAULTS_PER_S);
	for (int i = 0; i < 2; i++)
		refaults += vm_field(&d, names[i], "share_refaults");
	fprintf(stderr, "write_after_merge: %.0f canonical frames, %.0f shared "
		"refaults; %.0f frames left after %.1f s of writes\n", frames,
		refaults, status_field(&d, "sharing", "canonical_frames"),
		pk_test_now_ms() / 1e3 - t0);
	ck_assert_double_ge(refaults, 2 * frames * 0.9);
	for (int i = 0; i < 2; i++)
		finish_and_verify(&g[i], pages);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

START_TEST(swap_dedup)
{
	struct pk_test_daemon d;
	struct guest g[3];
	const char *names[3] = { "dd-a", "dd-b", "dd-late" };
	char size[16];
	const char *extra[] = { "--size", size_arg(size, sizeof(size), 64,
						  size_divisor()),
				"--seed", "9", "--content", "zero=0.1,shared=0.6",
				"--share-domain", "lab", "--workload", "idle",
				"--duration", "3600", "--verify", "--json", NULL };
	unsigned mib = 64 / size_divisor();
	double pages = mib * 256, dedup, slots, merged;
	uint64_t z, shared;
	struct pk_reclaim_reply r;

	/* Pages are merged only after 3 stable passes (>= 1 s apart): the
	 * late guest's are not before 4 s after it starts. */
	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 1G "
					   "--share-stable-scans 3") == 0,
		      "%s", d.error);
	for (int i = 0; i < 2; i++)
		guest_start(&g[i], d.sock, names[i], extra);
	for (int i = 0; i < 2; i++)
		wait_filled(&d, &g[i], 9, 0.1, 0.6, mib, 2 * mib);
	wait_settled(&d, "shared + zero MiB", fig_shared, names, 2, 2 * mib,
		     1024, 3);
	/* A third guest of the same content, evicted as soon as it has
	 * filled, before the scanner merges it: its shared pages have
	 * canonical copies, so they take references instead of slots.
	 * Should the scanner get to some first, they are merged instead;
	 * none is written to a slot of its own either way. */
	guest_start(&g[2], d.sock, names[2], extra);
	wait_filled(&d, &g[2], 9, 0.1, 0.6, mib, mib);
	ck_assert_msg(pk_test_reclaim(d.sock, names[2], (uint64_t)pages * 4096,
				      &r) == 0, "reclaim: %s", r.reason);
	merged = vm_field(&d, names[2], "share_merged");
	class_counts(9, names[2], 0.1, 0.6, (uint64_t)pages, &z, &shared);
	dedup = vm_field(&d, names[2], "swap_dedup");
	slots = status_field(&d, "swap", "slots_used");
	fprintf(stderr, "swap_dedup: %.0f of %llu shared pages took a canonical "
		"reference instead of a write (%.0f merged by the scanner "
		"before); %.0f pages swapped, %.0f zero in %.3f s; %.0f swap "
		"slots in use\n", dedup, (unsigned long long)shared, merged,
		(double)r.pages_swapped, (double)r.pages_zero,
		r.elapsed_us / 1e6, slots);
	ck_assert_msg(dedup >= 0.5 * (double)shared, "only %.0f of %llu pages "
		      "deduplicated", dedup, (unsigned long long)shared);
	ck_assert_msg(dedup + merged >= 0.98 * (double)shared, "%.0f of %llu "
		      "shared pages deduplicated, %.0f merged", dedup,
		      (unsigned long long)shared, merged);
	ck_assert_double_le(slots, (double)r.pages_swapped - dedup);
	for (int i = 0; i < 3; i++)
		finish_and_verify(&g[i], pages);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

static void reclaim_all(struct pk_test_daemon *d, const char *name,
			double pages)
{
	struct pk_reclaim_reply r;

	ck_assert_msg(pk_test_reclaim(d->sock, name, (uint64_t)pages * 4096,
				      &r) == 0, "reclaim %s: %s", name, r.reason);
}

START_TEST(swap_slot_dedup)
{
	struct pk_test_daemon d;
	struct guest g[3];
	const char *names[3] = { "sd-a", "sd-b", "sd-other" };
	const char *domains[3] = { "lab", "lab", "other" };
	const char *collide = getenv("PK_TEST_HASH_BITS");
	char size[16];
	unsigned mib = 64 / size_divisor();
	double pages = mib * 256, dup[3], miss[3], slots;
	uint64_t z, shared;

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 0") == 0, "%s",
		      d.error);
	for (int i = 0; i < 3; i++) {
		const char *extra[] = {
			"--size", size_arg(size, sizeof(size), 64, size_divisor()),
			"--seed", "9", "--content", "zero=0.1,shared=0.6",
			"--share-domain", domains[i], "--workload", "idle",
			"--duration", "3600", "--verify", "--json", NULL
		};
		guest_start(&g[i], d.sock, names[i], extra);
		wait_filled(&d, &g[i], 9, 0.1, 0.6, mib, mib);
	}
	for (int i = 0; i < 3; i++) {
		reclaim_all(&d, names[i], pages);
		dup[i] = vm_field(&d, names[i], "swap_dedup_slots");
		miss[i] = vm_field(&d, names[i], "swap_dedup_misses");
	}
	class_counts(9, names[1], 0.1, 0.6, (uint64_t)pages, &z, &shared);
	slots = status_field(&d, "swap", "slots_used");
	fprintf(stderr, "swap_slot_dedup: %s; slot references instead of "
		"writes: %.0f, %.0f (of %llu shared pages) and %.0f (other "
		"domain); candidates refused by the read-back: %.0f, %.0f, "
		"%.0f; %.0f slots in use for %.0f non-zero pages\n",
		collide ? "8-bit hashes" : "64-bit hashes", dup[0], dup[1],
		(unsigned long long)shared, dup[2], miss[0], miss[1], miss[2],
		slots, 3 * (pages - (double)z));
	/* Each guest's non-zero pages are all different from each other,
	 * so the first guest and the other domain's have nothing to share. */
	ck_assert_double_eq(dup[0], 0);
	ck_assert_double_eq(dup[2], 0);
	/* Never fewer slots than distinct contents per domain: lab's
	 * first guest plus the second's unique pages, and other's own. */
	ck_assert_double_ge(slots, 3 * (pages - (double)z) - (double)shared);
	if (collide) {
		ck_assert_msg(miss[1] > 0, "no candidate was refused with "
			      "8-bit hashes");
	} else {
		ck_assert_double_ge(dup[1], 0.98 * (double)shared);
		ck_assert_double_le(slots, 3 * (pages - (double)z) -
						   0.98 * (double)shared);
	}
	ck_assert_double_eq(status_field(&d, "swap", "slot_extra_refs"),
			    dup[1]);
	for (int i = 0; i < 3; i++)
		finish_and_verify(&g[i], pages);
	/* A VM that goes frees its slots at once, a loop over its pages. */
	WAIT_FOR(status_field(&d, "swap", "slots_used") == 0,
		 STATUS_SLACK_MS + (long)(3 * pages / 1000), 50,
		 "every swap slot freed with every guest gone (%.0f still in "
		 "use)", status_field(&d, "swap", "slots_used"));
	ck_assert_double_eq(status_field(&d, "swap", "dedup_index_entries"), 0);
	ck_assert_double_eq(status_field(&d, "swap", "slot_extra_refs"), 0);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

/* Pages of class k among [first, first + n) of o. */
static uint64_t own_class_count(const struct own_guest *o, enum gs_class k,
				uint64_t first, uint64_t n)
{
	uint64_t c = 0;

	for (uint64_t p = first; p < first + n; p++)
		c += gs_content_class(&o->model, p) == k;
	return c;
}


/* Has every zero page of both guests been reclaimed, and every shared
 * page merged into one copy for the two? */
static bool all_merged(struct pk_test_daemon *d, struct own_guest *o, int n,
		       double zero, double shared)
{
	for (int i = 0; i < n; i++)
		if (vm_pages(d, o[i].name, "zero_mib") != zero ||
		    vm_pages(d, o[i].name, "shared_mib") != shared)
			return false;
	return status_field(d, "sharing", "canonical_frames") == shared;
}

/*
 * The guest discards the first half of its RAM with madvise(advice).
 * The REMOVE event is read before madvise returns and handled as it is
 * read, so the status taken right after shows the pages removed, their
 * references dropped: the guest keeps zero_left zero and shared_left
 * shared pages, the domain domain_shared references on frames copies.
 * Then the half reads zeros, never the old bytes (those reads fault the
 * pages back as zero pages), and the other half its content.
 */
static void discard_half(struct pk_test_daemon *d, struct own_guest *o,
			 int advice, const char *how, double zero_left,
			 double shared_left, double domain_shared, double frames)
{
	uint64_t half = o->pages / 2, bad;
	double removed, zero, shared, dom, copies;

	ck_assert_msg(madvise(o->g.addr, half * PAGE, advice) == 0,
		      "madvise(%s): %s", how, strerror(errno));
	removed = vm_pages(d, o->name, "ballooned_mib");
	zero = vm_pages(d, o->name, "zero_mib");
	shared = vm_pages(d, o->name, "shared_mib");
	dom = status_field(d, "sharing", "shared_mib") * 256;
	copies = status_field(d, "sharing", "canonical_frames");
	bad = own_guest_nonzero(o, 0, half);
	ck_assert_msg(bad == 0, "%llu of the %llu pages %s discarded with %s "
		      "read non-zero bytes", (unsigned long long)bad,
		      (unsigned long long)half, o->name, how);
	bad = own_guest_mismatches(o, half, o->pages - half);
	ck_assert_msg(bad == 0, "%llu pages %s kept lost their content after "
		      "%s of the others", (unsigned long long)bad, o->name, how);
	ck_assert_msg(removed == (double)half && zero == zero_left &&
			      shared == shared_left,
		      "after %s of %llu pages %s has %.0f removed, %.0f zero "
		      "and %.0f shared pages, want %llu, %.0f and %.0f", how,
		      (unsigned long long)half, o->name, removed, zero, shared,
		      (unsigned long long)half, zero_left, shared_left);
	ck_assert_msg(dom == domain_shared && copies == frames,
		      "after %s the domain holds %.0f references on %.0f "
		      "copies, want %.0f on %.0f", how, dom, copies,
		      domain_shared, frames);
}

START_TEST(remove_merged_pages)
{
	struct pk_test_daemon d;
	struct own_guest o[2];
	unsigned mib = 16 / size_divisor() ? 16 / size_divisor() : 1;
	double zero, shared, zero_lo, shared_lo;

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 1G") == 0, "%s",
		      d.error);
	own_guest_start(&o[0], &d, "rm-a", "lab", mib, 13, 0.25, 0.75);
	own_guest_start(&o[1], &d, "rm-b", "lab", mib, 13, 0.25, 0.75);
	/* Both guests hold the same pages (one seed, no unique pages). */
	zero = (double)own_class_count(&o[0], GS_CLASS_ZERO, 0, o[0].pages);
	shared = (double)o[0].pages - zero;
	zero_lo = (double)own_class_count(&o[0], GS_CLASS_ZERO, 0,
					  o[0].pages / 2);
	shared_lo = (double)(o[0].pages / 2) - zero_lo;
	/* Read, stable and merged: the pass under way and two more. */
	WAIT_FOR(all_merged(&d, o, 2, zero, shared),
		 3 * pass_ms(2 * mib, 1024, SCAN_CPU_DEFAULT) + STATUS_SLACK_MS,
		 100, "the %.0f zero pages of each guest reclaimed and its %.0f "
		 "others merged into one copy for both (%s: %.0f zero, %.0f "
		 "shared; %.0f copies)", zero, shared, o[0].name,
		 vm_pages(&d, o[0].name, "zero_mib"),
		 vm_pages(&d, o[0].name, "shared_mib"),
		 status_field(&d, "sharing", "canonical_frames"));

	/* rm-a punches its first half out of its RAM (MADV_REMOVE): its
	 * references drop, the copies stay (rm-b holds them). */
	discard_half(&d, &o[0], MADV_REMOVE, "MADV_REMOVE", zero - zero_lo,
		     shared - shared_lo, 2 * shared - shared_lo, shared);
	/* rm-b drops its first half with MADV_DONTNEED.  Its merged and
	 * zero pages are holes of its RAM file, so nothing of them is left
	 * for the kernel to map back: removed too.  No guest references the
	 * first half's copies any more (rm-a's second half has faulted its
	 * own back): they are freed at once. */
	discard_half(&d, &o[1], MADV_DONTNEED, "MADV_DONTNEED", zero - zero_lo,
		     shared - shared_lo, shared - shared_lo, shared - shared_lo);
	fprintf(stderr, "remove_merged_pages: 2 x %u MiB; half of each "
		"discarded (%.0f merged, %.0f zero pages): read back as zeros; "
		"%.0f copies left once both second halves faulted back\n", mib,
		shared_lo, zero_lo,
		status_field(&d, "sharing", "canonical_frames"));
	ck_assert_double_eq(status_field(&d, "sharing", "canonical_frames"), 0);
	for (int i = 0; i < 2; i++)
		own_guest_stop(&o[i]);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

START_TEST(merge_racing_writers)
{
	struct pk_test_daemon d;
	struct guest g[2];
	struct own_guest o[2];
	struct race rc;
	struct race_figs f;
	const char *names[2] = { "mrw-a", "mrw-b" };
	/* Zipf(0.99) writes even the coldest of these 128K pages every
	 * few seconds (more often, the more CPU the guests get), so pages
	 * stay stable only briefly and merges race writes all the time. */
	const char *extra[] = { "--size", "512M", "--seed", "5", "--content",
				"zero=0.1,shared=0.6", "--share-domain", "lab",
				"--workload", "zipf", "--writers", "1",
				"--readers", "1", "--idle-before", "3600",
				"--duration", "3600", "--verify", "--json", NULL };
	const double mib = 2 * 512 + 2 * RACE_MIB;
	double pages = 512 * 256;
	long work_ms;

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 2G") == 0, "%s",
		      d.error);
	for (int i = 0; i < 2; i++)
		guest_start(&g[i], d.sock, names[i], extra);
	/* The racer, and a twin of the same content it merges with. */
	own_guest_start(&o[0], &d, "mrw-own", "lab", RACE_MIB, 17, 0, 1.0);
	own_guest_start(&o[1], &d, "mrw-twin", "lab", RACE_MIB, 17, 0, 1.0);
	for (int i = 0; i < 2; i++)
		wait_filled(&d, &g[i], 5, 0.1, 0.6, 512, 1024);
	for (int i = 0; i < 2; i++)
		kill(g[i].pid, SIGUSR1);
	race_start(&rc, &o[0]);
	/* Writers run throughout.  Until 2000 pages of the lab guests are
	 * merged (the pass under way, then two) and RACE_ABORTS of the
	 * racer's merges aborted by its writes. */
	work_ms = 3 * pass_ms(mib, 2048, SCAN_CPU_DEFAULT);
	if (race_ms(o[0].pages, mib, 2048) > work_ms)
		work_ms = race_ms(o[0].pages, mib, 2048);
	WAIT_FOR(race_step(&d, names, 2, o[0].name, true, &rc, &f, 2000) &&
			 f.refaults > 0,
		 work_ms + STATUS_SLACK_MS, 100, "2000 pages of %s and %s "
		 "merged (%.0f) and faulted back (%.0f), and %d of %s's merges "
		 "aborted by its writes (%.0f, of %.0f merges)", names[0],
		 names[1], f.reclaimed, f.refaults, RACE_ABORTS, o[0].name,
		 f.own_aborts, f.own_reclaimed);
	fprintf(stderr, "merge_racing_writers: %.0f pages merged, %.0f merges "
		"or reclaims aborted by guest writes, %.0f shared refaults; "
		"scan passes %.0f and %.0f, %.0f duplicate pairs found\n",
		f.reclaimed, f.aborts, f.refaults,
		vm_field(&d, names[0], "scan_passes"),
		vm_field(&d, names[1], "scan_passes"),
		vm_field(&d, names[0], "share_matches") +
			vm_field(&d, names[1], "share_matches"));
	race_check(&rc, &f, "merge_racing_writers");
	ck_assert_msg(f.reclaimed >= 2000, "only %.0f pages merged", f.reclaimed);
	ck_assert_msg(f.refaults > 0, "no merged page was faulted back");
	for (int i = 0; i < 2; i++)
		finish_and_verify(&g[i], pages);
	ck_assert_msg(own_guest_mismatches(&o[1], 0, o[1].pages) == 0,
		      "the racer's twin lost content");
	for (int i = 0; i < 2; i++)
		own_guest_stop(&o[i]);
	ck_assert(pk_test_daemon_alive(&d));
	pk_test_daemon_stop_ok(&d);
}
END_TEST

START_TEST(domains_never_merge)
{
	struct pk_test_daemon d;
	struct guest g[4];
	/* red, blue, no domain (the VM alone), and no domain but joined to
	 * red by the daemon's configuration. */
	const char *names[4] = { "dom-red", "dom-blue", "dom-alone",
				 "dom-joined" };
	const char *domain[4] = { "red", "blue", NULL, NULL };

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 1G "
					   "--share-domain dom-joined=red") == 0,
		      "%s", d.error);
	for (int i = 0; i < 4; i++) {
		const char *extra[] = { "--size", "32M", "--seed", "3",
					"--content", "zero=0.2,shared=0.6",
					"--workload", "idle", "--duration",
					"3600", "--verify", "--json",
					domain[i] ? "--share-domain" : NULL,
					domain[i], NULL };
		guest_start(&g[i], d.sock, names[i], extra);
	}
	for (int i = 0; i < 4; i++)
		wait_filled(&d, &g[i], 3, 0.2, 0.6, 32, 4 * 32);
	/* Every VM scanned in four passes after its fill, the last three
	 * of them over its filled and stable pages: plenty of chances. */
	wait_passes(&d, names, 4, 4, 4 * 32, 1024, SCAN_CPU_DEFAULT);
	for (int i = 0; i < 4; i++)
		fprintf(stderr, "domains_never_merge: %s: shared %.2f MiB, zero "
			"%.2f MiB\n", names[i], vm_field(&d, names[i], "shared_mib"),
			vm_field(&d, names[i], "zero_mib"));
	for (int i = 1; i < 3; i++) {
		ck_assert_msg(vm_field(&d, names[i], "shared_mib") == 0,
			      "%s shares pages", names[i]);
		ck_assert_msg(vm_field(&d, names[i], "share_matches") == 0,
			      "%s matched pages", names[i]);
	}
	/* Zero pages are reclaimed whatever the domain. */
	for (int i = 0; i < 4; i++)
		ck_assert_msg(vm_field(&d, names[i], "zero_mib") > 0.15 * 32,
			      "%s: zero pages not reclaimed", names[i]);
	/* red and its configured member merged with each other only. */
	ck_assert_msg(vm_field(&d, "dom-red", "shared_mib") > 0.5 * 32 &&
		      vm_field(&d, "dom-joined", "shared_mib") > 0.5 * 32,
		      "the --share-domain override did not join dom-joined to red");
	ck_assert_double_eq_tol(status_field(&d, "sharing", "canonical_frames"),
				vm_field(&d, "dom-red", "shared_mib") * 256, 64);
	for (int i = 0; i < 4; i++)
		finish_and_verify(&g[i], 32 * 256);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sharing");
	TCase *zero = tcase_create("zero");
	TCase *rate = tcase_create("rate");
	TCase *merge = tcase_create("merge");
	TCase *race = tcase_create("race");
	TCase *domains = tcase_create("domains");
	double scale = pk_test_time_scale();
	SRunner *sr;
	int failed;

	/* Each test's deadlines (at the floor rates, times the build's
	 * scale) fit in its tcase's timeout, so a slow daemon fails with
	 * the message naming what was awaited, not with a timeout. */
	tcase_set_timeout(zero, 180 * scale);
	tcase_add_test(zero, zero_pages_idle);
	tcase_add_test(zero, zero_pages_racing_writers);
	suite_add_tcase(s, zero);
	tcase_set_timeout(rate, 180 * scale);
	tcase_add_test(rate, scan_rate_follows_work);
	suite_add_tcase(s, rate);
	tcase_set_timeout(merge, 180 * scale);
	tcase_add_test(merge, identical_guests_savings);
	tcase_add_test(merge, write_after_merge);
	tcase_add_test(merge, swap_dedup);
	tcase_add_test(merge, swap_slot_dedup);
	tcase_add_test(merge, remove_merged_pages);
	suite_add_tcase(s, merge);
	tcase_set_timeout(race, 300 * scale);
	tcase_add_test(race, merge_racing_writers);
	suite_add_tcase(s, race);
	tcase_set_timeout(domains, 120 * scale);
	tcase_add_test(domains, domains_never_merge);
	suite_add_tcase(s, domains);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
