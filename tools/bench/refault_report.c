/*
 * refault_report.c - print one pk-bench-refault run as text or as one
 * JSON object.
 *
 * What: per page kind, the latency table (p50, p90, p99, p99.9, max per
 * variant and access), the goal ratios pagekeeperd / floor at p50 and
 * p99 with an honest "goal met" / "goal missed" (plus the median of the
 * per-round p50 ratios, which a noisy neighbour sways less), pagekeeperd's
 * wait for its scanner, its faults per touch and, for shared pages, how
 * many touches dropped a canonical copy's last reference; a kind that
 * could not be measured says why.
 * How: printf for text (every number with its unit); json-c builds the
 * JSON (units in the key names).
 * Why: humans read the text, scripts read the JSON.
 */
#include "refault_results.h"
#include "timing.h"

#include <json-c/json.h>
#include <string.h>

double rf_ratio(const struct rf_kind *k, enum access a, int pct)
{
	const struct lat_result *d = &k->lat[RV_DAEMON][a], *f = &k->lat[RV_FLOOR][a];
	double fd = pct == 50 ? f->p50_us : f->p99_us, dd = pct == 50 ? d->p50_us : d->p99_us;

	if (!k->ran || !d->ran || !f->ran || fd <= 0)
		return -1;
	return dd / fd;
}

/* Median over rounds of pagekeeperd's round p50 / the floor's; < 0 n/a. */
static double round_ratio(const struct rf_kind *k, enum access a)
{
	const struct lat_result *d = &k->lat[RV_DAEMON][a], *f = &k->lat[RV_FLOOR][a];
	double v[RF_MAX_ROUNDS];
	unsigned n = 0;

	for (unsigned i = 0; i < d->rounds && i < f->rounds; i++)
		if (f->round_p50_us[i] > 0)
			v[n++] = d->round_p50_us[i] / f->round_p50_us[i];
	return n ? median_double(v, n) : -1;
}

static const char *met(double ratio)
{
	return ratio < 0 ? "n/a" : ratio <= GOAL_REFAULT_RATIO ? "goal met" : "goal missed";
}

static void minmax(const double *v, unsigned n, double *lo, double *hi)
{
	*lo = *hi = n ? v[0] : 0;
	for (unsigned i = 1; i < n; i++) {
		*lo = v[i] < *lo ? v[i] : *lo;
		*hi = v[i] > *hi ? v[i] : *hi;
	}
}

static const char *kind_title(enum page_kind k)
{
	return k == KIND_ZERO ?
		"Zero pages (populated, left all zeros, reclaimed by the scanner; refault: "
		"pagekeeperd UFFDIO_ZEROPAGE, floor UFFDIO_ZEROPAGE)" :
		"Shared pages (every content twice, merged by the scanner; refault: "
		"pagekeeperd UFFDIO_COPY from its canonical copy, floor UFFDIO_COPY "
		"from a source buffer)";
}

