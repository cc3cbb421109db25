/*
 * guestapp.c - the application that runs on the lab guest's OS
 * (--balloon): its fill, workload and verify.
 *
 * What: the same three phases as the plain lab guest (fill.c, worker.c,
 * verify.c), but over the application's virtual working set, every access
 * going through the guest OS (guestos.c), which faults pages in from its
 * page file and pages others out as the balloon squeezes it.
 *   fill      writes version 0 of every page of the working set, lowest
 *             first (so the --locked pages, the lowest, are resident);
 *   workload  one thread, --ops accesses (or --duration seconds): pages
 *             picked by --workload over the working set; of every
 *             writers+readers ops, --writers write a new version and
 *             --readers check the page against its expected content;
 *   verify    every page of the working set, in RAM or in the page file.
 * With --grow SECONDS there is no fill: the heap starts empty and the
 * workload grows it, by first touches in address order (the way a heap
 * grows by brk/mmap, and so the --locked pages, the lowest, come first),
 * to n * elapsed / SECONDS pages on the guest's clock; each op picks its
 * page over the part grown so far (the picker's page modulo the heap
 * size).  The run ends when the --ops are done and the heap is full (if
 * the ops end first, it keeps growing on schedule), so the verify checks
 * the whole working set unless a signal or --duration cut the growth: a
 * page never grown holds no content and is not verified.
 *
 * With --live F (guestos.c) the fill or the growth makes the live set,
 * the first F of the working set; then, after each op, the application
 * allocates new page-sized objects at --churn objects per op (spread
 * evenly: op i allocates floor((i+1)c) - floor(ic)), each replacing a
 * live object picked at random (never a --locked one), which becomes
 * garbage for the runtime to collect.  Accesses go to the live objects:
 * the picker's index into the live list.  The allocations are work on top
 * of the --ops accesses, the same for every run with the same options.
 *
 * How: the main thread runs the phase itself and takes SIGINT/SIGTERM with
 * a zero-timeout sigtimedwait() every 256 accesses, so a signal stops it
 * at an access boundary and the verify and report still run.
 *
 * Why one thread: the guest OS serializes accesses on its lock anyway
 * (a fault may evict, and the balloon must not take a frame in use), and
 * with --ops the run time is the measure: one thread makes it exact and
 * repeatable.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "control.h"
#include "guestapp.h"
#include "guestos.h"
#include "rng.h"

#define SIGNAL_CHECK 256	/* accesses between signal checks */
#define MAX_REPORTS 10

static int pending_signal(const sigset_t *set)
{
	struct timespec zero = { 0, 0 };
	int sig = sigtimedwait(set, NULL, &zero);

	return sig > 0 ? sig : 0;
}

static int io_failed(const char *phase, uint32_t v, int rc)
{
	fprintf(stderr, "pk-guestsim: %s: page %" PRIu32 " of the working "
		"set: %s\n", phase, v, strerror(-rc));
	return rc;
}

int gs_app_fill(struct gs_ctx *ctx, struct gs_fill_result *res)
{
	struct gs_os *os = ctx->os;
	uint64_t start = gs_now_ns();
	uint32_t v;
	long bad;
	int rc;

	memset(res, 0, sizeof(*res));
	if (ctx->opts->grow_s > 0) {	/* the workload grows the heap */
		res->complete = true;
		return 0;
	}
	for (v = 0; v < os->live_n; v++) {
		if (v % SIGNAL_CHECK == 0 &&
		    (res->signal = pending_signal(&ctx->sigs)))
			break;
		rc = gs_os_access(os, v, true, true, &bad);
		if (rc)
			return io_failed("fill", v, rc);
	}
	res->pages = v;
	res->complete = v == os->live_n;
	res->seconds = (double)(gs_now_ns() - start) / 1e9;
	return 0;
}

/*
 * --grow: first-touch the heap up to where it should be elapsed_ns into
 * the workload (at least one page, so there is one to access).  Returns
 * 0 or -errno; *next_ns: when the next page is due.
 */
static int grow(struct gs_ctx *ctx, uint64_t elapsed_ns, uint64_t *next_ns)
{
	struct gs_os *os = ctx->os;
	double per_page_ns = ctx->opts->grow_s * 1e9 / os->live_n;
	double f = (double)elapsed_ns / 1e9 / ctx->opts->grow_s;
	uint32_t want = f >= 1 ? os->live_n
			       : (uint32_t)(f * (double)os->live_n);
	long bad;
	int rc;

	if (want < 1)
		want = 1;
	while (os->heap < want) {	/* only this thread grows it */
		uint32_t v = os->heap;

		rc = gs_os_access(os, v, true, true, &bad);
		if (rc)
			return io_failed("grow", v, rc);
	}
	*next_ns = (uint64_t)((double)(os->heap + 1) * per_page_ns);
	return 0;
}

/*
 * --live: after op i, allocate the objects due (see the top), each in
 * place of a random live one grown so far, which dies.
 */
