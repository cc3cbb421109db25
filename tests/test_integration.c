/*
 * test_integration.c - a real daemon serving real lab guests.
 *
 * Everything is real: pagekeeperd and pk-guestsim run as processes, RAM is
 * memfd (or anonymous) memory, faults go through the kernel's userfaultfd.
 * Some tests make this process the guest (libpagekeeper-client), so that
 * they choose every access themselves.
 *
 *  - four_guests_touch_all: 4 guests of 256 MiB fill every page, run
 *    writers and readers, and verify every page; while they hold, the
 *    daemon's status must match exactly what they did (every page zero
 *    filled once, all resident, none untouched) and their fault counts
 *    must be what fault-around gives (see below).  Afterwards the daemon
 *    holds no VM and no extra fd.
 *  - anon_guests: the same on private anonymous RAM.
 *  - fault_around_seq: one thread touches every page in order, with
 *    --fault-around 1, 100, 256 (default) and 1024: exactly the faults
 *    the window rule of engine/fault.c gives.
 *  - fault_around_random: one thread touches pages in random order: one
 *    page per fault, exactly as the stream rule says.
 *  - multi_region: a guest of three regions (separate mappings of one
 *    memfd at scattered file offsets) faults in, is evicted whole by
 *    RECLAIM, reads every page back, is rewritten and evicted again; every
 *    byte of every page of every region is verified each time, and the
 *    kernel's page cache (mincore) shows what the daemon says it punched.
 *  - sigkill_mid_run: guests killed with SIGKILL while faults are in
 *    flight leave no VM and no fd behind, and the daemon keeps serving.
 *  - daemon_restart: the daemon is SIGKILLed while a guest is filling its
 *    RAM; the guest's faulting threads block in the kernel (never read
 *    zeros), a new daemon on the same socket takes the guest back and
 *    the guest finishes and verifies.
 *  - removes_shared, removes_anon: pages the guest discards are tracked
 *    through UFFD_EVENT_REMOVE and come back as zeros; every byte of
 *    every page is checked (removed pages read zeros, kept ones their
 *    pattern).
 *  - wp_during_remove: writes that meet evictions while another thread
 *    discards are never left asleep (see the test).
 *  - cold_victims: --victims cold chooses pages the guest has not
 *    written (>= 90% of them; the control, random, must stay below).
 *
 * Fault-around (engine/fault.c), the rule the counts are derived from: a
 * fault on a zero-fill page either continues one of PK_FAULT_STREAMS
 * streams (it lands on the stream's next page, or the page before), which
 * doubles the stream's window up to --fault-around W, or takes over the
 * least recently used stream with a window of 1.  The fault then resolves
 * `window` pages, cut at the region's end and at the first page already
 * resident.  So one sequential sweep of P pages faults with windows
 * 1, 2, 4, ... < W, then W, W, ...: with k = ceil(log2 W),
 *     ceil(P / W) <= faults = k + ceil((P - (2^k - 1)) / W) <= ceil(P / W) + k
 * and a random toucher gets one page per fault unless it happens to touch
 * a stream's next page.  fa_touch() below replays the rule, so each test
 * asserts the exact count, and the bound.  Guests whose fill runs on two
 * threads interleave their streams; for them the count is not fixed, but
 * it is bounded: no set of faults covers more pages than one stream does
 * (so faults >= the sequential count), and every fault that found its
 * page already there (spurious: another thread's window got it first
 * while this one waited) is charged to that other thread's fault, at
 * most one per other thread, so real <= faults <= threads * real, where
 * real = pages_zero_filled - pages_fault_around, the faults that filled.
 *
 * Waiting: every wait is for a condition, with a deadline derived from
 * the work (MiB swept, pages, the daemon's 1 s tick) times
 * pk_test_time_scale(); a timeout says what it waited for.
 */
#include "engine/client/pagekeeper-client.h"
#include "engine/engine.h"
#include "engine/vm.h"
#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUEST_MIB 256
#define PAGE 4096
#define MIB_PAGES 256
#define MIB_OF(pages) ((double)(pages) * PAGE / (1024.0 * 1024.0))

/*
 * What the deadlines are derived from (each scaled by
 * pk_test_time_scale()).  Measured on the 2-core machine while other
 * tests loaded it: four 256 MiB guests fill and verify 2 GiB in 7 s
 * (~300 MiB/s together), one 1 GiB guest ~140 MiB/s across a daemon
 * restart, and a process starts and attaches in under 50 ms.  A budget
 * counts every MiB a test sweeps, all guests together, at 25 MiB/s.
 */
#define SWEEP_MS_PER_MIB 40   /* fill or verify: 25 MiB/s in all */
#define GUEST_START_MS 2000   /* exec, map, attach */
#define DETACH_MS 2000	      /* the daemon frees a VM that is gone */
#define TICK_MS 1000	      /* the daemon's statistics and re-check tick */
#define FAULT_MS_PER_PAGE 1   /* one fault round trip: ~30 us */

static json_object *status_vm(json_object *root, const char *name)
{
	json_object *vms;
	ck_assert(json_object_object_get_ex(root, "vms", &vms));
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		json_object *vm = json_object_array_get_idx(vms, i), *v;
		if (json_object_object_get_ex(vm, "name", &v) &&
		    strcmp(json_object_get_string(v), name) == 0)
			return vm;
	}
	ck_abort_msg("VM %s missing from status", name);
	return NULL;
}

/* Has key of vm reached want (*v: its value)?  Asserts the daemon runs. */
static int vm_field_reached(struct pk_test_daemon *d, const char *vm,
			    const char *key, double want, int exact,
			    const char *what, double *v)
{
	*v = vm_field(d, vm, key);
	if (exact ? *v == want : *v >= want)
		return 1;
	ck_assert_msg(pk_test_daemon_alive(d), "%s: %s", what, d->error);
	return 0;
}

/*
 * Poll one status figure of a VM until it reaches want (at least want, or
 * exactly want with exact), by work_ms (scaled).  Returns the last value.
 */
static double wait_vm_field(struct pk_test_daemon *d, const char *vm,
			    const char *key, double want, int exact,
			    long work_ms, const char *what)
{
	double v;

	WAIT_FOR(vm_field_reached(d, vm, key, want, exact, what, &v), work_ms,
		 10, "%s: %s of %s %s%g (it is %g)", what, key, vm,
		 exact ? "" : ">= ", want, v);
	return v;
}

/* The daemon holds no VM and no fd beyond baseline_fds, by DETACH_MS. */
static void expect_all_freed(struct pk_test_daemon *d, int baseline_fds)
{
	int n = pk_test_wait_vm_count(d->sock, 0, scaled_ms(DETACH_MS));

	ck_assert_msg(n == 0, "%d VMs still registered %d ms after their "
		      "guests went", n, scaled_ms(DETACH_MS));
	n = pk_test_daemon_wait_fd_count(d, baseline_fds, scaled_ms(DETACH_MS));
	ck_assert_msg(n == baseline_fds, "the daemon holds %d fds %d ms after "
		      "its VMs went, %d before", n, scaled_ms(DETACH_MS),
		      baseline_fds);
	ck_assert_msg(pk_test_daemon_alive(d), "%s", d->error);
}

/* ---- the fault-around rule, replayed (see the top of the file) ---- */

struct fa_model {
	unsigned max;		/* --fault-around */
	uint64_t n_pages;
	const uint64_t *ends;	/* page index after each region, ascending */
	unsigned n_regions;
	unsigned char *resident;
	struct {
		uint64_t next, used;
		uint32_t window;
	} s[PK_FAULT_STREAMS];
	uint64_t faults, around;
};

