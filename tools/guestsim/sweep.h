/*
 * sweep.h - visit every page once, in parallel, with progress.
 * See sweep.c.
 */
#ifndef GS_SWEEP_H
#define GS_SWEEP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "control.h"
#include "guestsim.h"

struct gs_sweep;

/* Process pages [first, end); false stops the whole sweep. */
typedef bool (*gs_sweep_fn)(struct gs_sweep *sw, uint64_t first,
			    uint64_t end, void *scratch);

struct gs_sweep {
	/* Set by the caller. */
	struct gs_ctx *ctx;
	const char *what;	/* "fill", "verify": progress label */
	gs_sweep_fn fn;
	void *arg;		/* for fn */

	/* Results. */
	uint64_t elapsed_ns;	/* start to last thread done */
	int signal;		/* signal that interrupted it, or 0 */

	/* Internal. */
	struct gs_control ctl;
	atomic_uint_fast64_t next;	/* first page not yet claimed */
	atomic_uint_fast64_t done;	/* pages processed */
	uint64_t start_ns;
	unsigned next_pct;
};

/*
 * Run fn over all pages with ctx->sweep_threads threads.  Returns 0 when
 * every page was processed, 1 when stopped early (fn or a signal), or
 * -errno when no thread could start.
 */
int gs_sweep_run(struct gs_sweep *sw);

/* Pages processed so far (all of them after a complete sweep). */
uint64_t gs_sweep_done(const struct gs_sweep *sw);

#endif
