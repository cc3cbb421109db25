/*
 * report.h - the results of a run, for people or for scripts.
 * See report.c.
 */
#ifndef GS_REPORT_H
#define GS_REPORT_H

#include <stdbool.h>
#include <stdio.h>

#include "fill.h"
#include "guestsim.h"
#include "verify.h"
#include "worker.h"

struct gs_results {
	struct gs_fill_result fill;
	uint64_t discarded;	/* pages --discard dropped */
	bool workload_ran;
	struct gs_workload_result wl;
	bool verify_ran;
	struct gs_verify_result verify;
	int signal;	/* a signal ended some phase early, or 0 */
};

/* Reader mismatches plus a failed --verify. */
uint64_t gs_results_mismatches(const struct gs_results *r);

/* Human text, every number with its unit. */
void gs_report_text(FILE *f, const struct gs_ctx *ctx,
		    const struct gs_results *r);

/* One JSON object on one line. */
void gs_report_json(FILE *f, const struct gs_ctx *ctx,
		    const struct gs_results *r);

#endif
