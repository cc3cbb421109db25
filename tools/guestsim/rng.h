/*
 * rng.h - hashing and pseudo-random helpers of pk-guestsim.
 *
 * Everything the simulator makes up (page classes, page bytes, access
 * sequences) must be reproducible from a handful of integers, and page
 * generation sits on the path of every read and write the workload does.
 * The splitmix64 finaliser (Steele, Lea, Flood 2014) serves both needs: it
 * is a good 64-bit mixer for hashing tuples, and as a counter-based
 * generator it yields a word for two multiplies with one u64 of state.
 *
 * Not cryptographic: distinct inputs only need distinct, incompressible
 * pages, and workloads only need well spread indices.
 */
#ifndef GS_RNG_H
#define GS_RNG_H

#include <stdint.h>

#define GS_GOLDEN 0x9e3779b97f4a7c15ULL

static inline uint64_t gs_mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Hash of an ordered pair: (a, b) and (b, a) differ. */
static inline uint64_t gs_hash2(uint64_t a, uint64_t b)
{
	return gs_mix64(a ^ gs_mix64(b + GS_GOLDEN));
}

static inline uint64_t gs_hash3(uint64_t a, uint64_t b, uint64_t c)
{
	return gs_hash2(gs_hash2(a, b), c);
}

/* FNV-1a, then mixed: names only need to land far apart. */
static inline uint64_t gs_hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 0x100000001b3ULL;
	return gs_mix64(h);
}

/* splitmix64 generator: next word of the stream at *state. */
static inline uint64_t gs_next(uint64_t *state)
{
	return gs_mix64(*state += GS_GOLDEN);
}

/* Uniform double in [0, 1) with 53 random bits. */
static inline double gs_uniform(uint64_t *state)
{
	return (double)(gs_next(state) >> 11) * 0x1p-53;
}

/* Uniform integer in [0, n) by Lemire's multiply-shift (bias < n / 2^64). */
static inline uint64_t gs_below(uint64_t *state, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)gs_next(state) * n) >> 64);
}

#endif
