/*
 * balloon_results.h - what pk-bench-balloon measures, and its options.
 *
 * What: the options of one run, and per variant (no daemon, pagekeeperd +
 * lab driver, the locked guest through pagekeeperd) and per balloon target
 * (0%, 25%, 50% of the guest's RAM) the figures of every round: the
 * guest's run time, page-ins and page-outs per second of workload time,
 * where its balloon settled (reached or stalled, the shortfall), how long
 * it took to settle, and the daemon's view of the same guest.
 * How: plain structs filled by balloon_part.c, summarised (medians) and
 * printed by balloon_report.c.
 * Why: one place that says which figures exist and in what unit.
 */
#ifndef PK_BENCH_BALLOON_RESULTS_H
#define PK_BENCH_BALLOON_RESULTS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define BAL_MAX_ROUNDS 15
#define BAL_NT 3 /* balloon targets */

enum bal_variant {
	BV_NODAEMON = 0, /* pk-guestsim --no-daemon, its balloon set by us */
	BV_DAEMON,	 /* pagekeeperd serves RAM, its lab driver balloons */
	BV_LOCKED,	 /* the same with --locked F */
	BV_COUNT,
};

struct bal_opts {
	size_t ram_bytes;	/* guest RAM (--ram) */
	size_t ws_bytes;	/* application working set (--working-set) */
	uint64_t ops;		/* --ops */
	unsigned rounds;
	double locked;		/* --locked of the locked guest */
	uint64_t seed;
	bool quick, json;
	const char *dir, *daemon, *guestsim;
};

/* One guest run: one variant, one target, one round. */
struct bal_run {
	double run_s;		/* the guest's workload time (--ops) */
	double page_ins_per_s, page_outs_per_s; /* over run_s, the guest's own */
	uint64_t page_ins, page_outs;
	double balloon_mib;	/* the guest's balloon at the end */
	double actual_mib;	/* what the balloon left it when settled */
	bool stalled;		/* the guest said its balloon stalled */
	double shortfall_mib;	/* the guest's figure */
	double settle_ms;	/* from the target sent to reached / stalled */
	/* pagekeeperd's STATUS of the VM when settled (variants 1, 2): */
	bool d_stalled;
	double d_actual_mib, d_shortfall_mib;
	double d_pageins_per_s;	/* highest guest_pageins_per_s seen, -1: none */
	uint64_t pages_verified;
};

struct bal_cell {
	unsigned n;		/* rounds done */
	struct bal_run r[BAL_MAX_ROUNDS];
	double stretch[BAL_MAX_ROUNDS]; /* run_s / run_s at 0%, same round */
};

struct bal_results {
	struct bal_opts o;
	unsigned pct[BAL_NT];	/* 0, 25, 50 */
	uint64_t target_bytes[BAL_NT];
	struct bal_cell c[BV_COUNT][BAL_NT];
	char daemon_path[PATH_MAX], guestsim_path[PATH_MAX], dir[PATH_MAX];
	char daemon_args[512];
	double locked_mib;	/* locked pages of the locked guest */
	long cpus;
	double run_s;		/* the whole benchmark */
};

const char *bal_variant_name(int v);

void balloon_report_text(const struct bal_results *r, FILE *out);
void balloon_report_json(const struct bal_results *r, FILE *out);

#endif
