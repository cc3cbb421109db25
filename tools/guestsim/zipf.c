/*
 * zipf.c - O(1) Zipfian rank sampler.
 *
 * What: draws ranks 0..n-1 with P(rank i) proportional to 1/(i+1)^theta,
 * the classic model of a hot set (a few pages take most accesses, with a
 * long tail), as used by YCSB.
 *
 * How: Gray et al., "Quickly generating billion-record synthetic
 * databases" (SIGMOD 1994): with zeta(n, theta) precomputed once, each
 * sample costs one uniform draw and one pow().  zeta is an O(n) sum; for
 * big RAM the terms past 2^20 are replaced by the midpoint integral of
 * x^-theta, whose error there is far below what the sampler can resolve,
 * so a 1 TiB guest (2^28 pages) starts instantly.
 *
 * Why: per-op sampling must be cheap next to a 4 KiB page access, and the
 * constants are shared read-only by all worker threads.
 */
#include <math.h>

#include "zipf.h"
#include "rng.h"

#define ZETA_EXACT_TERMS (1ULL << 20)

static double zeta(uint64_t n, double theta)
{
	uint64_t m = n < ZETA_EXACT_TERMS ? n : ZETA_EXACT_TERMS;
	double sum = 0;

	/* Smallest terms first, for precision. */
	for (uint64_t i = m; i >= 1; i--)
		sum += pow((double)i, -theta);
	if (n > m)
		sum += (pow(n + 0.5, 1 - theta) - pow(m + 0.5, 1 - theta)) /
		       (1 - theta);
	return sum;
}

void gs_zipf_init(struct gs_zipf *z, uint64_t n, double theta)
{
	double zeta2 = 1 + pow(0.5, theta);

	z->n = n;
	z->theta = theta;
	z->alpha = 1 / (1 - theta);
	z->zetan = n ? zeta(n, theta) : 0;
	z->rank1 = zeta2;
	z->eta = n > 2 ? (1 - pow(2.0 / (double)n, 1 - theta)) /
				 (1 - zeta2 / z->zetan)
		       : 0;
}

uint64_t gs_zipf_next(const struct gs_zipf *z, uint64_t *rng)
{
	double u, uz;
	uint64_t r;

	if (z->n <= 1)
		return 0;
	u = gs_uniform(rng);
	uz = u * z->zetan;
	if (uz < 1)
		return 0;
	if (uz < z->rank1 || z->n == 2)
		return 1;
	r = (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1, z->alpha));
	return r < z->n ? r : z->n - 1;
}
