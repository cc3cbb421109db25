/*
 * control.h - stopping threads on time or on a signal, and --hold.
 * See control.c.
 */
#ifndef GS_CONTROL_H
#define GS_CONTROL_H

#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>

/* Shared by one group of threads and the main thread that waits on them. */
struct gs_control {
	atomic_int stop;      /* set: finish the current op and exit */
	atomic_uint running;  /* threads not yet done */
	uint64_t end_ns;      /* when the last thread finished; read after join */
};

/* Block SIGINT and SIGTERM in the caller and every thread it creates
 * later; *set gets them for the waits below. */
void gs_control_block_signals(sigset_t *set);

/* A thread of the group is about to return; the last one stamps end_ns,
 * so measured durations don't include the main thread's wake-up lag. */
void gs_control_exit(struct gs_control *ctl);

/*
 * Wait until ctl->running drops to 0.  Sets ctl->stop when deadline_ns
 * passes (UINT64_MAX: never) or a signal of set arrives; a second signal
 * ends the process at once (exit status 130) in case threads hang on a
 * fault nobody serves.  Calls tick(arg) about every 20 ms when non-NULL.
 * Returns the signal that stopped the group, or 0.
 */
int gs_control_wait(const sigset_t *set, struct gs_control *ctl,
		    uint64_t deadline_ns, void (*tick)(void *), void *arg);

/* Sleep until deadline_ns; returns the signal that cut it short, or 0. */
int gs_control_sleep(const sigset_t *set, uint64_t deadline_ns);

/* --hold: wait for end of file on stdin (unless !use_stdin: it was closed
 * when we started) or a signal of set.  Returns the signal, 0 for EOF,
 * -errno on error. */
int gs_control_hold(const sigset_t *set, bool use_stdin);

#endif