static void fa_init(struct fa_model *m, unsigned max, const uint64_t *ends,
		    unsigned n_regions)
{
	memset(m, 0, sizeof(*m));
	m->max = max;
	m->ends = ends;
	m->n_regions = n_regions;
	m->n_pages = ends[n_regions - 1];
	m->resident = calloc(m->n_pages, 1);
	ck_assert_ptr_nonnull(m->resident);
}

/* The guest touches page idx: a fault if it is not resident yet. */
static void fa_touch(struct fa_model *m, uint64_t idx)
{
	uint64_t end = 0, n;
	unsigned lru = 0, i;
	int found = -1;

	if (m->resident[idx])
		return;
	m->faults++;
	for (i = 0; i < PK_FAULT_STREAMS; i++) {
		if (m->s[i].window && idx + 1 >= m->s[i].next &&
		    idx <= m->s[i].next) {
			found = (int)i;
			m->s[i].window = m->s[i].window * 2 > m->max
						 ? m->max
						 : m->s[i].window * 2;
			m->s[i].used = m->faults;
			break;
		}
		if (m->s[i].used < m->s[lru].used)
			lru = i;
	}
	if (found < 0) {
		found = (int)lru;
		m->s[lru].window = 1;
		m->s[lru].used = m->faults;
	}
	for (i = 0; i < m->n_regions && !end; i++)
		if (idx < m->ends[i])
			end = m->ends[i];
	n = m->s[found].window;
	if (n > end - idx)
		n = end - idx;
	for (uint64_t k = 1; k < n; k++)
		if (m->resident[idx + k]) {
			n = k;
			break;
		}
	memset(m->resident + idx, 1, n);
	m->s[found].next = idx + n;
	m->around += n - 1;
}

/* Faults of one in-order sweep of pages in one region. */
static uint64_t fa_seq_faults(uint64_t pages, unsigned max)
{
	struct fa_model m;
	uint64_t f;

	fa_init(&m, max, &pages, 1);
	for (uint64_t p = 0; p < pages; p++)
		fa_touch(&m, p);
	f = m.faults;
	free(m.resident);
	return f;
}

/* The closed-form bound: ceil(P/W) <= faults <= ceil(P/W) + ceil(log2 W). */
static void assert_seq_bound(double faults, uint64_t pages, unsigned max)
{
	uint64_t lo = (pages + max - 1) / max;
	unsigned k = 0;

	while ((1u << k) < max)
		k++;
	ck_assert_msg(faults >= (double)lo && faults <= (double)(lo + k),
		      "%.0f faults for a sweep of %llu pages with windows up "
		      "to %u: want %llu..%llu", faults,
		      (unsigned long long)pages, max, (unsigned long long)lo,
		      (unsigned long long)(lo + k));
}

/* ---- guests run by pk-guestsim ---- */

/*
 * n guests of GUEST_MIB fill all RAM, run writers, verify, and hold; the
 * status must then match exactly what they did.  Even guests fill on one
 * thread (--writers 1 --readers 0: pk-guestsim sweeps with as many threads
 * as the workload has), so their fill is one sequential sweep with an
 * exact fault count; odd guests fill on two threads and run two writers
 * and a reader.
 */
static void run_guests_and_check(int n, int anon)
{
	const uint64_t pages = GUEST_MIB * MIB_PAGES;
	const uint64_t seq_faults = fa_seq_faults(pages, PK_FAULT_AROUND_DEFAULT);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	/* pk-guestsim's sweep threads: writers + readers, within the CPUs. */
	const double par_threads = cpus < 3 ? (double)cpus : 3.0;
	struct pk_test_daemon d;
	struct guest g[4];
	json_object *result[4], *root;
	int baseline_fds;
	/* All guests at once: fill + verify of every guest's RAM, the
	 * workload's second. */
	long work_ms = GUEST_START_MS + 1000 +
		       (long)n * GUEST_MIB * 2 * SWEEP_MS_PER_MIB;

	/* The sharing scanner off: this test counts every zero fill, and
	 * the scanner would take back zero pages (test_sharing.c covers it). */
	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 0") == 0, "%s",
		      d.error);
	baseline_fds = pk_test_daemon_settled_fd_count(&d);
	ck_assert_int_gt(baseline_fds, 0);

	for (int i = 0; i < n; i++) {
		char name[16];
		const char *writers = i % 2 == 0 ? "1" : "2";
		const char *readers = i % 2 == 0 ? "0" : "1";
		const char *extra[] = { "--size", "256M", "--seed", "7",
					"--workload", "random", "--writers", writers,
					"--readers", readers, "--duration", "1",
					"--verify", "--hold", "--json",
					anon ? "--anon" : NULL, NULL };
		snprintf(name, sizeof(name), "g%d", i);
		guest_start(&g[i], d.sock, name, extra);
	}
	for (int i = 0; i < n; i++)
		guest_expect(&g[i], "HOLDING", &result[i],
			     pk_test_deadline_ms(work_ms),
			     "fill, 1 s of workload and verify of 256 MiB, "
			     "next to the other guests");

	root = status_root(&d);
	ck_assert_int_eq(json_object_array_length(
				 json_object_object_get(root, "vms")), n);
	for (int i = 0; i < n; i++) {
		json_object *vm = status_vm(root, g[i].name);
		double faults = jnum(vm, "faults_total");
		double real = jnum(vm, "pages_zero_filled") -
			      jnum(vm, "pages_fault_around");

		ck_assert_msg(result[i], "guest %s printed no JSON result",
			      g[i].name);
		ck_assert_double_eq(jnum(result[i], "mismatches"), 0);
		ck_assert_double_eq(jnum(result[i], "pages_verified"), pages);
		ck_assert_double_gt(jnum(result[i], "write_ops"), 0);
		ck_assert_double_eq(jnum(vm, "pid"), g[i].pid);
		ck_assert_double_eq(jnum(vm, "configured_mib"), GUEST_MIB);
		/* The guest touched every page, so every page was zero
		 * filled exactly once and is resident now. */
		ck_assert_double_eq(jnum(vm, "resident_mib"), GUEST_MIB);
		ck_assert_double_eq(jnum(vm, "untouched_mib"), 0);
		ck_assert_double_eq(jnum(vm, "pages_zero_filled"), pages);
		ck_assert_double_eq(jnum(vm, "zero_mib"), 0);
		ck_assert_double_eq(jnum(vm, "swapped_mib"), 0);
		if (i % 2 == 0) {
			/* One sweep: windows 1, 2, ... 256, then 256. */
			ck_assert_msg(faults == (double)seq_faults,
				      "guest %s filled in one sequential sweep "
				      "with %.0f faults; fault-around gives %llu",
				      g[i].name, faults,
				      (unsigned long long)seq_faults);
			ck_assert_double_eq(real, faults);
			assert_seq_bound(faults, pages, PK_FAULT_AROUND_DEFAULT);
		} else {
			ck_assert_msg(real >= (double)seq_faults && faults >= real &&
				      faults <= par_threads * real,
				      "guest %s (fill on %.0f threads): %.0f "
				      "faults, %.0f of them filling; want "
				      "%llu <= filling <= faults <= %.0f x filling",
				      g[i].name, par_threads, faults, real,
				      (unsigned long long)seq_faults, par_threads);
		}
		fprintf(stderr, "%s: %.0f faults (%.0f filling) for %llu pages\n",
			g[i].name, faults, real, (unsigned long long)pages);
		json_object_put(result[i]);
	}
	json_object_put(root);

	for (int i = 0; i < n; i++)
		ck_assert_msg(guest_finish(&g[i], DETACH_MS) == 0,
			      "guest %s failed verification", g[i].name);
	expect_all_freed(&d, baseline_fds);
	pk_test_daemon_stop_ok(&d);
}

START_TEST(four_guests_touch_all)
{
	run_guests_and_check(4, 0);
}
END_TEST

