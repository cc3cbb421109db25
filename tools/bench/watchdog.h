/*
 * watchdog.h - turn a hung fault into a clear error instead of a hang.
 *
 * What: a thread that, while a benchmark phase runs, checks that the
 * process serving our faults (floor handler or pagekeeperd) is alive and
 * that the touch counter moves; otherwise it prints why, shows the
 * daemon's log, and exits (atexit then kills the helpers).
 * How: 100 ms polling of waitid(WNOWAIT) and of an atomic progress count.
 * Why: a uffd fault whose handler died or stalled blocks the toucher
 * forever: the client library keeps its uffd copy by design.
 */
#ifndef PK_BENCH_WATCHDOG_H
#define PK_BENCH_WATCHDOG_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon_proc.h"
#include "touch.h"

struct watchdog {
	pthread_t thread;
	int running;		  /* atomic: thread should keep going */
	int stall_s;		  /* seconds without progress = stall */
	const char *phase;	  /* atomic: NULL between phases */
	pid_t served_by;	  /* atomic: pid that must stay alive, 0 none */
	const struct pk_daemon *daemon; /* atomic: for the log tail, may be NULL */
	int fired;		  /* atomic: set once it decided to exit */
	uint64_t phase_gen;	  /* atomic: bumped per phase */
	struct touch_progress prog;
};

int watchdog_start(struct watchdog *w, int stall_s, const struct pk_daemon *d);

/* Enter a phase (name must outlive it) whose faults pid serves (0: none). */
void watchdog_enter(struct watchdog *w, const char *phase, pid_t served_by);
void watchdog_leave(struct watchdog *w);

/* Whose log to show when the fault server dies (several daemons; NULL ok). */
void watchdog_set_daemon(struct watchdog *w, const struct pk_daemon *d);
void watchdog_stop(struct watchdog *w);

#endif
