/*
 * worker.c - the workload: writer and reader threads.
 *
 * What: for --duration seconds, --writers threads write new versions of
 * pages and --readers threads verify pages, each op touching one page
 * chosen by workload.c; every op's latency goes to the thread's own
 * histogram (stats.c).
 *
 * How: each page has a seqlock in the simulator's heap (ctx->seq).  Writer
 * i owns the pages p with p % writers == i, so a page has one writer and
 * the seqlock needs no compare-and-swap: the writer makes it odd, writes
 * version v+1's content straight into guest RAM, then makes it even.  A
 * reader loads the seqlock, skips the page if it is odd, compares the page
 * with the expected content of that version, and loads the seqlock again:
 * if it changed the result is meaningless and the read counts as skipped;
 * if it is the same, any difference is a real corruption and is reported
 * (page, expected version, first bad byte).  The 32-bit counter wraps to
 * version 0 after 2^31 writes of a page, which both sides agree is base
 * content, so wrapping is harmless.
 *
 * Why: this is the guest's view of memory correctness while the daemon
 * concurrently swaps, compresses and merges under it - every byte a reader
 * sees must be the last one written.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker.h"
#include "clock.h"
#include "control.h"

#define MAX_REPORTS 10	/* mismatches printed per reader */

struct worker {
	struct gs_ctx *ctx;
	struct gs_control *ctl;
	uint64_t start_ns;
	bool writer;
	unsigned index;
	struct gs_picker picker;
	struct gs_hist hist;
	uint64_t skips, mismatches;
	void *scratch;
	pthread_t tid;
};

static void write_page(struct gs_ctx *ctx, uint64_t p)
{
	_Atomic uint32_t *seq = &ctx->seq[p];
	uint32_t s = atomic_load_explicit(seq, memory_order_relaxed);

	atomic_store_explicit(seq, s + 1, memory_order_relaxed);
	/* Odd must be visible before any byte of the new content (and
	 * before the discard bit goes: a reader that sees it gone also
	 * sees the seqlock move). */
	atomic_thread_fence(memory_order_release);
	if (ctx->discarded)
		atomic_store_explicit(&ctx->discarded[p], 0,
				      memory_order_relaxed);
	gs_content_generate(&ctx->content, p, (uint32_t)(s + 2) / 2,
			    gs_page_addr(ctx, p));
	atomic_store_explicit(seq, s + 2, memory_order_release);
}

/* true when the read verified the page (right or wrong), false: skipped. */
static bool read_page(struct worker *w, uint64_t p)
{
	struct gs_ctx *ctx = w->ctx;
	_Atomic uint32_t *seq = &ctx->seq[p];
	uint32_t s1, s2;
	long off;

	s1 = atomic_load_explicit(seq, memory_order_acquire);
	if (s1 & 1)
		return false;
	off = gs_page_check(ctx, p, s1 / 2, w->scratch);
	/* The bytes compared must be read before the second load. */
	atomic_thread_fence(memory_order_acquire);
	s2 = atomic_load_explicit(seq, memory_order_relaxed);
	if (s2 != s1)
		return false;
	if (off >= 0) {
		if (w->mismatches++ < MAX_REPORTS)
			fprintf(stderr,
				"pk-guestsim: reader %u: page %" PRIu64
				" (offset 0x%" PRIx64 ") mismatch at byte %ld: "
				"expected version %" PRIu32 "%s\n",
				w->index, p, p * GS_PAGE_SIZE, off, s1 / 2,
				gs_page_discarded(ctx, p) ? " (discarded: zeros)"
							  : "");
	}
	return true;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t now = gs_now_ns();

	while (!atomic_load_explicit(&w->ctl->stop, memory_order_relaxed)) {
		uint64_t p = gs_picker_next(&w->picker,
					    (double)(now - w->start_ns) / 1e9);
		uint64_t t0 = gs_now_ns();
		bool counted = true;

		if (w->writer)
			write_page(w->ctx, p);
		else
			counted = read_page(w, p);
		now = gs_now_ns();
		if (counted)
			gs_hist_add(&w->hist, now - t0);
		else
			w->skips++;
	}
	gs_control_exit(w->ctl);
	return NULL;
}

static uint64_t deadline(uint64_t start_ns, double seconds)
{
	return start_ns + (uint64_t)(seconds * 1e9);
}

int gs_workload_run(struct gs_ctx *ctx, struct gs_workload_result *res)
{
	const struct gs_opts *o = ctx->opts;
	unsigned n = o->writers + o->readers, started = 0;
	struct gs_control ctl;
	struct worker *ws;
	uint64_t start;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	start = gs_now_ns();
	if (o->workload == GS_WL_IDLE || n == 0) {
		res->signal = gs_control_sleep(&ctx->sigs,
					       deadline(start, o->duration_s));
		res->seconds = (double)(gs_now_ns() - start) / 1e9;
		return 0;
	}
	ws = calloc(n, sizeof(*ws));
	if (!ws)
		return -ENOMEM;
	atomic_init(&ctl.stop, 0);
	atomic_init(&ctl.running, n);
	ctl.end_ns = 0;
	for (unsigned i = 0; i < n; i++) {
		struct worker *w = &ws[i];

		w->ctx = ctx;
		w->ctl = &ctl;
		w->start_ns = start;
		w->writer = i < o->writers;
		w->index = w->writer ? i : i - o->writers;
		gs_picker_init(&w->picker, o->workload, &ctx->hot, o->seed,
			       w->writer, w->index,
			       w->writer ? o->writers : o->readers);
		w->scratch = aligned_alloc(GS_PAGE_SIZE, GS_PAGE_SIZE);
		if (!w->scratch) {
			rc = -ENOMEM;
			break;
		}
	}
	for (; !rc && started < n; started++) {
		rc = -pthread_create(&ws[started].tid, NULL, worker_main,
				     &ws[started]);
		if (rc)
			break;
	}
	if (rc) {
		/* All or nothing: a workload missing threads measures
		 * something else than asked. */
		atomic_store(&ctl.stop, 1);
		atomic_fetch_sub(&ctl.running, n - started);
	}
	res->signal = gs_control_wait(&ctx->sigs, &ctl,
				      deadline(start, o->duration_s), NULL,
				      NULL);
	for (unsigned i = 0; i < started; i++)
		pthread_join(ws[i].tid, NULL);
	if (!ctl.end_ns)
		ctl.end_ns = gs_now_ns();
	res->seconds = (double)(ctl.end_ns - start) / 1e9;
	for (unsigned i = 0; i < n; i++) {
		struct worker *w = &ws[i];

		gs_hist_merge(w->writer ? &res->writes : &res->reads, &w->hist);
		res->read_skips += w->skips;
		res->mismatches += w->mismatches;
		free(w->scratch);
	}
	free(ws);
	return rc;
}