START_TEST(anon_guests)
{
	run_guests_and_check(2, 1);
}
END_TEST

/* ---- this process as the guest ---- */

/* Page content: 64-bit words from the page's tag; tags are unique, so no
 * two written pages are alike (nothing merges, nothing dedups). */
static void fill_page(unsigned char *p, uint64_t tag)
{
	uint64_t w = tag * 0x9e3779b97f4a7c15ULL + 1;

	for (size_t i = 0; i < PAGE; i += 8) {
		w ^= w << 13;
		w ^= w >> 7;
		w ^= w << 17;
		memcpy(p + i, &w, 8);
	}
}

/* First byte of the page that differs from its pattern (or from zeros
 * when tag is 0), or -1. */
static long check_page(const unsigned char *p, uint64_t tag)
{
	static const unsigned char zero[PAGE];
	unsigned char want[PAGE];

	if (tag)
		fill_page(want, tag);
	if (memcmp(p, tag ? want : zero, PAGE) == 0)
		return -1;
	for (long b = 0; b < PAGE; b++)
		if (p[b] != (tag ? want : zero)[b])
			return b;
	return -1;
}

/* Attach this process's RAM (memfd, or anon with fd -1) as vm. */
static struct pk_client *attach(struct pk_test_daemon *d, const char *vm,
				int fd, const struct pk_client_region *r,
				unsigned n)
{
	struct pk_client_opts o = { .socket_path = d->sock, .vm_name = vm,
				    .ram_fd = fd, .regions = r,
				    .n_regions = n };
	struct pk_client *c = NULL;
	char err[512] = "";

	ck_assert_msg(pk_client_attach(&o, &c, err, sizeof(err)) == 0,
		      "attach %s: %s", vm, err);
	return c;
}

/* A fresh memfd guest of pages, attached as vm. */
static struct pk_client *one_region_guest(struct pk_test_daemon *d,
					  const char *vm, uint64_t pages,
					  struct pk_test_guest *g)
{
	int rc = pk_test_guest_create(g, pages * PAGE, pages * PAGE);
	struct pk_client_region r;

	ck_assert_msg(rc == 0, "memfd guest: %s", strerror(-rc));
	r = (struct pk_client_region){ g->addr, g->map_len, 0 };
	return attach(d, vm, g->memfd, &r, 1);
}

/*
 * One thread touches every page in order (a write of its pattern), with
 * fault-around windows up to max; then the status must show exactly the
 * faults and fault-around pages the rule gives, and every page holds its
 * pattern.
 */
static void seq_sweep(unsigned max)
{
	const uint64_t pages = 8192; /* 32 MiB */
	struct pk_test_daemon d;
	struct pk_test_guest g;
	struct pk_client *c;
	char args[64];
	uint64_t want = fa_seq_faults(pages, max);
	unsigned char *ram;
	double faults;

	if (max == PK_FAULT_AROUND_DEFAULT)
		snprintf(args, sizeof(args), "--scan-rate 0");
	else
		snprintf(args, sizeof(args), "--scan-rate 0 --fault-around %u",
			 max);
	ck_assert_msg(pk_test_daemon_start(&d, args) == 0, "%s", d.error);
	c = one_region_guest(&d, "seq", pages, &g);
	ram = g.addr;
	for (uint64_t p = 0; p < pages; p++)
		fill_page(ram + p * PAGE, p + 1);

	faults = vm_field(&d, "seq", "faults_total");
	fprintf(stderr, "fault-around %u: %.0f faults for %llu pages\n", max,
		faults, (unsigned long long)pages);
	ck_assert_msg(faults == (double)want,
		      "--fault-around %u: %.0f faults for a sweep of %llu pages; "
		      "the window rule gives %llu", max, faults,
		      (unsigned long long)pages, (unsigned long long)want);
	assert_seq_bound(faults, pages, max);
	ck_assert_double_eq(vm_field(&d, "seq", "pages_zero_filled"), pages);
	ck_assert_double_eq(vm_field(&d, "seq", "pages_fault_around"),
			    (double)(pages - want));
	ck_assert_double_eq(vm_field(&d, "seq", "resident_mib"), MIB_OF(pages));
	for (uint64_t p = 0; p < pages; p++) {
		long b = check_page(ram + p * PAGE, p + 1);
		ck_assert_msg(b < 0, "page %llu byte %ld lost its pattern",
			      (unsigned long long)p, b);
	}
	pk_client_detach(c);
	pk_test_guest_destroy(&g);
	ck_assert_int_eq(pk_test_wait_vm_count(d.sock, 0, scaled_ms(DETACH_MS)),
			 0);
	pk_test_daemon_stop_ok(&d);
}

START_TEST(fault_around_seq)
{
	seq_sweep(1);
	seq_sweep(100);
	seq_sweep(PK_FAULT_AROUND_DEFAULT);
	seq_sweep(PK_FAULT_AROUND_LIMIT);
}
END_TEST

/* xorshift64*: the shuffles are reproducible from their seed. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

/*
 * Random first touches on one thread.  Part 1: every even page, in random
 * order: no touch can continue a stream (a stream's next page is odd), so
 * each fault resolves exactly one page.  Part 2: every odd page, then a
 * second guest touching all its pages in random order: each touch that
 * lands on a stream's next page gets a window of 2 or more, and the
 * replayed rule says exactly how many faults that makes.
 */
