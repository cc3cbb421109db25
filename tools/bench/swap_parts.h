/*
 * swap_parts.h - the four parts of pk-bench-swap, interleaved in rounds.
 *
 * What: part A, swap-in latency: each round, pagekeeperd, pk-volatile (a
 * second pagekeeperd with --volatile-state: the anchor of the durable
 * state's cost), the floor and the kernel each swap in the same number of
 * random pages of a fresh region holding that round's content; the
 * samples are pooled per variant.  Part B, eviction bandwidth: each
 * round, one RECLAIM of a fresh fully resident region by each of the two
 * pagekeeperds and two fio sequential O_DIRECT writes of the same size
 * (4 KiB at QD 64, 1 MiB at QD 8); per variant the median over rounds.
 * Part C, sequential swap-in (seq_part.c): each round, a full region
 * evicted and read back in address order by two private pagekeeperds
 * (readahead off / default), the kernel, the floor; per variant the
 * median sweep time over rounds.  Part D, daemon restart
 * (restart_part.c): a lab guest's RAM swapped out whole, pagekeeperd
 * killed and started again, times to answer and to adopt the guest, and
 * the guest's swap-in after it, against the same guest without a restart.
 * How: the variant order rotates every round (as in pk-bench-fault), so a
 * noisy neighbour hits every variant alike; progress lines on stderr.
 * Why: absolute times on this host are noisy (FACTS.md); only a same-run
 * comparison says whether pagekeeperd's swap path is good enough.
 */
#ifndef PK_BENCH_SWAP_PARTS_H
#define PK_BENCH_SWAP_PARTS_H

#include <stddef.h>
#include <stdint.h>

#include "kswap.h"
#include "swap_results.h"
#include "swap_variants.h"

struct swap_opts {
	size_t size_bytes;	/* latency region */
	size_t pages;		/* touches per variant per round */
	size_t evict_bytes;	/* bandwidth region */
	size_t seq_bytes;	/* sequential swap-in region */
	unsigned rounds;
	uint64_t seed;
	double min_out_pct;	/* kernel variant: pages out after the drop */
	const char *dir;
	const char *daemon;
	const char *guestsim;	/* part D's lab guest; NULL: next to this binary */
	unsigned restart_rounds; /* part D */
	const char *only;	/* NULL, "latency", "bandwidth", "seq" or "restart" */
	bool json;
};

int latency_part(const struct swap_opts *o, struct swap_env *env, struct kswap *ks,
		 struct swap_results *res);

int bandwidth_part(const struct swap_opts *o, struct swap_env *env, const char *fio,
		   const char *tmpdir, struct swap_results *res);

/*
 * Starts its own two daemons from exe (env->daemon is not used and may be
 * NULL) and stops them before returning.
 */
int seq_part(const struct swap_opts *o, struct swap_env *env, struct kswap *ks,
	     const char *exe, struct swap_results *res);

/*
 * Part D: starts its own daemon from exe and its guests from guestsim;
 * stops them all before returning.
 */
int restart_part(const struct swap_opts *o, const char *exe, const char *guestsim,
		 struct swap_results *res);

#endif
