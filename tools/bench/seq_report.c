/*
 * seq_report.c - print part C of pk-bench-swap (sequential swap-in).
 *
 * What: per variant the median sweep time over rounds (ms), the same as
 * MiB/s and µs per page, the rounds' range; for pagekeeperd the VM's
 * swapins and swapins_readahead counters (median over rounds); the
 * kernel's readahead settings and proof that its pages were out; the
 * ratios readahead on / off and pagekeeperd (readahead on) / kernel, from
 * the medians and per round.  No goal: the numbers are only reported.
 * How: called by swap_report.c; printf for text (every number with its
 * unit), json-c for the JSON (units in the key names).
 * Why: a separate file keeps swap_report.c small; same struct, so the
 * text and the JSON never disagree.
 */
#include "swap_results.h"
#include "timing.h"

#include <json-c/json.h>
#include <string.h>

#define MIB (1024.0 * 1024.0)

const char *seq_variant_name(int v)
{
	static const char *const n[SV_COUNT] = { "pagekeeperd readahead off",
						 "pagekeeperd readahead on", "kernel",
						 "floor" };
	return v >= 0 && v < SV_COUNT ? n[v] : "?";
}

const char *seq_variant_key(int v)
{
	static const char *const n[SV_COUNT] = { "pagekeeperd_readahead_off",
						 "pagekeeperd_readahead_on", "kernel", "floor" };
	return v >= 0 && v < SV_COUNT ? n[v] : "?";
}

static double med_u64(const uint64_t *v, unsigned n)
{
	double tmp[SWAP_MAX_ROUNDS];

	for (unsigned i = 0; i < n; i++)
		tmp[i] = (double)v[i];
	return median_double(tmp, n);
}

static double mib_s(const struct swap_results *r, double ms)
{
	return ms > 0 ? (double)r->seq_bytes / MIB / (ms / 1e3) : 0;
}

static double us_page(const struct swap_results *r, double ms)
{
	return ms * 1e3 / (double)(r->seq_bytes / 4096);
}

/* Time ratio a / b of the medians; ok when both ran. */
static double ratio(const struct swap_results *r, int a, int b, bool *ok)
{
	*ok = r->sq[a].ran && r->sq[b].ran && r->sq[b].median_ms > 0;
	return *ok ? r->sq[a].median_ms / r->sq[b].median_ms : 0;
}

static unsigned common_rounds(const struct swap_results *r, int a, int b)
{
	return r->sq[a].rounds < r->sq[b].rounds ? r->sq[a].rounds : r->sq[b].rounds;
}

static void text_round_ratios(const struct swap_results *r, int a, int b, FILE *out)
{
	fprintf(out, "    per round:");
	for (unsigned i = 0; i < common_rounds(r, a, b); i++)
		fprintf(out, "%s %.2fx", i ? "," : "",
			r->sq[b].ms[i] > 0 ? r->sq[a].ms[i] / r->sq[b].ms[i] : 0);
	fputc('\n', out);
}

static const char *yes_no(int v)
{
	return v < 0 ? "unknown" : v ? "yes" : "no";
}

void seq_report_text(const struct swap_results *r, FILE *out)
{
	size_t pages = r->seq_bytes / 4096;
	bool ok;
	double d;

	fprintf(out, "\nC. Sequential swap-in: one-word reads of every page of a %zu MiB region "
		"(%zu pages) in address order, all of it out; median of %u round(s), no goal:\n",
		r->seq_bytes >> 20, pages, r->rounds);
	fprintf(out, "  %-26s %11s %13s %11s %22s %14s %14s\n", "variant", "time", "rate",
		"per page", "rounds (min..max)", "swapins", "read ahead");
	for (int v = 0; v < SV_COUNT; v++) {
		const struct seq_result *x = &r->sq[v];
		double lo = x->rounds ? x->ms[0] : 0, hi = lo;
		for (unsigned i = 1; i < x->rounds; i++) {
			lo = x->ms[i] < lo ? x->ms[i] : lo;
			hi = x->ms[i] > hi ? x->ms[i] : hi;
		}
		char range[64];
		snprintf(range, sizeof(range), "%.1f..%.1f ms", lo, hi);
		fprintf(out, "  %-26s %8.1f ms %7.1f MiB/s %8.2f µs %22s", seq_variant_name(v),
			x->median_ms, mib_s(r, x->median_ms), us_page(r, x->median_ms), range);
		if (v == SV_RA_OFF || v == SV_RA_ON) {
			double s = med_u64(x->swapins, x->rounds), a = med_u64(x->swapins_ra, x->rounds);
			fprintf(out, " %8.0f pages %8.0f pages (%.1f %%)", s, a, s > 0 ? 100 * a / s : 0);
		}
		fputc('\n', out);
	}
	for (int v = SV_RA_OFF; v <= SV_RA_ON; v++) {
		fprintf(out, "  %s: private pagekeeperd \"%s\", its log says swap readahead "
			"%u pages%s;\n    RECLAIM of each region before the sweep:", seq_variant_name(v),
			r->seq_daemon_args[v], r->seq_readahead[v],
			r->seq_readahead[v] ? "" : " (unknown: no log line)");
		for (unsigned i = 0; i < r->sq[v].rounds; i++)
			fprintf(out, "%s %.0f MiB/s", i ? "," : "", r->sq[v].reclaim_mib_s[i]);
		fprintf(out, " (daemon's elapsed_us)\n");
	}
	fprintf(out, "  pagekeeperd: swapins and read ahead are the VM's STATUS counters, median "
		"over rounds; its swap files use O_DIRECT: %s\n", yes_no(r->seq_direct_io));
	fprintf(out, "  kernel: vm.page-cluster %d (up to %d pages per swap readahead), VMA-based "
		"swap readahead enabled: %s; at least %zu of %zu pages (%.2f %%) out after the "
		"drop\n", r->page_cluster, r->page_cluster >= 0 ? 1 << r->page_cluster : -1,
		yes_no(r->vma_ra), r->sq[SV_KERNEL].ran ? r->seq_kernel_out_min : 0, pages,
		r->sq[SV_KERNEL].ran ? 100.0 * (double)r->seq_kernel_out_min / (double)pages : 0);
	fprintf(out, "  floor: one O_DIRECT pread per fault, no readahead\n");
	d = ratio(r, SV_RA_ON, SV_RA_OFF, &ok);
	fprintf(out, "  time readahead on / readahead off = %.2fx (speed-up %.2fx)\n", d,
		ok && d > 0 ? 1 / d : 0);
	text_round_ratios(r, SV_RA_ON, SV_RA_OFF, out);
	d = ratio(r, SV_RA_ON, SV_KERNEL, &ok);
	fprintf(out, "  time pagekeeperd (readahead on) / kernel = %.2fx\n", d);
	text_round_ratios(r, SV_RA_ON, SV_KERNEL, out);
}

