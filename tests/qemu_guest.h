/*
 * qemu_guest.h - run a real QEMU test guest (TCG) from Check tests.
 *
 * The guest is the image of tools/guest-image/build-image: Debian's cloud
 * kernel and a busybox initramfs whose /init prints "pkguest: ready ..."
 * and runs pk-guestcheck (tools/guestcheck) with the command line's
 * pkcheck.* options.  The serial console goes to a file, QMP to two unix
 * sockets (the first for the daemon's balloon bridge when the guest runs
 * under the preload shim, the second for the test), all in a fresh
 * mkdtemp() directory under /tmp.
 *
 * Lifetime (as in daemon_fixture.h): QEMU is a child of the test process
 * with PR_SET_PDEATHSIG(SIGKILL) and stays in its process group, so a
 * failed Check test in fork mode (which _exit()s, no teardown) still takes
 * it down.  A cleaner process in its own process group waits for the
 * starter to go away; if QEMU was not stopped, it kills it by pid,
 * prints the end of the serial log and QEMU's own output (that is a failed
 * test, and they help), and removes the directory.  Started guests are
 * also registered: qemu_guest_stop_all() (and an atexit handler) stops
 * them all.
 *
 * Functions return 0 on success and a negative errno on failure, with a
 * readable reason in g->error.
 */
#ifndef PK_TEST_QEMU_GUEST_H
#define PK_TEST_QEMU_GUEST_H

#include <stddef.h>
#include <sys/types.h>

struct qemu_guest_opts {
	const char *name;	 /* -name guest=NAME; required */
	unsigned mem_mib;	 /* RAM (memfd, share=on); default 256 */
	const char *append;	 /* more kernel command line, e.g.
				  * "pkcheck.mib=64 pkcheck.rounds=0" */
	const char *const *args; /* more QEMU arguments, NULL-terminated */
	const char *const *env;	 /* more environment "K=V" (e.g.
				  * LD_PRELOAD), NULL-terminated */
	const char *kernel;	 /* default $PK_GUEST_KERNEL, else
				  * $PK_GUEST_IMAGE/vmlinuz */
	const char *initrd;	 /* default $PK_GUEST_INITRD, else
				  * $PK_GUEST_IMAGE/initramfs.cpio.gz */
	const char *qemu;	 /* default $PK_QEMU, else
				  * qemu-system-x86_64 from PATH */
};

struct qemu_guest {
	pid_t pid;		 /* QEMU; 0 when not running */
	pid_t owner;		 /* the process that started it */
	int exit_status;	 /* waitpid status once it ended, else -1 */
	char name[64];
	char dir[64];		 /* mkdtemp directory, removed by stop */
	char serial[128];	 /* DIR/serial.log: the guest's ttyS0 */
	char qmp[128];		 /* DIR/qmp.sock: the first monitor, the one
				  * the preload shim registers as the VM's
				  * balloon channel (the daemon's bridge
				  * then holds it: a QMP socket serves one
				  * client at a time) */
	char qmp_test[128];	 /* DIR/qmp-test.sock: a second monitor, for
				  * the test's own commands */
	char qemu_log[128];	 /* DIR/qemu.log: QEMU's stdout and stderr */
	long start_ms;		 /* CLOCK_MONOTONIC at spawn */
	long cursor;		 /* serial log offset for wait_line */
	int cleaner_fd;		 /* -1 if none */
	/* The checker's work, from the pkcheck.* words of opts.append
	 * (its defaults otherwise): what the round budget derives from. */
	unsigned check_mib;	 /* pkcheck.mib, default 64 */
	unsigned release_mib;	 /* pkcheck.release-mib, default 0 */
	unsigned interval_ms;	 /* pkcheck.interval-ms, default 0 */
	char error[2048];
};

/*
 * Deadlines of waits on a guest derive from its work and these floors,
 * and are multiplied by pk_test_time_scale() (daemon_fixture.h).  The
 * floors hold on the 2-core test host with other tests running beside:
 *  - QEMU_GUEST_BOOT_MS: one TCG guest from spawn to its ready line
 *    (12.5 s measured alone; each guest booting beside it adds as much);
 *  - PKCHECK_MIN_MIB_S: the checker's slowest fill or verify rate, a
 *    round whose pages all come back from the daemon's swap with three
 *    guests on two cores (unmanaged it verifies about 1500 MiB/s);
 *  - PKCHECK_ROUND_SLACK_MS: per wait, the serial console's and the
 *    guest scheduler's latency;
 *  - QEMU_BALLOON_MIN_MIB_S: the virtio balloon's slowest inflate or
 *    deflate, with the checker running (inflating by 80 MiB took 15-17 s,
 *    deflating 1 s), plus QEMU_GUEST_QMP_MS;
 *  - QEMU_GUEST_QMP_MS: one QMP command or query that moves no guest
 *    memory (pmemsave does: qemu_guest_mib_budget_ms());
 *  - QEMU_SWAPIN_MIN_MIB_S: QEMU reading guest RAM that the daemon
 *    brings back from its swap file, page by page (pmemsave, migration).
 */
