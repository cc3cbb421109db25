/*
 * zipf.h - O(1) Zipfian rank sampler.  See zipf.c.
 */
#ifndef GS_ZIPF_H
#define GS_ZIPF_H

#include <stdint.h>

struct gs_zipf {
	uint64_t n;	/* ranks 0 .. n-1 */
	double theta;	/* skew, 0 < theta < 1 */
	double alpha;	/* 1 / (1 - theta) */
	double zetan;	/* zeta(n, theta) */
	double eta;
	double rank1;	/* 1 + 0.5^theta: threshold of rank 1 */
};

void gs_zipf_init(struct gs_zipf *z, uint64_t n, double theta);

/* Rank in [0, n); rank 0 is the most popular.  Thread-safe: *rng is the
 * caller's own generator state, z is read only. */
uint64_t gs_zipf_next(const struct gs_zipf *z, uint64_t *rng);

#endif
