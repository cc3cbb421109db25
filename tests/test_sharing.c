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
 *    reclaimed, many are written again afterwards (refaults), a few
 *    while their reclaim runs (aborts), and every page verifies: a write
 *    racing a reclaim is never lost.
 *  - scan_rate_follows_work: while a guest fills its RAM and its pages
 *    turn stable, the scanner's rate doubles each second from --scan-rate
 *    to --scan-rate-max, the CPU share (5%) holds the reads below that
 *    rate and is never exceeded, and with nothing new left the rate
 *    comes back down to --scan-rate.
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
 *    at once; its duplicate pages take references on the canonical
 *    copies instead of swap slots, and all its pages verify.
 *  - swap_slot_dedup: no scanner, so no canonical copies; two guests of
 *    one domain with the same content are evicted one after the other,
 *    and the second one's duplicate pages take references on the first
 *    one's swap slots (read back and compared first).  A third guest of
 *    the same content in another domain writes slots of its own.  Every
 *    page verifies through the shared slots, and when the guests are
 *    gone no slot and no index entry is left.  In the collide run the
 *    first candidate of an 8-bit hash is nearly always other content:
 *    the read-back must refuse it (misses > 0) and every page verifies.
 * Tcase "race" (not in the collide run: zipf leaves a cold tail stable
 * only in a large guest, and with 8-bit hashes every page of it would be
 * compared with thousands of candidates):
 *  - merge_racing_writers: zipf writers race merges at 2 GiB/s; thousands
 *    of pages merged, every page of both guests verifies.
 * Tcase "domains":
 *  - domains_never_merge: guests with identical content in different
 *    domains, or in no domain, never share a page (zero pages are still
 *    reclaimed in each); a daemon --share-domain override joins one of
 *    them to a domain, where it does merge.
 */
#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"

#include "tools/guestsim/content.h"

#include <check.h>
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1024.0 * 1024.0)

static void finish_and_verify(struct guest *g, double pages)
{
	json_object *res;

	kill(g->pid, SIGTERM); /* ends the workload; --verify follows */
	res = guest_read_result(g);
	ck_assert_msg(res, "guest %s printed no result", g->name);
	ck_assert_double_eq(jnum(res, "mismatches"), 0);
	ck_assert_double_eq(jnum(res, "pages_verified"), pages);
	json_object_put(res);
	ck_assert_int_eq(guest_finish(g), 0);
}

START_TEST(zero_pages_idle)
{
	struct pk_test_daemon d;
	struct guest g;
	const char *extra[] = { "--size", "64M", "--content", "zero=0.5,shared=0",
				"--workload", "idle", "--duration", "3600",
				"--verify", "--json", NULL };
	double zero = 0, resident = 0;

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 400M") == 0, "%s",
		      d.error);
	guest_start(&g, d.sock, "idle", extra);
	/* Two passes over 64 MiB at 400 MiB/s take well under a second;
	 * wait until two readings a second apart agree. */
	for (int t = 0; t < 30; t++) {
		sleep_ms(1000);
		double z = vm_field(&d, "idle", "zero_mib");
		if (z > 0 && z == zero)
			break;
		zero = z;
	}
	resident = vm_field(&d, "idle", "resident_mib");
	fprintf(stderr, "zero_pages_idle: %.2f MiB zero, %.2f MiB resident\n",
		zero, resident);
	ck_assert_msg(zero >= 0.48 * 64 && zero <= 0.52 * 64,
		      "zero_mib %.2f, want 32 +- 2%%", zero);
	ck_assert_double_eq_tol(zero + resident, 64, 1e-9);
	ck_assert_double_eq(vm_field(&d, "idle", "scan_zero_reclaimed") * 4096,
			    zero * (1 << 20));
	finish_and_verify(&g, 64 * 256);
	pk_test_daemon_stop(&d);
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

