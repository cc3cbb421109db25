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
 * How: plain fprintf; the only string from outside (the VM name) is
 * escaped for JSON.  Rates over a zero duration are reported as 0.
 */
#include <inttypes.h>

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
	fprintf(f, ",\"interrupted\":%s}\n", r->signal ? "true" : "false");
}
