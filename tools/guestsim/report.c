/*
 * report.c - the results of a run, for people or for scripts.
 *
 * What: the end-of-run summary: fill time and rate, workload ops/s, and
 * read and write latency percentiles (p50, p90, p99, p99.9, max), mismatch
 * and verify counts.  Text for people (every number with its unit), or
 * with --json one JSON object on one line of stdout, whose keys are a
 * stable interface for tests and bench scripts: name, size_mib, workload,
 * fill_s, fill_mib_per_s, duration_s, read_ops, write_ops, ops_per_s,
 * read_p50_us, read_p99_us, write_p50_us, write_p99_us, mismatches,
 * pages_verified, pages_discarded - plus a few extra keys that may grow.
 *
 * With --balloon (the guest OS model) it adds the guest's own paging and
 * balloon: text lines "guest os" and "paging"; JSON keys working_set_mib,
 * ram_mib, locked_mib, locked_resident_mib (all locked pages are in
 * RAM: counted, not assumed), ops, run_s, page_ins, page_outs,
 * page_ins_per_s, page_outs_per_s, page_file_reads, page_file_writes, alloc_stalls,
 * balloon_mib, balloon_target_mib, balloon_stalled, shortfall_mib,
 * resident_mib, live_mib, committed_mib, allocs, gc_runs, gc_mib (the
 * elastic heap, --live: "heap" in text), balloon_connections,
 * balloon_errors, and "timeline": an array of {t_s, page_ins_per_s,
 * page_outs_per_s, ops_per_s, balloon_mib, resident_mib, heap_mib (the
 * committed heap)}, one per --timeline-interval; grow_s (--grow).
 *
 * How: plain fprintf; the only string from outside (the VM name) is
 * escaped for JSON.  Rates over a zero duration are reported as 0.
 */
#include <inttypes.h>
#include <pthread.h>

#include "guestos.h"
#include "labballoon.h"
#include "report.h"

static double mib(uint64_t bytes)
{
	return (double)bytes / (1 << 20);
}

static double rate(double amount, double seconds)
{
	return seconds > 0 ? amount / seconds : 0;
}

uint64_t gs_results_mismatches(const struct gs_results *r)
{
	return r->wl.mismatches + (r->verify.failed ? 1 : 0);
}

static void text_hist(FILE *f, const char *what, const struct gs_hist *h,
		      double seconds)
{
	fprintf(f, "  %-7s %" PRIu64 " ops, %.0f ops/s; latency p50 %.2f us, "
		   "p90 %.2f us, p99 %.2f us, p99.9 %.2f us, max %.2f us\n",
		what, h->count, rate((double)h->count, seconds),
		gs_hist_quantile_us(h, 0.50), gs_hist_quantile_us(h, 0.90),
		gs_hist_quantile_us(h, 0.99), gs_hist_quantile_us(h, 0.999),
		gs_hist_max_us(h));
}

static double frames_mib(uint64_t frames)
{
	return mib(frames * GS_PAGE_SIZE);
}

static uint64_t shortfall(const struct gs_os_counters *c)
{
	return c->stalled && c->balloon_target > c->balloon
		       ? c->balloon_target - c->balloon : 0;
}

static void text_os(FILE *f, const struct gs_ctx *ctx,
		    const struct gs_results *r)
{
	struct gs_os *os = ctx->os;
	struct gs_os_counters c;
	double s = r->wl.seconds;

	gs_os_counters(os, &c);
	fprintf(f, "guest os: working set %.1f MiB in %.1f MiB of RAM (kernel "
		   "%.1f MiB, locked %.1f MiB); resident %.1f MiB, free %.1f "
		   "MiB, balloon %.1f MiB (target %.1f MiB)",
		frames_mib(os->n_vpages), frames_mib(os->n_frames),
		frames_mib(os->reserve), frames_mib(os->locked_n),
		frames_mib(c.resident), frames_mib(c.free_frames),
		frames_mib(c.balloon), frames_mib(c.balloon_target));
	if (c.stalled)
		fprintf(f, ", stalled %.1f MiB short", frames_mib(shortfall(&c)));
	fprintf(f, "\npaging:   %" PRIu64 " page-ins (%.0f pages/s of workload "
		   "time), %" PRIu64 " page-outs, page file %" PRIu64 " reads, %"
		   PRIu64 " writes, %" PRIu64 " faults had to evict first\n",
		c.page_ins, rate((double)c.page_ins, s), c.page_outs,
		c.pf_reads, c.pf_writes, c.stalls);
	if (os->live_n < os->n_vpages)
		fprintf(f, "heap:     live %.1f MiB, committed %.1f MiB; %"
			   PRIu64 " objects allocated, %" PRIu64 " collections "
			   "released %.1f MiB\n", frames_mib(os->live_n),
			frames_mib(c.committed), c.allocs, c.gc_runs,
			frames_mib(c.gc_pages));
}

