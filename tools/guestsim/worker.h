/*
 * worker.h - the workload: writer and reader threads.  See worker.c.
 */
#ifndef GS_WORKER_H
#define GS_WORKER_H

#include <stdint.h>

#include "guestsim.h"
#include "stats.h"

struct gs_workload_result {
	double seconds;		/* workload start to last thread done */
	int signal;		/* signal that ended it early, or 0 */
	struct gs_hist reads;	/* latency of verified reads */
	struct gs_hist writes;
	uint64_t read_skips;	/* reads dropped: page being written */
	uint64_t mismatches;	/* reads that found wrong bytes */
};

/* 0, or -errno when the threads could not start. */
int gs_workload_run(struct gs_ctx *ctx, struct gs_workload_result *res);

#endif
