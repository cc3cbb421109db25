/*
 * test_restart.c - a daemon that stops, crashes or is started twice, and
 * the guests it serves: the durable state of engine/state.h, end to end.
 *
 * What (each case a Check tcase, CK_RUN_CASE=name runs one):
 *  - sigterm_keeps_state: two lab guests of one sharing domain, with
 *    pages merged (shared content, fast scanner) and pages swapped
 *    (RECLAIM).  SIGTERM: the run dir still holds both VM records and the
 *    domain's canonical copies, the state dir the swap file.  A new daemon
 *    replays them, the guests reconnect by themselves and are adopted
 *    with exactly the swapped and merged pages, slots and copies they
 *    had (same swap file inode); then they run and verify every page.
 *  - grace_period: after a SIGKILL, a guest that does not reconnect (it is
 *    SIGSTOPped) waits in status `waiting_vms` with its pid, MiB and
 *    `grace_left_s`, not among the VMs; its pages are freed no sooner
 *    than --restart-grace after the restart, with its log line and its
 *    swap slots scrubbed, while its record stays (`lost_mib`); woken,
 *    it comes back and dies of SIGBUS on a lost page, never reading
 *    zeros, and its record goes with its process.
 *  - exited_while_down: a guest killed while no daemon runs: the new
 *    daemon frees its record at replay (log line, no waiting VM, record
 *    gone, slots scrubbed).
 *  - identity: while a previous daemon's VM waits, another process that
 *    registers its name (this process, with a memfd or anonymous RAM, and
 *    a second pk-guestsim) is refused with EEXIST and a reason naming the
 *    waiting VM and its pid; the waiting VM keeps its pages, and its own
 *    guest, let go on, is adopted and verifies.
 *  - lock: a second pagekeeperd on the first one's --state-dir, or on its
 *    --run-dir, exits 1 saying the directory is in use by another
 *    pagekeeperd (its pid); the swap file, its checksum record and the VM
 *    record are the same files (inodes), and the first daemon's guest
 *    still verifies every page, swapped ones read back from that file.
 *  - discard_at_kill: the daemon dies right after reading a guest's
 *    REMOVE event, before recording it (pagekeeperd --test-kill-on-remove:
 *    a window of a few instructions no outside kill can hit on purpose;
 *    the kernel has already let the guest's MADV_REMOVE go on).  The
 *    discarded pages were swapped; the new daemon applies the event from
 *    the record's inbox (its log line), they are ballooned_mib, not
 *    swapped_mib, and the guest's verify reads them as zeros, the rest
 *    from the swap file.
 *  - swap_file_lost: the swap file deleted while no daemon runs.  The new
 *    daemon says so, and the swapped pages come back poisoned, never as
 *    zeros: poisoned_mib is exactly what was swapped, swapped_mib 0.  This
 *    process's own guest (memfd, client library) reads every page: each
 *    page the eviction punched (mincore) raises SIGBUS at its address
 *    (BUS_ADRERR here; BUS_MCEERR_AR on older kernels), each other page
 *    holds its bytes.  pk-guestsim has no
 *    SIGBUS handler: it is killed by SIGBUS on its first swapped page, so
 *    it never gets to report zeros as a mismatch (exit 1) nor a pass.
 *
 * How: real daemons (daemon_fixture.h: pk_test_daemon_kill() and
 * pk_test_daemon_restart() on the same directories), real pk-guestsim
 * guests held after their fill by --idle-before until SIGUSR1 (so nothing
 * of their RAM moves while the test looks), SIGSTOP for a guest that must
 * not reconnect.  Guests of unique content (zero=0, shared=0) make every
 * evicted page a swap write, so counts are exact.
 *
 * Waiting: every wait polls a condition with a deadline derived from its
 * work (MiB filled or verified, pages refaulted, scanner passes, the 1 s
 * tick, the client's 100 ms reconnect) times pk_test_time_scale(); the
 * grace period itself is scaled too.  A timeout names what it waited for.
 *
 * Why: a restart must cost the guests a pause, never a byte (README,
 * "Restarts lose nothing"); these are the promises of engine/state.h.
 */
#include "engine/client/pagekeeper-client.h"
#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"
#include "tools/guestsim/content.h"

#define XXH_INLINE_ALL /* the record header's sum, header-only */
#include <xxhash.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096
#define MIB_PAGES 256

/*
 * Floors the deadlines are made of (each scaled by pk_test_time_scale()):
 * a guest fills or verifies at 25 MiB/s at worst here while others run
 * (test_integration.c); faults on swapped or merged pages are served at
 * 2000/s at worst (test_sharing.c); a process starts and attaches in
 * under 50 ms; the client library retries every 100 ms; the daemon's
 * tick (grace periods, the swap scrub) is 1 s; the scanner reads at
 * least 400 MiB per CPU second and a VM's passes are >= 1 s apart.
 */
#define SWEEP_MS_PER_MIB 40
#define REFAULTS_PER_S 2000.0
#define GUEST_START_MS 2000
#define RECONNECT_MS 1000
#define TICK_MS 1000
#define DETACH_MS 2000
#define STATUS_SLACK_MS 2000
#define SCAN_MIB_PER_S 200.0 /* 400 MiB per CPU second at the 50% share */
#define DAEMON_EXIT_MS 3000  /* a daemon that refuses to start */

/* Daemons: no scanner unless merging is the point; a small swap file. */
#define ARGS_SWAP "--swap-size 64M --scan-rate 0"
#define ARGS_MERGE "--swap-size 64M --scan-rate 1G"

/* ---- small helpers ---- */

/* RUN/<prefix><hex of name><suffix>, the names engine/state.c gives. */
static void run_file(const struct pk_test_daemon *d, const char *prefix,
		     const char *name, const char *suffix, char *out,
		     size_t len)
{
	size_t n = (size_t)snprintf(out, len, "%s/%s", d->run_dir, prefix);

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		n += (size_t)snprintf(out + n, len - n, "%02x", *p);
	snprintf(out + n, len - n, "%s", suffix);
}

