/*
 * report.c - print one pk-bench-fault run as text or as one JSON object.
 *
 * What: the side-by-side table for each part, the goal ratios with
 * PASS/MISS, and pagekeeperd's attach cost and footprint.
 * How: plain printf; JSON is written by hand (all keys are fixed, the
 * only free string, the daemon path, is escaped).  Every number carries
 * its unit, in the text or in the JSON key name.
 * Why: humans read the text, the lab report reads the JSON.
 */
#include "results.h"

#include <stdio.h>
#include <string.h>

double random_ratio(const struct bench_results *r)
{
	const struct random_result *f = &r->rnd[V_FLOOR], *d = &r->rnd[V_DAEMON];

	if (!f->ran || !d->ran || f->st.p50_us <= 0)
		return -1;
	return d->st.p50_us / f->st.p50_us;
}

double seq_ratio(const struct bench_results *r)
{
	const struct seq_result *k = &r->seq[V_KERNEL], *d = &r->seq[V_DAEMON];

	if (!k->ran || !d->ran || k->ms <= 0)
		return -1;
	return d->ms / k->ms;
}

static const char *verdict(double ratio, double goal)
{
	if (ratio < 0)
		return "n/a";
	return ratio <= goal ? "PASS" : "MISS";
}

static void minmax(const double *v, unsigned n, double *lo, double *hi)
{
	*lo = *hi = n ? v[0] : 0;
	for (unsigned i = 1; i < n; i++) {
		if (v[i] < *lo)
			*lo = v[i];
		if (v[i] > *hi)
			*hi = v[i];
	}
}

void report_text(const struct bench_results *r, FILE *out)
{
	fprintf(out, "pk-bench-fault: %s memory, 4 KiB pages, %ld CPUs; uffd via %s\n",
		r->anon ? "private anonymous" : "memfd MAP_SHARED", r->cpus,
		r->uffd_via_dev ? "/dev/userfaultfd" : "userfaultfd(2)");
	fprintf(out, "timer: one clock_gettime pair costs %llu ns (included in every sample)\n",
		(unsigned long long)r->timer_overhead_ns);
	fprintf(out, "fairness: variants interleaved in rounds, order rotated each round "
		"(kernel,floor,pagekeeperd / floor,pagekeeperd,kernel / ...);\n"
		"          each variant gets fresh memory, freed before the next\n");

	fprintf(out, "\nRandom single-page first touch (one write per page, random order), "
		"%zu pages per variant in %u rounds:\n", r->pages, r->rounds);
	fprintf(out, "  %-12s %10s %10s %10s %11s %21s %17s\n", "variant", "p50", "p99",
		"mean", "max", "round p50 (min..max)", "resident before");
	for (int v = 0; v < V_COUNT; v++) {
		const struct random_result *x = &r->rnd[v];
		if (!x->ran) {
			fprintf(out, "  %-12s %10s\n", variant_name(v), "skipped");
			continue;
		}
		double lo, hi;
		minmax(x->round_p50_us, x->rounds, &lo, &hi);
		fprintf(out, "  %-12s %7.1f µs %7.1f µs %7.1f µs %8.1f µs %8.1f..%-6.1f µs %9zu pages\n",
			variant_name(v), x->st.p50_us, x->st.p99_us, x->st.mean_us,
			x->st.max_us, lo, hi, x->present);
	}
	double rr = random_ratio(r);
	if (rr >= 0)
		fprintf(out, "  pagekeeperd p50 / floor p50 = %.2fx   (goal <= %.2fx)   %s;  "
			"pagekeeperd p50 - floor p50 = %+.1f µs\n", rr, GOAL_RANDOM_RATIO,
			verdict(rr, GOAL_RANDOM_RATIO),
			r->rnd[V_DAEMON].st.p50_us - r->rnd[V_FLOOR].st.p50_us);
	else
		fprintf(out, "  pagekeeperd p50 / floor p50: n/a   (goal <= %.2fx)\n",
			GOAL_RANDOM_RATIO);

	if (!r->skip_seq) {
		size_t pages = r->seq_bytes / 4096;
		fprintf(out, "\nSequential first touch (one write per page), %zu MiB = %zu pages "
			"per variant, median of %u rounds:\n", r->seq_bytes >> 20, pages,
			r->seq_rounds);
		fprintf(out, "  %-12s %12s %14s %12s %23s\n", "variant", "time", "rate",
			"per page", "round time (min..max)");
		for (int v = 0; v < V_COUNT; v++) {
			const struct seq_result *x = &r->seq[v];
			if (!x->ran) {
				fprintf(out, "  %-12s %12s\n", variant_name(v), "skipped");
				continue;
			}
			double lo, hi;
			minmax(x->round_ms, x->rounds, &lo, &hi);
			fprintf(out, "  %-12s %9.1f ms %8.1f MiB/s %8.2f µs %9.1f..%-7.1f ms\n",
				variant_name(v), x->ms, x->mib_s, x->us_per_page, lo, hi);
		}
		double sr = seq_ratio(r);
		if (sr >= 0)
			fprintf(out, "  pagekeeperd time / kernel time = %.2fx   (goal <= %.2fx)   %s\n",
				sr, GOAL_SEQ_RATIO, verdict(sr, GOAL_SEQ_RATIO));
		else
			fprintf(out, "  pagekeeperd time / kernel time: n/a   (goal <= %.2fx)\n",
				GOAL_SEQ_RATIO);
	}

	if (!r->skip_daemon) {
		fprintf(out, "\npagekeeperd (%s): %u attaches, attach %.2f ms avg / %.2f ms max, "
			"detach %.2f ms avg / %.2f ms max\n", r->daemon_path, r->attaches,
			r->attach_ms_avg, r->attach_ms_max, r->detach_ms_avg, r->detach_ms_max);
		fprintf(out, "  before the first attach: RSS %ld KiB (shmem %ld KiB), %ld open fds, "
			"%ld threads\n", r->usage0.rss_kib, r->usage0.rss_shmem_kib,
			r->usage0.fds, r->usage0.threads);
		fprintf(out, "  after the last detach:   RSS %ld KiB (shmem %ld KiB), %ld open fds, "
			"%ld threads\n", r->usage.rss_kib, r->usage.rss_shmem_kib,
			r->usage.fds, r->usage.threads);
	}
	fprintf(out, "\nrun time: %.0f s\n", r->run_s);
}

