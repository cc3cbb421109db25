/*
 * verify.c - check every guest page against its expected version.
 *
 * What: --verify, run once the workload threads are gone.  Each page must
 * hold exactly the content of the version its seqlock records (all zeros
 * if --discard dropped it and nothing wrote it since); the first (lowest)
 * page that doesn't is named, with its first differing byte, and the run
 * fails.  This is the end-to-end check that the daemon's swapping,
 * compression and merging never lost or mixed up a byte.  A verify that
 * a signal cut short checked only part of RAM, which main.c turns into
 * exit status 5: "verified" always means every page.
 *
 * How: a parallel sweep (sweep.c); each thread generates the expected page
 * in its scratch buffer and memcmp()s.  A thread that finds a mismatch
 * records it under a mutex if it is the lowest so far and stops the sweep.
 * Chunks are claimed in increasing order and always finished by their
 * claimer unless it found a bad page of its own, so the lowest recorded
 * page is the lowest bad page of RAM.
 *
 * Why stop at the first: one exact report is what a developer needs;
 * counting every bad page of a broken 64 GiB guest helps nobody.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>

#include "verify.h"
#include "sweep.h"

struct verify_state {
	pthread_mutex_t lock;
	struct gs_verify_result *res;
	atomic_uint_fast64_t ok;
};

static bool verify_chunk(struct gs_sweep *sw, uint64_t first, uint64_t end,
			 void *scratch)
{
	struct verify_state *st = sw->arg;
	const struct gs_ctx *ctx = sw->ctx;
	uint64_t p;

	for (p = first; p < end; p++) {
		uint32_t v = atomic_load_explicit(&ctx->seq[p],
						  memory_order_acquire) / 2;
		long off = gs_page_check(ctx, p, v, scratch);

		if (off < 0)
			continue;
		pthread_mutex_lock(&st->lock);
		if (!st->res->failed || p < st->res->bad_page) {
			st->res->failed = true;
			st->res->bad_page = p;
			st->res->bad_offset = off;
			st->res->bad_version = v;
			st->res->bad_discarded = gs_page_discarded(ctx, p);
		}
		pthread_mutex_unlock(&st->lock);
		break;
	}
	atomic_fetch_add(&st->ok, p - first);
	return p == end;
}

int gs_verify(struct gs_ctx *ctx, struct gs_verify_result *res)
{
	struct verify_state st = {
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.res = res,
	};
	struct gs_sweep sw = {
		.ctx = ctx,
		.what = "verify",
		.fn = verify_chunk,
		.arg = &st,
	};
	int rc;

	*res = (struct gs_verify_result){ 0 };
	atomic_init(&st.ok, 0);
	rc = gs_sweep_run(&sw);
	if (rc < 0)
		return rc;
	res->complete = rc == 0 || res->failed;
	res->pages_verified = atomic_load(&st.ok);
	res->seconds = (double)sw.elapsed_ns / 1e9;
	res->signal = sw.signal;
	if (res->failed)
		fprintf(stderr,
			"pk-guestsim: verify: page %" PRIu64 " (offset 0x%" PRIx64
			") mismatch at byte %ld: expected version %" PRIu32 "%s\n",
			res->bad_page, res->bad_page * GS_PAGE_SIZE,
			res->bad_offset, res->bad_version,
			res->bad_discarded ? " (discarded: zeros)" : "");
	return 0;
}