static void text_kind(const struct refault_results *r, enum page_kind k, FILE *out)
{
	const struct rf_kind *x = &r->kind[k];

	fprintf(out, "\n%s,\n%zu MiB region, %u round(s), %zu reads + %zu writes of random "
		"pages per variant per round:\n", kind_title(k), r->size_bytes >> 20, r->rounds,
		r->pages, r->pages);
	if (!x->wanted) {
		fprintf(out, "  skipped (--only)\n");
		return;
	}
	if (!x->ran) {
		fprintf(out, "  NOT MEASURED: %s\n", x->why);
		return;
	}
	fprintf(out, "  %-12s %-6s %10s %10s %10s %10s %11s %22s %16s\n", "variant", "access",
		"p50", "p90", "p99", "p99.9", "max", "round p50 (min..max)", "resident before");
	for (int a = 0; a < ACC_COUNT; a++)
		for (int v = 0; v < RV_COUNT; v++) {
			const struct lat_result *l = &x->lat[v][a];
			double lo, hi;
			minmax(l->round_p50_us, l->rounds, &lo, &hi);
			fprintf(out, "  %-12s %-6s %7.1f µs %7.1f µs %7.1f µs %7.1f µs %8.1f µs "
				"%8.1f..%-6.1f µs %7zu pages\n", rf_variant_name(v),
				access_name((enum access)a), l->p50_us, l->p90_us, l->p99_us,
				l->p999_us, l->max_us, lo, hi, l->resident_before);
		}
	for (int a = 0; a < ACC_COUNT; a++) {
		double r50 = rf_ratio(x, (enum access)a, 50), r99 = rf_ratio(x, (enum access)a, 99);
		fprintf(out, "  %-5s pagekeeperd / floor: p50 %.2fx (%s), p99 %.2fx (%s)   "
			"(goal <= %.2fx); median of the rounds' p50 ratios %.2fx\n",
			access_name((enum access)a), r50, met(r50), r99, met(r99),
			GOAL_REFAULT_RATIO, round_ratio(x, (enum access)a));
	}
	double wlo, whi, mlo, mhi, flo, fhi;
	minmax(x->wait_s, x->rounds, &wlo, &whi);
	minmax(x->reclaimed_mib, x->rounds, &mlo, &mhi);
	minmax(x->canonical_frames, x->rounds, &flo, &fhi);
	fprintf(out, "  pagekeeperd: %s %.1f..%.1f MiB of %zu MiB after %.1f..%.1f s of "
		"scanning per round", k == KIND_ZERO ? "zero_mib" : "shared_mib", mlo, mhi,
		r->size_bytes >> 20, wlo, whi);
	if (k == KIND_SHARED)
		fprintf(out, " (canonical frames %.0f..%.0f)", flo, fhi);
	fprintf(out, ";\n               %.3f daemon faults per touch (%llu faults, %zu touches)\n",
		x->daemon_touches ? (double)x->daemon_faults / (double)x->daemon_touches : 0,
		(unsigned long long)x->daemon_faults, x->daemon_touches);
	if (k == KIND_SHARED)
		fprintf(out, "  %zu of %zu touches (%.1f %%) refaulted the second page of a "
			"merged pair, dropping the\n  canonical copy's last reference\n",
			x->daemon_seconds, x->daemon_touches, x->daemon_touches ?
			100.0 * (double)x->daemon_seconds / (double)x->daemon_touches : 0);
}

void refault_report_text(const struct refault_results *r, FILE *out)
{
	fprintf(out, "pk-bench-refault: memfd MAP_SHARED guest RAM, 4 KiB pages, %ld CPUs; "
		"uffd via %s\n", r->cpus, r->uffd_via_dev ? "/dev/userfaultfd" : "userfaultfd(2)");
	fprintf(out, "pagekeeperd: %s %s\n", r->daemon_path, r->daemon_args);
	fprintf(out, "  touches start once the VM reports >= %.0f %% of its region reclaimed "
		"(timeout %.1f s); only pages that are out are touched\n", r->min_pct,
		r->wait_timeout_s);
	fprintf(out, "timer: one clock_gettime pair costs %llu ns (included in every sample)\n",
		(unsigned long long)r->timer_overhead_ns);
	fprintf(out, "fairness: variants alternate in rounds, order rotated each round; "
		"each gets a fresh region\n          with the round's content and touch order; "
		"reads and writes alternate touch by touch\n");
	for (int k = 0; k < KIND_COUNT; k++)
		text_kind(r, (enum page_kind)k, out);
	fprintf(out, "\nrun time: %.0f s\n", r->run_s);
}

static void put(json_object *o, const char *key, double v)
{
	json_object_object_add(o, key, json_object_new_double(v));
}

static json_object *lat_json(const struct lat_result *l)
{
	json_object *o = json_object_new_object(), *rp = json_object_new_array();

	json_object_object_add(o, "samples", json_object_new_int64((int64_t)l->n));
	put(o, "p50_us", l->p50_us);
	put(o, "p90_us", l->p90_us);
	put(o, "p99_us", l->p99_us);
	put(o, "p99_9_us", l->p999_us);
	put(o, "max_us", l->max_us);
	put(o, "mean_us", l->mean_us);
	json_object_object_add(o, "resident_before_touch_pages",
			       json_object_new_int64((int64_t)l->resident_before));
	for (unsigned i = 0; i < l->rounds; i++)
		json_object_array_add(rp, json_object_new_double(l->round_p50_us[i]));
	json_object_object_add(o, "round_p50_us", rp);
	return o;
}

