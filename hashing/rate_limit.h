/*
 * rate_limit.h - a token bucket: bytes per second with a burst.
 *
 * The sharing scanner takes its budget from one of these before each
 * step, so a full scan runs at the configured MiB/s on average and never
 * more than burst bytes ahead of it.  The caller passes the time (ns, any
 * monotonic clock): the bucket reads no clock itself, so it is
 * deterministic under test.
 *
 * The bucket starts full.  It holds tokens with sub-byte precision, so
 * no rate is lost to rounding however often it is refilled.  A rate of 0
 * means unlimited.  The struct is the caller's (embed it); no allocation.
 */
#ifndef PK_RATE_LIMIT_H
#define PK_RATE_LIMIT_H

#include <stdint.h>

struct pk_rate_limit {
	uint64_t bytes_per_sec; /* 0: unlimited */
	uint64_t burst;		/* bucket size, bytes */
	unsigned __int128 tokens; /* bytes * 1e9 (byte-nanoseconds) */
	uint64_t last_ns;	/* time of the last refill */
};

/* -EINVAL if bytes_per_sec > 0 and burst is 0. */
int pk_rate_limit_init(struct pk_rate_limit *rl, uint64_t bytes_per_sec,
		       uint64_t burst, uint64_t now_ns);

/*
 * Changes the rate and burst from now_ns on: the tokens earned until
 * then at the old rate stay (up to the new burst).  -EINVAL as for init.
 */
int pk_rate_limit_set(struct pk_rate_limit *rl, uint64_t bytes_per_sec,
		      uint64_t burst, uint64_t now_ns);

/* Whole bytes available at now_ns (UINT64_MAX when unlimited). */
uint64_t pk_rate_limit_available(struct pk_rate_limit *rl, uint64_t now_ns);

/*
 * Takes the largest multiple of unit (>= 1) that is <= want and
 * available, and returns it (possibly 0).  E.g. unit = page size, want =
 * the pages a step may scan at most.
 */
uint64_t pk_rate_limit_take(struct pk_rate_limit *rl, uint64_t want,
			    uint64_t unit, uint64_t now_ns);

/* Gives back bytes taken but not used (the bucket stays <= burst). */
void pk_rate_limit_refund(struct pk_rate_limit *rl, uint64_t bytes);

/*
 * Nanoseconds from now_ns until bytes (<= burst) are available: 0 if
 * they are now, UINT64_MAX if bytes > burst (never).
 */
uint64_t pk_rate_limit_wait_ns(struct pk_rate_limit *rl, uint64_t bytes,
			       uint64_t now_ns);

#endif