START_TEST(scan_rate_follows_work)
{
	struct pk_test_daemon d;
	struct guest g;
	const char *extra[] = { "--size", "512M", "--content", "zero=0.3,shared=0",
				"--workload", "idle", "--duration", "3600",
				"--verify", "--json", NULL };
	double rate = 0, mib = 0, cpu0 = 0, cpu = 0, max_rate = 0, t0, t1;
	int t, limited = 0;

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 100M --scan-rate-max "
					   "1600M --scan-cpu 5") == 0,
		      "%s", d.error);
	scan_status(&d, &rate, &mib, &cpu0);
	ck_assert_double_eq(rate, 100);
	t0 = pk_test_now_ms() / 1e3;
	guest_start(&g, d.sock, "rate", extra);
	/* New pages (faulted in, then stable): the rate doubles each second
	 * up to the maximum, and the CPU share, 5%, holds it back. */
	for (t = 0; t < 300 && (max_rate < 1600 || !limited); t++) {
		sleep_ms(100);
		scan_status(&d, &rate, &mib, &cpu);
		max_rate = rate > max_rate ? rate : max_rate;
		limited |= rate >= 800 && mib < rate / 2;
	}
	fprintf(stderr, "scan_rate_follows_work: rate up to %.0f MiB/s; %.0f "
		"MiB/s read at %.0f MiB/s allowed\n", max_rate, mib, rate);
	ck_assert_msg(max_rate == 1600, "rate reached only %.0f MiB/s", max_rate);
	ck_assert_msg(limited, "the CPU share never held the scanner back");
	/* Nothing new once every page is reclaimed or a candidate: back to
	 * --scan-rate.  And the share held on average: 5% of the time
	 * since the guest started, plus the two periods' worth a tick may
	 * bank and the last step it may overspend (1 ms). */
	for (t = 0; t < 300 && rate > 100; t++) {
		sleep_ms(100);
		scan_status(&d, &rate, &mib, &cpu);
	}
	t1 = pk_test_now_ms() / 1e3;
	fprintf(stderr, "scan_rate_follows_work: back to %.0f MiB/s after %.1f s; "
		"scanner CPU %.3f s in %.1f s: %.2f%% of a core\n", rate,
		t / 10.0, cpu - cpu0, t1 - t0, 100 * (cpu - cpu0) / (t1 - t0));
	ck_assert_double_eq(rate, 100);
	ck_assert_msg(cpu - cpu0 <= 0.05 * (t1 - t0) + 0.002,
		      "scanner used %.3f s of CPU in %.1f s, share 5%%",
		      cpu - cpu0, t1 - t0);
	ck_assert_msg(vm_field(&d, "rate", "zero_mib") > 0.25 * 512,
		      "zero pages not reclaimed");
	finish_and_verify(&g, 512 * 256);
	pk_test_daemon_stop(&d);
}
END_TEST

START_TEST(zero_pages_racing_writers)
{
	struct pk_test_daemon d;
	struct guest g;
	const char *extra[] = { "--size", "512M", "--content", "zero=0.6,shared=0",
				"--workload", "zipf", "--writers", "2",
				"--readers", "1", "--duration", "3600",
				"--verify", "--json", NULL };
	double reclaimed = 0;

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 2G") == 0, "%s",
		      d.error);
	guest_start(&g, d.sock, "race", extra);
	/* Until the guest has filled its RAM (its verify needs a full
	 * fill), then 8 s of writers racing the scanner.  512 MiB, so that
	 * zipf's cold pages stay unwritten for the second a page must stay
	 * zero before it is reclaimed, and are then written now and then. */
	for (int t = 0; vm_field(&d, "race", "untouched_mib") > 0; t++) {
		ck_assert_msg(t < 3000, "guest did not fill its RAM in 30 s");
		sleep_ms(10);
	}
	sleep_ms(1000); /* fault-around runs ahead of the fill's writes */
	sleep_ms(8000);
	reclaimed = vm_field(&d, "race", "scan_zero_reclaimed");
	fprintf(stderr, "zero_pages_racing_writers: %.0f pages reclaimed, "
		"%.0f aborted by guest writes, %.0f refaults\n", reclaimed,
		vm_field(&d, "race", "evict_aborts"),
		vm_field(&d, "race", "faults_total"));
	ck_assert_msg(reclaimed >= 2000, "only %.0f zero pages reclaimed",
		      reclaimed);
	finish_and_verify(&g, 512 * 256);
	ck_assert(pk_test_daemon_alive(&d));
	pk_test_daemon_stop(&d);
}
END_TEST

/* A figure of the status' top-level "sharing" object. */
static double sharing_field(struct pk_test_daemon *d, const char *key)
{
	json_object *root = status_root(d), *sh;
	double f;

	ck_assert_msg(json_object_object_get_ex(root, "sharing", &sh),
		      "status has no sharing object");
	f = jnum(sh, key);
	json_object_put(root);
	return f;
}

