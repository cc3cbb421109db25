/*
 * test_faults.c - fault-path errors against a real daemon and a real lab
 * guest: a failed ioctl never loses a page and never hangs a fault for
 * good (issue 13, item 4; engine/fault.c), and a failing swap file
 * (ENOSPC, EIO) never loses one either (engine/evict.c, engine/fault.c).
 *
 *  - copy_enomem: a pk-guestsim guest (32 MiB memfd RAM, every page
 *    unique) is evicted whole and moved into a fresh child memory
 *    cgroup (after its fill: the code and libraries it touched stay
 *    charged elsewhere, so the cgroup holds nothing reclaimable, and a
 *    page cache page reclaimed there cannot let a copy through now and
 *    block the guest in its own fault later); the cgroup's limit is
 *    lowered to what the guest uses plus a few MiB and its random
 *    workload faults its pages back.  Once the limit is
 *    reached, the daemon's UFFDIO_COPY of swapped pages fails with
 *    ENOMEM.  Checked: the daemon retries with back-off (fault_retries
 *    grows past what 1 s of doubling back-off takes, faults_waiting > 0),
 *    the guest is alive and blocked, not dead and not fed zeros, the
 *    daemon does not spin meanwhile (its CPU time over the hold), no page
 *    is poisoned.  Then the limit is lifted: the guest finishes, its
 *    --verify checks all 8192 pages with 0 mismatches, faults_waiting is
 *    back to 0 and the log says the faults are served again.
 *
 * How the kernel was made to say ENOMEM (measured on this machine kind,
 * Linux 6.18, memory cgroup v1): a UFFDIO_COPY (shmem or anonymous
 * destination) is charged to the destination mm's memory cgroup, i.e.
 * the guest's, whoever calls it.  Past memory.limit_in_bytes, with the
 * default memory.oom_control (oom_kill_disable 0) the charge runs the
 * cgroup's OOM killer: the guest is SIGKILLed, no ENOMEM.  With
 * oom_kill_disable 1 the ioctl, not being a user fault, gets -ENOMEM
 * (uffdio_copy.copy = -12) and the charge succeeds again once the limit
 * is raised; the guest's own non-uffd page faults meanwhile sleep in
 * mem_cgroup_oom_synchronize (state D) until then.  So the test sets
 * oom_kill_disable 1.  There is no kernel swap here, so nothing the
 * cgroup holds can be reclaimed.  Cgroup v2 has no oom_kill_disable (the
 * copy would OOM-kill the guest), so the test wants v1's memory
 * controller and fails, naming it, where there is none.
 *
 * The cgroup is made and removed by an unchecked fixture, in the runner
 * process: its teardown runs even when the test's process died on a
 * failed assertion.  It lifts the limit, SIGKILLs what is left in the
 * cgroup (only the guest this test started can be there) and removes it.
 *
 * Swap-file errors (engine/evict.c, engine/fault.c): ENOSPC and EIO stop
 * an eviction with a log line, a counter and a non-zero RECLAIM reply,
 * and the daemon serves every guest on; slot reads are retried before a
 * page is poisoned, and read-ahead never poisons a page.
 *
 *  - swap_enospc: ENOSPC from a real, full file system.  The daemon's
 *    --state-dir (its swap file) is on a tmpfs of TMPFS_MIB mounted for
 *    the test, the swap file (SWAP_MIB, preallocated) filling most of
 *    it.  A guest (8 MiB, a sequential reader) is evicted whole and
 *    reads its pages back, which frees their slots; the daemon's scrub
 *    punches them (at the second 1 s scrub after the free): the
 *    tmpfs's usage drops by the guest's size, as statfs shows.  A filler
 *    file then takes the tmpfs to its last page, and a RECLAIM, whose
 *    writes go to the punched (lowest) slots, meets ENOSPC: its reply
 *    is -ENOSPC with the reason "the swap file's file system is full",
 *    the log has one line ("writing the swap file failed (No space left
 *    on device)"), swap_write_errors counts it (VM and swap.write_errors),
 *    and no page left the guest.  With the filler gone the next RECLAIM
 *    evicts the whole guest, and its verify checks every page.
 *  - swap_enospc_filling: the same, but the filler leaves
 *    FILLING_FREE_PAGES pages free, fewer than one write of the daemon's
 *    (a batch's consecutive slots go out as one WRITEV), so the file
 *    system fills during the reclaim, as it does in real life: the first
 *    write comes back short (12288 of up to 1 MiB, a short count
 *    carries no errno), the others with ENOSPC.  The reply and the log
 *    must still say the file system is full.
 *  - swap_write_eio: EIO on swap-file writes.  A bystander guest is
 *    evicted whole first; the victim's RECLAIM then meets EIO after
 *    WRITE_EIO_AFTER good pages of its own: reply -EIO, "writing the
 *    swap file failed", one log line, swap_write_errors > 0, the pages
 *    that failed stay in the guest (resident + swapped = all).  The
 *    bystander faults every page back from the swap file and verifies
 *    it (the daemon serves every guest); once the failures are used up,
 *    a second RECLAIM of the victim evicts the rest, and it verifies
 *    every page.
 *  - swap_read_eio_transient: the first 2 slot reads fail (fewer than
 *    PK_SWAPIN_READ_TRIES), with --swap-readahead 1 so every read is a
 *    guest's fault: the reads are retried, swapin_read_retries is 2,
 *    nothing is poisoned, and the guest's verify checks every page.
 *  - swap_read_eio_lost: every slot read fails after READ_EIO_AFTER good
 *    pages, for good, with the default read-ahead of 32 pages.  A
 *    process_vm_readv of the guest's whole RAM (from outside, so the
 *    guest lives on to be asked about) faults it in sequentially,
 *    read-ahead and all, until the page it stops at: that page P is
 *    poisoned after PK_SWAPIN_READ_TRIES reads (the read returns
 *    exactly P pages, a second read of page P alone gets EFAULT, not
 *    zeros; the log says "PAGE P LOST ... (3 reads)"), while the
 *    read-ahead pages whose reads failed are given back with their
 *    slots (readahead_dropped > 0) and never poisoned (pages_poisoned
 *    is 1).  Then the guest's own verify dies of SIGBUS.  pk-guestsim
 *    has no SIGBUS handler and verifies with several threads, so its
 *    death does not say which page raised it; the remote read does.
 *
 * Where the errors come from.  ENOSPC is the kernel's: an io_uring
 * write into a hole of a full tmpfs.  Measured here (Linux 6.18): tmpfs
 * takes O_DIRECT (since 6.6), so the daemon's writes are direct
 * (status swap.direct_io true); a direct and a buffered write into a
 * hole both complete with -ENOSPC on a full tmpfs, and both come back
 * short (4096 of 8192 bytes) with one page free.  EIO is not: this
 * kernel has no device-mapper (CONFIG_MD unset: no error or flakey
 * target), no null_blk and no fault injection, so the EIO cases use the
 * daemon's test hook in the I/O layer, --test-swap-eio KIND:AFTER:COUNT
 * (swapper/swap_store.h, struct pk_swap_inject): a STAND-IN for a
 * failing disk, which turns the completions of real io_uring reads and
 * writes into -EIO; everything above the completion runs as it would.
 * The tmpfs is mounted by an unchecked fixture in the runner process and
 * lazily unmounted (MNT_DETACH: the killed daemon may still hold its
 * swap file) and its mount point removed, whatever the test did.
 *
 * Why: under memory pressure on an overcommitted host ENOMEM from
 * UFFDIO_COPY is the likely error; the old code marked the page resident
 * and freed its slot (the only copy) and never woke the faulting thread.
 * A swap file's disk fills up or fails: the daemon must say so, keep
 * every page it could not write, and never hand a guest wrong bytes for
 * one it cannot read.
 */
