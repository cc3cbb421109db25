/*
 * daemon_proc.h - a private pagekeeperd for the benchmark.
 *
 * What: start `pagekeeperd --socket RUN/pk.sock --state-dir DIR --run-dir
 * RUN --foreground [EXTRA ARGS...]` in a fresh temp dir DIR and a fresh
 * RUN on /dev/shm (the socket there, as pagekeeperd's default puts it
 * beside its records: it fits sun_path whatever $TMPDIR is), wait until it accepts connections, watch that it stays
 * alive, and stop it (SIGTERM, SIGKILL after 2 s).  Several may run at
 * once, each in its own dirs.  For restarts: kill it with a chosen signal
 * (the dirs stay), then start a new one on the same dirs, same arguments.
 * How: fork/exec with stdout+stderr to DIR/daemon.log (appended to by a
 * restart) and PR_SET_PDEATHSIG so it dies with us even on SIGKILL;
 * readiness is a successful connect() to the SOCK_SEQPACKET socket,
 * polled every 1 ms for 5 s; the pid and dirs are handed to cleanup.c
 * for atexit/signal teardown.
 * Why: the benchmark must measure a daemon it controls, never a system
 * one, and must leave nothing behind.
 */
#ifndef PK_BENCH_DAEMON_PROC_H
#define PK_BENCH_DAEMON_PROC_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct pk_daemon {
	pid_t pid;
	char exe[PATH_MAX];
	char dir[PATH_MAX];
	char run_dir[64]; /* --run-dir, on /dev/shm */
	char sock[PATH_MAX + 16];
	char log[PATH_MAX + 16];
	char args[512];	/* the extra arguments, space-separated, for reports */
	char extra[512]; /* the same, NUL-separated, for restarts */
	unsigned n_extra;
	uint64_t spawn_ns; /* now_ns() just before the last fork/exec */
	double ready_ms; /* from spawn_ns to the first accepted connect() */
};

#define DAEMON_MAX_EXTRA_ARGS 16

/* dirname(/proc/self/exe)/../pagekeeperd.  0 or -errno. */
int daemon_default_path(char *out, size_t len);

/*
 * Start exe with the fixed arguments above followed by extra_args, a
 * NULL-terminated list of at most DAEMON_MAX_EXTRA_ARGS strings (NULL:
 * none), and wait until it listens.  0 or -errno with the reason in err.
 */
int daemon_start(struct pk_daemon *d, const char *exe, const char *const *extra_args,
		 char *err, size_t err_len);

/*
 * Find "PREFIX<unsigned>" in the daemon's log, waiting up to wait_ms for
 * the line to appear.  0 with *out set, or -ENOENT.
 */
int daemon_log_uint(const struct pk_daemon *d, const char *prefix, int wait_ms,
		    unsigned *out);

/* True while the process exists and has not exited (does not reap). */
bool daemon_alive(const struct pk_daemon *d);

/* Print the last lines of the daemon's log, prefixed. */
void daemon_log_tail(const struct pk_daemon *d, FILE *out, int lines);

/* Resident figures of the daemon from /proc, -1 when unknown. */
struct daemon_usage {
	long rss_kib;
	long rss_shmem_kib;
	long fds;
	long threads;
};
void daemon_usage(const struct pk_daemon *d, struct daemon_usage *u);

/*
 * Send sig and reap the daemon, its dirs kept for daemon_restart();
 * after timeout_ms it is SIGKILLed and -ETIMEDOUT returned.  *status: its
 * wait status.  0 or -errno with the reason in err.
 */
int daemon_kill(struct pk_daemon *d, int sig, int timeout_ms, int *status, char *err,
		size_t err_len);

/*
 * A new daemon on the dirs of a killed one, with the same arguments; waits
 * until it listens, like daemon_start().  0 or -errno with err.
 */
int daemon_restart(struct pk_daemon *d, char *err, size_t err_len);

/* Stop the daemon (SIGTERM, SIGKILL after 2 s) and remove its dirs. */
void daemon_stop(struct pk_daemon *d);

#endif