START_TEST(fault_around_random)
{
	const uint64_t pages = 8192;
	uint64_t *order = malloc(pages * sizeof(*order)), seed = 0x5eed;
	struct pk_test_daemon d;
	struct pk_test_guest g, h;
	struct pk_client *c, *c2;
	struct fa_model m;
	unsigned char *ram;
	uint64_t half = pages / 2;

	ck_assert_ptr_nonnull(order);
	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 0") == 0, "%s",
		      d.error);
	c = one_region_guest(&d, "rand", pages, &g);
	ram = g.addr;

	for (uint64_t i = 0; i < half; i++)
		order[i] = 2 * i;
	for (uint64_t i = half - 1; i > 0; i--) {
		uint64_t j = rnd(&seed) % (i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (uint64_t i = 0; i < half; i++)
		fill_page(ram + order[i] * PAGE, order[i] + 1);
	ck_assert_msg(vm_field(&d, "rand", "faults_total") == (double)half,
		      "%.0f faults for %llu random touches of pages no two "
		      "adjacent: want one fault per page",
		      vm_field(&d, "rand", "faults_total"),
		      (unsigned long long)half);
	ck_assert_double_eq(vm_field(&d, "rand", "pages_fault_around"), 0);
	ck_assert_double_eq(vm_field(&d, "rand", "pages_zero_filled"), half);
	ck_assert_double_eq(vm_field(&d, "rand", "untouched_mib"), MIB_OF(half));
	/* The odd pages: in order now, each the page after a resident one. */
	for (uint64_t p = 1; p < pages; p += 2)
		fill_page(ram + p * PAGE, p + 1);
	ck_assert_double_eq(vm_field(&d, "rand", "faults_total"), pages);
	ck_assert_double_eq(vm_field(&d, "rand", "pages_zero_filled"), pages);

	/* A second guest, every page in random order. */
	c2 = one_region_guest(&d, "rand2", pages, &h);
	for (uint64_t i = 0; i < pages; i++)
		order[i] = i;
	for (uint64_t i = pages - 1; i > 0; i--) {
		uint64_t j = rnd(&seed) % (i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	fa_init(&m, PK_FAULT_AROUND_DEFAULT, &pages, 1);
	for (uint64_t i = 0; i < pages; i++) {
		unsigned char *p = (unsigned char *)h.addr + order[i] * PAGE;
		/* A page fault-around resolved is already there: its write
		 * is no fault, as the model says. */
		fa_touch(&m, order[i]);
		fill_page(p, order[i] + 1);
	}
	fprintf(stderr, "random touch of %llu pages: %llu faults, %llu pages "
		"resolved around\n", (unsigned long long)pages,
		(unsigned long long)m.faults, (unsigned long long)m.around);
	ck_assert_msg(vm_field(&d, "rand2", "faults_total") == (double)m.faults,
		      "%.0f faults for %llu pages in random order; the rule "
		      "gives %llu", vm_field(&d, "rand2", "faults_total"),
		      (unsigned long long)pages, (unsigned long long)m.faults);
	ck_assert_double_eq(vm_field(&d, "rand2", "pages_fault_around"),
			    (double)m.around);
	ck_assert_uint_eq(m.faults + m.around, pages);
	ck_assert_double_eq(vm_field(&d, "rand2", "pages_zero_filled"), pages);
	/* Random touches are mostly one page per fault. */
	ck_assert_uint_ge(m.faults, pages - pages / 64);

	for (uint64_t p = 0; p < pages; p++) {
		long b = check_page(ram + p * PAGE, p + 1);
		ck_assert_msg(b < 0, "rand page %llu byte %ld", (unsigned long long)p, b);
		b = check_page((unsigned char *)h.addr + p * PAGE, p + 1);
		ck_assert_msg(b < 0, "rand2 page %llu byte %ld",
			      (unsigned long long)p, b);
	}
	free(m.resident);
	free(order);
	pk_client_detach(c);
	pk_client_detach(c2);
	pk_test_guest_destroy(&g);
	pk_test_guest_destroy(&h);
	ck_assert_int_eq(pk_test_wait_vm_count(d.sock, 0, scaled_ms(DETACH_MS)),
			 0);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

/* ---- a guest of several regions ---- */

#define MR_REGIONS 3
/*
 * Region i: mr_pages[i] pages of the memfd from file page mr_file[i],
 * mapped at page mr_at[i] of an MR_SPAN_PAGES reservation.  Neither file
 * ranges nor addresses are contiguous or in registration order: the holes
 * between the mappings stay PROT_NONE, as the holes between a real
 * guest's RAM blocks, so a window or read-ahead that ran past a region's
 * end would hit no guest page, or the wrong one.
 */
static const uint64_t mr_pages[MR_REGIONS] = { 2048, 1024, 512 };
static const uint64_t mr_file[MR_REGIONS] = { 0, 4096, 2560 };
static const uint64_t mr_at[MR_REGIONS] = { 4096, 0, 2048 };
#define MR_FILE_PAGES 5120
#define MR_SPAN_PAGES 8192

struct mr_guest {
	int fd;
	unsigned char *span; /* the reservation the regions are mapped in */
	unsigned char *addr[MR_REGIONS];
	uint64_t version[MR_REGIONS]; /* 0: never written */
	unsigned by_addr[MR_REGIONS]; /* regions in address order, which
				       * is the daemon's page order */
};

/* Tag of page p of region r: 0 (zero page) for every 8th page. */
static uint64_t mr_tag(const struct mr_guest *mg, unsigned r, uint64_t p)
{
	if (p % 8 == 3)
		return 0;
	return (mg->version[r] << 40) | ((uint64_t)r << 32) | (p + 1);
}

/* Write (or, for zero pages, read) every page of region r, in order. */
static void mr_write(struct mr_guest *mg, unsigned r)
{
	for (uint64_t p = 0; p < mr_pages[r]; p++) {
		uint64_t tag = mr_tag(mg, r, p);
		if (tag)
			fill_page(mg->addr[r] + p * PAGE, tag);
		else
			(void)*(volatile unsigned char *)(mg->addr[r] + p * PAGE);
	}
}

/* Check every byte, region by region in address order (so a read-ahead
 * stream reaches each region's end with the next region still swapped),
 * or in the reverse order. */
static void mr_verify(const struct mr_guest *mg, int reverse, const char *when)
{
	for (unsigned i = 0; i < MR_REGIONS; i++) {
		unsigned r = mg->by_addr[reverse ? MR_REGIONS - 1 - i : i];
		for (uint64_t p = 0; p < mr_pages[r]; p++) {
			long b = check_page(mg->addr[r] + p * PAGE,
					    mr_tag(mg, r, p));
			ck_assert_msg(b < 0, "%s: region %u page %llu byte %ld "
				      "is wrong", when, r,
				      (unsigned long long)p, b);
		}
	}
}

/* Pages of region r in the page cache (mincore): punched ones are not. */
static uint64_t mr_in_core(const struct mr_guest *mg, unsigned r)
{
	unsigned char vec[2048];
	uint64_t n = 0;

	ck_assert_uint_le(mr_pages[r], sizeof(vec));
	ck_assert_int_eq(mincore(mg->addr[r], mr_pages[r] * PAGE, vec), 0);
	for (uint64_t p = 0; p < mr_pages[r]; p++)
		n += vec[p] & 1;
	return n;
}

static uint64_t mr_zero_pages(void)
{
	uint64_t n = 0;
	for (unsigned r = 0; r < MR_REGIONS; r++)
		n += (mr_pages[r] + 4) / 8; /* p % 8 == 3 */
	return n;
}

/*
 * Evict every page with RECLAIM, check what the daemon and the kernel
 * say, read every page back and check again.
 */
static void mr_reclaim_all(struct pk_test_daemon *d, struct mr_guest *mg,
			   uint64_t total, int reverse, const char *round)
{
	struct pk_reclaim_reply rr;
	uint64_t zero = mr_zero_pages(), data = total - zero;
	double swapins0 = vm_field(d, "multi", "swapins");
	double filled0 = vm_field(d, "multi", "pages_zero_filled");
	char what[128];

	ck_assert_int_eq(pk_test_reclaim(d->sock, "multi", total * PAGE, &rr), 0);
	fprintf(stderr, "%s: reclaim of %llu pages: %llu swapped, %llu zero, "
		"%llu aborted in %.1f ms\n", round, (unsigned long long)total,
		(unsigned long long)rr.pages_swapped,
		(unsigned long long)rr.pages_zero,
		(unsigned long long)rr.pages_aborted, rr.elapsed_us / 1000.0);
	ck_assert_uint_eq(rr.pages_swapped, data);
	ck_assert_uint_eq(rr.pages_zero, zero);
	ck_assert_uint_eq(rr.pages_aborted, 0);
	ck_assert_double_eq(vm_field(d, "multi", "resident_mib"), 0);
	ck_assert_double_eq(vm_field(d, "multi", "swapped_mib"), MIB_OF(data));
	ck_assert_double_eq(vm_field(d, "multi", "zero_mib"), MIB_OF(zero));
	/* The kernel agrees: no page of any region is in the page cache. */
	for (unsigned r = 0; r < MR_REGIONS; r++)
		ck_assert_msg(mr_in_core(mg, r) == 0,
			      "%s: region %u keeps %llu pages in memory after "
			      "the daemon evicted them all", round, r,
			      (unsigned long long)mr_in_core(mg, r));

	snprintf(what, sizeof(what), "%s: read back", round);
	mr_verify(mg, reverse, what);
	ck_assert_double_eq(vm_field(d, "multi", "swapins") - swapins0, data);
	ck_assert_double_eq(vm_field(d, "multi", "pages_zero_filled") - filled0,
			    zero);
	ck_assert_double_eq(vm_field(d, "multi", "resident_mib"), MIB_OF(total));
	ck_assert_double_eq(vm_field(d, "multi", "swapped_mib"), 0);
	for (unsigned r = 0; r < MR_REGIONS; r++)
		ck_assert_uint_eq(mr_in_core(mg, r), mr_pages[r]);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

START_TEST(multi_region)
{
	struct pk_test_daemon d;
	struct pk_client_region reg[MR_REGIONS];
	struct mr_guest mg = { .fd = -1 };
	struct pk_client *c;
	uint64_t ends[MR_REGIONS], first[MR_REGIONS], total = 0;
	struct fa_model m;
	int baseline_fds;

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 0 --swap-size 64M")
		      == 0, "%s", d.error);
	baseline_fds = pk_test_daemon_settled_fd_count(&d);
	mg.fd = memfd_create("pk-test-multi", MFD_CLOEXEC);
	ck_assert_int_ge(mg.fd, 0);
	ck_assert_int_eq(ftruncate(mg.fd, MR_FILE_PAGES * PAGE), 0);
	mg.span = mmap(NULL, MR_SPAN_PAGES * PAGE, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ck_assert(mg.span != MAP_FAILED);
	for (unsigned r = 0; r < MR_REGIONS; r++) {
		mg.addr[r] = mmap(mg.span + mr_at[r] * PAGE, mr_pages[r] * PAGE,
				  PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
				  mg.fd, (off_t)(mr_file[r] * PAGE));
		ck_assert(mg.addr[r] == mg.span + mr_at[r] * PAGE);
		reg[r] = (struct pk_client_region){ mg.addr[r],
						    mr_pages[r] * PAGE,
						    mr_file[r] * PAGE };
		total += mr_pages[r];
	}
	c = attach(&d, "multi", mg.fd, reg, MR_REGIONS);
	ck_assert_double_eq(vm_field(&d, "multi", "configured_mib"),
			    MIB_OF(total));
	ck_assert_double_eq(vm_field(&d, "multi", "untouched_mib"),
			    MIB_OF(total));

	/* Fault in, region after region.  The daemon numbers pages across
	 * regions in address order (engine/vm.c sorts them): a stream runs
	 * on into the region numbered next, and no window crosses a
	 * region's end. */
	for (unsigned r = 0; r < MR_REGIONS; r++) {
		unsigned rank = 0;
		first[r] = 0;
		for (unsigned q = 0; q < MR_REGIONS; q++)
			if (mg.addr[q] < mg.addr[r]) {
				first[r] += mr_pages[q];
				rank++;
			}
		mg.by_addr[rank] = r;
		ends[r] = 0;
	}
	for (unsigned r = 0; r < MR_REGIONS; r++) /* ascending ends */
		for (unsigned q = 0; q < MR_REGIONS; q++)
			if (mg.addr[q] <= mg.addr[r])
				ends[r] += mr_pages[q];
	qsort(ends, MR_REGIONS, sizeof(ends[0]), cmp_u64);
	fa_init(&m, PK_FAULT_AROUND_DEFAULT, ends, MR_REGIONS);
	for (unsigned r = 0; r < MR_REGIONS; r++) {
		mr_write(&mg, r);
		for (uint64_t p = 0; p < mr_pages[r]; p++)
			fa_touch(&m, first[r] + p);
	}
	fprintf(stderr, "multi_region: fault-in of %llu pages in %u regions: "
		"%llu faults\n", (unsigned long long)total, MR_REGIONS,
		(unsigned long long)m.faults);
	ck_assert_double_eq(vm_field(&d, "multi", "faults_total"), m.faults);
	ck_assert_double_eq(vm_field(&d, "multi", "pages_fault_around"), m.around);
	ck_assert_double_eq(vm_field(&d, "multi", "pages_zero_filled"), total);
	ck_assert_double_eq(vm_field(&d, "multi", "resident_mib"), MIB_OF(total));
	free(m.resident);
	mr_verify(&mg, 0, "after the fault-in");

	mr_reclaim_all(&d, &mg, total, 0, "round 1");
	/* Rewrite region 1 with new data, evict everything again. */
	mg.version[1]++;
	mr_write(&mg, 1);
	mr_verify(&mg, 0, "after the rewrite");
	mr_reclaim_all(&d, &mg, total, 1, "round 2");

	/* Every page is back in the guest: no swap slot stays in use. */
	ck_assert_double_eq(status_field(&d, "swap", "slots_used"), 0);

	pk_client_detach(c);
	munmap(mg.span, MR_SPAN_PAGES * PAGE);
	close(mg.fd);
	expect_all_freed(&d, baseline_fds);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

/* ---- killed guests, a killed daemon ---- */

START_TEST(sigkill_mid_run)
{
	static const char *const kinds[] = { "random", "seq", "zipf" };
	struct pk_test_daemon d;
	int baseline_fds;

	/* The sharing scanner off: this test counts every zero fill, and
	 * the scanner would take back zero pages (test_sharing.c covers it). */
	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 0") == 0, "%s",
		      d.error);
	baseline_fds = pk_test_daemon_settled_fd_count(&d);
	for (int round = 0; round < 3; round++) {
		struct guest g;
		char name[16];
		const char *extra[] = { "--size", "1G", "--workload",
					kinds[round], "--writers", "2",
					"--duration", "30", NULL };

		snprintf(name, sizeof(name), "victim%d", round);
		guest_start(&g, d.sock, name, extra);
		/* Kill once faults are flowing: some are in flight.  1 GiB
		 * takes seconds to fill; 50 faults take milliseconds. */
		wait_vm_field(&d, name, "faults_total", 50, 0,
			      GUEST_START_MS + 50 * FAULT_MS_PER_PAGE,
			      "the guest's first 50 faults");
		ck_assert_int_eq(kill(g.pid, SIGKILL), 0);
		ck_assert_int_eq(guest_finish(&g, DETACH_MS), -SIGKILL);
		expect_all_freed(&d, baseline_fds);
	}
	pk_test_daemon_stop_ok(&d);
}
END_TEST

#define RM_PAGES 1024
#define RM_REMOVED 64	       /* pages 0..63: discarded for good */
#define RM_UNMAPPED 512	       /* pages 512..543 (memfd): unmapped only */
#define RM_N_UNMAPPED 32
#define RM_MARK 100	       /* the byte a write-first touch writes */

/*
 * The guest discards pages: the daemon sees UFFD_EVENT_REMOVE, counts the
 * pages as ballooned and serves zeros on the next touch.  On memfd RAM,
 * MADV_DONTNEED keeps the data in the file: the daemon's re-check must
 * put those pages back to resident, with their data untouched.  This
 * process is the guest, attached through the client library.  Every byte
 * of every page is checked: removed pages read zeros, kept pages hold
 * their pattern.
 */
static void run_removes(int anon)
{
	struct pk_test_daemon d;
	struct pk_client *c;
	int fd = anon ? -1 : memfd_create("pk-test-remove", MFD_CLOEXEC);
	unsigned char *ram;
	long t0, t1;
	double ballooned;

	/* No scanner: it would take back the zero pages this test counts. */
	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 0") == 0, "%s",
		      d.error);
	if (!anon)
		ck_assert_int_eq(ftruncate(fd, RM_PAGES * PAGE), 0);
	ram = mmap(NULL, RM_PAGES * PAGE, PROT_READ | PROT_WRITE,
		   anon ? MAP_PRIVATE | MAP_ANONYMOUS : MAP_SHARED, fd, 0);
	ck_assert(ram != MAP_FAILED);
	struct pk_client_region r = { ram, RM_PAGES * PAGE, 0 };
	c = attach(&d, "rm", fd, &r, 1);

	for (int i = 0; i < RM_PAGES; i++)
		fill_page(ram + (size_t)i * PAGE, (uint64_t)i + 1);
	ck_assert_double_eq(vm_field(&d, "rm", "resident_mib"), MIB_OF(RM_PAGES));
	ck_assert_double_eq(vm_field(&d, "rm", "ballooned_mib"), 0);

	/* Discard 64 pages for good (the balloon's way).  REMOVE events
	 * block the guest until the daemon has read them, and the daemon
	 * handles what it read before it serves the next request. */
	ck_assert_int_eq(madvise(ram, RM_REMOVED * PAGE,
				 anon ? MADV_DONTNEED : MADV_REMOVE), 0);
	ck_assert_double_eq(vm_field(&d, "rm", "ballooned_mib"),
			    MIB_OF(RM_REMOVED));
	ck_assert_double_eq(vm_field(&d, "rm", "remove_events"), 1);
	if (!anon) {
		/* Unmap 32 more without freeing them: data stays in the file.
		 * They count as ballooned until the re-check, which runs on
		 * the first tick at least PK_RECHECK_DELAY_MS later. */
		t0 = pk_test_now_ms();
		ck_assert_int_eq(madvise(ram + RM_UNMAPPED * PAGE,
					 RM_N_UNMAPPED * PAGE, MADV_DONTNEED), 0);
		ballooned = vm_field(&d, "rm", "ballooned_mib");
		t1 = pk_test_now_ms();
		if (t1 - t0 < PK_RECHECK_DELAY_MS)
			ck_assert_double_eq(ballooned,
					    MIB_OF(RM_REMOVED + RM_N_UNMAPPED));
		else /* slow machine: the re-check may have run already */
			ck_assert(ballooned == MIB_OF(RM_REMOVED + RM_N_UNMAPPED) ||
				  ballooned == MIB_OF(RM_REMOVED));
		wait_vm_field(&d, "rm", "ballooned_mib", MIB_OF(RM_REMOVED), 1,
			      PK_RECHECK_DELAY_MS + 2 * TICK_MS,
			      "the re-check that finds the unmapped pages' "
			      "data in the file");
	}
	ck_assert_double_eq(vm_field(&d, "rm", "resident_mib"),
			    MIB_OF(RM_PAGES - RM_REMOVED));

	/* Every byte: the kept pages (the unmapped ones too) hold their
	 * pattern, the discarded pages come back as zeros, filled by the
	 * daemon. */
	for (int i = RM_REMOVED; i < RM_PAGES; i++) {
		long b = check_page(ram + (size_t)i * PAGE, (uint64_t)i + 1);
		ck_assert_msg(b < 0, "kept page %d: byte %ld lost its pattern",
			      i, b);
	}
	for (int i = 0; i < RM_REMOVED; i++) {
		unsigned char *p = ram + (size_t)i * PAGE;
		long b;
		/* Even pages are first touched by a write of one byte (on
		 * anonymous RAM that fault copies from the daemon's zero
		 * buffer), odd ones by a read: all else must be zero. */
		if (i % 2 == 0) {
			p[RM_MARK] = 0x5a;
			ck_assert_int_eq(p[RM_MARK], 0x5a);
			p[RM_MARK] = 0;
		}
		b = check_page(p, 0);
		ck_assert_msg(b < 0, "removed page %d (first touched by a %s): "
			      "byte %ld is not zero", i,
			      i % 2 == 0 ? "write" : "read", b);
	}
	ck_assert_double_eq(vm_field(&d, "rm", "pages_zero_filled"),
			    RM_PAGES + RM_REMOVED);
	ck_assert_double_eq(vm_field(&d, "rm", "ballooned_mib"), 0);
	ck_assert_double_eq(vm_field(&d, "rm", "resident_mib"), MIB_OF(RM_PAGES));

	pk_client_detach(c);
	munmap(ram, RM_PAGES * PAGE);
	if (fd >= 0)
		close(fd);
	ck_assert_int_eq(pk_test_wait_vm_count(d.sock, 0, scaled_ms(DETACH_MS)),
			 0);
	pk_test_daemon_stop_ok(&d);
}

START_TEST(removes_shared)
{
	run_removes(0);
}
END_TEST

START_TEST(removes_anon)
{
	run_removes(1);
}
END_TEST

/*
 * wp_during_remove: a guest write that meets a page under eviction is a
 * write-protect fault, which the daemon answers by unprotecting the page
 * (engine/fault.c).  While another thread's discard is in flight (a
 * REMOVE event the daemon has not finished taking) the kernel refuses
 * that unprotect with EAGAIN and wakes nobody (FACTS.md): the daemon must
 * retry it, or the writer sleeps for good.  Here one thread discards page
 * 0 in a loop (each MADV_REMOVE waits for the daemon to read its event,
 * so one is nearly always in flight), another writes a word into every
 * other page, round after round, and RECLAIMs evict the guest meanwhile.
 * Checked: the writer never stops for WPR_STUCK_MS (one page write, and
 * nothing else it could wait for), the daemon did meet refused unprotects
 * (wp_faults_deferred > 0, so the race was run), and every page holds its
 * last write and the rest of its pattern.
 */
#define WPR_PAGES 2048		/* 8 MiB */
#define WPR_RECLAIMS 40		/* whole-guest evictions while both run */
#define WPR_STUCK_MS 10000	/* a page write that long: never answered */

struct wpr {
	unsigned char *ram;
	atomic_int stop;
	atomic_uint_fast64_t written;	/* page writes done */
	atomic_uint_fast64_t discards;
	uint64_t last[WPR_PAGES];	/* the word last written, by page */
};

static uint64_t wpr_word(uint64_t page, uint64_t round)
{
	return round << 32 | page;
}

static void *wpr_discarder(void *arg)
{
	struct wpr *w = arg;

	while (!atomic_load(&w->stop)) {
		if (madvise(w->ram, PAGE, MADV_REMOVE) == 0)
			atomic_fetch_add(&w->discards, 1);
		w->ram[0] = 1; /* back in, to be discarded again */
	}
	return NULL;
}

static void *wpr_writer(void *arg)
{
	struct wpr *w = arg;

	for (uint64_t round = 1; !atomic_load(&w->stop); round++)
		for (uint64_t p = 1; p < WPR_PAGES; p++) {
			uint64_t v = wpr_word(p, round);
			memcpy(w->ram + p * PAGE, &v, sizeof(v));
			w->last[p] = v;
			atomic_fetch_add(&w->written, 1);
		}
	return NULL;
}

START_TEST(wp_during_remove)
{
	static struct wpr w; /* 16 KiB of last words: not on the stack */
	struct pk_test_daemon d;
	struct pk_test_guest g;
	struct pk_client *c;
	pthread_t disc, wr;
	uint64_t evicted = 0, aborted = 0;
	double deferred;

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 0 --swap-size 64M") == 0,
		      "%s", d.error);
	c = one_region_guest(&d, "wpr", WPR_PAGES, &g);
	memset(&w, 0, sizeof(w));
	w.ram = g.addr;
	for (uint64_t p = 0; p < WPR_PAGES; p++)
		fill_page(w.ram + p * PAGE, p + 1);
	ck_assert_int_eq(pthread_create(&disc, NULL, wpr_discarder, &w), 0);
	ck_assert_int_eq(pthread_create(&wr, NULL, wpr_writer, &w), 0);

	for (int i = 0; i < WPR_RECLAIMS; i++) {
		struct pk_reclaim_reply r;
		uint64_t before = atomic_load(&w.written);
		long since = pk_test_now_ms(), stuck = scaled_ms(WPR_STUCK_MS);

		ck_assert_int_eq(pk_test_reclaim(d.sock, "wpr",
						 (uint64_t)WPR_PAGES * PAGE, &r), 0);
		evicted += r.pages_swapped;
		aborted += r.pages_aborted;
		/* The writer must move on: it only waits for faults. */
		while (atomic_load(&w.written) == before) {
			ck_assert_msg(pk_test_now_ms() - since < stuck,
				      "the writer made no page write in %ld ms "
				      "after %" PRIu64 " writes (%" PRIu64
				      " discards): a write-protect fault was "
				      "never answered (wp_faults_deferred %.0f)",
				      stuck, before, atomic_load(&w.discards),
				      vm_field(&d, "wpr", "wp_faults_deferred"));
			usleep(1000);
		}
	}
	deferred = vm_field(&d, "wpr", "wp_faults_deferred");
	atomic_store(&w.stop, 1);
	ck_assert_int_eq(pthread_join(wr, NULL), 0);
	ck_assert_int_eq(pthread_join(disc, NULL), 0);
	fprintf(stderr, "wp_during_remove: %d reclaims, %" PRIu64 " pages "
		"evicted, %" PRIu64 " aborted by writes, %" PRIu64 " writes, %"
		PRIu64 " discards, %.0f unprotects refused and retried\n",
		WPR_RECLAIMS, evicted, aborted, atomic_load(&w.written),
		atomic_load(&w.discards), deferred);
	ck_assert_msg(deferred > 0, "no unprotect was refused in %d reclaims "
		      "(%" PRIu64 " aborted by writes, %" PRIu64 " discards): "
		      "the race was not run", WPR_RECLAIMS, aborted,
		      atomic_load(&w.discards));
	for (uint64_t p = 1; p < WPR_PAGES; p++) {
		unsigned char want[PAGE];
		uint64_t v;

		fill_page(want, p + 1);
		memcpy(&v, w.ram + p * PAGE, sizeof(v));
		ck_assert_msg(v == w.last[p], "page %" PRIu64 ": word 0x%"
			      PRIx64 ", last written 0x%" PRIx64, p, v, w.last[p]);
		ck_assert_msg(memcmp(w.ram + p * PAGE + 8, want + 8, PAGE - 8) == 0,
			      "page %" PRIu64 ": its pattern changed", p);
	}
	pk_client_detach(c);
	pk_test_guest_destroy(&g);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

/* ---- cold_victims (--victims cold, engine/track.h) ---- */

/*
 * cold_victims: with --victims cold, eviction takes the pages the guest
 * has not written lately.  A guest of CV_PAGES unique pages, half at the
 * start of a CV_SPAN-page mapping and half at its end (a tracking
 * period's sweep, in steps of PK_TRACK_STEP_PAGES, must reach both); a writer
 * thread writes one word into each hot page round after round: half the
 * pages, in blocks of CV_BLOCK alternating with cold ones, so that each
 * run of the random policy (64 pages) takes about as many of either.
 * Once the daemon has begun two tracking periods (and the writer has
 * gone round once since), a RECLAIM of CV_RECLAIM pages runs while the
 * writer goes on.  Which pages the policy chose: the cold ones
 * nobody touches show as holes in the page cache (mincore); every other
 * choice was a hot page, swapped (the writer faults it back in at once)
 * or aborted because the writer wrote it during its eviction (a cold page
 * never is), so choices = swapped + aborted.  At least CV_COLD_MIN of the
 * choices must be cold; with --victims random, the control, fewer (about
 * half: a busy machine slows eviction until the writer aborts every hot
 * choice, so evicted pages alone would look all cold under random too).
 * Then the writer stops and every byte of every page is verified.
 */
#define CV_PAGES 2048		/* 8 MiB filled */
#define CV_SPAN (3 * PK_TRACK_STEP_PAGES - 1024) /* the mapping, in pages */
#define CV_HOT (CV_PAGES / 2)	/* pages written */
#define CV_BLOCK 8		/* hot and cold blocks alternate */
#define CV_RECLAIM 512		/* 2 MiB */
#define CV_COLD_MIN 0.90

struct cv {
	unsigned char *ram;
	atomic_int stop;
	atomic_uint_fast64_t rounds;	/* rounds over the hot pages done */
	uint64_t last[CV_PAGES];	/* the word last written, by page */
};

static int cv_hot(uint64_t k)
{
	return (k / CV_BLOCK) % 2 == 0;
}

/* The filled page k's place in the mapping: half at its start, half at
 * its end, so that a period's sweep (track.h) takes three steps to get
 * from the one to the other. */
static uint64_t cv_page(uint64_t k)
{
	return k < CV_PAGES / 2 ? k : CV_SPAN - CV_PAGES + k;
}

static void *cv_writer(void *arg)
{
	struct cv *w = arg;

	for (uint64_t round = 1; !atomic_load(&w->stop); round++) {
		for (uint64_t k = 0; k < CV_PAGES; k++) {
			if (!cv_hot(k))
				continue;
			uint64_t v = wpr_word(k, round);
			memcpy(w->ram + cv_page(k) * PAGE, &v, sizeof(v));
			w->last[k] = v;
		}
		atomic_fetch_add(&w->rounds, 1);
	}
	return NULL;
}

/* Wait for the writer to finish a round it had not begun at the call. */
static void cv_one_round(struct cv *w, const char *what)
{
	uint64_t r0 = atomic_load(&w->rounds);

	WAIT_FOR(atomic_load(&w->rounds) >= r0 + 2,
		 2 * CV_HOT * FAULT_MS_PER_PAGE + TICK_MS, 1,
		 "a full round of the writer over %d hot pages (%s)", CV_HOT,
		 what);
}

/* One daemon with --victims victims: the cold fraction of its choices. */
static double cv_run(const char *victims, uint64_t *chosen_out)
{
	static struct cv w; /* 16 KiB of last words: not on the stack */
	struct pk_test_daemon d;
	struct pk_test_guest g;
	struct pk_client *c;
	struct pk_reclaim_reply r;
	static unsigned char vec[CV_SPAN];
	char args[256], got[32];
	uint64_t cold_out = 0, chosen;
	pthread_t wr;
	double periods = 0, wfaults;

	snprintf(args, sizeof(args), "--policy manual --victims %s "
		 "--scan-rate 0 --swap-size 64M", victims);
	ck_assert_msg(pk_test_daemon_start(&d, args) == 0, "%s", d.error);
	status_str(&d, "victims", got, sizeof(got));
	ck_assert_str_eq(got, victims);
	c = one_region_guest(&d, "cold", CV_SPAN, &g);
	memset(&w, 0, sizeof(w));
	w.ram = g.addr;
	for (uint64_t k = 0; k < CV_PAGES; k++)
		fill_page(w.ram + cv_page(k) * PAGE, k + 1);
	ck_assert_int_eq(pthread_create(&wr, NULL, cv_writer, &w), 0);
	if (!strcmp(victims, "cold")) {
		/* The first period begins at the next tick, the second a
		 * period later. */
		periods = wait_vm_field(&d, "cold", "track_periods", 2, 0,
					2 * PK_TRACK_PERIOD_MS + 2 * TICK_MS,
					"two tracking periods");
	}
	cv_one_round(&w, victims);
	ck_assert_int_eq(pk_test_reclaim(d.sock, "cold",
					 (uint64_t)CV_RECLAIM * PAGE, &r), 0);
	/* Nobody touches the cold pages: their holes are their evictions. */
	ck_assert_int_eq(mincore(w.ram, (size_t)CV_SPAN * PAGE, vec), 0);
	for (unsigned k = 0; k < CV_PAGES; k++)
		cold_out += !cv_hot(k) && !(vec[cv_page(k)] & 1);
	wfaults = vm_field(&d, "cold", "track_write_faults");
	atomic_store(&w.stop, 1);
	ck_assert_int_eq(pthread_join(wr, NULL), 0);
	chosen = r.pages_swapped + r.pages_aborted;
	fprintf(stderr, "cold_victims: --victims %s: %" PRIu64 " of %" PRIu64
		" pages chosen were cold (%.1f%%); %" PRIu64 " evicted, %"
		PRIu64 " aborted by writes; %.0f tracking periods, %.0f "
		"tracked write faults\n", victims, cold_out, chosen,
		chosen ? 100.0 * (double)cold_out / (double)chosen : 0.0,
		(uint64_t)r.pages_swapped, (uint64_t)r.pages_aborted, periods,
		wfaults);
	ck_assert_msg(cold_out <= r.pages_swapped, "%" PRIu64 " cold pages "
		      "out of the page cache, only %" PRIu64 " evicted", cold_out,
		      (uint64_t)r.pages_swapped);
	ck_assert_msg(chosen >= CV_RECLAIM / 2, "--victims %s: only %" PRIu64
		      " of %d pages chosen (%" PRIu64 " evicted, %" PRIu64
		      " aborted)", victims, chosen, CV_RECLAIM,
		      (uint64_t)r.pages_swapped, (uint64_t)r.pages_aborted);
	if (!strcmp(victims, "cold"))
		ck_assert_msg(wfaults >= CV_HOT, "only %.0f tracked write "
			      "faults with %d pages written every round", wfaults,
			      CV_HOT);
	else
		ck_assert_msg(wfaults == 0, "%.0f tracked write faults with "
			      "--victims random", wfaults);

	/* Every byte back: hot pages their last word, all their pattern. */
	for (uint64_t k = 0; k < CV_PAGES; k++) {
		const unsigned char *pg = w.ram + cv_page(k) * PAGE;
		unsigned char want[PAGE];
		uint64_t v;

		fill_page(want, k + 1);
		if (cv_hot(k)) {
			memcpy(&v, pg, sizeof(v));
			ck_assert_msg(v == w.last[k], "page %" PRIu64 ": word 0x%"
				      PRIx64 ", last written 0x%" PRIx64,
				      cv_page(k), v, w.last[k]);
		}
		ck_assert_msg(memcmp(pg + 8, want + 8, PAGE - 8) == 0 &&
			      (cv_hot(k) || memcmp(pg, want, 8) == 0),
			      "page %" PRIu64 ": its pattern changed", cv_page(k));
	}
	pk_client_detach(c);
	pk_test_guest_destroy(&g);
	pk_test_daemon_stop_ok(&d);
	*chosen_out = chosen;
	return (double)cold_out / (double)chosen;
}

START_TEST(cold_victims)
{
	uint64_t n_cold, n_random;
	double cold = cv_run("cold", &n_cold);
	double random = cv_run("random", &n_random);

	fprintf(stderr, "cold_victims: cold fraction of the pages chosen: %.3f "
		"with --victims cold (%" PRIu64 " pages), %.3f with --victims "
		"random (%" PRIu64 " pages)\n", cold, n_cold, random, n_random);
	ck_assert_msg(cold >= CV_COLD_MIN, "--victims cold chose only %.1f%% "
		      "cold pages (of %" PRIu64 "; want >= %.0f%%)",
		      100 * cold, n_cold, 100 * CV_COLD_MIN);
	ck_assert_msg(random < CV_COLD_MIN, "the control, --victims random, "
		      "chose %.1f%% cold pages: the test cannot tell cold "
		      "from random", 100 * random);
}
END_TEST

/* Threads of pid sleeping in the kernel's userfaultfd wait. */
static int threads_in_userfault(pid_t pid)
{
	char path[64], wchan[64];
	struct dirent *de;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir)
		return 0;
	while ((de = readdir(dir))) {
		char p[384];
		FILE *f;
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s/wchan", path, de->d_name);
		f = fopen(p, "r");
		if (f && fgets(wchan, sizeof(wchan), f) &&
		    strcmp(wchan, "handle_userfault") == 0)
			n++;
		if (f)
			fclose(f);
	}
	closedir(dir);
	return n;
}

/* How long the guest must stay blocked with no daemon to show it. */
#define BLOCKED_HOLD_MS 300

START_TEST(daemon_restart)
{
	struct pk_test_daemon a, b;
	struct guest g;
	json_object *result;
	char args[512];
	const char *extra[] = { "--size", "1G", "--workload", "random",
				"--writers", "2", "--duration", "1",
				"--verify", "--hold", "--json", NULL };
	long deadline;

	ck_assert_msg(pk_test_daemon_start(&a, NULL) == 0, "%s", a.error);
	guest_start(&g, a.sock, "survivor", extra);
	wait_vm_field(&a, "survivor", "faults_total", 20, 0,
		      GUEST_START_MS + 20 * FAULT_MS_PER_PAGE,
		      "the guest's first 20 faults");

	/* The daemon dies mid-fill. */
	ck_assert_msg(pk_test_daemon_kill(&a, SIGKILL) == 0, "%s", a.error);
	/* With no handler the guest's faults must block, not read zeros:
	 * its sweep threads fault within a window's worth of pages. */
	WAIT_FOR(threads_in_userfault(g.pid) > 0, 1000, 5,
		 "a guest thread waiting in handle_userfault after the "
		 "daemon died");
	/* ... and stay blocked: the guest makes no progress without us. */
	deadline = pk_test_now_ms() + BLOCKED_HOLD_MS;
	while (pk_test_now_ms() < deadline) {
		ck_assert_msg(threads_in_userfault(g.pid) > 0,
			      "a guest thread left handle_userfault with no "
			      "daemon to resolve its fault");
		sleep_ms(10);
	}

	/* A new daemon on the same socket takes the guest back. */
	snprintf(args, sizeof(args), "--socket %s --state-dir %s", a.sock,
		 a.state_dir);
	ck_assert_msg(pk_test_daemon_start(&b, args) == 0, "%s", b.error);
	/* The client reconnects within 100 ms; then fill and verify 1 GiB. */
	guest_expect(&g, "HOLDING", &result,
		     pk_test_deadline_ms(1000 + 1000 +
					 2 * 1024 * SWEEP_MS_PER_MIB),
		     "reconnect, fill, 1 s of workload and verify of 1 GiB");
	ck_assert_msg(result, "guest printed no result");
	ck_assert_double_eq(jnum(result, "mismatches"), 0);
	ck_assert_double_eq(jnum(result, "pages_verified"), 1024 * 256);
	json_object_put(result);
	ck_assert_int_eq(pk_test_vm_count(a.sock), 1);
	ck_assert_int_eq(guest_finish(&g, DETACH_MS), 0);
	ck_assert_int_eq(pk_test_wait_vm_count(a.sock, 0, scaled_ms(DETACH_MS)),
			 0);
	pk_test_daemon_stop_ok(&b);
	pk_test_daemon_stop_ok(&a); /* only cleans up: it was killed */
}
END_TEST

/* One case per test, named after it: CK_RUN_CASE=name runs one. */
static void add(Suite *s, const char *name, const TTest *t)
{
	TCase *tc = tcase_create(name);

	/* The longest case, four_guests_touch_all, has a budget of
	 * 2 + 1 + 4 x 256 MiB x 2 x 40 ms = 85 s; Check's timeout is a
	 * backstop above every case's own deadlines. */
	tcase_set_timeout(tc, 150 * pk_test_time_scale());
	tcase_add_test(tc, t);
	suite_add_tcase(s, tc);
}

int main(void)
{
	Suite *s = suite_create("integration");
	SRunner *sr;
	int failed;

	add(s, "four_guests_touch_all", four_guests_touch_all);
	add(s, "anon_guests", anon_guests);
	add(s, "fault_around_seq", fault_around_seq);
	add(s, "fault_around_random", fault_around_random);
	add(s, "multi_region", multi_region);
	add(s, "sigkill_mid_run", sigkill_mid_run);
	add(s, "daemon_restart", daemon_restart);
	add(s, "removes_shared", removes_shared);
	add(s, "removes_anon", removes_anon);
	add(s, "wp_during_remove", wp_during_remove);
	add(s, "cold_victims", cold_victims); /* --victims cold */
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