static void json_os(FILE *f, const struct gs_ctx *ctx,
		    const struct gs_results *r)
{
	struct gs_os *os = ctx->os;
	struct gs_os_counters c;
	double s = r->wl.seconds;

	gs_os_counters(os, &c);
	fprintf(f, ",\"working_set_mib\":%.3f,\"ram_mib\":%.3f,"
		   "\"locked_mib\":%.3f,\"locked_resident_mib\":%.3f,"
		   "\"ops\":%" PRIu64 ",\"run_s\":%.6f,\"grow_s\":%.3f",
		frames_mib(os->n_vpages), frames_mib(os->n_frames),
		frames_mib(os->locked_n), frames_mib(c.locked_resident), c.ops,
		s, ctx->opts->grow_s);
	fprintf(f, ",\"page_ins\":%" PRIu64 ",\"page_outs\":%" PRIu64
		   ",\"page_ins_per_s\":%.3f,\"page_outs_per_s\":%.3f"
		   ",\"page_file_reads\":%" PRIu64 ",\"page_file_writes\":%"
		   PRIu64 ",\"alloc_stalls\":%" PRIu64,
		c.page_ins, c.page_outs, rate((double)c.page_ins, s),
		rate((double)c.page_outs, s), c.pf_reads, c.pf_writes,
		c.stalls);
	fprintf(f, ",\"balloon_mib\":%.3f,\"balloon_target_mib\":%.3f,"
		   "\"balloon_stalled\":%s,\"shortfall_mib\":%.3f,"
		   "\"resident_mib\":%.3f",
		frames_mib(c.balloon), frames_mib(c.balloon_target),
		c.stalled ? "true" : "false", frames_mib(shortfall(&c)),
		frames_mib(c.resident));
	fprintf(f, ",\"live_mib\":%.3f,\"committed_mib\":%.3f,\"allocs\":%"
		   PRIu64 ",\"gc_runs\":%" PRIu64 ",\"gc_mib\":%.3f",
		frames_mib(os->live_n), frames_mib(c.committed), c.allocs,
		c.gc_runs, frames_mib(c.gc_pages));
	fprintf(f, ",\"balloon_connections\":%" PRIu64 ",\"balloon_errors\":%"
		   PRIu64, (uint64_t)atomic_load(&ctx->lab->connections),
		(uint64_t)atomic_load(&ctx->lab->errors_sent));
	fputs(",\"timeline\":[", f);
	/* The balloon driver's thread appends samples under the lock. */
	pthread_mutex_lock(&os->lock);
	for (size_t i = 0; i < os->n_samples; i++) {
		const struct gs_os_sample *p = &os->samples[i];

		fprintf(f, "%s{\"t_s\":%.3f,\"page_ins_per_s\":%.1f,"
			   "\"page_outs_per_s\":%.1f,\"ops_per_s\":%.1f,"
			   "\"balloon_mib\":%.3f,\"resident_mib\":%.3f,"
			   "\"heap_mib\":%.3f}",
			i ? "," : "", p->t_s, p->page_ins_per_s,
			p->page_outs_per_s, p->ops_per_s, p->balloon_mib,
			p->resident_mib, p->heap_mib);
	}
	pthread_mutex_unlock(&os->lock);
	fputc(']', f);
}