/*
 * Bytes the guest's RAM file really holds: st_blocks of its memfd, found
 * among the guest's open files.  This is machine memory, not a counter
 * of the daemon's.
 */
static double memfd_allocated_mib(pid_t pid)
{
	char dir[64], path[PATH_MAX], target[PATH_MAX];
	struct dirent *de;
	double mib = -1;
	DIR *dp;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	dp = opendir(dir);
	ck_assert_msg(dp, "opendir %s", dir);
	while ((de = readdir(dp))) {
		struct stat st;
		ssize_t n;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strncmp(target, "/memfd:", 7) == 0 && stat(path, &st) == 0) {
			mib = (double)st.st_blocks * 512 / MIB;
			break;
		}
	}
	closedir(dp);
	ck_assert_msg(mib >= 0, "guest %d has no memfd open", (int)pid);
	return mib;
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

/* Wait until fig() reads the same, and above 0, three times 1 s apart. */
static double wait_settled(struct pk_test_daemon *d, const char *what,
			   double (*fig)(struct pk_test_daemon *), int max_s)
{
	double last = -1, v = 0;
	int same = 0;

	for (int t = 0; t < max_s; t++) {
		sleep_ms(1000);
		v = fig(d);
		same = v > 0 && v == last ? same + 1 : 0;
		if (same == 2)
			return v;
		last = v;
	}
	ck_abort_msg("%s did not settle in %d s (last %.2f)", what, max_s, v);
	return v;
}

static double fig_shared(struct pk_test_daemon *d)
{
	return sharing_field(d, "shared_mib") + sharing_field(d, "zero_mib");
}