#include "engine/protocol.h"
#include "engine/vm.h"
#include "swapper/swap_store.h"
#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096
#define GUEST_MIB 32
#define GUEST_PAGES (GUEST_MIB * 256)
/* Room left in the cgroup above the guest's usage once it is evicted. */
#define HEADROOM_BYTES (4u << 20)

/*
 * Floor rates (test_swap.c measured these on this machine kind): a guest
 * fills at >= 20 MiB/s, faults >= 100 pages/s back while running random,
 * and a reclaim is pk_test_reclaim_work_ms().  BASE_MS covers a request's
 * round trip and a process's start or exit.
 */
#define FILL_MIB_PER_S 20
#define REFAULT_PAGES_PER_S 100
#define BASE_MS 2000
/* Retries of one fault that backs off 1 + 2 + ... + 512 ms (~1 s). */
#define RETRIES_FOR_A_SECOND 10

/* The cgroup of this run (made by the fixture in the runner process). */
static char memcg[1024];
static char memcg_error[1536];

static int write_file(const char *dir, const char *file, const char *val)
{
	char path[1280];
	int fd, ok;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ok = write(fd, val, strlen(val)) == (ssize_t)strlen(val);
	int err = ok ? 0 : -errno;
	close(fd);
	return err;
}

static long long read_num(const char *dir, const char *file)
{
	char path[1280];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (fscanf(f, "%lld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/* The v1 memory controller's mount point, or "" (memcg_error says why). */
static void memcg_mount(char *out, size_t len)
{
	char dev[256], dir[256], type[64], opts[512];
	FILE *f = fopen("/proc/mounts", "re");

	out[0] = 0;
	while (f && fscanf(f, "%255s %255s %63s %511s %*d %*d", dev, dir, type,
			   opts) == 4) {
		if (strcmp(type, "cgroup"))
			continue;
		for (char *o = strtok(opts, ","); o; o = strtok(NULL, ","))
			if (!strcmp(o, "memory")) {
				snprintf(out, len, "%s", dir);
				fclose(f);
				return;
			}
	}
	if (f)
		fclose(f);
}

/* This process's memory cgroup path (v1), or "/". */
static void memcg_self(char *out, size_t len)
{
	char line[1024];
	FILE *f = fopen("/proc/self/cgroup", "re");

	snprintf(out, len, "/");
	while (f && fgets(line, sizeof(line), f)) {
		char *c = strstr(line, ":memory:");
		if (c) {
			c[strcspn(c, "\n")] = 0;
			snprintf(out, len, "%s", c + strlen(":memory:"));
		}
	}
	if (f)
		fclose(f);
}

/* Unchecked fixture: runs in the runner process, whatever the test did. */
static void memcg_setup(void)
{
	char mnt[256], self[256];

	memcg[0] = memcg_error[0] = 0;
	memcg_mount(mnt, sizeof(mnt));
	if (!mnt[0]) {
		snprintf(memcg_error, sizeof(memcg_error),
			 "no cgroup v1 memory controller is mounted (see "
			 "/proc/mounts): the test needs it (cgroup v2 has no "
			 "oom_kill_disable, so a UFFDIO_COPY past memory.max "
			 "OOM-kills the guest instead of failing with ENOMEM)");
		return;
	}
	memcg_self(self, sizeof(self));
	snprintf(memcg, sizeof(memcg), "%s%s/pk-test-faults-%d", mnt,
		 strcmp(self, "/") ? self : "", (int)getpid());
	if (mkdir(memcg, 0755) < 0 && errno != EEXIST) {
		snprintf(memcg_error, sizeof(memcg_error),
			 "cannot create the memory cgroup %s: %s", memcg,
			 strerror(errno));
		memcg[0] = 0;
	}
}

static void memcg_teardown(void)
{
	char path[1280];

	if (!memcg[0])
		return;
	/* Tasks in an OOM wait need the limit lifted to go anywhere. */
	write_file(memcg, "memory.limit_in_bytes", "-1");
	snprintf(path, sizeof(path), "%s/cgroup.procs", memcg);
	for (int i = 0; i < 100; i++) {
		FILE *f = fopen(path, "re");
		int pid, any = 0;
		while (f && fscanf(f, "%d", &pid) == 1) {
			kill(pid, SIGKILL); /* only our guest can be here */
			any = 1;
		}
		if (f)
			fclose(f);
		if (!any && rmdir(memcg) == 0)
			break;
		usleep(50 * 1000);
	}
	if (access(memcg, F_OK) == 0)
		fprintf(stderr, "test_faults: could not remove %s\n", memcg);
	memcg[0] = 0;
}

/* The daemon's CPU time so far, in ms (utime + stime). */
static double cpu_ms(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	ck_assert_msg(f, "cannot read %s", path);
	ck_assert(fgets(buf, sizeof(buf), f));
	fclose(f);
	p = strrchr(buf, ')');
	ck_assert(p);
	/* after ')': state(3) ... utime(14) stime(15) */
	ck_assert(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			       "%lu %lu", &ut, &st) == 2);
	return (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

START_TEST(copy_enomem)
{
	struct pk_test_daemon d;
	struct pk_reclaim_reply r;
	struct guest g;
	json_object *res;
	char val[64];
	long long usage;
	int err;
	const char *gx[] = { "--size", "32M", "--content", "zero=0,shared=0",
			     "--idle-before", "3600", "--workload", "random",
			     "--writers", "1", "--readers", "1",
			     "--duration", "1", "--verify", "--json", NULL };

	ck_assert_msg(memcg[0], "%s", memcg_error);
	ck_assert_int_eq(write_file(memcg, "memory.oom_control", "1"), 0);
	ck_assert_msg(pk_test_daemon_start(&d, "--swap-size 64M") == 0, "%s",
		      d.error);

	guest_start(&g, d.sock, "faulty", gx);
	guest_expect(&g, "IDLE", NULL,
		     pk_test_deadline_ms(BASE_MS + GUEST_MIB * 1000 /
						   FILL_MIB_PER_S),
		     "fill");
	ck_assert_int_eq(pk_test_reclaim(d.sock, "faulty", GUEST_MIB << 20, &r),
			 0);
	ck_assert_uint_eq(r.pages_swapped, GUEST_PAGES);
	/* Moved in only now: what it touched so far (code, libraries) stays
	 * charged where it was, so the cgroup holds nothing reclaimable
	 * whose loss would block the guest outside its uffd faults. */
	snprintf(val, sizeof(val), "%d", (int)g.pid);
	err = write_file(memcg, "cgroup.procs", val);
	ck_assert_msg(err == 0, "moving guest %d into %s: %s", (int)g.pid,
		      memcg, strerror(-err));

	/* What the guest's refaults are charged against: a few MiB. */
	usage = read_num(memcg, "memory.usage_in_bytes");
	ck_assert_int_ge(usage, 0);
	snprintf(val, sizeof(val), "%lld", usage + HEADROOM_BYTES);
	ck_assert_int_eq(write_file(memcg, "memory.limit_in_bytes", val), 0);
	ck_assert_int_eq(kill(g.pid, SIGUSR1), 0); /* the workload goes */

	/* The limit is met: the copies fail and back off. */
	WAIT_FOR(vm_field(&d, "faulty", "fault_retries") > 0 &&
		 vm_field(&d, "faulty", "faults_waiting") > 0,
		 BASE_MS + (long)(HEADROOM_BYTES / PAGE) * 1000 /
				   REFAULT_PAGES_PER_S,
		 50, "fault_retries > 0 (%.0f) and faults_waiting > 0 (%.0f): "
		 "UFFDIO_COPY meeting the cgroup limit (usage %lld of %s)",
		 vm_field(&d, "faulty", "fault_retries"),
		 vm_field(&d, "faulty", "faults_waiting"),
		 read_num(memcg, "memory.usage_in_bytes"), val);
	long held_from = pk_test_now_ms();
	double cpu0 = cpu_ms(d.pid);
	double retries0 = vm_field(&d, "faulty", "fault_retries");
	double waiting0 = vm_field(&d, "faulty", "faults_waiting");
	double want = RETRIES_FOR_A_SECOND * waiting0;
	if (want < retries0 + 2 * waiting0)
		want = retries0 + 2 * waiting0; /* and it goes on */

	/* Held for a second of back-off at least (each waiting fault
	 * retried RETRIES_FOR_A_SECOND times); alive all along. */
	WAIT_FOR(!pk_test_pid_running(g.pid) ||
		 vm_field(&d, "faulty", "fault_retries") >= want,
		 BASE_MS + 1100, 50, "fault_retries >= %.0f (%.0f now)", want,
		 vm_field(&d, "faulty", "fault_retries"));
	ck_assert_msg(pk_test_pid_running(g.pid),
		      "the guest died while its faults met the cgroup limit");
	long held_ms = pk_test_now_ms() - held_from;
	double cpu_held = cpu_ms(d.pid) - cpu0;
	double retries = vm_field(&d, "faulty", "fault_retries");
	double waiting = vm_field(&d, "faulty", "faults_waiting");
	char state = proc_state(g.pid);
	long long failcnt = read_num(memcg, "memory.failcnt");
	fprintf(stderr, "copy_enomem: held %ld ms: fault_retries %.0f -> %.0f, "
		"faults_waiting %.0f, daemon CPU %.0f ms, guest state %c, "
		"memcg failcnt %lld\n", held_ms, retries0, retries, waiting,
		cpu_held, state, failcnt);
	ck_assert_msg(waiting > 0, "faults_waiting is 0 while the limit holds");
	ck_assert_msg(vm_field(&d, "faulty", "pages_poisoned") == 0,
		      "pages poisoned under ENOMEM: %.0f",
		      vm_field(&d, "faulty", "pages_poisoned"));
	/* Back-off, not a busy loop: most of the hold the daemon sleeps. */
	ck_assert_msg(cpu_held < held_ms * 0.5, "daemon used %.0f ms of CPU "
		      "in %ld ms of back-off", cpu_held, held_ms);
	ck_assert_msg(file_has(d.log, "vm faulty: UFFDIO_COPY of a swapped "
				      "page: Cannot allocate memory"),
		      "no log line about the ENOMEM episode in %s", d.log);

	/* The limit goes: every page comes back, every byte right. */
	long released = pk_test_now_ms();
	ck_assert_int_eq(write_file(memcg, "memory.limit_in_bytes", "-1"), 0);
	guest_expect(&g, NULL, &res,
		     pk_test_deadline_ms(BASE_MS + 1000 + GUEST_PAGES * 1000L /
							  REFAULT_PAGES_PER_S),
		     "workload, verify and result after the limit was lifted");
	ck_assert_msg(res, "the guest printed no result");
	fprintf(stderr, "copy_enomem: guest done %ld ms after the limit was "
		"lifted; %.0f pages verified, %.0f mismatches\n",
		pk_test_now_ms() - released, jnum(res, "pages_verified"),
		jnum(res, "mismatches"));
	ck_assert_msg(jnum(res, "mismatches") == 0, "%.0f mismatches",
		      jnum(res, "mismatches"));
	ck_assert_msg(jnum(res, "pages_verified") == GUEST_PAGES,
		      "verified %.0f of %d pages", jnum(res, "pages_verified"),
		      GUEST_PAGES);
	json_object_put(res);
	ck_assert_int_eq(guest_finish(&g, BASE_MS), 0);
	WAIT_FOR(file_has(d.log, "vm faulty: faults served again after"),
		 BASE_MS, 20, "the log line that the episode ended");
	ck_assert(pk_test_daemon_alive(&d));
	pk_test_daemon_stop_ok(&d);
}
END_TEST

/* ---- Swap-file errors: ENOSPC (real), EIO (the test hook) ------------ */

/* Swap-ins of a guest's own faults: >= 2000 pages/s (test_swap.c). */
#define SWAPIN_PAGES_PER_S 2000
/* The daemon's scrub runs every second; a freed slot is punched at the
 * second scrub after its free (swapper/swap_slots.h). */
#define SCRUB_MS 1000

#define TMPFS_MIB 20
#define SWAP_MIB 16
#define ENOSPC_GUEST_MIB 8
#define ENOSPC_GUEST_PAGES (ENOSPC_GUEST_MIB * 256)
/* Pages left free for a reclaim to fill the file system part-way. */
#define FILLING_FREE_PAGES 3

#define EIO_GUEST_MIB 16
#define EIO_GUEST_PAGES (EIO_GUEST_MIB * 256)
#define BYSTANDER_MIB 8
#define BYSTANDER_PAGES (BYSTANDER_MIB * 256)
/* Good pages of the victim's own before its writes fail, and how many
 * pages' writes fail (one batch of the daemon's). */
#define WRITE_EIO_AFTER 1024
#define WRITE_EIO_COUNT 64
/* Transient read errors: fewer than PK_SWAPIN_READ_TRIES. */
#define READ_EIO_TRANSIENT 2
/* Permanent read errors after this many good pages. */
#define READ_EIO_AFTER 1024
#define READAHEAD_DEFAULT 32 /* pagekeeperd's --swap-readahead default */

static long swapin_ms(uint64_t pages)
{
	return BASE_MS + (long)(pages * 1000 / SWAPIN_PAGES_PER_S);
}

static long fill_ms(double mib)
{
	return BASE_MS + (long)(mib * 1000 / FILL_MIB_PER_S);
}

/* The tmpfs of this run (mounted by the fixture in the runner process). */
static char tmpfs_dir[64];
static char tmpfs_error[512];

static void tmpfs_setup(void)
{
	char opts[64];

	tmpfs_error[0] = 0;
	snprintf(tmpfs_dir, sizeof(tmpfs_dir), "/tmp/pk-faults-tmpfs-XXXXXX");
	if (!mkdtemp(tmpfs_dir)) {
		snprintf(tmpfs_error, sizeof(tmpfs_error), "mkdtemp %s: %s",
			 tmpfs_dir, strerror(errno));
		tmpfs_dir[0] = 0;
		return;
	}
	snprintf(opts, sizeof(opts), "size=%dm,mode=0700", TMPFS_MIB);
	if (mount("pk-faults", tmpfs_dir, "tmpfs", MS_NOSUID | MS_NODEV,
		  opts) < 0) {
		snprintf(tmpfs_error, sizeof(tmpfs_error), "mount tmpfs (%s) "
			 "on %s: %s (the test needs root to mount a small "
			 "file system)", opts, tmpfs_dir, strerror(errno));
		rmdir(tmpfs_dir);
		tmpfs_dir[0] = 0;
	}
}

static void tmpfs_teardown(void)
{
	if (!tmpfs_dir[0])
		return;
	/* Lazily: a daemon killed with the test may hold its swap file for
	 * a moment still; the file system goes when the last file does. */
	if (umount2(tmpfs_dir, MNT_DETACH) < 0)
		fprintf(stderr, "test_faults: umount %s: %s\n", tmpfs_dir,
			strerror(errno));
	if (rmdir(tmpfs_dir) < 0)
		fprintf(stderr, "test_faults: rmdir %s: %s\n", tmpfs_dir,
			strerror(errno));
	tmpfs_dir[0] = 0;
}

/* Bytes in use on the file system of path, and free (statfs). */
static void fs_usage(const char *path, uint64_t *used, uint64_t *avail)
{
	struct statfs sf;

	ck_assert_msg(statfs(path, &sf) == 0, "statfs %s: %s", path,
		      strerror(errno));
	*used = (uint64_t)(sf.f_blocks - sf.f_bfree) * (uint64_t)sf.f_bsize;
	*avail = (uint64_t)sf.f_bavail * (uint64_t)sf.f_bsize;
}

static uint64_t fs_used(const char *path)
{
	uint64_t used, avail;

	fs_usage(path, &used, &avail);
	return used;
}

/* Fill the file system of dir to its last page with a file at path:
 * write pages until ENOSPC.  Returns the bytes written. */
static uint64_t fill_fs(const char *path)
{
	static char page[PAGE];
	uint64_t done = 0;
	ssize_t n;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
	memset(page, 0xa5, sizeof(page));
	while ((n = write(fd, page, sizeof(page))) > 0)
		done += (uint64_t)n;
	ck_assert_msg(n < 0 && errno == ENOSPC, "filling %s: %s after %llu "
		      "bytes, not ENOSPC", path, n < 0 ? strerror(errno)
		      : "end of writes", (unsigned long long)done);
	close(fd);
	return done;
}

/* Lines of the file at path that contain text. */
static int count_lines(const char *path, const char *text)
{
	char line[4096];
	int n = 0;
	FILE *f = fopen(path, "re");

	while (f && fgets(line, sizeof(line), f))
		n += strstr(line, text) != NULL;
	if (f)
		fclose(f);
	return n;
}

/* res says every one of g's pages verified, every byte right; consumes
 * res. */
static void check_verified(const struct guest *g, json_object *res,
			   double pages)
{
	ck_assert_msg(res, "guest %s printed no result", g->name);
	fprintf(stderr, "test_faults: guest %s: %.0f pages verified, %.0f "
		"mismatches\n", g->name, jnum(res, "pages_verified"),
		jnum(res, "mismatches"));
	ck_assert_msg(jnum(res, "mismatches") == 0, "guest %s: %.0f mismatches",
		      g->name, jnum(res, "mismatches"));
	ck_assert_msg(jnum(res, "pages_verified") == pages,
		      "guest %s verified %.0f of its %.0f pages", g->name,
		      jnum(res, "pages_verified"), pages);
	json_object_put(res);
}

/* SIGTERM g (its workload ends, its verify swaps back up to `pages`) and
 * check that it verified all `pages`; it exits 0. */
static void stop_verified(struct guest *g, uint64_t pages)
{
	json_object *res;

	ck_assert_int_eq(kill(g->pid, SIGTERM), 0);
	guest_expect(g, NULL, &res, pk_test_deadline_ms(swapin_ms(pages)),
		     "verify and result after SIGTERM");
	if (!res) {
		int st = guest_finish(g, BASE_MS);
		ck_abort_msg("guest %s printed no result: it ended with %s %d "
			     "in its verify", g->name, st < 0 ? "signal"
			     : "exit status", st < 0 ? -st : st);
	}
	check_verified(g, res, (double)pages);
	ck_assert_int_eq(guest_finish(g, BASE_MS), 0);
}

/* Where pid maps its pk-guestsim memfd (the guest's RAM). */
static uintptr_t guest_ram_addr(pid_t pid)
{
	char path[64], line[512];
	uintptr_t lo = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	ck_assert_msg(f, "open %s", path);
	while (!lo && fgets(line, sizeof(line), f))
		if (strstr(line, "/memfd:pk-guestsim"))
			lo = (uintptr_t)strtoull(line, NULL, 16);
	fclose(f);
	ck_assert_msg(lo, "no pk-guestsim memfd mapping in %s", path);
	return lo;
}

/*
 * Read len bytes of pid's memory at addr with one process_vm_readv, as a
 * debugger or a migration would, in a child (the read blocks in the
 * guest's faults until the daemon answers them), awaited until deadline.
 * Returns the bytes read; *err gets the call's errno when it read nothing
 * more (0 when it read all).  A poisoned page stops the read there.
 */
static int64_t remote_read(pid_t pid, uintptr_t addr, size_t len,
			   long deadline, int *err)
{
	struct { int64_t n; int err; } out = { -1, 0 };
	int p[2], st;
	pid_t c;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	c = fork();
	ck_assert_int_ge(c, 0);
	if (c == 0) {
		char *buf = malloc(len);
		struct iovec l = { buf, len }, r = { (void *)addr, len };
		int64_t n = buf ? process_vm_readv(pid, &l, 1, &r, 1, 0) : -1;
		out.n = n;
		out.err = n < 0 ? errno : 0;
		/* A partial read: ask the page after for its errno. */
		if (n >= 0 && (size_t)n < len) {
			struct iovec l1 = { buf, PAGE },
				     r1 = { (char *)addr + n, PAGE };
			out.err = process_vm_readv(pid, &l1, 1, &r1, 1, 0) < 0
				  ? errno : 0;
		}
		_exit(write(p[1], &out, sizeof(out)) == sizeof(out) ? 0 : 1);
	}
	close(p[1]);
	while (waitpid(c, &st, WNOHANG) == 0) {
		if (pk_test_now_ms() >= deadline) {
			kill(c, SIGKILL);
			waitpid(c, &st, 0);
			close(p[0]);
			ck_abort_msg("timed out waiting for process_vm_readv of "
				     "%zu bytes of pid %d at 0x%lx", len,
				     (int)pid, (unsigned long)addr);
		}
		sleep_ms(5);
	}
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
		      read(p[0], &out, sizeof(out)) == sizeof(out),
		      "process_vm_readv child: status 0x%x", st);
	close(p[0]);
	*err = out.err;
	return out.n;
}

/*
 * ENOSPC, first part: a daemon whose swap file is on the test's tmpfs,
 * and guest g ("full", a sequential reader) evicted whole and read back,
 * its freed slots punched by the scrub: the next eviction writes into
 * holes, which need pages of the tmpfs.
 */
static void enospc_start(struct pk_test_daemon *d, struct guest *g,
			 const char *test)
{
	struct pk_reclaim_reply r;
	char args[512], state[128];
	uint64_t used_start, used_evicted;
	const char *gx[] = { "--size", "8M", "--content", "zero=0,shared=0",
			     "--idle-before", "3600", "--workload", "seq",
			     "--writers", "0", "--readers", "1",
			     "--duration", "3600", "--verify", "--json", NULL };

	ck_assert_msg(tmpfs_dir[0], "%s", tmpfs_error);
	snprintf(state, sizeof(state), "%s/state", tmpfs_dir);
	/* The later --state-dir wins: the swap file goes on the tmpfs. */
	snprintf(args, sizeof(args), "--swap-size %dM --state-dir %s",
		 SWAP_MIB, state);
	ck_assert_msg(pk_test_daemon_start(d, args) == 0, "%s", d->error);
	used_start = fs_used(tmpfs_dir);
	fprintf(stderr, "%s: tmpfs %d MiB, %.1f MiB used with the swap file "
		"(%d MiB); direct_io %.0f\n", test, TMPFS_MIB,
		used_start / 1048576.0, SWAP_MIB,
		status_field(d, "swap", "direct_io"));
	ck_assert_msg(used_start >= (uint64_t)SWAP_MIB << 20,
		      "the swap file is not preallocated: %llu bytes used",
		      (unsigned long long)used_start);

	guest_start(g, d->sock, "full", gx);
	guest_expect(g, "IDLE", NULL,
		     pk_test_deadline_ms(fill_ms(ENOSPC_GUEST_MIB)), "fill");
	ck_assert_int_eq(pk_test_reclaim(d->sock, "full",
					 ENOSPC_GUEST_MIB << 20, &r), 0);
	ck_assert_uint_eq(r.pages_swapped, ENOSPC_GUEST_PAGES);
	used_evicted = fs_used(tmpfs_dir);

	/* The guest reads its pages back: their slots are freed, then
	 * punched by the scrub; the tmpfs gives their space back. */
	ck_assert_int_eq(kill(g->pid, SIGUSR1), 0);
	WAIT_FOR(status_field(d, "swap", "slots_used") == 0 &&
		 vm_field(d, "full", "swapped_mib") == 0,
		 swapin_ms(ENOSPC_GUEST_PAGES), 20, "the guest's reader to "
		 "swap every page back (slots_used %.0f, swapped_mib %.2f)",
		 status_field(d, "swap", "slots_used"),
		 vm_field(d, "full", "swapped_mib"));
	WAIT_FOR(fs_used(tmpfs_dir) + ((uint64_t)ENOSPC_GUEST_MIB << 20) <=
			 used_evicted,
		 BASE_MS + 3 * SCRUB_MS, 20, "the scrub to punch the %d "
		 "freed slots (tmpfs used %.2f MiB, %.2f MiB after the "
		 "eviction)", ENOSPC_GUEST_PAGES,
		 fs_used(tmpfs_dir) / 1048576.0, used_evicted / 1048576.0);
}

/*
 * ENOSPC, the checks: RECLAIM of the whole guest with the tmpfs full
 * (or filling up) stops with -ENOSPC, the reason and one log line say the
 * file system is full, the counters count it, and no page that was not
 * written whole left the guest.  Then the filler goes, a reclaim
 * succeeds, and the guest verifies every page.
 */
static void enospc_check(struct pk_test_daemon *d, struct guest *g,
			 const char *test, const char *filler)
{
	struct pk_reclaim_reply r;
	uint64_t used, avail;
	int st;

	fs_usage(tmpfs_dir, &used, &avail);
	st = pk_test_reclaim(d->sock, "full", ENOSPC_GUEST_MIB << 20, &r);
	fprintf(stderr, "%s: RECLAIM with %llu bytes free: status %d (%s), "
		"reason \"%s\", %llu pages swapped; swap_write_errors %.0f "
		"(swap.write_errors %.0f, io_errors %.0f)\n", test,
		(unsigned long long)avail, st, strerror(-st), r.reason,
		(unsigned long long)r.pages_swapped,
		vm_field(d, "full", "swap_write_errors"),
		status_field(d, "swap", "write_errors"),
		status_field(d, "swap", "io_errors"));
	ck_assert_msg(st == -ENOSPC, "RECLAIM with the swap file's file "
		      "system full (%llu bytes free): status %d (%s), not "
		      "-ENOSPC; reason \"%s\"", (unsigned long long)avail, st,
		      strerror(-st), r.reason);
	ck_assert_msg(strstr(r.reason, "file system is full"),
		      "reason \"%s\" does not say the file system is full",
		      r.reason);
	/* At most the pages that had room were evicted. */
	ck_assert_uint_le(r.pages_swapped, avail / PAGE);
	ck_assert_msg(vm_field(d, "full", "swap_write_errors") > 0,
		      "swap_write_errors of the VM is 0 after ENOSPC");
	ck_assert_double_eq(status_field(d, "swap", "write_errors"),
			    vm_field(d, "full", "swap_write_errors"));
	ck_assert_int_eq(count_lines(d->log, "writing the swap file failed"), 1);
	ck_assert_msg(file_has(d->log, "vm full: writing the swap file failed "
				       "(No space left on device)"),
		      "no log line naming ENOSPC in %s", d->log);
	/* Every other page is still in the guest (its reader may have
	 * faulted some of the evicted ones back already). */
	static const char *const keys[] = { "swapped_mib", "resident_mib",
					    NULL };
	double f[2];
	vm_fields(d, "full", keys, f);
	double swapped = f[0] * 256;
	ck_assert_double_le(swapped, r.pages_swapped);
	ck_assert_double_eq(f[1] * 256 + swapped, ENOSPC_GUEST_PAGES);
	ck_assert_double_le(status_field(d, "swap", "slots_used"),
			    r.pages_swapped);
	ck_assert(pk_test_daemon_alive(d));

	/* Room again: the same reclaim goes through. */
	uint64_t before = r.pages_swapped;
	ck_assert_int_eq(unlink(filler), 0);
	st = pk_test_reclaim(d->sock, "full", ENOSPC_GUEST_MIB << 20, &r);
	ck_assert_msg(st == 0, "RECLAIM after the filler went: status %d "
		      "(%s)", st, r.reason);
	/* Every page still resident went (and some the reader faulted back
	 * after the first reclaim went again). */
	ck_assert_uint_ge(before + r.pages_swapped, ENOSPC_GUEST_PAGES);
	/* Its reader faults them back; its verify checks every byte. */
	stop_verified(g, ENOSPC_GUEST_PAGES);
	ck_assert_int_eq(count_lines(d->log, "writing the swap file failed"), 1);
	pk_test_daemon_stop_ok(d);
}

START_TEST(swap_enospc)
{
	struct pk_test_daemon d;
	struct guest g;
	char filler[128];
	uint64_t filled, used, avail;

	enospc_start(&d, &g, "swap_enospc");
	/* Nothing left: the punched slots need pages the tmpfs lacks. */
	snprintf(filler, sizeof(filler), "%s/filler", tmpfs_dir);
	filled = fill_fs(filler);
	fs_usage(tmpfs_dir, &used, &avail);
	fprintf(stderr, "swap_enospc: filler %.2f MiB; tmpfs %.2f MiB used, "
		"%llu bytes free\n", filled / 1048576.0, used / 1048576.0,
		(unsigned long long)avail);
	ck_assert_uint_eq(avail, 0);
	enospc_check(&d, &g, "swap_enospc", filler);
}
END_TEST

/*
 * The file system fills during the reclaim: a few pages free, fewer than
 * one write of the daemon's (a run of a batch's slots), so the first
 * write is short and the rest meet ENOSPC.  That is a full file system
 * still, and the reply and the log must say so.
 */
START_TEST(swap_enospc_filling)
{
	struct pk_test_daemon d;
	struct guest g;
	char filler[128];
	uint64_t filled, used, avail;

	enospc_start(&d, &g, "swap_enospc_filling");
	snprintf(filler, sizeof(filler), "%s/filler", tmpfs_dir);
	filled = fill_fs(filler);
	ck_assert_int_eq(truncate(filler, (off_t)(filled - FILLING_FREE_PAGES *
						  PAGE)), 0);
	fs_usage(tmpfs_dir, &used, &avail);
	ck_assert_uint_eq(avail, FILLING_FREE_PAGES * PAGE);
	enospc_check(&d, &g, "swap_enospc_filling", filler);
}
END_TEST

START_TEST(swap_write_eio)
{
	struct pk_test_daemon d;
	struct pk_reclaim_reply r;
	struct guest victim, bystander;
	char args[256];
	double swapped, resident, errs;
	int st;
	const char *vx[] = { "--size", "16M", "--content", "zero=0,shared=0",
			     "--idle-before", "3600", "--workload", "idle",
			     "--duration", "3600", "--verify", "--json", NULL };
	const char *bx[] = { "--size", "8M", "--content", "zero=0,shared=0",
			     "--idle-before", "3600", "--workload", "random",
			     "--duration", "3600", "--verify", "--json", NULL };

	/* The stand-in for a failing disk (see the top of this file). */
	snprintf(args, sizeof(args), "--swap-size 64M --test-swap-eio "
		 "write:%d:%d", BYSTANDER_PAGES + WRITE_EIO_AFTER,
		 WRITE_EIO_COUNT);
	ck_assert_msg(pk_test_daemon_start(&d, args) == 0, "%s", d.error);

	guest_start(&bystander, d.sock, "bystander", bx);
	guest_start(&victim, d.sock, "victim", vx);
	guest_expect(&bystander, "IDLE", NULL,
		     pk_test_deadline_ms(fill_ms(BYSTANDER_MIB)), "fill");
	guest_expect(&victim, "IDLE", NULL,
		     pk_test_deadline_ms(fill_ms(EIO_GUEST_MIB)), "fill");
	ck_assert_int_eq(pk_test_reclaim(d.sock, "bystander",
					 BYSTANDER_MIB << 20, &r), 0);
	ck_assert_uint_eq(r.pages_swapped, BYSTANDER_PAGES);

	st = pk_test_reclaim(d.sock, "victim", EIO_GUEST_MIB << 20, &r);
	static const char *const keys[] = { "swap_write_errors",
					    "swapped_mib", "resident_mib",
					    NULL };
	double f[3];
	vm_fields(&d, "victim", keys, f);
	errs = f[0];
	swapped = f[1] * 256;
	resident = f[2] * 256;
	fprintf(stderr, "swap_write_eio: RECLAIM status %d (%s), reason "
		"\"%s\", %llu pages swapped; swap_write_errors %.0f "
		"(swap.write_errors %.0f, io_errors %.0f); victim %.0f "
		"pages swapped, %.0f resident\n", st, strerror(-st), r.reason,
		(unsigned long long)r.pages_swapped, errs,
		status_field(&d, "swap", "write_errors"),
		status_field(&d, "swap", "io_errors"), swapped, resident);
	ck_assert_msg(st == -EIO, "RECLAIM meeting write errors: status %d "
		      "(%s), not -EIO; reason \"%s\"", st, strerror(-st),
		      r.reason);
	ck_assert_msg(strstr(r.reason, "writing the swap file failed"),
		      "reason \"%s\"", r.reason);
	ck_assert_int_eq(count_lines(d.log, "writing the swap file failed"), 1);
	ck_assert_msg(file_has(d.log, "vm victim: writing the swap file failed "
				      "(Input/output error): eviction stops"),
		      "no log line naming EIO in %s", d.log);
	/* A failed write fails every page of its run (one WRITEV of up to
	 * PK_SWAP_RUN_MAX consecutive slots), so the pages counted may pass
	 * the hook's COUNT by less than one run. */
	ck_assert_msg(errs > 0 && errs < WRITE_EIO_COUNT + PK_SWAP_RUN_MAX,
		      "swap_write_errors %.0f, not 1..%u", errs,
		      WRITE_EIO_COUNT + PK_SWAP_RUN_MAX - 1);
	ck_assert_double_eq(status_field(&d, "swap", "write_errors"), errs);
	ck_assert_double_ge(status_field(&d, "swap", "io_errors"), errs);
	ck_assert_double_eq(vm_field(&d, "bystander", "swap_write_errors"), 0);
	/* What was written before the errors stays evicted; what failed
	 * (and the rest) stays in the guest. */
	ck_assert_uint_ge(r.pages_swapped, WRITE_EIO_AFTER);
	ck_assert_double_eq(swapped, (double)r.pages_swapped);
	ck_assert_double_eq(swapped + resident, EIO_GUEST_PAGES);
	ck_assert_double_ge(resident, errs);

	/* Every guest is still served: the bystander swaps all its pages
	 * back in and verifies them. */
	ck_assert_int_eq(kill(bystander.pid, SIGUSR1), 0);
	stop_verified(&bystander, BYSTANDER_PAGES);

	/* The failures are used up: the next reclaim evicts the rest. */
	uint64_t before = r.pages_swapped;
	st = pk_test_reclaim(d.sock, "victim", EIO_GUEST_MIB << 20, &r);
	ck_assert_msg(st == 0, "second RECLAIM: status %d (%s)", st, r.reason);
	ck_assert_uint_eq(r.pages_swapped, EIO_GUEST_PAGES - before);
	ck_assert_double_eq(vm_field(&d, "victim", "swapped_mib"),
			    EIO_GUEST_MIB);
	stop_verified(&victim, EIO_GUEST_PAGES);
	ck_assert_int_eq(count_lines(d.log, "writing the swap file failed"), 1);
	ck_assert(pk_test_daemon_alive(&d));
	pk_test_daemon_stop_ok(&d);
}
END_TEST

START_TEST(swap_read_eio_transient)
{
	struct pk_test_daemon d;
	struct pk_reclaim_reply r;
	struct guest g;
	json_object *res;
	char args[256];
	const char *gx[] = { "--size", "16M", "--content", "zero=0,shared=0",
			     "--idle-before", "3600", "--workload", "idle",
			     "--duration", "0", "--verify", "--json", "--hold",
			     NULL };

	ck_assert(READ_EIO_TRANSIENT < PK_SWAPIN_READ_TRIES);
	/* The stand-in for a failing disk (see the top of this file); one
	 * read per fault, so each failed read is a guest's fault. */
	snprintf(args, sizeof(args), "--swap-size 64M --swap-readahead 1 "
		 "--test-swap-eio read:0:%d", READ_EIO_TRANSIENT);
	ck_assert_msg(pk_test_daemon_start(&d, args) == 0, "%s", d.error);
	guest_start(&g, d.sock, "flaky", gx);
	guest_expect(&g, "IDLE", NULL,
		     pk_test_deadline_ms(fill_ms(EIO_GUEST_MIB)), "fill");
	ck_assert_int_eq(pk_test_reclaim(d.sock, "flaky", EIO_GUEST_MIB << 20,
					 &r), 0);
	ck_assert_uint_eq(r.pages_swapped, EIO_GUEST_PAGES);

	/* Its verify faults every page back; the first reads fail. */
	ck_assert_int_eq(kill(g.pid, SIGUSR1), 0);
	guest_expect(&g, "HOLDING", &res,
		     pk_test_deadline_ms(swapin_ms(EIO_GUEST_PAGES)),
		     "verify and result");
	fprintf(stderr, "swap_read_eio_transient: swapin_read_retries %.0f, "
		"fault_retries %.0f, pages_poisoned %.0f, swapins %.0f, "
		"readahead_dropped %.0f, swap.io_errors %.0f\n",
		vm_field(&d, "flaky", "swapin_read_retries"),
		vm_field(&d, "flaky", "fault_retries"),
		vm_field(&d, "flaky", "pages_poisoned"),
		vm_field(&d, "flaky", "swapins"),
		vm_field(&d, "flaky", "readahead_dropped"),
		status_field(&d, "swap", "io_errors"));
	check_verified(&g, res, EIO_GUEST_PAGES);
	ck_assert_double_eq(status_field(&d, "swap", "io_errors"),
			    READ_EIO_TRANSIENT);
	ck_assert_double_eq(vm_field(&d, "flaky", "swapin_read_retries"),
			    READ_EIO_TRANSIENT);
	ck_assert_double_ge(vm_field(&d, "flaky", "fault_retries"),
			    READ_EIO_TRANSIENT);
	ck_assert_double_eq(vm_field(&d, "flaky", "pages_poisoned"), 0);
	ck_assert_double_eq(vm_field(&d, "flaky", "readahead_dropped"), 0);
	ck_assert_double_eq(vm_field(&d, "flaky", "swapins"), EIO_GUEST_PAGES);
	ck_assert_double_eq(vm_field(&d, "flaky", "faults_waiting"), 0);
	ck_assert_msg(file_has(d.log, "vm flaky: swap slot read: Input/output "
				      "error; its faults wait"),
		      "no log line about the failed reads in %s", d.log);
	ck_assert_msg(!file_has(d.log, "LOST"), "a page was lost, see %s",
		      d.log);
	ck_assert_int_eq(guest_finish(&g, BASE_MS), 0);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

START_TEST(swap_read_eio_lost)
{
	struct pk_test_daemon d;
	struct pk_reclaim_reply r;
	struct guest g;
	char args[256], line[128], opts[512];
	int64_t got;
	int err;
	const char *gx[] = { "--size", "16M", "--content", "zero=0,shared=0",
			     "--idle-before", "3600", "--workload", "idle",
			     "--duration", "3600", "--verify", NULL };

	/* The stand-in for a failing disk (see the top of this file): after
	 * READ_EIO_AFTER good pages every read fails. */
	snprintf(args, sizeof(args), "--swap-size 64M --test-swap-eio "
		 "read:%d:%d", READ_EIO_AFTER, 1 << 30);
	ck_assert_msg(pk_test_daemon_start(&d, args) == 0, "%s", d.error);
	/* Under ASan the guest must die of the SIGBUS itself, not have
	 * ASan turn it into an abort. */
	const char *asan = getenv("ASAN_OPTIONS");
	snprintf(opts, sizeof(opts), "%s%shandle_sigbus=0", asan ? asan : "",
		 asan ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1);

	guest_start(&g, d.sock, "lossy", gx);
	guest_expect(&g, "IDLE", NULL,
		     pk_test_deadline_ms(fill_ms(EIO_GUEST_MIB)), "fill");
	ck_assert_int_eq(pk_test_reclaim(d.sock, "lossy", EIO_GUEST_MIB << 20,
					 &r), 0);
	ck_assert_uint_eq(r.pages_swapped, EIO_GUEST_PAGES);

	/* A sequential read of all its RAM from outside: read-ahead grows
	 * to its full window, then the reads start failing. */
	uintptr_t ram = guest_ram_addr(g.pid);
	got = remote_read(g.pid, ram, (size_t)EIO_GUEST_PAGES * PAGE,
			  pk_test_deadline_ms(swapin_ms(EIO_GUEST_PAGES)),
			  &err);
	uint64_t lost = (uint64_t)got / PAGE;
	fprintf(stderr, "swap_read_eio_lost: process_vm_readv read %lld "
		"bytes (%llu pages), then %s; pages_poisoned %.0f, "
		"swapin_read_retries %.0f, readahead_dropped %.0f, "
		"swapins %.0f (readahead %.0f), swap.io_errors %.0f\n",
		(long long)got, (unsigned long long)lost, strerror(err),
		vm_field(&d, "lossy", "pages_poisoned"),
		vm_field(&d, "lossy", "swapin_read_retries"),
		vm_field(&d, "lossy", "readahead_dropped"),
		vm_field(&d, "lossy", "swapins"),
		vm_field(&d, "lossy", "swapins_readahead"),
		status_field(&d, "swap", "io_errors"));
	ck_assert_msg(got >= 0 && got % PAGE == 0 &&
		      lost < EIO_GUEST_PAGES && err == EFAULT,
		      "process_vm_readv of RAM whose slot reads fail: %lld "
		      "bytes, then %s; want a memory error (EFAULT) part-way",
		      (long long)got, strerror(err));
	/* The good reads were the pages before P, and up to a read-ahead
	 * window after them. */
	ck_assert_msg(lost <= READ_EIO_AFTER &&
		      lost + 2 * READAHEAD_DEFAULT >= READ_EIO_AFTER,
		      "stopped at page %llu, %d good reads",
		      (unsigned long long)lost, READ_EIO_AFTER);

	/* Page P, the one faulted on, is lost: after every read tried. */
	snprintf(line, sizeof(line), "vm lossy: PAGE %llu LOST: swap slot ",
		 (unsigned long long)lost);
	ck_assert_msg(file_has(d.log, line), "no line \"%s\" in %s", line,
		      d.log);
	snprintf(line, sizeof(line), "Input/output error; the guest gets a "
		 "memory error instead of wrong data (%u reads)",
		 PK_SWAPIN_READ_TRIES);
	ck_assert_msg(file_has(d.log, line), "no line \"%s\" in %s", line,
		      d.log);
	ck_assert_int_eq(count_lines(d.log, "LOST"), 1);
	ck_assert_double_eq(vm_field(&d, "lossy", "pages_poisoned"), 1);
	ck_assert_double_eq(vm_field(&d, "lossy", "swapin_read_retries"),
			    PK_SWAPIN_READ_TRIES - 1);
	/* The read-ahead pages that failed went back with their slots. */
	ck_assert_msg(vm_field(&d, "lossy", "readahead_dropped") > 0,
		      "no read-ahead swap-in failed (readahead_dropped 0)");
	/* Each failed read was one of page P's or a dropped read-ahead. */
	ck_assert_double_eq(status_field(&d, "swap", "io_errors"),
			    PK_SWAPIN_READ_TRIES +
				    vm_field(&d, "lossy", "readahead_dropped"));
	/* Every page is swapped in, still swapped (slot kept), or the one
	 * lost: pages before P came in, and read-ahead pages after it whose
	 * reads completed before the failures began. */
	double swapins = vm_field(&d, "lossy", "swapins");
	double swapped = vm_field(&d, "lossy", "swapped_mib") * 256;
	ck_assert_double_ge(swapins, (double)lost);
	ck_assert_double_eq(swapins + swapped + 1, EIO_GUEST_PAGES);
	ck_assert_double_eq(status_field(&d, "swap", "slots_used"), swapped);
	/* A poisoned page stays an error: never zeros, never a re-read. */
	got = remote_read(g.pid, ram + lost * PAGE, PAGE,
			  pk_test_deadline_ms(BASE_MS), &err);
	ck_assert_msg(got <= 0 && err == EFAULT, "second read of the lost "
		      "page %llu: %lld bytes, %s", (unsigned long long)lost,
		      (long long)got, strerror(err));
	ck_assert_double_eq(vm_field(&d, "lossy", "pages_poisoned"), 1);
	ck_assert(pk_test_daemon_alive(&d));

	/* The guest's own verify meets a memory error: SIGBUS (which page,
	 * pk-guestsim cannot say: see the top of this file). */
	ck_assert_int_eq(kill(g.pid, SIGTERM), 0);
	guest_expect(&g, NULL, NULL,
		     pk_test_deadline_ms(swapin_ms(EIO_GUEST_PAGES)),
		     "death by SIGBUS in its verify");
	ck_assert_int_eq(guest_finish(&g, BASE_MS), -SIGBUS);
	ck_assert(pk_test_daemon_alive(&d));
	pk_test_daemon_stop_ok(&d);
}
END_TEST

static void tcase_swap(Suite *s, const char *name, const TTest *test,
		       int tmpfs)
{
	TCase *tc = tcase_create(name);

	if (tmpfs)
		tcase_add_unchecked_fixture(tc, tmpfs_setup, tmpfs_teardown);
	tcase_set_timeout(tc, 120 * pk_test_time_scale());
	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}

int main(void)
{
	Suite *s = suite_create("faults");
	TCase *tc = tcase_create("copy_enomem");
	SRunner *sr;
	int failed;

	tcase_add_unchecked_fixture(tc, memcg_setup, memcg_teardown);
	tcase_set_timeout(tc, 120 * pk_test_time_scale());
	tcase_add_test(tc, copy_enomem);
	suite_add_tcase(s, tc);

	/* One case each, so CK_RUN_CASE can pick any; each ENOSPC case
	 * gets a tmpfs of its own. */
	tcase_swap(s, "swap_enospc", swap_enospc, 1);
	tcase_swap(s, "swap_enospc_filling", swap_enospc_filling, 1);
	tcase_swap(s, "swap_write_eio", swap_write_eio, 0);
	tcase_swap(s, "swap_read_eio_transient", swap_read_eio_transient, 0);
	tcase_swap(s, "swap_read_eio_lost", swap_read_eio_lost, 0);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
