/*
 * clock.h - the one clock of pk-guestsim.
 *
 * All durations (fill time, workload time, per-op latency) come from
 * CLOCK_MONOTONIC in nanoseconds, so they never jump with wall-clock
 * adjustments and need no conversion when they are subtracted.
 */
#ifndef GS_CLOCK_H
#define GS_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t gs_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

#endif
