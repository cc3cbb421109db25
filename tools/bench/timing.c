/*
 * timing.c - clock and latency statistics for pk-bench-fault.
 *
 * What: now_ns(), the timer's own overhead, nearest-rank percentiles.
 * How: CLOCK_MONOTONIC via the vDSO costs tens of ns here (kvm-clock),
 * two orders of magnitude below a fault, so each touch is bracketed by
 * two clock reads and the overhead is reported rather than subtracted.
 * Why: one implementation for all variants keeps the comparison honest.
 */
#include "timing.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

uint64_t timer_overhead_ns(void)
{
	enum { N = 2001 };
	uint64_t d[N];

	for (int i = 0; i < N; i++) {
		uint64_t t0 = now_ns();
		uint64_t t1 = now_ns();
		d[i] = t1 - t0;
	}
	qsort(d, N, sizeof(d[0]), cmp_u64);
	return d[N / 2];
}

uint64_t percentile_sorted(const uint64_t *sorted, size_t n, double pct)
{
	if (n == 0)
		return 0;
	/* nearest rank: ceil(pct/100 * n), 1-based */
	double r = pct / 100.0 * (double)n;
	size_t rank = (size_t)r;
	if ((double)rank < r)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

void lat_summarize(uint64_t *ns, size_t n, struct lat_stats *st)
{
	*st = (struct lat_stats){ .n = n };
	if (n == 0)
		return;
	qsort(ns, n, sizeof(ns[0]), cmp_u64);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += (double)ns[i];
	st->p50_us = (double)percentile_sorted(ns, n, 50) / 1e3;
	st->p99_us = (double)percentile_sorted(ns, n, 99) / 1e3;
	st->mean_us = sum / (double)n / 1e3;
	st->min_us = (double)ns[0] / 1e3;
	st->max_us = (double)ns[n - 1] / 1e3;
}

double median_double(double *v, size_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(v[0]), cmp_double);
	if (n % 2)
		return v[n / 2];
	return (v[n / 2 - 1] + v[n / 2]) / 2;
}

void lat_result_fill(uint64_t *ns, size_t n, struct lat_result *x)
{
	struct lat_stats st;

	lat_summarize(ns, n, &st); /* sorts ns */
	x->ran = true;
	x->n = n;
	x->p50_us = st.p50_us;
	x->p90_us = (double)percentile_sorted(ns, n, 90) / 1e3;
	x->p99_us = st.p99_us;
	x->p999_us = (double)percentile_sorted(ns, n, 99.9) / 1e3;
	x->max_us = st.max_us;
	x->mean_us = st.mean_us;
}

double lat_p50_us(const uint64_t *ns, size_t n)
{
	uint64_t *tmp = malloc(n * sizeof(*tmp));
	struct lat_stats st;

	if (!tmp)
		return -1;
	memcpy(tmp, ns, n * sizeof(*tmp));
	lat_summarize(tmp, n, &st);
	free(tmp);
	return st.p50_us;
}
