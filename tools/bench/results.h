/*
 * results.h - every figure one pk-bench-fault run produces.
 *
 * What: per-variant random-touch latency statistics and sequential sweep
 * times, the two goal ratios, and pagekeeperd's attach cost and footprint.
 * How: filled by bench_fault.c, printed by report.c as text or JSON.
 * Why: one struct, two printers, so the text and JSON never disagree.
 */
#ifndef PK_BENCH_RESULTS_H
#define PK_BENCH_RESULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon_proc.h"
#include "timing.h"
#include "variants.h"

#define MAX_ROUNDS 64

#define GOAL_RANDOM_RATIO 1.3 /* pagekeeperd p50 / floor p50 */
#define GOAL_SEQ_RATIO 1.0    /* pagekeeperd time / kernel time */

struct random_result {
	bool ran;
	struct lat_stats st;
	size_t present;		/* pages resident before their touch */
	unsigned rounds;
	double round_p50_us[MAX_ROUNDS];
};

struct seq_result {
	bool ran;
	unsigned rounds;
	double round_ms[MAX_ROUNDS];
	double ms;		/* median of rounds */
	double mib_s;
	double us_per_page;
};

struct bench_results {
	/* configuration */
	bool anon;
	size_t pages;		/* random samples per variant */
	unsigned rounds;	/* random-touch rounds */
	size_t seq_bytes;
	unsigned seq_rounds;
	bool skip_daemon, skip_seq;
	uint64_t seed;
	const char *daemon_path;
	bool uffd_via_dev;
	uint64_t timer_overhead_ns;
	double run_s;			/* the whole run, start to report */
	long cpus;

	struct random_result rnd[V_COUNT];
	struct seq_result seq[V_COUNT];

	/* pagekeeperd */
	unsigned attaches;
	double attach_ms_avg, attach_ms_max, detach_ms_avg, detach_ms_max;
	struct daemon_usage usage0;	/* snapshot before the first attach */
	struct daemon_usage usage;	/* snapshot after the last detach */
};

/* ratio and verdict; ratio < 0 when a side did not run */
double random_ratio(const struct bench_results *r);
double seq_ratio(const struct bench_results *r);

void report_text(const struct bench_results *r, FILE *out);
void report_json(const struct bench_results *r, FILE *out);

#endif
