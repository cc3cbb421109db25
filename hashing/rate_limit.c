/*
 * rate_limit.c - a token bucket with caller-supplied time.
 *
 * What: caps the sharing scan at a configured bytes per second, with a
 * burst so a step can read a whole chunk at once.
 *
 * How: tokens are kept in byte-nanoseconds (bytes * 1e9) in a 128-bit
 * counter: a refill adds elapsed_ns * bytes_per_sec exactly, with no
 * division, so refilling every microsecond loses nothing to rounding;
 * only taking converts to whole bytes.  The bucket is capped at burst.
 * Time going backwards (a caller mixing clocks) refills nothing.
 *
 * Why: a daemon tick every few milliseconds at a few hundred MiB/s adds a
 * few hundred bytes per tick per microsecond of jitter; integer bytes
 * with truncation would drift below the configured rate.
 */
#include "hashing/rate_limit.h"

#include <errno.h>

#define NS_PER_SEC 1000000000ULL

typedef unsigned __int128 u128;

static u128 cap_of(const struct pk_rate_limit *rl)
{
	return (u128)rl->burst * NS_PER_SEC;
}

static void refill(struct pk_rate_limit *rl, uint64_t now_ns)
{
	if (now_ns > rl->last_ns) {
		u128 add = (u128)(now_ns - rl->last_ns) * rl->bytes_per_sec;
		u128 cap = cap_of(rl);

		/* tokens <= cap < 2^94 and add < 2^128: compare before adding. */
		rl->tokens = add >= cap - rl->tokens ? cap : rl->tokens + add;
		rl->last_ns = now_ns;
	}
}

int pk_rate_limit_init(struct pk_rate_limit *rl, uint64_t bytes_per_sec,
		       uint64_t burst, uint64_t now_ns)
{
	if (bytes_per_sec && !burst)
		return -EINVAL;
	rl->bytes_per_sec = bytes_per_sec;
	rl->burst = burst;
	rl->tokens = cap_of(rl);
	rl->last_ns = now_ns;
	return 0;
}

int pk_rate_limit_set(struct pk_rate_limit *rl, uint64_t bytes_per_sec,
		      uint64_t burst, uint64_t now_ns)
{
	if (bytes_per_sec && !burst)
		return -EINVAL;
	if (rl->bytes_per_sec)
		refill(rl, now_ns);
	else
		rl->tokens = 0; /* unlimited had no tokens to keep */
	rl->last_ns = now_ns;
	rl->bytes_per_sec = bytes_per_sec;
	rl->burst = burst;
	if (rl->tokens > cap_of(rl))
		rl->tokens = cap_of(rl);
	return 0;
}

uint64_t pk_rate_limit_available(struct pk_rate_limit *rl, uint64_t now_ns)
{
	if (!rl->bytes_per_sec)
		return UINT64_MAX;
	refill(rl, now_ns);
	return (uint64_t)(rl->tokens / NS_PER_SEC);
}

uint64_t pk_rate_limit_take(struct pk_rate_limit *rl, uint64_t want,
			    uint64_t unit, uint64_t now_ns)
{
	uint64_t avail = pk_rate_limit_available(rl, now_ns), got;

	if (!unit)
		unit = 1;
	got = want < avail ? want : avail;
	got -= got % unit;
	if (rl->bytes_per_sec)
		rl->tokens -= (u128)got * NS_PER_SEC;
	return got;
}

void pk_rate_limit_refund(struct pk_rate_limit *rl, uint64_t bytes)
{
	u128 add = (u128)bytes * NS_PER_SEC, cap = cap_of(rl);

	if (!rl->bytes_per_sec)
		return;
	rl->tokens = add >= cap - rl->tokens ? cap : rl->tokens + add;
}

uint64_t pk_rate_limit_wait_ns(struct pk_rate_limit *rl, uint64_t bytes,
			       uint64_t now_ns)
{
	u128 need;

	if (!rl->bytes_per_sec)
		return 0;
	if (bytes > rl->burst)
		return UINT64_MAX;
	refill(rl, now_ns);
	need = (u128)bytes * NS_PER_SEC;
	if (rl->tokens >= need)
		return 0;
	/* ceil((need - tokens) / rate): the first ns at which it is there. */
	need = (need - rl->tokens + rl->bytes_per_sec - 1) / rl->bytes_per_sec;
	return need < UINT64_MAX ? (uint64_t)need : UINT64_MAX - 1;
}