static int churn(struct gs_ctx *ctx, uint32_t *live, uint64_t i,
		 uint64_t *rng)
{
	struct gs_os *os = ctx->os;
	double c = ctx->opts->churn;
	uint64_t due = (uint64_t)((double)(i + 1) * c) -
		       (uint64_t)((double)i * c);
	uint32_t span = os->heap > os->locked_n ? os->heap - os->locked_n : 0;

	if (!span)
		return 0;
	while (due--) {
		uint32_t k = os->locked_n + (uint32_t)(gs_next(rng) % span);
		uint32_t v;
		int rc = gs_os_alloc(os, &v);

		if (rc)
			return io_failed("allocate", live[k], rc);
		gs_os_retire(os, live[k]);
		live[k] = v;
	}
	return 0;
}

int gs_app_workload(struct gs_ctx *ctx, struct gs_workload_result *res)
{
	const struct gs_opts *o = ctx->opts;
	struct gs_os *os = ctx->os;
	unsigned mix = o->writers + o->readers;
	uint64_t start = gs_now_ns(), now = start, i;
	uint64_t deadline = start + (uint64_t)(o->duration_s * 1e9);
	bool elastic = os->live_n < os->n_vpages;
	uint64_t rng = gs_hash2(o->seed, 0x6c697665 /* "live" */);
	uint32_t *live = NULL;
	struct gs_picker pk;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	if (o->workload == GS_WL_IDLE || mix == 0) {
		res->signal = gs_control_sleep(&ctx->sigs, deadline);
		res->seconds = (double)(gs_now_ns() - start) / 1e9;
		return 0;
	}
	if (elastic) {		/* the live objects, at first [0, live_n) */
		live = malloc(sizeof(*live) * os->live_n);
		if (!live)
			return io_failed("workload", 0, -ENOMEM);
		for (uint32_t k = 0; k < os->live_n; k++)
			live[k] = k;
	}
	/* One thread: it is the only writer, of every page. */
	gs_picker_init(&pk, o->workload, &ctx->hot, o->seed, true, 0, 1);
	for (i = 0; !o->ops || i < o->ops || os->heap < os->live_n; i++) {
		bool write = i % mix < o->writers;
		uint32_t v = (uint32_t)gs_picker_next(
			&pk, (double)(now - start) / 1e9);
		uint64_t t0 = now;
		long bad;

		if (i % SIGNAL_CHECK == 0 || (o->ops && i >= o->ops)) {
			if ((res->signal = pending_signal(&ctx->sigs)))
				break;
			if (now >= deadline)
				break;
		}
		if (o->grow_s > 0) {
			uint64_t next;

			rc = grow(ctx, now - start, &next);
			if (rc)
				goto out;
			if (o->ops && i >= o->ops) {
				/* Only growing now: sleep to the next page
				 * (10 ms at most, for the --duration cap). */
				if (next > now - start + 10000000)
					next = now - start + 10000000;
				if (os->heap < os->live_n &&
				    (res->signal = gs_control_sleep(
					     &ctx->sigs, start + next)))
					break;
				now = gs_now_ns();
				continue;
			}
			v %= os->heap;
		}
		if (elastic)
			v = live[v % os->live_n];
		rc = gs_os_access(os, v, write, false, &bad);
		if (rc) {
			rc = io_failed("workload", v, rc);
			goto out;
		}
		if (elastic && (rc = churn(ctx, live, i, &rng)))
			goto out;
		now = gs_now_ns();
		gs_hist_add(write ? &res->writes : &res->reads, now - t0);
		if (bad >= 0 && res->mismatches++ < MAX_REPORTS)
			fprintf(stderr, "pk-guestsim: application: page %"
				PRIu32 " of the working set mismatch at byte "
				"%ld\n", v, bad);
	}
	res->seconds = (double)(gs_now_ns() - start) / 1e9;
out:
	free(live);
	return rc;
}

int gs_app_verify(struct gs_ctx *ctx, struct gs_verify_result *res)
{
	uint64_t start = gs_now_ns();
	atomic_int stop = 0;
	int64_t bad;
	int rc;

	memset(res, 0, sizeof(*res));
	/* A signal now is taken after the verify (by --hold or the exit):
	 * the verify of the working set is quick next to the workload. */
	rc = gs_os_verify(ctx->os, &stop, &res->pages_verified, &bad,
			  &res->bad_offset, &res->bad_version);
	if (rc)
		return io_failed("verify", (uint32_t)res->pages_verified, rc);
	res->seconds = (double)(gs_now_ns() - start) / 1e9;
	res->failed = bad >= 0;
	res->complete = true;
	if (res->failed) {
		res->bad_page = (uint64_t)bad;
		fprintf(stderr, "pk-guestsim: verify: page %" PRIu64 " of the "
			"working set mismatch at byte %ld: expected version %"
			PRIu32 "\n", res->bad_page, res->bad_offset,
			res->bad_version);
	}
	return 0;
}
