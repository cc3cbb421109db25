/*
 * daemon_fixture.h - shared helpers for tests that talk to a real
 * pagekeeperd: spawn and stop a private daemon, send raw requests with
 * SCM_RIGHTS, read replies and status, and build real guests (memfd +
 * MAP_SHARED mapping + userfaultfd).  Nothing here is a mock.
 *
 * Lifetime rules (the reason this file exists):
 *  - pk_test_daemon_start() forks the daemon as a child of the calling
 *    process, in a fresh mkdtemp() directory under /tmp, with stderr sent
 *    to DIR/daemon.log.  The child gets PR_SET_PDEATHSIG(SIGKILL), so it
 *    cannot outlive the process that started it.
 *  - pk_test_daemon_stop() kills it by pid (SIGTERM, then SIGKILL after
 *    2 s), reaps it and removes the directory.
 *  - A failed Check assertion in CK_FORK mode ends the test process with
 *    _exit(1): no teardown, no atexit.  Then the daemon dies by
 *    PDEATHSIG (and Check SIGKILLs the test's process group, which holds
 *    the daemon: --foreground does no setsid).  The temp directory is
 *    removed by a small "cleaner" process forked at start, in its own
 *    process group, that waits for the starter to go away (EOF on a
 *    pipe), waits for the daemon to die, copies the daemon's log to
 *    stderr (only if the starter never stopped it: that is a failed
 *    test, and the log helps) and removes the directory.
 *  - A daemon still running when its starter calls exit() is stopped by
 *    an atexit handler.
 *
 * Every function returns 0 (or a count / fd) on success and a negative
 * errno on failure; the *_start function also writes a readable message.
 */
#ifndef PK_TEST_DAEMON_FIXTURE_H
#define PK_TEST_DAEMON_FIXTURE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/protocol.h"

#define PK_TEST_SOCKET_WAIT_MS 5000
#define PK_TEST_REPLY_WAIT_MS 5000
#define PK_TEST_STOP_WAIT_MS 10000

struct pk_test_daemon {
	pid_t pid;	    /* 0 when not running */
	pid_t owner;	    /* process that started it (and must stop it) */
	char dir[64];	    /* mkdtemp directory, removed by stop */
	char sock[128];	    /* DIR/pk.sock */
	char state_dir[128]; /* DIR/state */
	char run_dir[64];   /* /dev/shm/pk-run-XXXXXX: --run-dir (tmpfs) */
	char extra_args[512]; /* the daemon's extra arguments, for restarts */
	char log[128];	    /* DIR/daemon.log: the daemon's stderr */
	char error[1024];   /* why start (or alive) failed */
	int cleaner_fd;	    /* write end of the cleaner's pipe, -1 if none */
	pid_t exited;	    /* pid that exited unasked (reaped), else 0 */
	int result;	    /* -1 once a kill or stop was judged a failure */
};

/*
 * Start `$PK_DAEMON --socket DIR/pk.sock --state-dir DIR/state --run-dir
 * RUN --foreground --quiet [extra_args]` (RUN: a fresh directory on
 * /dev/shm, removed with DIR) (extra_args: space-separated, may be
 * NULL) and wait up to 5 s for the socket to accept connections.  A
 * --socket in extra_args overrides the default and is the one waited on.
 */
int pk_test_daemon_start(struct pk_test_daemon *d, const char *extra_args);

/*
 * Start a daemon again on the same directories after
 * pk_test_daemon_kill() (a crash, a stop or an upgrade): same arguments,
 * or extra_args if not NULL.  Waits for its socket like start.
 */
int pk_test_daemon_restart(struct pk_test_daemon *d, const char *extra_args);

/*
 * Stop and judge the daemon: SIGTERM, wait (PK_TEST_STOP_WAIT_MS scaled by
 * pk_test_time_scale()), SIGKILL if it is still there, reap, remove DIR.
 * Returns 0 when the daemon exited with status 0 on SIGTERM (or had been
 * stopped already through pk_test_daemon_kill()) and its log holds no
 * AddressSanitizer, LeakSanitizer or UBSan report; otherwise -1 with
 * d->error saying why, the log's tail printed to stderr (meson's test log)
 * and the whole log kept as $PK_TEST_LOGDIR/daemon-PID.log.  Idempotent.
 */
int pk_test_daemon_stop(struct pk_test_daemon *d);

/* pk_test_daemon_stop() as a Check assertion: every test ends with it. */
void pk_test_daemon_stop_ok(struct pk_test_daemon *d);