static void json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void json_ratio(FILE *out, const char *key, double ratio, double goal)
{
	fprintf(out, "\"%s\":", key);
	if (ratio < 0)
		fprintf(out, "null");
	else
		fprintf(out, "%.4f", ratio);
	fprintf(out, ",\"goal_max\":%.2f,\"verdict\":\"%s\"", goal, verdict(ratio, goal));
}

void report_json(const struct bench_results *r, FILE *out)
{
	fprintf(out, "{\"benchmark\":\"pk-bench-fault\",\"memory\":\"%s\",\"page_size_bytes\":4096,"
		"\"cpus\":%ld,\"uffd_via\":\"%s\",\"timer_overhead_ns\":%llu,"
		"\"interleaved\":true,\"seed\":%llu,",
		r->anon ? "anon" : "memfd", r->cpus,
		r->uffd_via_dev ? "/dev/userfaultfd" : "syscall",
		(unsigned long long)r->timer_overhead_ns, (unsigned long long)r->seed);

	fprintf(out, "\"random\":{\"pages_per_variant\":%zu,\"rounds\":%u,", r->pages, r->rounds);
	for (int v = 0; v < V_COUNT; v++) {
		const struct random_result *x = &r->rnd[v];
		fprintf(out, "\"%s\":", variant_name(v));
		if (!x->ran) {
			fprintf(out, "null,");
			continue;
		}
		fprintf(out, "{\"samples\":%zu,\"p50_us\":%.3f,\"p99_us\":%.3f,\"mean_us\":%.3f,"
			"\"min_us\":%.3f,\"max_us\":%.3f,\"resident_before_touch_pages\":%zu,"
			"\"round_p50_us\":[", x->st.n, x->st.p50_us, x->st.p99_us, x->st.mean_us,
			x->st.min_us, x->st.max_us, x->present);
		for (unsigned i = 0; i < x->rounds; i++)
			fprintf(out, "%s%.3f", i ? "," : "", x->round_p50_us[i]);
		fprintf(out, "]},");
	}
	json_ratio(out, "ratio_p50_pagekeeperd_to_floor", random_ratio(r), GOAL_RANDOM_RATIO);
	if (random_ratio(r) >= 0)
		fprintf(out, ",\"p50_diff_pagekeeperd_minus_floor_us\":%.3f",
			r->rnd[V_DAEMON].st.p50_us - r->rnd[V_FLOOR].st.p50_us);
	else
		fprintf(out, ",\"p50_diff_pagekeeperd_minus_floor_us\":null");
	fprintf(out, "},");

	fprintf(out, "\"sequential\":");
	if (r->skip_seq) {
		fprintf(out, "null,");
	} else {
		fprintf(out, "{\"bytes\":%zu,\"pages\":%zu,\"rounds\":%u,", r->seq_bytes,
			r->seq_bytes / 4096, r->seq_rounds);
		for (int v = 0; v < V_COUNT; v++) {
			const struct seq_result *x = &r->seq[v];
			fprintf(out, "\"%s\":", variant_name(v));
			if (!x->ran) {
				fprintf(out, "null,");
				continue;
			}
			fprintf(out, "{\"time_ms\":%.3f,\"mib_per_s\":%.2f,\"us_per_page\":%.4f,"
				"\"round_time_ms\":[", x->ms, x->mib_s, x->us_per_page);
			for (unsigned i = 0; i < x->rounds; i++)
				fprintf(out, "%s%.3f", i ? "," : "", x->round_ms[i]);
			fprintf(out, "]},");
		}
		json_ratio(out, "ratio_time_pagekeeperd_to_kernel", seq_ratio(r), GOAL_SEQ_RATIO);
		fprintf(out, "},");
	}

	fprintf(out, "\"pagekeeperd\":");
	if (r->skip_daemon) {
		fprintf(out, "null");
	} else {
		fprintf(out, "{\"path\":");
		json_str(out, r->daemon_path);
		fprintf(out, ",\"attaches\":%u,\"attach_ms_avg\":%.3f,\"attach_ms_max\":%.3f,"
			"\"detach_ms_avg\":%.3f,\"detach_ms_max\":%.3f,\"rss_kib\":%ld,"
			"\"rss_shmem_kib\":%ld,\"open_fds\":%ld,\"threads\":%ld,"
			"\"before\":{\"rss_kib\":%ld,\"rss_shmem_kib\":%ld,\"open_fds\":%ld,"
			"\"threads\":%ld}}",
			r->attaches, r->attach_ms_avg, r->attach_ms_max, r->detach_ms_avg,
			r->detach_ms_max, r->usage.rss_kib, r->usage.rss_shmem_kib,
			r->usage.fds, r->usage.threads, r->usage0.rss_kib,
			r->usage0.rss_shmem_kib, r->usage0.fds, r->usage0.threads);
	}
	fprintf(out, ",\"run_s\":%.3f}\n", r->run_s);
}