static void wait_filled(struct pk_test_daemon *d, const char *name)
{
	for (int t = 0; vm_field(d, name, "untouched_mib") != 0; t++) {
		ck_assert_msg(t < 6000, "guest %s did not fill its RAM in 60 s",
			      name);
		sleep_ms(10);
	}
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
		wait_filled(&d, names[i]);
	wait_settled(&d, "shared + zero MiB", fig_shared, 60);
	store = sharing_field(&d, "store_mib");
	for (int i = 0; i < IDENTICAL_N; i++)
		held += memfd_allocated_mib(g[i].pid);
	measured = IDENTICAL_N * mib - held - store;
	fprintf(stderr, "identical_guests_savings: %d guests x %d MiB: RAM "
		"files hold %.2f MiB, store %.2f MiB (%.0f frames): saved "
		"%.2f MiB, expected %.2f MiB (%.2f%% off); daemon says %.2f MiB\n",
		IDENTICAL_N, mib, held, store,
		sharing_field(&d, "canonical_frames"), measured, expected,
		100 * (measured - expected) / expected,
		sharing_field(&d, "saved_mib"));
	ck_assert_msg(measured >= 0.98 * expected && measured <= 1.02 * expected,
		      "saved %.2f MiB, expected %.2f MiB +- 2%%", measured,
		      expected);
	ck_assert_double_eq_tol(sharing_field(&d, "canonical_frames"),
				(double)shared_pages, shared_pages * 0.02);
	for (int i = 0; i < IDENTICAL_N; i++)
		finish_and_verify(&g[i], (double)pages);
	ck_assert(pk_test_daemon_alive(&d));
	pk_test_daemon_stop(&d);
}
END_TEST

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
	double frames, refaults = 0, pages = 64 * 256 / size_divisor();
	int t;

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 1G") == 0, "%s",
		      d.error);
	for (int i = 0; i < 2; i++)
		guest_start(&g[i], d.sock, names[i], extra);
	for (int i = 0; i < 2; i++)
		wait_filled(&d, names[i]);
	wait_settled(&d, "shared + zero MiB", fig_shared, 60);
	frames = sharing_field(&d, "canonical_frames");
	ck_assert_msg(frames > 0.5 * pages * 0.6, "only %.0f frames", frames);
	/* Both guests now sweep, writing every page. */
	for (int i = 0; i < 2; i++)
		kill(g[i].pid, SIGUSR1);
	for (t = 0; t < 600; t++) {
		sleep_ms(100);
		if (sharing_field(&d, "canonical_frames") == 0 &&
		    sharing_field(&d, "shared_mib") == 0)
			break;
	}
	for (int i = 0; i < 2; i++)
		refaults += vm_field(&d, names[i], "share_refaults");
	fprintf(stderr, "write_after_merge: %.0f canonical frames, %.0f shared "
		"refaults; %.0f frames left after %.1f s of writes\n", frames,
		refaults, sharing_field(&d, "canonical_frames"), t / 10.0);
	ck_assert_msg(t < 600, "canonical copies not freed: %.0f frames, "
		      "%.2f MiB shared", sharing_field(&d, "canonical_frames"),
		      sharing_field(&d, "shared_mib"));
	ck_assert_double_ge(refaults, 2 * frames * 0.9);
	for (int i = 0; i < 2; i++)
		finish_and_verify(&g[i], pages);
	pk_test_daemon_stop(&d);
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
	double pages = 64 * 256 / size_divisor(), dedup, slots;
	uint64_t z, shared;
	struct pk_reclaim_reply r;
	json_object *root;

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 1G") == 0, "%s",
		      d.error);
	for (int i = 0; i < 2; i++)
		guest_start(&g[i], d.sock, names[i], extra);
	for (int i = 0; i < 2; i++)
		wait_filled(&d, names[i]);
	wait_settled(&d, "shared + zero MiB", fig_shared, 60);
	/* A third guest of the same content, evicted as soon as it has
	 * filled, before the scanner could merge it: its shared pages have
	 * canonical copies, so they take references instead of slots. */
	guest_start(&g[2], d.sock, names[2], extra);
	wait_filled(&d, names[2]);
	sleep_ms(300); /* fault-around runs ahead of the fill's writes */
	ck_assert_msg(pk_test_reclaim(d.sock, names[2], (uint64_t)pages * 4096,
				      &r) == 0, "reclaim: %s", r.reason);
	class_counts(9, names[2], 0.1, 0.6, (uint64_t)pages, &z, &shared);
	dedup = vm_field(&d, names[2], "swap_dedup");
	root = status_root(&d);
	slots = jnum(json_object_object_get(root, "swap"), "slots_used");
	json_object_put(root);
	fprintf(stderr, "swap_dedup: %.0f of %llu shared pages took a canonical "
		"reference instead of a write; %.0f pages swapped, %.0f zero; "
		"%.0f swap slots in use\n", dedup, (unsigned long long)shared,
		(double)r.pages_swapped, (double)r.pages_zero, slots);
	ck_assert_msg(dedup >= 0.5 * (double)shared, "only %.0f of %llu pages "
		      "deduplicated", dedup, (unsigned long long)shared);
	ck_assert_double_le(slots, (double)r.pages_swapped - dedup);
	for (int i = 0; i < 3; i++)
		finish_and_verify(&g[i], pages);
	pk_test_daemon_stop(&d);
}
END_TEST

static double swap_field(struct pk_test_daemon *d, const char *key)
{
	json_object *root = status_root(d);
	double v = jnum(json_object_object_get(root, "swap"), key);

	json_object_put(root);
	return v;
}

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
	double pages = 64 * 256 / size_divisor(), dup[3], miss[3], slots;
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
		wait_filled(&d, names[i]);
	}
	sleep_ms(300); /* fault-around runs ahead of the fill's writes */
	for (int i = 0; i < 3; i++) {
		reclaim_all(&d, names[i], pages);
		dup[i] = vm_field(&d, names[i], "swap_dedup_slots");
		miss[i] = vm_field(&d, names[i], "swap_dedup_misses");
	}
	class_counts(9, names[1], 0.1, 0.6, (uint64_t)pages, &z, &shared);
	slots = swap_field(&d, "slots_used");
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
	ck_assert_double_eq(swap_field(&d, "slot_extra_refs"), dup[1]);
	for (int i = 0; i < 3; i++)
		finish_and_verify(&g[i], pages);
	for (int t = 0; swap_field(&d, "slots_used") > 0; t++) {
		ck_assert_msg(t < 100, "%.0f swap slots still in use with every "
			      "guest gone", swap_field(&d, "slots_used"));
		sleep_ms(50);
	}
	ck_assert_double_eq(swap_field(&d, "dedup_index_entries"), 0);
	ck_assert_double_eq(swap_field(&d, "slot_extra_refs"), 0);
	pk_test_daemon_stop(&d);
}
END_TEST