/*
 * Kill the daemon on purpose with sig (SIGKILL for a crash test), reap it
 * and check its log for sanitizer reports.  Returns 0 when it died of sig
 * (or, for SIGTERM, exited 0) with a clean log; -1 and d->error otherwise.
 * DIR stays (a restart may reuse the state directory) until
 * pk_test_daemon_stop(), which then only cleans up.
 */
int pk_test_daemon_kill(struct pk_test_daemon *d, int sig);

/*
 * The main() of a test program whose tests share one scratch directory:
 * makes /tmp/pk-NAME-XXXXXX into top (len bytes), runs every test of s,
 * removes the directory with whatever the tests left in it, frees the
 * runner and returns main's exit status.
 */
struct Suite;
int pk_test_main_in_top_dir(struct Suite *s, const char *name, char *top,
			    size_t len);

/*
 * How much slower this build runs than a plain optimised one: 1, or 3 in
 * an ASan/UBSan build, or $PK_TEST_TIME_SCALE.  Every deadline a test
 * derives from its work is multiplied by it.
 */
double pk_test_time_scale(void);

/* now + work_ms * pk_test_time_scale(), in pk_test_now_ms() time. */
long pk_test_deadline_ms(long work_ms);

/* 1 if the daemon still runs; 0 if it exited (d->error says how). */
int pk_test_daemon_alive(struct pk_test_daemon *d);

/* CLOCK_MONOTONIC in milliseconds. */
long pk_test_now_ms(void);

/* Is pid running (not gone, not a zombie nobody reaps yet)?  1 or 0. */
int pk_test_pid_running(pid_t pid);

/* Number of fds the daemon holds open (from /proc/PID/fd). */
int pk_test_daemon_fd_count(const struct pk_test_daemon *d);

/*
 * The daemon's fd count once it has stayed the same for 200 ms (at most
 * 3 s): a baseline that no connection still closing (the start-up probe,
 * a status request) can inflate.
 */
int pk_test_daemon_settled_fd_count(const struct pk_test_daemon *d);

/* Wait up to timeout_ms for the daemon's fd count to equal want. */
int pk_test_daemon_wait_fd_count(const struct pk_test_daemon *d, int want,
				 int timeout_ms);

/* Connect a SOCK_SEQPACKET socket to the daemon.  Returns the fd. */
int pk_test_connect(const char *sock);

/* sendmsg() one message with n_fds fds as SCM_RIGHTS. */
int pk_test_send(int fd, const void *buf, size_t len, const int *fds,
		 int n_fds);

/* Receive one message (waits up to timeout_ms).  Returns its length. */
ssize_t pk_test_recv(int fd, void *buf, size_t len, int timeout_ms);

/* Receive and decode a REGISTER_REPLY or ERROR_REPLY. */
int pk_test_recv_reply(int fd, struct pk_reply_msg *reply);

/*
 * One request on a fresh connection: connect, send, read the reply.
 * *conn_out gets the still-open connection (a successful REGISTER binds
 * the VM to it); pass NULL to have it closed.
 */
int pk_test_request(const char *sock, const void *buf, size_t len,
		    const int *fds, int n_fds, struct pk_reply_msg *reply,
		    int *conn_out);

/* STATUS request; *json is malloc'ed NUL-terminated JSON. */
int pk_test_status_json(const char *sock, char **json);

/* Length of the status JSON's "vms" array. */
int pk_test_vm_count(const char *sock);

/* Poll until pk_test_vm_count() == want; returns the last count seen. */
int pk_test_wait_vm_count(const char *sock, int want, int timeout_ms);

/*
 * A real guest: a memfd of file_len bytes mapped MAP_SHARED over map_len
 * bytes (map_len may exceed file_len).  uffd is -1 until
 * pk_test_guest_add_uffd().
 */
struct pk_test_guest {
	int memfd;
	int uffd;
	void *addr;
	size_t map_len;
	size_t file_len;
};

int pk_test_guest_create(struct pk_test_guest *g, size_t map_len,
			 size_t file_len);
/* Open a uffd with UFFDIO_API(features), register the whole mapping. */
int pk_test_guest_add_uffd(struct pk_test_guest *g, uint64_t features);
void pk_test_guest_destroy(struct pk_test_guest *g);

/*
 * userfaultfd(2), falling back to /dev/userfaultfd, then UFFDIO_API with
 * the given features.  Returns the fd; on failure a negative errno and,
 * if err is given, a message naming the missing kernel support.
 */
int pk_test_uffd_open(uint64_t features, char *err, size_t err_len);

/* UFFDIO_REGISTER [addr, addr+len) for MISSING and WP faults. */
int pk_test_uffd_register(int uffd, void *addr, size_t len);

#endif
