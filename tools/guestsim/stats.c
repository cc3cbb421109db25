/*
 * stats.c - log-linear latency histogram (HDR-like).
 *
 * What: records op latencies in nanoseconds and answers percentiles.
 *
 * How: values below 64 ns get a bucket each; above, every power of two is
 * split into 32 equal sub-buckets, so any value is known within 1/32
 * (~3%) of itself, from nanoseconds up to the full u64 range, in 1920
 * counters.  The bucket of v is found with one count-leading-zeros.  Each
 * worker thread fills its own histogram (no sharing, no atomics on the
 * hot path); they are merged by adding counters once the threads end.
 *
 * Why: fault latencies under pagekeeperd span from ~100 ns (resident page)
 * to milliseconds (swap-in), a range a linear histogram can't cover and
 * whose tail percentiles are what matter.
 */
#include "stats.h"

static unsigned bucket_of(uint64_t v)
{
	unsigned msb, shift;

	if (v < 2 * GS_HIST_SUB)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - GS_HIST_SUB_BITS;		/* >= 1 */
	/* v >> shift is in [32, 64): the sub-bucket within the octave. */
	return shift * GS_HIST_SUB + (unsigned)(v >> shift);
}

/* Middle of the values bucket b holds. */
static double bucket_mid(unsigned b)
{
	unsigned shift, sub;

	if (b < 2 * GS_HIST_SUB)
		return b;
	shift = b / GS_HIST_SUB - 1;
	sub = b - shift * GS_HIST_SUB;
	return ((double)sub + 0.5) * (double)(1ULL << shift);
}

void gs_hist_add(struct gs_hist *h, uint64_t ns)
{
	h->bucket[bucket_of(ns)]++;
	h->count++;
	h->sum_ns += ns;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

void gs_hist_merge(struct gs_hist *into, const struct gs_hist *from)
{
	for (unsigned i = 0; i < GS_HIST_BUCKETS; i++)
		into->bucket[i] += from->bucket[i];
	into->count += from->count;
	into->sum_ns += from->sum_ns;
	if (from->max_ns > into->max_ns)
		into->max_ns = from->max_ns;
}

double gs_hist_quantile_us(const struct gs_hist *h, double q)
{
	uint64_t target, seen = 0;
	double v;

	if (!h->count)
		return 0;
	target = (uint64_t)(q * (double)h->count + 0.999999);
	if (target < 1)
		target = 1;
	if (target > h->count)
		target = h->count;
	for (unsigned i = 0; i < GS_HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= target) {
			v = bucket_mid(i);
			if (v > (double)h->max_ns)
				v = (double)h->max_ns;
			return v / 1000;
		}
	}
	return (double)h->max_ns / 1000;
}

double gs_hist_max_us(const struct gs_hist *h)
{
	return (double)h->max_ns / 1000;
}

double gs_hist_mean_us(const struct gs_hist *h)
{
	return h->count ? (double)h->sum_ns / (double)h->count / 1000 : 0;
}