void gs_report_text(FILE *f, const struct gs_ctx *ctx,
		    const struct gs_results *r)
{
	const struct gs_opts *o = ctx->opts;
	const struct gs_workload_result *wl = &r->wl;
	uint64_t ops = wl->reads.count + wl->writes.count;

	fprintf(f, "guest:    %s, %.1f MiB (%" PRIu64 " pages), %s, %s, "
		   "seed %" PRIu64 ", content zero %.0f%% shared %.0f%%\n",
		o->name, mib(o->size), ctx->n_pages,
		o->anon ? "private anon" : "memfd",
		o->no_daemon ? "no daemon" : "attached",
		o->seed, o->zero_frac * 100, o->shared_frac * 100);
	fprintf(f, "fill:     %.3f s, %.1f MiB/s", r->fill.seconds,
		rate(mib(r->fill.pages * GS_PAGE_SIZE), r->fill.seconds));
	if (!r->fill.complete)
		fprintf(f, " (interrupted after %.1f MiB)",
			mib(r->fill.pages * GS_PAGE_SIZE));
	fputc('\n', f);
	if (r->discarded)
		fprintf(f, "discard:  %" PRIu64 " pages from page %" PRIu64 "\n",
			r->discarded, o->discard_first);
	if (r->workload_ran) {
		fprintf(f, "workload: %s, %.3f s, writers %u, readers %u%s\n",
			gs_workload_name(o->workload), wl->seconds, o->writers,
			o->readers, wl->signal ? " (stopped by signal)" : "");
		fprintf(f, "  total   %" PRIu64 " ops, %.0f ops/s\n", ops,
			rate((double)ops, wl->seconds));
		text_hist(f, "reads", &wl->reads, wl->seconds);
		text_hist(f, "writes", &wl->writes, wl->seconds);
		fprintf(f, "  checks  %" PRIu64 " reads skipped (page being "
			   "written), %" PRIu64 " mismatches\n",
			wl->read_skips, wl->mismatches);
	}
	if (r->verify_ran) {
		if (r->verify.failed)
			fprintf(f, "verify:   FAILED at page %" PRIu64
				   " (%" PRIu64 " other pages verified)\n",
				r->verify.bad_page, r->verify.pages_verified);
		else
			fprintf(f, "verify:   %" PRIu64 " pages verified in "
				   "%.3f s%s\n", r->verify.pages_verified,
				r->verify.seconds,
				r->verify.complete ? "" : " (interrupted)");
	}
	if (ctx->os)
		text_os(f, ctx, r);
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_hist(FILE *f, const char *what, const struct gs_hist *h)
{
	fprintf(f, ",\"%s_p50_us\":%.3f,\"%s_p90_us\":%.3f,\"%s_p99_us\":%.3f,"
		   "\"%s_p999_us\":%.3f,\"%s_max_us\":%.3f",
		what, gs_hist_quantile_us(h, 0.50),
		what, gs_hist_quantile_us(h, 0.90),
		what, gs_hist_quantile_us(h, 0.99),
		what, gs_hist_quantile_us(h, 0.999),
		what, gs_hist_max_us(h));
}

void gs_report_json(FILE *f, const struct gs_ctx *ctx,
		    const struct gs_results *r)
{
	const struct gs_opts *o = ctx->opts;
	const struct gs_workload_result *wl = &r->wl;
	uint64_t ops = wl->reads.count + wl->writes.count;

	fputs("{\"name\":", f);
	json_string(f, o->name);
	fprintf(f, ",\"size_mib\":%.3f,\"pages\":%" PRIu64 ",\"seed\":%" PRIu64
		   ",\"anon\":%s,\"daemon\":%s,\"workload\":\"%s\"",
		mib(o->size), ctx->n_pages, o->seed,
		o->anon ? "true" : "false", o->no_daemon ? "false" : "true",
		gs_workload_name(o->workload));
	fprintf(f, ",\"writers\":%u,\"readers\":%u", o->writers, o->readers);
	fprintf(f, ",\"fill_s\":%.6f,\"fill_mib_per_s\":%.3f,"
		   "\"fill_complete\":%s",
		r->fill.seconds,
		rate(mib(r->fill.pages * GS_PAGE_SIZE), r->fill.seconds),
		r->fill.complete ? "true" : "false");
	fprintf(f, ",\"duration_s\":%.6f,\"read_ops\":%" PRIu64
		   ",\"write_ops\":%" PRIu64 ",\"ops_per_s\":%.3f"
		   ",\"read_skips\":%" PRIu64,
		wl->seconds, wl->reads.count, wl->writes.count,
		rate((double)ops, wl->seconds), wl->read_skips);
	json_hist(f, "read", &wl->reads);
	json_hist(f, "write", &wl->writes);
	fprintf(f, ",\"pages_discarded\":%" PRIu64, r->discarded);
	fprintf(f, ",\"mismatches\":%" PRIu64 ",\"verify\":%s"
		   ",\"pages_verified\":%" PRIu64,
		gs_results_mismatches(r), r->verify_ran ? "true" : "false",
		r->verify.pages_verified);
	if (r->verify.failed)
		fprintf(f, ",\"verify_bad_page\":%" PRIu64
			   ",\"verify_bad_offset\":%ld"
			   ",\"verify_expected_version\":%" PRIu32,
			r->verify.bad_page, r->verify.bad_offset,
			r->verify.bad_version);
	if (ctx->os)
		json_os(f, ctx, r);
	fprintf(f, ",\"interrupted\":%s}\n", r->signal ? "true" : "false");
}