static void put(json_object *o, const char *k, json_object *v)
{
	json_object_object_add(o, k, v);
}

static json_object *round_ratios(const struct swap_results *r, int a, int b)
{
	json_object *arr = json_object_new_array();

	for (unsigned i = 0; i < common_rounds(r, a, b); i++)
		json_object_array_add(arr, json_object_new_double(
			r->sq[b].ms[i] > 0 ? r->sq[a].ms[i] / r->sq[b].ms[i] : 0));
	return arr;
}

static json_object *variant_json(const struct swap_results *r, int v)
{
	const struct seq_result *x = &r->sq[v];
	json_object *o = json_object_new_object(), *ms = json_object_new_array();

	put(o, "median_ms", json_object_new_double(x->median_ms));
	put(o, "median_mib_per_s", json_object_new_double(mib_s(r, x->median_ms)));
	put(o, "median_us_per_page", json_object_new_double(us_page(r, x->median_ms)));
	for (unsigned i = 0; i < x->rounds; i++)
		json_object_array_add(ms, json_object_new_double(x->ms[i]));
	put(o, "round_ms", ms);
	if (v == SV_RA_OFF || v == SV_RA_ON) {
		json_object *s = json_object_new_array(), *a = json_object_new_array(),
			    *m = json_object_new_array();
		for (unsigned i = 0; i < x->rounds; i++) {
			json_object_array_add(s, json_object_new_int64((int64_t)x->swapins[i]));
			json_object_array_add(a, json_object_new_int64((int64_t)x->swapins_ra[i]));
			json_object_array_add(m, json_object_new_double(x->reclaim_mib_s[i]));
		}
		put(o, "daemon_args", json_object_new_string(r->seq_daemon_args[v]));
		put(o, "swap_readahead_pages", r->seq_readahead[v] ?
			json_object_new_int((int)r->seq_readahead[v]) : NULL);
		put(o, "round_swapins_pages", s);
		put(o, "round_swapins_readahead_pages", a);
		put(o, "round_reclaim_mib_per_s", m);
	}
	if (v == SV_KERNEL)
		put(o, "min_pages_out_after_drop",
		    json_object_new_int64(x->ran ? (int64_t)r->seq_kernel_out_min : 0));
	return o;
}

json_object *seq_report_json(const struct swap_results *r)
{
	json_object *c = json_object_new_object();
	bool ok;
	double d;

	put(c, "region_bytes", json_object_new_int64((int64_t)r->seq_bytes));
	put(c, "region_pages", json_object_new_int64((int64_t)(r->seq_bytes / 4096)));
	put(c, "rounds", json_object_new_int((int)r->rounds));
	put(c, "kernel_page_cluster", json_object_new_int(r->page_cluster));
	put(c, "kernel_vma_readahead", r->vma_ra < 0 ? NULL : json_object_new_boolean(r->vma_ra));
	put(c, "daemon_swap_direct_io",
	    r->seq_direct_io < 0 ? NULL : json_object_new_boolean(r->seq_direct_io));
	for (int v = 0; v < SV_COUNT; v++)
		put(c, seq_variant_key(v), variant_json(r, v));
	d = ratio(r, SV_RA_ON, SV_RA_OFF, &ok);
	put(c, "time_ratio_readahead_on_to_off", ok ? json_object_new_double(d) : NULL);
	put(c, "speedup_readahead", ok && d > 0 ? json_object_new_double(1 / d) : NULL);
	put(c, "round_time_ratio_readahead_on_to_off", round_ratios(r, SV_RA_ON, SV_RA_OFF));
	d = ratio(r, SV_RA_ON, SV_KERNEL, &ok);
	put(c, "time_ratio_pagekeeperd_readahead_on_to_kernel",
	    ok ? json_object_new_double(d) : NULL);
	put(c, "round_time_ratio_pagekeeperd_readahead_on_to_kernel",
	    round_ratios(r, SV_RA_ON, SV_KERNEL));
	return c;
}