static void record_path(const struct pk_test_daemon *d, const char *vm,
			char *out, size_t len)
{
	run_file(d, "vm-", vm, ".pk", out, len);
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static ino_t inode_of(const char *path)
{
	struct stat st;
	ck_assert_msg(stat(path, &st) == 0, "stat %s: %s", path,
		      strerror(errno));
	return st.st_ino;
}

static void swap_path(const struct pk_test_daemon *d, char *out, size_t len)
{
	snprintf(out, len, "%s/swap.pk", d->state_dir);
}

/* The daemon's log (all its runs: restarts append) has a line with text. */
__attribute__((format(printf, 2, 3)))
static void expect_log(const struct pk_test_daemon *d, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	ck_assert_msg(file_has(d->log, text), "the daemon log %s has no line "
		      "with \"%s\"", d->log, text);
}

/* Field key of waiting VM name in status `waiting_vms`; -1 if not there.
 * *n (if given): how many VMs wait. */
static double waiting_field(struct pk_test_daemon *d, const char *name,
			    const char *key, int *n)
{
	json_object *root = status_root(d), *w, *v;
	double f = -1;

	ck_assert_msg(json_object_object_get_ex(root, "waiting_vms", &w) &&
			      json_object_is_type(w, json_type_array),
		      "status has no waiting_vms array");
	if (n)
		*n = (int)json_object_array_length(w);
	for (size_t i = 0; i < json_object_array_length(w); i++) {
		json_object *vm = json_object_array_get_idx(w, i);
		if (json_object_object_get_ex(vm, "name", &v) &&
		    strcmp(json_object_get_string(v), name) == 0)
			f = jnum(vm, key);
	}
	json_object_put(root);
	return f;
}

static int n_waiting(struct pk_test_daemon *d)
{
	int n;
	waiting_field(d, "", "name", &n);
	return n;
}

/* SIGSTOP the guest: its client library cannot reconnect any more. */
static void guest_stop(struct guest *g)
{
	pid_stop(g->pid, g->name);
}

/* Guests of content no other page has: each evicted page is a write. */
static const char *const unique_guest[] = {
	"--size", "16M", "--content", "zero=0,shared=0",
	"--idle-before", "3600", "--workload", "random", "--writers", "1",
	"--readers", "1", "--duration", "1", "--verify", "--json", NULL };
#define UNIQUE_MIB 16

/* Start a guest and wait for the end of its fill (IDLE). */
static void guest_up(struct guest *g, struct pk_test_daemon *d,
		     const char *name, const char *const extra[], double mib,
		     double filling_mib)
{
	guest_start(g, d->sock, name, extra);
	guest_expect(g, "IDLE", NULL,
		     pk_test_deadline_ms(GUEST_START_MS +
					 (long)(filling_mib * SWEEP_MS_PER_MIB)),
		     "attach and fill");
	ck_assert_double_eq(vm_field(d, name, "configured_mib"), mib);
}

/*
 * guest_up() for a guest that is to die of SIGBUS on a lost page: in the
 * ASan build pk-guestsim's own SIGBUS handler would report and exit 1 (a
 * mismatch) or abort, so SIGBUS is left to the kernel.
 */
static void guest_up_bus(struct guest *g, struct pk_test_daemon *d,
			 const char *name, const char *const extra[],
			 double mib, double filling_mib)
{
	char asan[512], *old_asan = getenv("ASAN_OPTIONS");

	snprintf(asan, sizeof(asan), "%s%shandle_sigbus=0",
		 old_asan ? old_asan : "", old_asan && *old_asan ? ":" : "");
	old_asan = old_asan ? strdup(old_asan) : NULL;
	ck_assert_int_eq(setenv("ASAN_OPTIONS", asan, 1), 0);
	guest_up(g, d, name, extra, mib, filling_mib);
	if (old_asan)
		setenv("ASAN_OPTIONS", old_asan, 1);
	else
		unsetenv("ASAN_OPTIONS");
	free(old_asan);
}

/* RECLAIM mib of a guest of unique content: every page a swap write. */
static void reclaim_unique(struct pk_test_daemon *d, const char *name,
			   unsigned mib)
{
	struct pk_reclaim_reply r;

	ck_assert_msg(pk_test_reclaim(d->sock, name, (uint64_t)mib << 20, &r)
		      == 0, "reclaim %s: %s", name, r.reason);
	ck_assert_uint_eq(r.pages_swapped, (uint64_t)mib * MIB_PAGES);
	ck_assert_uint_eq(r.pages_zero, 0);
	ck_assert_uint_eq(r.pages_aborted, 0);
	ck_assert_double_eq(vm_field(d, name, "swapped_mib"), mib);
}

/*
 * SIGUSR1: the guest runs its 1 s workload, verifies every page and
 * exits; refault_pages of its pages are swapped or merged (faults).
 */
static void run_and_verify(struct guest *g, double mib, double refault_pages)
{
	json_object *res;
	long work = 1000 + (long)(mib * SWEEP_MS_PER_MIB) +
		    (long)(1e3 * refault_pages / REFAULTS_PER_S) +
		    STATUS_SLACK_MS;

	ck_assert_int_eq(kill(g->pid, SIGUSR1), 0);
	guest_expect(g, NULL, &res, pk_test_deadline_ms(work),
		     "workload of 1 s and verify of every page");
	ck_assert_msg(res, "guest %s printed no result", g->name);
	ck_assert_double_eq(jnum(res, "mismatches"), 0);
	ck_assert_double_eq(jnum(res, "pages_verified"), mib * MIB_PAGES);
	json_object_put(res);
	ck_assert_msg(guest_finish(g, DETACH_MS) == 0, "guest %s failed its "
		      "verify", g->name);
}

/* A restart on the same directories; extra replaces the arguments. */
static void restart(struct pk_test_daemon *d, const char *extra)
{
	ck_assert_msg(pk_test_daemon_restart(d, extra) == 0, "%s", d->error);
}

/* Both VMs are in status `vms` again (their guests reconnected). */
static int listed(struct pk_test_daemon *d, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (vm_field(d, names[i], "configured_mib") < 0)
			return 0;
	return 1;
}

/* ---- SIGTERM keeps everything ---- */

#define SHARE_MIB 32
#define SHARE_SEED 5
#define SHARE_ZERO 0.0
#define SHARE_SHARED 0.6
#define SHARE_RECLAIM_MIB 4

/* Pages of class `cls` in a guest of SHARE_* content named name. */
static uint64_t class_pages(const char *name, enum gs_class cls)
{
	struct gs_content c;
	uint64_t n = 0;

	gs_content_init(&c, SHARE_SEED, name, SHARE_ZERO, SHARE_SHARED);
	for (uint64_t p = 0; p < SHARE_MIB * MIB_PAGES; p++)
		n += gs_content_class(&c, p) == cls;
	return n;
}

static int all_merged(struct pk_test_daemon *d, const char *const *names,
		      const uint64_t *want)
{
	for (int i = 0; i < 2; i++)
		if (vm_field(d, names[i], "shared_mib") * MIB_PAGES !=
		    (double)want[i])
			return 0;
	return 1;
}

/* Every guest gone from the daemon's list, then a clean stop (exit 0). */
static void stop_once_detached(struct pk_test_daemon *d)
{
	ck_assert_int_eq(pk_test_wait_vm_count(d->sock, 0, scaled_ms(DETACH_MS)),
			 0);
	pk_test_daemon_stop_ok(d);
}

START_TEST(sigterm_keeps_state)
{
	const char *const names[2] = { "keep-a", "keep-b" };
	const char *extra[] = {
		"--size", "32M", "--seed", "5", "--content",
		"zero=0,shared=0.6", "--share-domain", "lab",
		"--idle-before", "3600", "--workload", "random", "--writers",
		"1", "--readers", "1", "--duration", "1", "--verify", "--json",
		NULL };
	struct pk_test_daemon d;
	struct guest g[2];
	uint64_t shared[2];
	double swapped[2], merged[2], slots, frames;
	char path[256], swap[256];
	ino_t swap_ino;
	/* A scanner pass over both guests at the floor rate, >= 1 s. */
	long pass = (long)fmax(1e3, 1e3 * 2 * SHARE_MIB / SCAN_MIB_PER_S) + 100;

	ck_assert_msg(pk_test_daemon_start(&d, ARGS_MERGE) == 0, "%s", d.error);
	for (int i = 0; i < 2; i++) {
		guest_up(&g[i], &d, names[i], extra, SHARE_MIB, 2 * SHARE_MIB);
		shared[i] = class_pages(names[i], GS_CLASS_SHARED);
	}
	/* Every shared page of each merged with the other's: the pass under
	 * way, one that reads, one that finds it stable, one that merges. */
	WAIT_FOR(all_merged(&d, names, shared), 5 * pass + STATUS_SLACK_MS,
		 100, "the scanner to merge all %llu shared pages of each guest "
		 "(%s has %.0f, %s %.0f)", (unsigned long long)shared[0],
		 names[0], vm_field(&d, names[0], "shared_mib") * MIB_PAGES,
		 names[1], vm_field(&d, names[1], "shared_mib") * MIB_PAGES);
	/* Merged pages are not resident: RECLAIM takes unique ones. */
	for (int i = 0; i < 2; i++)
		reclaim_unique(&d, names[i], SHARE_RECLAIM_MIB);
	for (int i = 0; i < 2; i++) {
		swapped[i] = vm_field(&d, names[i], "swapped_mib");
		merged[i] = vm_field(&d, names[i], "shared_mib");
	}
	slots = status_field(&d, "swap", "slots_used");
	frames = status_field(&d, "sharing", "canonical_frames");
	ck_assert_double_eq(slots, 2 * SHARE_RECLAIM_MIB * MIB_PAGES);
	ck_assert_double_eq(frames, (double)shared[0]);
	swap_path(&d, swap, sizeof(swap));
	swap_ino = inode_of(swap);

	ck_assert_msg(pk_test_daemon_kill(&d, SIGTERM) == 0, "%s", d.error);
	/* What the stopped daemon left for the next one. */
	for (int i = 0; i < 2; i++) {
		record_path(&d, names[i], path, sizeof(path));
		ck_assert_msg(exists(path), "no VM record %s after SIGTERM",
			      path);
	}
	/* The domain's key: "d:" and its name (engine/share.c). */
	run_file(&d, "canon-", "d:lab", ".pages", path, sizeof(path));
	ck_assert_msg(exists(path), "no canonical copies %s after SIGTERM",
		      path);
	run_file(&d, "swap-sums", "", ".pk", path, sizeof(path));
	ck_assert_msg(exists(path), "no slot checksums %s after SIGTERM", path);
	ck_assert_msg(exists(swap), "no swap file %s after SIGTERM", swap);

	restart(&d, NULL);
	WAIT_FOR(listed(&d, names, 2), RECONNECT_MS, 20, "both guests to "
		 "reconnect to the new daemon and be adopted");
	ck_assert_int_eq(n_waiting(&d), 0);
	for (int i = 0; i < 2; i++) {
		ck_assert_double_eq(vm_field(&d, names[i], "swapped_mib"),
				    swapped[i]);
		ck_assert_double_eq(vm_field(&d, names[i], "shared_mib"),
				    merged[i]);
		expect_log(&d, "vm %s (pid %d): waiting up to 120 s for its "
			   "guest to reconnect; %.0f pages swapped, %.0f merged",
			   names[i], (int)g[i].pid, swapped[i] * MIB_PAGES,
			   merged[i] * MIB_PAGES);
		expect_log(&d, "vm %s (pid %d) is back: ", names[i],
			   (int)g[i].pid);
	}
	ck_assert_double_eq(status_field(&d, "swap", "slots_used"), slots);
	ck_assert_double_eq(status_field(&d, "sharing", "canonical_frames"),
			    frames);
	ck_assert_msg(inode_of(swap) == swap_ino, "the new daemon replaced "
		      "the swap file %s", swap);
	expect_log(&d, "swap file %s: 64 MiB, kept from the previous daemon",
		   swap);
	expect_log(&d, "replayed 2 VM record(s) from %s", d.run_dir);

	/* Every page: the swapped ones from the kept slots, the merged ones
	 * from the kept copies. */
	for (int i = 0; i < 2; i++)
		run_and_verify(&g[i], SHARE_MIB,
			       (swapped[i] + merged[i]) * MIB_PAGES);
	stop_once_detached(&d);
}
END_TEST

/*
 * ---- a guest that does not come back in time ----
 * Its swapped pages are freed after the grace; if it comes back after
 * all, it reads memory errors there, never zeros.
 */

START_TEST(grace_period)
{
	struct pk_test_daemon d;
	struct guest g;
	char args[256], path[256];
	/* Whole seconds, scaled for the build: ASan's start-up is slow. */
	unsigned grace = (unsigned)ceil(2 * pk_test_time_scale());
	double left;
	long t0, freed_at;
	int n;

	/* It will die of SIGBUS on its lost pages: no core file. */
	struct rlimit no_core = { 0, 0 };
	ck_assert_int_eq(setrlimit(RLIMIT_CORE, &no_core), 0);
	ck_assert_msg(pk_test_daemon_start(&d, ARGS_SWAP) == 0, "%s", d.error);
	guest_up_bus(&g, &d, "late", unique_guest, UNIQUE_MIB, UNIQUE_MIB);
	reclaim_unique(&d, "late", 8);
	guest_stop(&g);
	ck_assert_msg(pk_test_daemon_kill(&d, SIGKILL) == 0, "%s", d.error);

	snprintf(args, sizeof(args), "%s --restart-grace %u", ARGS_SWAP, grace);
	t0 = pk_test_now_ms(); /* the replay, and its grace, start later */
	restart(&d, args);
	ck_assert_double_eq(waiting_field(&d, "late", "pid", &n), g.pid);
	ck_assert_int_eq(n, 1);
	ck_assert_double_eq(waiting_field(&d, "late", "configured_mib", NULL),
			    UNIQUE_MIB);
	ck_assert_double_eq(waiting_field(&d, "late", "swapped_mib", NULL), 8);
	ck_assert_double_eq(waiting_field(&d, "late", "shared_mib", NULL), 0);
	left = waiting_field(&d, "late", "grace_left_s", NULL);
	ck_assert_msg(left >= 1 && left <= grace, "grace_left_s %.0f, want "
		      "1..%u", left, grace);
	/* Waiting is not registered: the VM list does not have it. */
	ck_assert_double_eq(vm_field(&d, "late", "configured_mib"), -1);
	ck_assert_double_eq(status_field(&d, "swap", "slots_used"),
			    8 * MIB_PAGES);
	record_path(&d, "late", path, sizeof(path));
	ck_assert_msg(exists(path), "no record %s while its VM waits", path);

	/* Its pages are freed by the tick after the grace, never before. */
	WAIT_FOR(waiting_field(&d, "late", "swapped_mib", NULL) == 0,
		 grace * 1000 / pk_test_time_scale() + 2 * TICK_MS, 50,
		 "the daemon to free vm late's pages %u s after the restart",
		 grace);
	freed_at = pk_test_now_ms();
	ck_assert_msg(freed_at - t0 >= (long)grace * 1000, "vm late was freed "
		      "%ld ms after the restart began, before its %u s grace",
		      freed_at - t0, grace);
	expect_log(&d, "vm late (pid %d) did not reconnect within the grace "
		   "period (--restart-grace): freeing the %d swapped and 0 "
		   "merged pages it left", (int)g.pid, 8 * MIB_PAGES);
	/* While its process lives it stays listed, its loss marked. */
	ck_assert_double_eq(waiting_field(&d, "late", "lost_mib", NULL), 8);
	ck_assert_double_eq(waiting_field(&d, "late", "grace_left_s", NULL), 0);
	ck_assert_msg(exists(path), "record %s gone while its guest lives: a "
		      "late guest would read zeros", path);
	WAIT_FOR(status_field(&d, "swap", "slots_used") == 0, 2 * TICK_MS, 50,
		 "the scrub to free vm late's %d slots (%.0f used)",
		 8 * MIB_PAGES, status_field(&d, "swap", "slots_used"));

	/* It comes back late: memory errors where its pages were, never
	 * zeros (pk-guestsim dies of SIGBUS on the first). */
	ck_assert_int_eq(kill(g.pid, SIGCONT), 0);
	WAIT_FOR(vm_field(&d, "late", "configured_mib") == UNIQUE_MIB,
		 RECONNECT_MS, 20, "guest late (pid %d) to reconnect after "
		 "SIGCONT", (int)g.pid);
	ck_assert_double_eq(vm_field(&d, "late", "poisoned_mib"), 8);
	ck_assert_double_eq(vm_field(&d, "late", "swapped_mib"), 0);
	ck_assert_int_eq(n_waiting(&d), 0);
	ck_assert_int_eq(kill(g.pid, SIGUSR1), 0);
	ck_assert_int_eq(guest_finish(&g, DETACH_MS + 1000 +
				      (long)(UNIQUE_MIB * SWEEP_MS_PER_MIB)),
			 -SIGBUS);
	WAIT_FOR(!exists(path), DETACH_MS, 20, "vm late's record %s to go "
		 "with its process", path);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

/* ---- a guest that exits while no daemon runs ---- */

START_TEST(exited_while_down)
{
	struct pk_test_daemon d;
	struct guest g;
	char path[256];
	pid_t pid;

	ck_assert_msg(pk_test_daemon_start(&d, ARGS_SWAP) == 0, "%s", d.error);
	guest_up(&g, &d, "gone", unique_guest, UNIQUE_MIB, UNIQUE_MIB);
	reclaim_unique(&d, "gone", 8);
	pid = g.pid;
	ck_assert_msg(pk_test_daemon_kill(&d, SIGKILL) == 0, "%s", d.error);
	ck_assert_int_eq(kill(g.pid, SIGKILL), 0);
	ck_assert_int_eq(guest_finish(&g, DETACH_MS), -SIGKILL);
	record_path(&d, "gone", path, sizeof(path));
	ck_assert_msg(exists(path), "no record %s after the crash", path);

	restart(&d, NULL);
	/* At once: the replay frees it before the socket listens. */
	ck_assert_int_eq(n_waiting(&d), 0);
	ck_assert_int_eq(pk_test_vm_count(d.sock), 0);
	ck_assert_msg(!exists(path), "record %s of an exited guest kept", path);
	expect_log(&d, "vm gone (pid %d) exited while no daemon ran: freeing "
		   "the %d swapped and 0 merged pages it left", (int)pid,
		   8 * MIB_PAGES);
	WAIT_FOR(status_field(&d, "swap", "slots_used") == 0, 2 * TICK_MS, 50,
		 "the scrub to free the exited guest's %d slots (%.0f used)",
		 8 * MIB_PAGES, status_field(&d, "swap", "slots_used"));
	pk_test_daemon_stop_ok(&d);
}
END_TEST

/* ---- a kill between a REMOVE event's read and its record ---- */

#define DISC_FIRST 1024
#define DISC_PAGES 2048

START_TEST(discard_at_kill)
{
	char discard[32];
	snprintf(discard, sizeof(discard), "%d:%d", DISC_FIRST, DISC_PAGES);
	const char *extra[] = {
		"--size", "16M", "--content", "zero=0,shared=0",
		"--idle-before", "3600", "--discard", discard,
		"--workload", "idle", "--duration", "3600", "--verify",
		"--json", NULL };
	struct pk_test_daemon d;
	struct guest g;
	json_object *res;

	ck_assert_msg(pk_test_daemon_start(&d, ARGS_SWAP
					   " --test-kill-on-remove") == 0,
		      "%s", d.error);
	guest_up(&g, &d, "disc", extra, UNIQUE_MIB, UNIQUE_MIB);
	reclaim_unique(&d, "disc", UNIQUE_MIB);

	/* The guest discards; the daemon reads the event and dies. */
	ck_assert_int_eq(kill(g.pid, SIGUSR1), 0);
	WAIT_FOR(proc_state(d.pid) == 'Z', GUEST_START_MS, 5, "pagekeeperd "
		 "(pid %d) to kill itself on the guest's REMOVE event",
		 (int)d.pid);
	guest_expect(&g, "DISCARDED", NULL, pk_test_deadline_ms(DETACH_MS),
		     "madvise to return once the daemon read the event");
	ck_assert_msg(pk_test_daemon_kill(&d, SIGKILL) == 0, "%s", d.error);

	restart(&d, ARGS_SWAP);
	expect_log(&d, "vm disc: %d pages the guest discarded as the previous "
		   "daemon stopped are recorded discarded", DISC_PAGES);
	const char *const name[1] = { "disc" };
	WAIT_FOR(listed(&d, name, 1), RECONNECT_MS, 20,
		 "guest disc to reconnect");
	static const char *const keys[] = { "ballooned_mib", "swapped_mib",
					    NULL };
	double f[2];
	vm_fields(&d, "disc", keys, f);
	ck_assert_double_eq(f[0] * MIB_PAGES, DISC_PAGES);
	ck_assert_double_eq(f[1] * MIB_PAGES, UNIQUE_MIB * MIB_PAGES -
					      DISC_PAGES);
	ck_assert_double_eq(status_field(&d, "swap", "slots_used"),
			    UNIQUE_MIB * MIB_PAGES - DISC_PAGES);

	/* Zeros where it discarded, its bytes everywhere else. */
	ck_assert_int_eq(kill(g.pid, SIGTERM), 0);
	guest_expect(&g, NULL, &res,
		     pk_test_deadline_ms((long)(UNIQUE_MIB * SWEEP_MS_PER_MIB) +
					 (long)(1e3 * UNIQUE_MIB * MIB_PAGES /
						REFAULTS_PER_S)),
		     "verify of every page after SIGTERM");
	ck_assert_msg(res, "guest disc printed no result");
	ck_assert_double_eq(jnum(res, "mismatches"), 0);
	ck_assert_double_eq(jnum(res, "pages_verified"),
			    UNIQUE_MIB * MIB_PAGES);
	ck_assert_double_eq(jnum(res, "pages_discarded"), DISC_PAGES);
	json_object_put(res);
	ck_assert_int_eq(guest_finish(&g, DETACH_MS), 0);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

/* ---- another process claims a waiting VM's name ---- */

/* Attach this process's RAM (a memfd, or anonymous with fd -1) as vm;
 * returns the attach's status, the message in err. */
static int claim(struct pk_test_daemon *d, const char *vm, int fd,
		 void *ram, size_t len, char *err, size_t err_len)
{
	struct pk_client_region r = { ram, len, 0 };
	struct pk_client_opts o = { .socket_path = d->sock, .vm_name = vm,
				    .ram_fd = fd, .regions = &r,
				    .n_regions = 1 };
	struct pk_client *c = NULL;
	int rc;

	err[0] = '\0';
	rc = pk_client_attach(&o, &c, err, err_len);
	if (rc == 0)
		pk_client_detach(c);
	return rc;
}

START_TEST(identity)
{
	const char *const impostor[] = { "--size", "16M", "--workload", "idle",
					 "--duration", "0", NULL };
	struct pk_test_daemon d;
	struct guest g, other;
	char err[512], want[512];
	size_t len = (size_t)UNIQUE_MIB << 20;
	int fd, rc;
	void *ram, *anon;

	ck_assert_msg(pk_test_daemon_start(&d, ARGS_SWAP) == 0, "%s", d.error);
	guest_up(&g, &d, "ident", unique_guest, UNIQUE_MIB, UNIQUE_MIB);
	reclaim_unique(&d, "ident", 8);
	guest_stop(&g);
	ck_assert_msg(pk_test_daemon_kill(&d, SIGKILL) == 0, "%s", d.error);
	restart(&d, NULL);
	ck_assert_double_eq(waiting_field(&d, "ident", "pid", NULL), g.pid);

	/* This process, with a RAM file of its own. */
	fd = memfd_create("pk-test-impostor", MFD_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)len), 0);
	ram = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert(ram != MAP_FAILED);
	rc = claim(&d, "ident", fd, ram, len, err, sizeof(err));
	snprintf(want, sizeof(want), "daemon refused: VM 'ident' of the "
		 "previous daemon (pid %d) is waiting for its guest to "
		 "reconnect; pid %d with another RAM file or regions is not "
		 "that guest", (int)g.pid, (int)getpid());
	ck_assert_msg(rc == -EEXIST && strcmp(err, want) == 0, "a second "
		      "process claiming waiting vm ident got %d (%s): \"%s\"; "
		      "want -EEXIST: \"%s\"", rc, strerror(-rc), err, want);
	/* ... and with anonymous RAM. */
	anon = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(anon != MAP_FAILED);
	rc = claim(&d, "ident", -1, anon, len, err, sizeof(err));
	snprintf(want, sizeof(want), "daemon refused: VM 'ident' of the "
		 "previous daemon (pid %d) is waiting for its guest to "
		 "reconnect; pid %d is not that guest", (int)g.pid,
		 (int)getpid());
	ck_assert_msg(rc == -EEXIST && strcmp(err, want) == 0, "anonymous "
		      "RAM claiming waiting vm ident got %d: \"%s\"; want "
		      "-EEXIST: \"%s\"", rc, err, want);
	munmap(anon, len);
	munmap(ram, len);
	close(fd);
	/* A second lab guest of that name cannot attach (exit 3). */
	guest_start(&other, d.sock, "ident", impostor);
	ck_assert_int_eq(guest_finish(&other, GUEST_START_MS), 3);
	expect_log(&d, "rejected registration: VM 'ident' of the previous "
		   "daemon (pid %d) is waiting", (int)g.pid);

	/* The waiting VM lost nothing; its own guest comes back. */
	ck_assert_double_eq(waiting_field(&d, "ident", "swapped_mib", NULL), 8);
	ck_assert_double_eq(vm_field(&d, "ident", "configured_mib"), -1);
	ck_assert_int_eq(kill(g.pid, SIGCONT), 0);
	WAIT_FOR(vm_field(&d, "ident", "configured_mib") == UNIQUE_MIB,
		 RECONNECT_MS, 20, "guest ident (pid %d) to reconnect after "
		 "SIGCONT", (int)g.pid);
	ck_assert_int_eq(n_waiting(&d), 0);
	ck_assert_double_eq(vm_field(&d, "ident", "swapped_mib"), 8);
	ck_assert_double_eq(vm_field(&d, "ident", "pid"), g.pid);
	run_and_verify(&g, UNIQUE_MIB, 8 * MIB_PAGES);
	stop_once_detached(&d);
}
END_TEST

/* ---- a second daemon on the same directories ---- */

/*
 * Run `$PK_DAEMON args...` (NULL-terminated) with its stdout and stderr
 * in a memfd; it must exit by DAEMON_EXIT_MS (scaled).  Returns its exit
 * status (128 + signal if killed); *text gets its output (malloc'ed).
 */
static int second_daemon(const char *const args[], char **text)
{
	const char *argv[32];
	long deadline;
	struct stat st;
	int out, status, n = 0;
	pid_t pid, w;

	argv[n++] = getenv("PK_DAEMON");
	ck_assert_msg(argv[0], "PK_DAEMON is not set");
	for (; *args && n < 31; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	out = memfd_create("pk-second-daemon", MFD_CLOEXEC);
	ck_assert_int_ge(out, 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(out, 1);
		dup2(out, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	deadline = pk_test_deadline_ms(DAEMON_EXIT_MS);
	while ((w = waitpid(pid, &status, WNOHANG)) == 0) {
		if (pk_test_now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			ck_abort_msg("a second pagekeeperd on locked directories "
				     "still ran %d ms after it started (killed): "
				     "it must refuse to start",
				     scaled_ms(DAEMON_EXIT_MS));
		}
		sleep_ms(5);
	}
	ck_assert_int_eq(fstat(out, &st), 0);
	*text = calloc(1, (size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(*text);
	ck_assert_int_eq(pread(out, *text, (size_t)st.st_size, 0), st.st_size);
	close(out);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The second daemon exited 1, saying dir is in use by d's pid. */
static void expect_refused(const struct pk_test_daemon *d, const char *dir,
			   const char *const args[])
{
	char *text, want[512];
	int rc = second_daemon(args, &text);

	snprintf(want, sizeof(want), "pagekeeperd: %s is in use by another "
		 "pagekeeperd (pid %d); nothing was touched", dir, (int)d->pid);
	ck_assert_msg(rc == 1, "a second pagekeeperd on %s exited %d, want 1; "
		      "its output:\n%s", dir, rc, text);
	ck_assert_msg(strstr(text, want), "a second pagekeeperd on %s did not "
		      "say \"%s\"; its output:\n%s", dir, want, text);
	ck_assert_msg(!strstr(text, "Sanitizer") && !strstr(text, "runtime "
		      "error"), "sanitizer report:\n%s", text);
	free(text);
}

START_TEST(lock)
{
	struct pk_test_daemon d;
	struct guest g;
	char swap[256], sums[256], rec[256], sock[128], state2[128], run2[128];
	ino_t swap_ino, sums_ino, rec_ino;
	struct stat before, after;

	ck_assert_msg(pk_test_daemon_start(&d, ARGS_SWAP) == 0, "%s", d.error);
	guest_up(&g, &d, "first", unique_guest, UNIQUE_MIB, UNIQUE_MIB);
	reclaim_unique(&d, "first", 8);
	swap_path(&d, swap, sizeof(swap));
	run_file(&d, "swap-sums", "", ".pk", sums, sizeof(sums));
	record_path(&d, "first", rec, sizeof(rec));
	swap_ino = inode_of(swap);
	sums_ino = inode_of(sums);
	rec_ino = inode_of(rec);
	ck_assert_int_eq(stat(swap, &before), 0);
	/* Its own socket and other directory, under the first one's DIR
	 * (removed with it, whatever happens). */
	snprintf(sock, sizeof(sock), "%s/second.sock", d.dir);
	snprintf(state2, sizeof(state2), "%s/second-state", d.dir);
	snprintf(run2, sizeof(run2), "%s/second-run", d.dir);

	expect_refused(&d, d.state_dir, (const char *const[]){
		"--socket", sock, "--state-dir", d.state_dir, "--run-dir", run2,
		"--swap-size", "64M", "--scan-rate", "0", "--foreground", NULL });
	expect_refused(&d, d.run_dir, (const char *const[]){
		"--socket", sock, "--state-dir", state2, "--run-dir", d.run_dir,
		"--swap-size", "64M", "--scan-rate", "0", "--foreground", NULL });

	ck_assert_msg(pk_test_daemon_alive(&d), "%s", d.error);
	ck_assert_msg(inode_of(swap) == swap_ino, "the swap file %s was "
		      "replaced", swap);
	ck_assert_int_eq(stat(swap, &after), 0);
	ck_assert_int_eq(after.st_size, before.st_size);
	ck_assert_msg(inode_of(sums) == sums_ino, "%s was replaced", sums);
	ck_assert_msg(inode_of(rec) == rec_ino, "%s was replaced", rec);
	ck_assert_double_eq(vm_field(&d, "first", "swapped_mib"), 8);
	ck_assert_double_eq(status_field(&d, "swap", "slots_used"),
			    8 * MIB_PAGES);
	/* The swapped pages are read back from that file, checksummed. */
	run_and_verify(&g, UNIQUE_MIB, 8 * MIB_PAGES);
	stop_once_detached(&d);
}
END_TEST

/* ---- the swap file lost while no daemon runs ---- */

#define OWN_PAGES 1024 /* 4 MiB */
#define OWN_RECLAIM_MIB 2

static void own_fill(unsigned char *p, uint64_t tag)
{
	uint64_t w = tag * 0x9e3779b97f4a7c15ULL + 1;

	for (size_t i = 0; i < PAGE; i += 8) {
		w ^= w << 13;
		w ^= w >> 7;
		w ^= w << 17;
		memcpy(p + i, &w, 8);
	}
}

static sigjmp_buf bus_jmp;
static void *volatile bus_addr;
static volatile int bus_code;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	bus_addr = si->si_addr;
	bus_code = si->si_code;
	siglongjmp(bus_jmp, 1);
}

/* Read page p into out: 0, or 1 when the read raised SIGBUS. */
static int read_page(const unsigned char *p, unsigned char *out)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus,
				.sa_flags = SA_SIGINFO }, old;
	int bus = 0;

	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGBUS, &sa, &old), 0);
	if (sigsetjmp(bus_jmp, 1) == 0)
		memcpy(out, (const void *)p, PAGE);
	else
		bus = 1;
	sigaction(SIGBUS, &old, NULL);
	return bus;
}

START_TEST(swap_file_lost)
{
	struct pk_test_daemon d;
	struct guest g;
	struct pk_test_guest own;
	struct pk_client *c;
	struct pk_client_opts o = { .vm_name = "lost-own", .n_regions = 1,
				    .reconnect = 1 };
	struct pk_client_region r;
	struct rlimit no_core = { 0, 0 };
	unsigned char vec[OWN_PAGES], buf[PAGE], want[PAGE];
	const char *const names[2] = { "lost-sim", "lost-own" };
	char swap[256], err[512] = "";
	unsigned evicted = 0, bus = 0;
	int rc;

	/* pk-guestsim will die of SIGBUS: no core file for it. */
	ck_assert_int_eq(setrlimit(RLIMIT_CORE, &no_core), 0);
	ck_assert_msg(pk_test_daemon_start(&d, ARGS_SWAP) == 0, "%s", d.error);
	guest_up_bus(&g, &d, "lost-sim", unique_guest, UNIQUE_MIB, UNIQUE_MIB);
	reclaim_unique(&d, "lost-sim", 8);
	/* This process is the other guest: it reads every page itself. */
	rc = pk_test_guest_create(&own, OWN_PAGES * PAGE, OWN_PAGES * PAGE);
	ck_assert_msg(rc == 0, "memfd guest: %s", strerror(-rc));
	r = (struct pk_client_region){ own.addr, own.map_len, 0 };
	o.socket_path = d.sock;
	o.ram_fd = own.memfd;
	o.regions = &r;
	ck_assert_msg(pk_client_attach(&o, &c, err, sizeof(err)) == 0,
		      "attach lost-own: %s", err);
	for (uint64_t p = 0; p < OWN_PAGES; p++)
		own_fill((unsigned char *)own.addr + p * PAGE, p + 1);
	reclaim_unique(&d, "lost-own", OWN_RECLAIM_MIB);
	/* The pages the eviction punched: they are in the swap file only. */
	ck_assert_int_eq(mincore(own.addr, OWN_PAGES * PAGE, vec), 0);
	for (unsigned p = 0; p < OWN_PAGES; p++)
		evicted += !(vec[p] & 1);
	ck_assert_uint_eq(evicted, OWN_RECLAIM_MIB * MIB_PAGES);

	ck_assert_msg(pk_test_daemon_kill(&d, SIGKILL) == 0, "%s", d.error);
	swap_path(&d, swap, sizeof(swap));
	ck_assert_int_eq(unlink(swap), 0);
	restart(&d, NULL);
	expect_log(&d, "the swap file %s is not the one the previous daemon "
		   "left (missing, replaced or resized): pages swapped there "
		   "are lost, and their guests get memory errors for them",
		   swap);
	expect_log(&d, "vm lost-sim: %d pages LOST with the previous daemon's "
		   "state", 8 * MIB_PAGES);
	expect_log(&d, "vm lost-own: %d pages LOST with the previous daemon's "
		   "state", OWN_RECLAIM_MIB * MIB_PAGES);
	WAIT_FOR(listed(&d, names, 2), RECONNECT_MS, 20, "both guests to "
		 "reconnect to the new daemon");
	ck_assert_double_eq(vm_field(&d, "lost-sim", "poisoned_mib"), 8);
	ck_assert_double_eq(vm_field(&d, "lost-sim", "swapped_mib"), 0);
	ck_assert_double_eq(vm_field(&d, "lost-own", "poisoned_mib"),
			    OWN_RECLAIM_MIB);
	ck_assert_double_eq(vm_field(&d, "lost-own", "swapped_mib"), 0);
	ck_assert_double_eq(status_field(&d, "swap", "slots_used"), 0);

	/* Every page: a memory error exactly where a page was swapped, at
	 * its address; every other page its own bytes. */
	for (unsigned p = 0; p < OWN_PAGES; p++) {
		unsigned char *at = (unsigned char *)own.addr + (size_t)p * PAGE;
		int hit = read_page(at, buf);

		if (!(vec[p] & 1)) {
			ck_assert_msg(hit, "lost-own: page %u lost with the swap "
				      "file read without a memory error (first "
				      "byte %u)", p, buf[0]);
			/* UFFDIO_POISON: BUS_MCEERR_AR on older kernels,
			 * BUS_ADRERR on this one (6.18). */
			ck_assert_msg(bus_addr == at &&
				      (bus_code == BUS_ADRERR ||
				       bus_code == BUS_MCEERR_AR),
				      "lost-own: page %u: SIGBUS at %p code %d, "
				      "want %p code BUS_ADRERR (%d) or "
				      "BUS_MCEERR_AR (%d)", p, bus_addr,
				      bus_code, (void *)at, BUS_ADRERR,
				      BUS_MCEERR_AR);
			bus++;
			continue;
		}
		ck_assert_msg(!hit, "lost-own: page %u was resident but raised "
			      "SIGBUS", p);
		own_fill(want, p + 1);
		ck_assert_msg(memcmp(buf, want, PAGE) == 0, "lost-own: resident "
			      "page %u differs from what was written", p);
	}
	ck_assert_uint_eq(bus, OWN_RECLAIM_MIB * MIB_PAGES);
	fprintf(stderr, "swap_file_lost: %u of %u pages raised SIGBUS (code "
		"%d) at their address, %u read their bytes\n", bus, OWN_PAGES,
		bus_code, OWN_PAGES - bus);
	pk_client_detach(c);
	pk_test_guest_destroy(&own);

	/* pk-guestsim: killed by SIGBUS at its first swapped page. */
	ck_assert_int_eq(kill(g.pid, SIGUSR1), 0);
	guest_expect(&g, NULL, NULL, pk_test_deadline_ms(
			     1000 + UNIQUE_MIB * SWEEP_MS_PER_MIB +
			     STATUS_SLACK_MS),
		     "workload (killed by SIGBUS on a lost page)");
	rc = guest_finish(&g, DETACH_MS);
	ck_assert_msg(rc == -SIGBUS, "pk-guestsim with lost pages ended with "
		      "%d, want -SIGBUS (%d)", rc, -SIGBUS);
	stop_once_detached(&d);
}
END_TEST

/*
 * ---- pagekeeper set outlives the daemon (issue 15) ----
 * A VM's run-time settings are in its record (version 3): after a kill
 * -9 and after SIGTERM, the new daemon gives them back when the guest
 * reconnects; a partial set keeps the other figures; a daemon started
 * with a [vm NAME] (--vm) that differs from the one set overrode puts
 * the admin's values back.  A version-2 record (the previous binary's)
 * still loads: its VM is adopted, with no run-time settings.
 */

#define SET_MIB 1

/* SET on vm (-1 leaves a figure); the reply's status. */
static int set_vm(struct pk_test_daemon *d, const char *vm, int64_t shares,
		  int64_t min, int64_t max, int32_t no_balloon)
{
	struct pk_set_msg m;
	struct pk_reply_msg r;
	int conn, rc;

	ck_assert_int_eq(pk_set_msg_encode(&m, vm, shares, min, max,
					   no_balloon), 0);
	rc = pk_test_request(d->sock, &m, sizeof(m), NULL, 0, &r, &conn);
	ck_assert_msg(rc == 0, "SET %s: no reply: %s", vm, strerror(-rc));
	close(conn);
	ck_assert_msg(r.hdr.type == PK_MSG_SET_REPLY, "SET %s: reply type %u",
		      vm, r.hdr.type);
	return r.status;
}

/* An in-process guest of SET_MIB attached with reconnect. */
static struct pk_client *own_attach(struct pk_test_daemon *d,
				    struct pk_test_guest *g, const char *name)
{
	struct pk_client_region r;
	struct pk_client_opts o;
	struct pk_client *c = NULL;
	char err[PK_PROTO_REASON_MAX + 64] = "";
	int rc;

	rc = pk_test_guest_create(g, SET_MIB << 20, SET_MIB << 20);
	ck_assert_msg(rc == 0, "memfd guest: %s", strerror(-rc));
	r = (struct pk_client_region){ .addr = g->addr, .length = g->map_len };
	o = (struct pk_client_opts){ .socket_path = d->sock, .vm_name = name,
				     .ram_fd = g->memfd, .regions = &r,
				     .n_regions = 1, .reconnect = 1 };
	rc = pk_client_attach(&o, &c, err, sizeof(err));
	ck_assert_msg(rc == 0, "attach %s: %s", name, err);
	return c;
}

/* The VM's shares, min_mib, max_mib, balloon_opt_out are these. */
static void expect_settings(struct pk_test_daemon *d, const char *vm,
			    double shares, double min_mib, double max_mib,
			    double opt_out, const char *when)
{
	static const char *const keys[] = { "shares", "min_mib", "max_mib",
					    "balloon_opt_out", NULL };
	double got[4];

	vm_fields(d, vm, keys, got);
	ck_assert_msg(got[0] == shares && got[1] == min_mib &&
			      got[2] == max_mib && got[3] == opt_out,
		      "%s: %s has shares %.0f, min %.3f MiB, max %.3f MiB, "
		      "balloon_opt_out %.0f; want %.0f, %.3f, %.3f, %.0f", when,
		      vm, got[0], got[1], got[2], got[3], shares, min_mib,
		      max_mib, opt_out);
}

/* Restart on the same directories; the guest reconnects (adopted). */
static void restart_reconnect(struct pk_test_daemon *d, const char *vm,
			      unsigned generation, struct pk_client *c,
			      const char *extra)
{
	const char *const names[1] = { vm };

	restart(d, extra);
	WAIT_FOR(listed(d, names, 1) && pk_client_generation(c) == generation,
		 RECONNECT_MS + STATUS_SLACK_MS, 20, "%s to reconnect to the new "
		 "daemon (registration %u)", vm, generation);
	ck_assert_int_eq(n_waiting(d), 0);
}

START_TEST(set_survives_restart)
{
	struct pk_test_daemon d;
	struct pk_test_guest g;
	struct pk_client *c;

	ck_assert_msg(pk_test_daemon_start(&d, ARGS_SWAP) == 0, "%s", d.error);
	c = own_attach(&d, &g, "set1");
	expect_settings(&d, "set1", 1000, 0, SET_MIB, 0, "at registration");
	ck_assert_int_eq(set_vm(&d, "set1", 321, 64 << 10, 512 << 10, 1), 0);
	expect_settings(&d, "set1", 321, 0.0625, 0.5, 1, "after set");

	ck_assert_msg(pk_test_daemon_kill(&d, SIGKILL) == 0, "%s", d.error);
	restart_reconnect(&d, "set1", 2, c, NULL);
	expect_settings(&d, "set1", 321, 0.0625, 0.5, 1, "after kill -9");

	/* Only shares: the other figures stay as set. */
	ck_assert_int_eq(set_vm(&d, "set1", 77, -1, -1, -1), 0);
	ck_assert_msg(pk_test_daemon_kill(&d, SIGTERM) == 0, "%s", d.error);
	restart_reconnect(&d, "set1", 3, c, NULL);
	expect_settings(&d, "set1", 77, 0.0625, 0.5, 1,
			"after SIGTERM and a start");

	/* The admin's section for it, new since the set: it wins. */
	ck_assert_msg(pk_test_daemon_kill(&d, SIGKILL) == 0, "%s", d.error);
	restart_reconnect(&d, "set1", 4, c, ARGS_SWAP " --vm set1:shares=5000");
	expect_settings(&d, "set1", 5000, 0, SET_MIB, 0,
			"after a start with a new [vm set1]");
	expect_log(&d, "vm set1: its [vm set1] section changed: it overrides "
		   "what pagekeeper set gave");

	pk_client_detach(c);
	stop_once_detached(&d);
	pk_test_guest_destroy(&g);
}
END_TEST

/* swapper/state_file.c's header, as the previous binary wrote it. */
struct v2_sfile_header {
	char magic[8];
	uint32_t version;
	uint32_t kind;
	uint64_t payload_bytes;
	uint32_t meta_len;
	uint32_t reserved;
	uint64_t sum;
};
#define V3_META_LEN 1736u  /* engine/state.c: struct vm_meta, version 3 */
#define V2_META_LEN 1720u  /* ... version 2: the same without 2 words */
#define V3_SETTINGS_BYTES 72u /* ... and its payload's settings block */

/*
 * Make the record at path what the previous binary (record version 2)
 * wrote for the same VM: its metadata without the settings words,
 * version 2, the payload without the settings block, the header's sum
 * recomputed as state_file.c does.
 */
static void record_to_v2(const char *path)
{
	unsigned char head[4096] = { 0 };
	struct v2_sfile_header h;
	uint32_t version = 2;
	int fd = open(path, O_RDWR | O_CLOEXEC);

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(pread(fd, head, sizeof(head), 0), (ssize_t)sizeof(head));
	memcpy(&h, head, sizeof(h));
	ck_assert_msg(h.meta_len == V3_META_LEN, "record %s: metadata of %u "
		      "bytes, want version 3's %u", path, h.meta_len,
		      V3_META_LEN);
	ck_assert_uint_eq(*(uint32_t *)(void *)(head + sizeof(h)), 3);
	memcpy(head + sizeof(h), &version, sizeof(version));
	memset(head + sizeof(h) + V2_META_LEN, 0, V3_META_LEN - V2_META_LEN);
	h.meta_len = V2_META_LEN;
	h.payload_bytes -= V3_SETTINGS_BYTES;
	h.sum = 0;
	memcpy(head, &h, sizeof(h));
	h.sum = XXH3_64bits(head, sizeof(h) + V2_META_LEN);
	memcpy(head, &h, sizeof(h));
	ck_assert_int_eq(pwrite(fd, head, sizeof(head), 0), (ssize_t)sizeof(head));
	/* The block's bytes: zeros, as past an old payload's end. */
	unsigned char zero[V3_SETTINGS_BYTES] = { 0 };
	ck_assert_int_eq(pwrite(fd, zero, sizeof(zero),
				(off_t)(4096 + h.payload_bytes)),
			 (ssize_t)sizeof(zero));
	ck_assert_int_eq(ftruncate(fd, (off_t)(4096 + (h.payload_bytes + 4095) /
						       4096 * 4096)), 0);
	close(fd);
}

START_TEST(record_v2_loads)
{
	struct pk_test_daemon d;
	struct pk_test_guest g;
	struct pk_client *c;
	char path[256];

	ck_assert_msg(pk_test_daemon_start(&d, ARGS_SWAP) == 0, "%s", d.error);
	c = own_attach(&d, &g, "old1");
	for (unsigned p = 0; p < (SET_MIB << 20) / PAGE; p++)
		memset((char *)g.addr + (size_t)p * PAGE, (int)(p % 251) + 1, PAGE);
	reclaim_unique(&d, "old1", SET_MIB); /* its pages in the swap file */
	ck_assert_int_eq(set_vm(&d, "old1", 321, -1, -1, -1), 0);
	ck_assert_msg(pk_test_daemon_kill(&d, SIGKILL) == 0, "%s", d.error);
	record_path(&d, "old1", path, sizeof(path));
	record_to_v2(path);

	restart_reconnect(&d, "old1", 2, c, NULL);
	expect_log(&d, "replayed 1 VM record(s) from %s", d.run_dir);
	ck_assert_msg(!file_has(d.log, "cannot be read"), "the version 2 "
		      "record was set aside (%s)", d.log);
	/* Its swapped pages are its own again; no run-time settings. */
	ck_assert_double_eq(vm_field(&d, "old1", "swapped_mib"), SET_MIB);
	expect_settings(&d, "old1", 1000, 0, SET_MIB, 0, "from a version 2 "
			"record");
	/* A set still works; it lasts as long as this registration. */
	ck_assert_int_eq(set_vm(&d, "old1", 55, -1, -1, -1), 0);
	expect_settings(&d, "old1", 55, 0, SET_MIB, 0, "set after adoption");
	expect_log(&d, "vm old1: its record is of version 2");
	/* Every page back from the slots the version 2 record named. */
	for (unsigned p = 0; p < (SET_MIB << 20) / PAGE; p++)
		ck_assert_uint_eq(((volatile unsigned char *)g.addr)[p * PAGE + 7],
				  p % 251 + 1);

	pk_client_detach(c);
	stop_once_detached(&d);
	pk_test_guest_destroy(&g);
}
END_TEST

/* One case per test, named after it: CK_RUN_CASE=name runs one. */
static void add(Suite *s, const char *name, const TTest *t)
{
	TCase *tc = tcase_create(name);

	/* A backstop: every wait inside has its own deadline. */
	tcase_set_timeout(tc, 120 * pk_test_time_scale());
	tcase_add_test(tc, t);
	suite_add_tcase(s, tc);
}

int main(void)
{
	Suite *s = suite_create("restart");
	SRunner *sr;
	int failed;

	add(s, "sigterm_keeps_state", sigterm_keeps_state);
	add(s, "grace_period", grace_period);
	add(s, "exited_while_down", exited_while_down);
	add(s, "identity", identity);
	add(s, "lock", lock);
	add(s, "discard_at_kill", discard_at_kill);
	add(s, "swap_file_lost", swap_file_lost);
	add(s, "set_survives_restart", set_survives_restart);
	add(s, "record_v2_loads", record_v2_loads);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
