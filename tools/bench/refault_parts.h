/*
 * refault_parts.h - pk-bench-refault's rounds for one page kind.
 *
 * What: for one kind (zero or shared), --rounds rounds; in each, both
 * variants (pagekeeperd, the floor) run one refault_round on a fresh
 * region with that round's content and touch order; latencies are pooled
 * per variant and access, and summarized when every round has run.
 * How: the variant order rotates every round (as in pk-bench-fault and
 * pk-bench-swap), so a noisy neighbour hits both alike; progress lines on
 * stderr.  A kind that fails (typically: the daemon never merged its
 * pages) records why and returns the error; the caller goes on with the
 * other kind and reports both.
 * Why: absolute times on this host are noisy (FACTS.md); only a same-run
 * comparison says whether a refault through pagekeeperd is cheap enough.
 */
#ifndef PK_BENCH_REFAULT_PARTS_H
#define PK_BENCH_REFAULT_PARTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "refault_results.h"
#include "refault_variants.h"

struct refault_opts {
	size_t size_bytes;	/* region per variant per round */
	size_t pages;		/* touches per access per variant per round */
	unsigned rounds;
	uint64_t seed;
	const char *scan_rate;	/* passed to pagekeeperd */
	double min_pct;		/* of the region reclaimed before touching */
	double wait_timeout_s;	/* 0: derived from size and rate */
	const char *daemon;
	const char *only;	/* NULL, "zero" or "shared" */
	bool json;
};

/* 0, or -errno when the kind could not be measured (why in res). */
int kind_part(const struct refault_opts *o, struct refault_env *env, enum page_kind k,
	      struct refault_results *res);

#endif
