/*
 * refault_results.h - every figure one pk-bench-refault run produces.
 *
 * What: configuration; per page kind (zero, shared), per variant
 * (pagekeeperd, floor) and per access (read, write) the refault latency
 * pooled over rounds (p50, p90, p99, p99.9, max, mean, per-round p50);
 * pagekeeperd's wait for its scanner and what it reported then; the
 * daemon's faults per touch; for shared pages the touches that dropped a
 * canonical copy's last reference; the goal ratios computed from them; and,
 * for a kind that could not be measured, why.
 * How: filled by refault_parts.c, printed by refault_report.c as text
 * or JSON.
 * Why: one struct, two printers: the text and the JSON never disagree.
 */
#ifndef PK_BENCH_REFAULT_RESULTS_H
#define PK_BENCH_REFAULT_RESULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "refault_touch.h"
#include "timing.h"
#include "refault_variants.h"

#define RF_MAX_ROUNDS LAT_MAX_ROUNDS
#define GOAL_REFAULT_RATIO 1.2	/* pagekeeperd / floor, p50 and p99 */

struct rf_kind {
	bool wanted;		/* --only */
	bool ran;		/* every round measured */
	char why[1200];		/* when wanted but not ran */
	struct lat_result lat[RV_COUNT][ACC_COUNT];
	unsigned rounds;	/* pagekeeperd rounds that reached the touches */
	double wait_s[RF_MAX_ROUNDS];		/* pagekeeperd: until reclaimed */
	double reclaimed_mib[RF_MAX_ROUNDS];	/* its zero_mib / shared_mib then */
	double canonical_frames[RF_MAX_ROUNDS];
	uint64_t daemon_faults;			/* over all its timed touches */
	size_t daemon_touches;
	size_t daemon_seconds;	/* shared: touches after their twin's */
};

struct refault_results {
	size_t size_bytes, pages;	/* region; touches per access per round */
	unsigned rounds;
	uint64_t seed;
	char scan_rate[32];
	double min_pct, wait_timeout_s;
	char daemon_path[4096];
	char daemon_args[512];
	bool uffd_via_dev;
	long cpus;
	uint64_t timer_overhead_ns;
	double run_s;			/* the whole run, start to report */
	struct rf_kind kind[KIND_COUNT];
};

/* pagekeeperd / floor at the percentile (50 or 99); < 0 when n/a. */
double rf_ratio(const struct rf_kind *k, enum access a, int pct);

void refault_report_text(const struct refault_results *r, FILE *out);
void refault_report_json(const struct refault_results *r, FILE *out);

#endif
