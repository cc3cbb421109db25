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
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "control.h"
#include "guestapp.h"
#include "guestos.h"

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
	for (v = 0; v < os->n_vpages; v++) {
		if (v % SIGNAL_CHECK == 0 &&
		    (res->signal = pending_signal(&ctx->sigs)))
			break;
		rc = gs_os_access(os, v, true, true, &bad);
		if (rc)
			return io_failed("fill", v, rc);
	}
	res->pages = v;
	res->complete = v == os->n_vpages;
	res->seconds = (double)(gs_now_ns() - start) / 1e9;
	return 0;
}

int gs_app_workload(struct gs_ctx *ctx, struct gs_workload_result *res)
{
	const struct gs_opts *o = ctx->opts;
	struct gs_os *os = ctx->os;
	unsigned mix = o->writers + o->readers;
	uint64_t start = gs_now_ns(), now = start, i;
	uint64_t deadline = start + (uint64_t)(o->duration_s * 1e9);
	struct gs_picker pk;

	memset(res, 0, sizeof(*res));
	if (o->workload == GS_WL_IDLE || mix == 0) {
		res->signal = gs_control_sleep(&ctx->sigs, deadline);
		res->seconds = (double)(gs_now_ns() - start) / 1e9;
		return 0;
	}
	/* One thread: it is the only writer, of every page. */
	gs_picker_init(&pk, o->workload, &ctx->hot, o->seed, true, 0, 1);
	for (i = 0; !o->ops || i < o->ops; i++) {
		bool write = i % mix < o->writers;
		uint32_t v = (uint32_t)gs_picker_next(
			&pk, (double)(now - start) / 1e9);
		uint64_t t0 = now;
		long bad;
		int rc;

		if (i % SIGNAL_CHECK == 0) {
			if ((res->signal = pending_signal(&ctx->sigs)))
				break;
			if (now >= deadline)
				break;
		}
		rc = gs_os_access(os, v, write, false, &bad);
		if (rc)
			return io_failed("workload", v, rc);
		now = gs_now_ns();
		gs_hist_add(write ? &res->writes : &res->reads, now - t0);
		if (bad >= 0 && res->mismatches++ < MAX_REPORTS)
			fprintf(stderr, "pk-guestsim: application: page %"
				PRIu32 " of the working set mismatch at byte "
				"%ld\n", v, bad);
	}
	res->seconds = (double)(gs_now_ns() - start) / 1e9;
	return 0;
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