#define QEMU_GUEST_BOOT_MS 60000
#define PKCHECK_MIN_MIB_S 4
#define PKCHECK_ROUND_SLACK_MS 10000
#define QEMU_BALLOON_MIN_MIB_S 1
#define QEMU_GUEST_QMP_MS 10000
#define QEMU_SWAPIN_MIN_MIB_S 4

/* QEMU_GUEST_QMP_MS, scaled. */
int qemu_guest_qmp_budget_ms(void);

/* The budget for moving mib MiB at rate_mib_s, plus one QMP command. */
int qemu_guest_mib_budget_ms(double mib, double rate_mib_s);

/* The budget for guests started side by side to reach their ready lines. */
int qemu_guest_boot_budget_ms(int side_by_side);

/*
 * The budget for g's checker to get from where it is now to round
 * `round`: each round verifies check_mib MiB (and rewrites some) at no
 * less than PKCHECK_MIN_MIB_S and sleeps interval_ms; before its first
 * round it also fills check_mib and release_mib MiB.
 */
int qemu_guest_rounds_budget_ms(struct qemu_guest *g, long round);

/* The checker's latest round line ("pkcheck: round ..."). */
struct pkcheck_status {
	long round;		/* 0: no round line yet */
	long long errors;	/* cumulative */
	double verified_mib;
	double rate_mib_s;	/* verification throughput */
	long mem_total_mib;	/* the guest's MemTotal, -1 unknown */
	long mem_free_mib;
	int exited;		/* 1 if /init printed the checker's exit */
	int exit_status;
};

/* Spawn QEMU; returns as soon as it runs (the guest boots meanwhile). */
int qemu_guest_start(struct qemu_guest *g, const struct qemu_guest_opts *o);

/*
 * Wait up to timeout_ms for a serial line containing prefix, after the
 * last line matched before (g->cursor).  The line (without newline) goes
 * to line if not NULL.  Prints progress to stderr every 10 s.  Fails
 * early if QEMU exits.
 */
int qemu_guest_wait_line(struct qemu_guest *g, const char *prefix,
			 int timeout_ms, char *line, size_t len);

/* The checker's latest status from the whole serial log. */
int qemu_guest_checker_status(struct qemu_guest *g, struct pkcheck_status *st);

/*
 * Wait until the checker completed `rounds` rounds (st: latest status);
 * timeout_ms is normally qemu_guest_rounds_budget_ms(g, rounds).
 */
int qemu_guest_wait_rounds(struct qemu_guest *g, long rounds, int timeout_ms,
			   struct pkcheck_status *st);

/* 1 while QEMU runs; 0 once it exited (reaped, g->error says how). */
int qemu_guest_alive(struct qemu_guest *g);

/* Milliseconds since the spawn. */
long qemu_guest_elapsed_ms(const struct qemu_guest *g);

/* Print the last `lines` lines of the serial log to stderr. */
void qemu_guest_dump_serial(const struct qemu_guest *g, int lines);

/*
 * Scan the complete lines of the serial log at path after *cursor for
 * one containing prefix: 1 if found (*cursor moves past it, the line goes
 * to out), else 0.  last (may be NULL) gets the last complete line seen.
 */
int qemu_serial_scan(const char *path, long *cursor, const char *prefix,
		     char *out, size_t len, char *last, size_t last_len);

/* The last `lines` lines of any log file to stderr, each prefixed by tag. */
void qemu_log_dump_tail(const char *path, int lines, const char *tag);

/* Kill QEMU (SIGTERM, SIGKILL after 3 s), reap, remove DIR.  Idempotent. */
void qemu_guest_stop(struct qemu_guest *g);

/* Stop every guest this process started and did not stop. */
void qemu_guest_stop_all(void);

/*
 * Make the guest image as the qemu tests do before their first guest:
 * run $PK_BUILD_IMAGE --checker $PK_GUESTCHECK $PK_GUEST_IMAGE (its output
 * goes to stderr; it does nothing when the image is up to date).  Without
 * PK_BUILD_IMAGE the image in $PK_GUEST_IMAGE is used as it is: 0.  On
 * failure a negative errno and the reason in err.
 */
int qemu_guest_build_image(char *err, size_t len);

/*
 * The LD_PRELOAD value that runs an (uninstrumented) QEMU with the
 * preload shim: the sanitizer runtimes this process runs with first
 * (ASan/UBSan builds: the instrumented shim needs them loaded before it),
 * then shim.  0, or -ENAMETOOLONG.
 */
int qemu_guest_preload_value(const char *shim, char *out, size_t len);

#endif
