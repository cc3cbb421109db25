/*
 * sweep.c - visit every page once, in parallel, with progress.
 *
 * What: the fill and the final verify both walk all of guest RAM.  With
 * pagekeeperd attached every first touch is a fault the daemon serves, so
 * one thread would measure the daemon's single-fault latency rather than
 * its throughput; several threads keep several faults in flight.
 *
 * How: threads claim chunks of 64 pages (256 KiB) in increasing order from
 * an atomic cursor, so the work balances itself however uneven the fault
 * costs are, and every page below the cursor's value has been claimed by
 * someone (verify relies on it to name the lowest bad page).  The main
 * thread waits in gs_control_wait(), printing "what NN% (MiB, MiB/s)" on
 * stderr each time another 10% is done, unless --quiet.
 *
 * Why a helper: fill and verify differ only in what they do to a page.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "sweep.h"
#include "clock.h"

#define CHUNK_PAGES 64

struct sweeper {
	struct gs_sweep *sw;
	pthread_t tid;
	void *scratch;
};

static void *sweeper_main(void *arg)
{
	struct sweeper *t = arg;
	struct gs_sweep *sw = t->sw;
	uint64_t n = sw->ctx->n_pages;

	while (!atomic_load_explicit(&sw->ctl.stop, memory_order_relaxed)) {
		uint64_t first = atomic_fetch_add(&sw->next, CHUNK_PAGES);
		uint64_t end = first + CHUNK_PAGES;

		if (first >= n)
			break;
		if (end > n)
			end = n;
		if (!sw->fn(sw, first, end, t->scratch)) {
			atomic_store(&sw->ctl.stop, 1);
			break;
		}
		atomic_fetch_add_explicit(&sw->done, end - first,
					  memory_order_relaxed);
	}
	gs_control_exit(&sw->ctl);
	return NULL;
}

static void progress(void *arg)
{
	struct gs_sweep *sw = arg;
	uint64_t n = sw->ctx->n_pages;
	uint64_t done = atomic_load_explicit(&sw->done, memory_order_relaxed);
	unsigned pct = (unsigned)(done * 100 / n);
	double mib, s;

	if (pct < sw->next_pct || sw->ctx->opts->quiet)
		return;
	mib = (double)done * GS_PAGE_SIZE / (1 << 20);
	s = (double)(gs_now_ns() - sw->start_ns) / 1e9;
	fprintf(stderr, "pk-guestsim: %s %3u%% (%.1f MiB, %.1f MiB/s)\n",
		sw->what, pct, mib, s > 0 ? mib / s : 0.0);
	sw->next_pct = pct / 10 * 10 + 10;
}

int gs_sweep_run(struct gs_sweep *sw)
{
	unsigned nt = sw->ctx->sweep_threads, started = 0;
	struct sweeper *ts = calloc(nt, sizeof(*ts));
	int rc = 0;

	if (!ts)
		return -ENOMEM;
	atomic_init(&sw->ctl.stop, 0);
	atomic_init(&sw->ctl.running, nt);
	atomic_init(&sw->next, 0);
	atomic_init(&sw->done, 0);
	sw->ctl.end_ns = 0;
	sw->signal = 0;
	sw->next_pct = 10;
	sw->start_ns = gs_now_ns();
	for (; started < nt; started++) {
		struct sweeper *t = &ts[started];

		t->sw = sw;
		t->scratch = aligned_alloc(GS_PAGE_SIZE, GS_PAGE_SIZE);
		if (!t->scratch) {
			rc = -ENOMEM;
			break;
		}
		rc = -pthread_create(&t->tid, NULL, sweeper_main, t);
		if (rc) {
			free(t->scratch);
			break;
		}
	}
	if (started < nt) {
		/* Account for the threads that never ran; fewer is fine. */
		atomic_fetch_sub(&sw->ctl.running, nt - started);
		if (!started) {
			free(ts);
			return rc;
		}
		rc = 0;
	}
	sw->signal = gs_control_wait(&sw->ctx->sigs, &sw->ctl, UINT64_MAX,
				     progress, sw);
	for (unsigned i = 0; i < started; i++) {
		pthread_join(ts[i].tid, NULL);
		free(ts[i].scratch);
	}
	free(ts);
	if (!sw->ctl.end_ns) /* threads gone before a failed start's fixup */
		sw->ctl.end_ns = gs_now_ns();
	sw->elapsed_ns = sw->ctl.end_ns - sw->start_ns;
	return gs_sweep_done(sw) == sw->ctx->n_pages ? 0 : 1;
}

uint64_t gs_sweep_done(const struct gs_sweep *sw)
{
	return atomic_load(&sw->done);
}
