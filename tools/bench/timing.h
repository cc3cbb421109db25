/*
 * timing.h - clock and latency statistics for pk-bench-fault.
 *
 * What: a monotonic nanosecond clock, percentiles over latency samples,
 * and the median of a small set of doubles (per-round figures).
 * How: clock_gettime(CLOCK_MONOTONIC) through the vDSO (kvm-clock here);
 * percentiles by sorting the samples (nearest-rank).
 * Why: every variant is summarised the same way, so differences in the
 * report come from the fault path, not from the arithmetic.
 */
#ifndef PK_BENCH_TIMING_H
#define PK_BENCH_TIMING_H

#include <stddef.h>
#include <stdint.h>

struct lat_stats {
	size_t n;
	double p50_us;
	double p99_us;
	double mean_us;
	double min_us;
	double max_us;
};

uint64_t now_ns(void);

/* Median cost of one now_ns() pair, i.e. what every timed sample includes. */
uint64_t timer_overhead_ns(void);

/* Sorts ns[] in place and fills st (all zero when n == 0). */
void lat_summarize(uint64_t *ns, size_t n, struct lat_stats *st);

/* Nearest-rank percentile (0..100) of an ascending array. */
uint64_t percentile_sorted(const uint64_t *sorted, size_t n, double pct);

/* Median of v[0..n); sorts v in place; 0 when n == 0. */
double median_double(double *v, size_t n);

#endif
