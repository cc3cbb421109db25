/*
 * guestsim.h - the state of one pk-guestsim run, passed to every phase.
 *
 * Everything a phase needs hangs off struct gs_ctx, built by main.c and
 * passed down explicitly: there are no globals, so each part can be read
 * (and tested) on its own.
 */
#ifndef GS_GUESTSIM_H
#define GS_GUESTSIM_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "content.h"
#include "opts.h"
#include "ram.h"
#include "workload.h"

enum gs_exit {
	GS_EXIT_OK = 0,
	GS_EXIT_MISMATCH = 1,
	GS_EXIT_USAGE = 2,
	GS_EXIT_ATTACH = 3,
	GS_EXIT_SYSTEM = 4,
	GS_EXIT_UNVERIFIED = 5,	/* --verify checked only part of RAM */
};

struct gs_os;
struct gs_lab_balloon;

struct gs_ctx {
	const struct gs_opts *opts;
	struct gs_os *os;	/* --balloon: the guest OS, else NULL */
	struct gs_lab_balloon *lab; /* --balloon: its balloon driver */
	struct gs_content content;
	struct gs_ram ram;
	uint64_t n_pages;
	/*
	 * Per-page seqlock, in the simulator's heap, never in guest RAM (the
	 * daemon may lose or corrupt guest RAM; the truth must survive):
	 * version = seq / 2; odd while the page's writer is writing it.
	 */
	_Atomic uint32_t *seq;
	/*
	 * --discard: 1 for a page discarded and not written since, whose
	 * expected content is all zeros whatever its version; NULL without
	 * --discard.  A writer clears it while the page's seqlock is odd.
	 */
	_Atomic unsigned char *discarded;
	struct gs_hotmap hot;	/* workload hot set, shared read only */
	sigset_t sigs;		/* SIGINT, SIGTERM: blocked, taken by main */
	unsigned sweep_threads;	/* parallelism of fill and verify */
	bool stdin_open;	/* fd 0 was open at start: --hold reads it */
};

static inline unsigned char *gs_page_addr(const struct gs_ctx *ctx,
					  uint64_t page)
{
	return ctx->ram.base + page * GS_PAGE_SIZE;
}

/* Was page p discarded and not written since? */
static inline bool gs_page_discarded(const struct gs_ctx *ctx, uint64_t p)
{
	return ctx->discarded &&
	       atomic_load_explicit(&ctx->discarded[p], memory_order_relaxed);
}

/*
 * Check page p at version against what it must hold: zeros if it was
 * discarded since its last write, else the version's content.  -1 when
 * right, else the first differing byte.  Readers call it between the two
 * loads of the seqlock, so the discard bit they see goes with the version.
 */
static inline long gs_page_check(const struct gs_ctx *ctx, uint64_t p,
				 uint32_t version, void *scratch)
{
	if (gs_page_discarded(ctx, p))
		return gs_content_check_zero(gs_page_addr(ctx, p));
	return gs_content_check(&ctx->content, p, version, gs_page_addr(ctx, p),
				scratch);
}

#endif