START_TEST(merge_racing_writers)
{
	struct pk_test_daemon d;
	struct guest g[2];
	const char *names[2] = { "mrw-a", "mrw-b" };
	/* Zipf(0.99) writes even the coldest of these 128K pages every
	 * few seconds (more often, the more CPU the guests get), so pages
	 * stay stable only briefly and merges race writes all the time. */
	const char *extra[] = { "--size", "512M", "--seed", "5", "--content",
				"zero=0.1,shared=0.6", "--share-domain", "lab",
				"--workload", "zipf", "--writers", "1",
				"--readers", "1", "--duration", "3600",
				"--verify", "--json", NULL };
	double merged = 0, aborts = 0, refaults = 0;
	double pages = 512 * 256;

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 2G") == 0, "%s",
		      d.error);
	for (int i = 0; i < 2; i++)
		guest_start(&g[i], d.sock, names[i], extra);
	for (int i = 0; i < 2; i++)
		wait_filled(&d, names[i]);
	/* Writers run throughout.  Until 2000 pages are merged (60 s at
	 * most: the scanner shares two cores with four guest threads),
	 * then 3 s more of writes racing the merges. */
	for (int t = 0; t < 600 && merged < 2000; t++) {
		sleep_ms(100);
		merged = vm_field(&d, names[0], "share_merged") +
			 vm_field(&d, names[1], "share_merged");
	}
	sleep_ms(3000);
	merged = 0;
	for (int i = 0; i < 2; i++) {
		merged += vm_field(&d, names[i], "share_merged");
		aborts += vm_field(&d, names[i], "evict_aborts");
		refaults += vm_field(&d, names[i], "share_refaults");
	}
	fprintf(stderr, "merge_racing_writers: %.0f pages merged, %.0f merges "
		"or reclaims aborted by guest writes, %.0f shared refaults; "
		"scan passes %.0f and %.0f, %.0f duplicate pairs found\n",
		merged, aborts, refaults, vm_field(&d, names[0], "scan_passes"),
		vm_field(&d, names[1], "scan_passes"),
		vm_field(&d, names[0], "share_matches") +
			vm_field(&d, names[1], "share_matches"));
	ck_assert_msg(merged >= 1000, "only %.0f pages merged", merged);
	ck_assert_msg(refaults > 0, "no merged page was faulted back");
	for (int i = 0; i < 2; i++)
		finish_and_verify(&g[i], pages);
	ck_assert(pk_test_daemon_alive(&d));
	pk_test_daemon_stop(&d);
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
	double passes = 0;

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
		wait_filled(&d, names[i]);
	/* Every VM scanned in four passes or more: plenty of chances. */
	for (int t = 0; t < 60; t++) {
		passes = 1e9;
		for (int i = 0; i < 4; i++) {
			double p = vm_field(&d, names[i], "scan_passes");
			passes = p < passes ? p : passes;
		}
		if (passes >= 4)
			break;
		sleep_ms(500);
	}
	ck_assert_msg(passes >= 4, "scanner made only %.0f passes", passes);
	sleep_ms(1000);
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
	ck_assert_double_eq_tol(sharing_field(&d, "canonical_frames"),
				vm_field(&d, "dom-red", "shared_mib") * 256, 64);
	for (int i = 0; i < 4; i++)
		finish_and_verify(&g[i], 32 * 256);
	pk_test_daemon_stop(&d);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sharing");
	TCase *zero = tcase_create("zero");
	TCase *merge = tcase_create("merge");
	TCase *race = tcase_create("race");
	TCase *domains = tcase_create("domains");
	SRunner *sr;
	int failed;

	tcase_set_timeout(zero, 120);
	tcase_add_test(zero, zero_pages_idle);
	tcase_add_test(zero, zero_pages_racing_writers);
	tcase_add_test(zero, scan_rate_follows_work);
	suite_add_tcase(s, zero);
	tcase_set_timeout(merge, 180);
	tcase_add_test(merge, identical_guests_savings);
	tcase_add_test(merge, write_after_merge);
	tcase_add_test(merge, swap_dedup);
	tcase_add_test(merge, swap_slot_dedup);
	suite_add_tcase(s, merge);
	tcase_set_timeout(race, 180);
	tcase_add_test(race, merge_racing_writers);
	suite_add_tcase(s, race);
	tcase_set_timeout(domains, 120);
	tcase_add_test(domains, domains_never_merge);
	suite_add_tcase(s, domains);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
