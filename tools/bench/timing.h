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

#include <stdbool.h>
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

/* A variant's latency figures, pooled over its rounds. */
#define LAT_MAX_ROUNDS 32
struct lat_result {
	bool ran;
	size_t n;
	double p50_us, p90_us, p99_us, p999_us, max_us, mean_us;
	size_t resident_before;		/* touches that found the page resident */
	unsigned rounds;
	double round_p50_us[LAT_MAX_ROUNDS];
};

uint64_t now_ns(void);

/* Median cost of one now_ns() pair, i.e. what every timed sample includes. */
uint64_t timer_overhead_ns(void);

/* Sorts ns[] in place and fills st (all zero when n == 0). */
void lat_summarize(uint64_t *ns, size_t n, struct lat_stats *st);

/* Sorts ns[] in place and fills x's percentiles, mean, max, n and ran. */
void lat_result_fill(uint64_t *ns, size_t n, struct lat_result *x);

/* Median of ns[0..n) in µs, ns left as it is; -1 when out of memory. */
double lat_p50_us(const uint64_t *ns, size_t n);

/* Nearest-rank percentile (0..100) of an ascending array. */
uint64_t percentile_sorted(const uint64_t *sorted, size_t n, double pct);

/* Median of v[0..n); sorts v in place; 0 when n == 0. */
double median_double(double *v, size_t n);

#endif
