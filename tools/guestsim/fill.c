/*
 * fill.c - give every guest page its base content.
 *
 * What: the boot of the lab guest.  Each page gets its version-0 content
 * (content.c): zero-class pages are only read, the way a booting guest
 * reads memory it never wrote, so they become resident zero pages (served
 * by the daemon's zero-fill); shared and unique pages are written in full.
 *
 * How: a parallel sweep (sweep.c) generating content straight into guest
 * RAM - no bounce buffer, one pass over each page.  The per-page seqlocks
 * start at 0 (calloc), i.e. version 0, which is what this writes.
 *
 * Why: after the fill the daemon sees a realistic mix (zero, mergeable
 * across guests, private) and every page has a known expected content, so
 * the workload and --verify can check any of them.
 */
#include "fill.h"
#include "sweep.h"

static bool fill_chunk(struct gs_sweep *sw, uint64_t first, uint64_t end,
		       void *scratch)
{
	const struct gs_ctx *ctx = sw->ctx;

	(void)scratch;
	for (uint64_t p = first; p < end; p++) {
		unsigned char *addr = gs_page_addr(ctx, p);

		if (gs_content_class(&ctx->content, p) == GS_CLASS_ZERO)
			(void)*(volatile unsigned char *)addr;
		else
			gs_content_generate(&ctx->content, p, 0, addr);
	}
	return true;
}

int gs_fill(struct gs_ctx *ctx, struct gs_fill_result *res)
{
	struct gs_sweep sw = {
		.ctx = ctx,
		.what = "fill",
		.fn = fill_chunk,
	};
	int rc = gs_sweep_run(&sw);

	if (rc < 0)
		return rc;
	res->complete = rc == 0;
	res->pages = gs_sweep_done(&sw);
	res->seconds = (double)sw.elapsed_ns / 1e9;
	res->signal = sw.signal;
	return 0;
}
