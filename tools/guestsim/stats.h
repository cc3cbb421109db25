/*
 * stats.h - log-linear latency histogram.  See stats.c.
 */
#ifndef GS_STATS_H
#define GS_STATS_H

#include <stdint.h>

#define GS_HIST_SUB_BITS 5			/* 32 sub-buckets per octave */
#define GS_HIST_SUB (1u << GS_HIST_SUB_BITS)
#define GS_HIST_BUCKETS ((64 - GS_HIST_SUB_BITS) * GS_HIST_SUB + GS_HIST_SUB)

struct gs_hist {
	uint64_t count;
	uint64_t sum_ns;
	uint64_t max_ns;
	uint64_t bucket[GS_HIST_BUCKETS];
};

void gs_hist_add(struct gs_hist *h, uint64_t ns);
void gs_hist_merge(struct gs_hist *into, const struct gs_hist *from);

/* Value at quantile q (0..1] in microseconds; 0 for an empty histogram. */
double gs_hist_quantile_us(const struct gs_hist *h, double q);
double gs_hist_max_us(const struct gs_hist *h);
double gs_hist_mean_us(const struct gs_hist *h);

#endif
