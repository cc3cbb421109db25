/*
 * guest_proc.h - lab guests (pk-guestsim --hold) for the benchmark.
 *
 * What: start pk-guestsim with given arguments, wait until every guest of
 * a group has filled its RAM (it prints HOLDING, or IDLE with
 * --idle-before), wait for one to exit, and stop them.
 * How: fork/exec with stdin and stdout on pipes, stderr shared with ours,
 * PR_SET_PDEATHSIG(SIGKILL) and cleanup.c tracking, so a guest dies with
 * us even on SIGKILL.  The wait polls every guest's stdout for the
 * HOLDING (or IDLE) line, and fails clearly when a guest exits first, when the
 * daemon serving the guests dies (their faults would block forever) or
 * on a time limit.  Stopping closes the guest's stdin (end of --hold: it
 * detaches and unmaps), waits, then SIGTERM/SIGKILL.
 * Why: a guest is the unit of memory the sharing benchmark measures; its
 * RAM must exist, be filled, and go away between variants.
 */
#ifndef PK_BENCH_GUEST_PROC_H
#define PK_BENCH_GUEST_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "daemon_proc.h"

#define GUEST_MAX_ARGS 40

struct guest {
	pid_t pid;		/* -1: not running */
	int in_fd;		/* its stdin; closing it ends --hold */
	int out_fd;		/* its stdout, read for HOLDING */
	bool holding;
	bool idle;		/* printed IDLE (--idle-before) */
	char name[64];
	char line[256];		/* partial stdout line */
	size_t line_len;
};

/* dirname(/proc/self/exe)/../guestsim/pk-guestsim.  0 or -errno. */
int guest_default_path(char *out, size_t len);

/*
 * Start exe with argv[1..] = args (NULL-terminated, at most
 * GUEST_MAX_ARGS); name is for messages.  0 or -errno with err.
 */
int guest_start(struct guest *g, const char *exe, const char *name,
		const char *const *args, char *err, size_t err_len);

/*
 * Wait until all n guests print HOLDING, at most timeout_s seconds.
 * daemon: when not NULL, fail as soon as it is no longer alive.  label
 * prefixes the progress lines on stderr (every progress_s seconds).
 * 0, or -errno with the reason in err.
 */
int guests_wait_holding(struct guest *g, unsigned n, double timeout_s,
			const struct pk_daemon *daemon, const char *label,
			double progress_s, char *err, size_t err_len);

/* The same for the IDLE line of guests started with --idle-before. */
int guests_wait_idle(struct guest *g, unsigned n, double timeout_s,
		     const struct pk_daemon *daemon, const char *label,
		     double progress_s, char *err, size_t err_len);

/*
 * Wait up to timeout_s for the guest to exit (polled every 1 ms, so the
 * caller can time it) and reap it: 0 with its wait status in *status, or
 * -ETIMEDOUT (the guest still runs).
 */
int guest_wait_exit(struct guest *g, double timeout_s, int *status);

/* True while the guest's process is alive (never reaps it). */
bool guest_alive(const struct guest *g);

/* Stop all n guests (end --hold, wait up to grace_ms, then kill). */
void guests_stop(struct guest *g, unsigned n, int grace_ms);

#endif