static json_object *ratio_json(double ratio)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "ratio", ratio < 0 ? NULL : json_object_new_double(ratio));
	put(o, "goal_max", GOAL_REFAULT_RATIO);
	json_object_object_add(o, "verdict", json_object_new_string(met(ratio)));
	return o;
}

static json_object *doubles(const double *v, unsigned n)
{
	json_object *a = json_object_new_array();

	for (unsigned i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_double(v[i]));
	return a;
}

static json_object *kind_json(const struct rf_kind *x, enum page_kind k)
{
	json_object *o = json_object_new_object();

	if (!x->wanted || !x->ran) {
		json_object_object_add(o, "measured", json_object_new_boolean(0));
		json_object_object_add(o, "why", json_object_new_string(
							 x->wanted ? x->why : "skipped (--only)"));
		return o;
	}
	json_object_object_add(o, "measured", json_object_new_boolean(1));
	for (int a = 0; a < ACC_COUNT; a++) {
		json_object *ao = json_object_new_object();
		for (int v = 0; v < RV_COUNT; v++)
			json_object_object_add(ao, rf_variant_name(v), lat_json(&x->lat[v][a]));
		json_object_object_add(ao, "p50_pagekeeperd_to_floor",
				       ratio_json(rf_ratio(x, (enum access)a, 50)));
		json_object_object_add(ao, "p99_pagekeeperd_to_floor",
				       ratio_json(rf_ratio(x, (enum access)a, 99)));
		put(ao, "median_round_p50_ratio", round_ratio(x, (enum access)a));
		json_object_object_add(o, access_name((enum access)a), ao);
	}
	json_object_object_add(o, "daemon_wait_s", doubles(x->wait_s, x->rounds));
	json_object_object_add(o, k == KIND_ZERO ? "daemon_zero_mib" : "daemon_shared_mib",
			       doubles(x->reclaimed_mib, x->rounds));
	if (k == KIND_SHARED) {
		json_object_object_add(o, "canonical_frames",
				       doubles(x->canonical_frames, x->rounds));
		json_object_object_add(o, "touches_second_of_pair",
				       json_object_new_int64((int64_t)x->daemon_seconds));
	}
	put(o, "daemon_faults_per_touch",
	    x->daemon_touches ? (double)x->daemon_faults / (double)x->daemon_touches : 0);
	return o;
}

void refault_report_json(const struct refault_results *r, FILE *out)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "benchmark", json_object_new_string("pk-bench-refault"));
	json_object_object_add(o, "memory", json_object_new_string("memfd"));
	json_object_object_add(o, "page_size_bytes", json_object_new_int(4096));
	json_object_object_add(o, "cpus", json_object_new_int64(r->cpus));
	json_object_object_add(o, "uffd_via", json_object_new_string(
						      r->uffd_via_dev ? "/dev/userfaultfd" : "syscall"));
	json_object_object_add(o, "timer_overhead_ns",
			       json_object_new_int64((int64_t)r->timer_overhead_ns));
	json_object_object_add(o, "region_bytes", json_object_new_int64((int64_t)r->size_bytes));
	json_object_object_add(o, "touches_per_access_per_round",
			       json_object_new_int64((int64_t)r->pages));
	json_object_object_add(o, "rounds", json_object_new_int(r->rounds));
	json_object_object_add(o, "seed", json_object_new_int64((int64_t)r->seed));
	json_object_object_add(o, "daemon", json_object_new_string(r->daemon_path));
	json_object_object_add(o, "daemon_args", json_object_new_string(r->daemon_args));
	put(o, "min_reclaimed_pct", r->min_pct);
	put(o, "wait_timeout_s", r->wait_timeout_s);
	put(o, "run_s", r->run_s);
	for (int k = 0; k < KIND_COUNT; k++)
		json_object_object_add(o, kind_name((enum page_kind)k),
				       kind_json(&r->kind[k], (enum page_kind)k));
	fprintf(out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}
