/*
 * daemon_proc.h - a private pagekeeperd for the benchmark.
 *
 * What: start `pagekeeperd --socket DIR/pk.sock --state-dir DIR
 * --foreground [EXTRA ARGS...]` in a fresh temp dir, wait until it
 * accepts connections, watch that it stays alive, and stop it (SIGTERM,
 * SIGKILL after 2 s).  Several may run at once, each in its own dir.
 * How: fork/exec with stdout+stderr to DIR/daemon.log and
 * PR_SET_PDEATHSIG so it dies with us even on SIGKILL; readiness is a
 * successful connect() to the SOCK_SEQPACKET socket, polled for 5 s;
 * the pid and dir are handed to cleanup.c for atexit/signal teardown.
 * Why: the benchmark must measure a daemon it controls, never a system
 * one, and must leave nothing behind.
 */
#ifndef PK_BENCH_DAEMON_PROC_H
#define PK_BENCH_DAEMON_PROC_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

struct pk_daemon {
	pid_t pid;
	char exe[PATH_MAX];
	char dir[PATH_MAX];
	char sock[PATH_MAX + 16];
	char log[PATH_MAX + 16];
	char args[512];	/* the extra arguments, space-separated, for reports */
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

/* Stop the daemon (SIGTERM, SIGKILL after 2 s) and remove the dir. */
void daemon_stop(struct pk_daemon *d);

#endif
