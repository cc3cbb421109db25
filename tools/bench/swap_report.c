/*
 * swap_report.c - print one pk-bench-swap run as text or as one JSON object.
 *
 * What: the latency table (p50, p90, p99, p99.9, max per variant), the
 * kernel variant's evidence that its pages were out, the bandwidth table,
 * and the goal figures with an honest "goal met" / "goal missed"; the
 * durable state's cost (default daemon / --volatile-state) in A and B;
 * part C (sequential swap-in) is seq_report.c's, D (restart)
 * restart_report.c's.
 * How: printf for text (every number with its unit); json-c builds the
 * JSON (units in the key names).
 * Why: humans read the text, scripts read the JSON.
 */
#include "swap_results.h"

#include <json-c/json.h>
#include <string.h>

const char *lat_variant_name(int v)
{
	static const char *const n[LV_COUNT] = { "pagekeeperd", "pk-volatile", "floor",
						 "kernel" };
	return v >= 0 && v < LV_COUNT ? n[v] : "?";
}

const char *bw_variant_name(int v)
{
	static const char *const n[BV_COUNT] = { "pagekeeperd RECLAIM", "pk-volatile RECLAIM",
						 "fio 4k QD64", "fio 1M QD8" };
	return v >= 0 && v < BV_COUNT ? n[v] : "?";
}

/* Goal figures; ok is set when both sides ran. */
static double p50_diff(const struct swap_results *r, bool *ok)
{
	*ok = r->lat[LV_DAEMON].ran && r->lat[LV_FLOOR].ran;
	return r->lat[LV_DAEMON].p50_us - r->lat[LV_FLOOR].p50_us;
}

/* Variant v's p99 / the kernel's (pagekeeperd: the goal; the floor: no goal). */
static double p99_ratio_of(const struct swap_results *r, int v, bool *ok)
{
	*ok = r->lat[v].ran && r->lat[LV_KERNEL].ran && r->lat[LV_KERNEL].p99_us > 0;
	return *ok ? r->lat[v].p99_us / r->lat[LV_KERNEL].p99_us : 0;
}

static double p99_ratio(const struct swap_results *r, bool *ok)
{
	return p99_ratio_of(r, LV_DAEMON, ok);
}

static double bw_ratio(const struct swap_results *r, int fio, bool wall, bool *ok)
{
	const struct bw_result *d = &r->bw[BV_DAEMON], *f = &r->bw[fio];
	*ok = d->ran && f->ran && f->median_mib_s > 0;
	return *ok ? (wall ? d->median_wall_mib_s : d->median_mib_s) / f->median_mib_s : 0;
}

/* The durable state's cost: default pagekeeperd / --volatile-state. */
static double lat_dv(const struct swap_results *r, bool p99, bool *ok)
{
	const struct lat_result *d = &r->lat[LV_DAEMON], *v = &r->lat[LV_VOLATILE];
	double b = p99 ? v->p99_us : v->p50_us;
	*ok = d->ran && v->ran && b > 0;
	return *ok ? (p99 ? d->p99_us : d->p50_us) / b : 0;
}

static double bw_dv(const struct swap_results *r, bool wall, bool *ok)
{
	const struct bw_result *d = &r->bw[BV_DAEMON], *v = &r->bw[BV_VOLATILE];
	double b = wall ? v->median_wall_mib_s : v->median_mib_s;
	*ok = d->ran && v->ran && b > 0;
	return *ok ? (wall ? d->median_wall_mib_s : d->median_mib_s) / b : 0;
}

static const char *met(bool ok, bool pass)
{
	return !ok ? "n/a" : pass ? "goal met" : "goal missed";
}

static void minmax(const double *v, unsigned n, double *lo, double *hi)
{
	*lo = *hi = n ? v[0] : 0;
	for (unsigned i = 1; i < n; i++) {
		*lo = v[i] < *lo ? v[i] : *lo;
		*hi = v[i] > *hi ? v[i] : *hi;
	}
}

static void text_latency(const struct swap_results *r, FILE *out)
{
	bool ok;
	double d;

	fprintf(out, "\nA. Swap-in fault latency: one-word reads of random pages that are out, "
		"%zu pages per variant per round, %u round(s), %zu MiB region each:\n",
		r->pages, r->rounds, r->size_bytes >> 20);
	fprintf(out, "  %-12s %10s %10s %10s %10s %11s %22s %16s\n", "variant", "p50", "p90",
		"p99", "p99.9", "max", "round p50 (min..max)", "resident before");
	for (int v = 0; v < LV_COUNT; v++) {
		const struct lat_result *x = &r->lat[v];
		double lo, hi;
		minmax(x->round_p50_us, x->rounds, &lo, &hi);
		fprintf(out, "  %-12s %7.1f µs %7.1f µs %7.1f µs %7.1f µs %8.1f µs %8.1f..%-6.1f µs "
			"%7zu pages\n", lat_variant_name(v), x->p50_us, x->p90_us, x->p99_us,
			x->p999_us, x->max_us, lo, hi, x->resident_before);
	}
	fprintf(out, "  kernel: at least %zu of %zu pages (%.2f %%) were out of RAM and swap "
		"cache before touching (VmSwap >= %ld KiB, cgroup swap cache <= %lld KiB);\n"
		"          MADV_PAGEOUT <= %.0f ms, cache drop <= %.0f ms; %s\n",
		r->kernel_out_min, r->region_pages,
		r->region_pages ? 100.0 * (double)r->kernel_out_min / (double)r->region_pages : 0,
		r->kernel_vmswap_kib_min,
		r->kernel_swapcached_max < 0 ? -1 : r->kernel_swapcached_max >> 10,
		r->kernel_pageout_ms_max, r->kernel_drop_ms_max, r->memcg);
	fprintf(out, "  pagekeeperd evicted each latency region at");
	for (unsigned i = 0; i < r->lat[LV_DAEMON].rounds; i++)
		fprintf(out, "%s %.0f MiB/s", i ? "," : "", r->daemon_reclaim_mib_s[i]);
	fprintf(out, "; pk-volatile at");
	for (unsigned i = 0; i < r->lat[LV_VOLATILE].rounds; i++)
		fprintf(out, "%s %.0f MiB/s", i ? "," : "", r->volatile_reclaim_mib_s[i]);
	fprintf(out, " (daemon's elapsed_us)\n");
	fprintf(out, "  durable state's cost, pagekeeperd / pk-volatile: p50 %.2fx (%+.1f µs), "
		"p99 %.2fx (%+.1f µs)\n", lat_dv(r, false, &ok),
		r->lat[LV_DAEMON].p50_us - r->lat[LV_VOLATILE].p50_us, lat_dv(r, true, &ok),
		r->lat[LV_DAEMON].p99_us - r->lat[LV_VOLATILE].p99_us);
	fprintf(out, "    p50 difference per round:");
	for (unsigned i = 0; i < r->lat[LV_DAEMON].rounds && i < r->lat[LV_VOLATILE].rounds; i++)
		fprintf(out, "%s %+.1f µs", i ? "," : "",
			r->lat[LV_DAEMON].round_p50_us[i] - r->lat[LV_VOLATILE].round_p50_us[i]);
	fputc('\n', out);
	d = p50_diff(r, &ok);
	fprintf(out, "  pagekeeperd p50 - floor p50  = %+.1f µs   (goal <= %.1f µs)   %s\n", d,
		GOAL_P50_DIFF_US, met(ok, d <= GOAL_P50_DIFF_US));
	fprintf(out, "    same difference per round:");
	for (unsigned i = 0; i < r->lat[LV_DAEMON].rounds && i < r->lat[LV_FLOOR].rounds; i++)
		fprintf(out, "%s %+.1f µs", i ? "," : "",
			r->lat[LV_DAEMON].round_p50_us[i] - r->lat[LV_FLOOR].round_p50_us[i]);
	fputc('\n', out);
	d = p99_ratio(r, &ok);
	fprintf(out, "  pagekeeperd p99 / kernel p99 = %.2fx      (goal <= %.2fx)    %s\n", d,
		GOAL_P99_RATIO, met(ok, d <= GOAL_P99_RATIO));
	d = p99_ratio_of(r, LV_FLOOR, &ok);
	if (ok)
		fprintf(out, "  floor p99 / kernel p99       = %.2fx      (no goal)\n", d);
}

static void text_bandwidth(const struct swap_results *r, FILE *out)
{
	bool ok;
	double d;

	fprintf(out, "\nB. Eviction bandwidth: %zu MiB fully resident, unique content, "
		"median of %u round(s):\n", r->evict_bytes >> 20, r->rounds);
	for (int v = 0; v < BV_COUNT; v++) {
		const struct bw_result *x = &r->bw[v];
		double lo, hi;
		minmax(x->mib_s, x->rounds, &lo, &hi);
		fprintf(out, "  %-20s %8.1f MiB/s  (rounds %.1f..%.1f MiB/s)", bw_variant_name(v),
			x->median_mib_s, lo, hi);
		if (v == BV_DAEMON || v == BV_VOLATILE)
			fprintf(out, " by its elapsed_us; %.1f MiB/s by our wall clock",
				x->median_wall_mib_s);
		fputc('\n', out);
	}
	for (int v = BV_DAEMON; v <= BV_VOLATILE; v++) {
		const struct bw_result *x = &r->bw[v];
		double lo, hi, busy = x->median_cpu_s_gib * x->median_mib_s / 1024;
		minmax(x->cpu_s_gib, x->rounds, &lo, &hi);
		fprintf(out, "  %s CPU: %.2f s per GiB evicted (rounds %.2f..%.2f s), "
			"%.0f %% of one CPU at its median rate\n", bw_variant_name(v),
			x->median_cpu_s_gib, lo, hi, busy * 100);
	}
	fprintf(out, "  fio: %s, --rw=write --direct=1 --ioengine=io_uring, fresh file per run\n",
		r->fio_version);
	d = bw_ratio(r, BV_FIO_4K, false, &ok);
	fprintf(out, "  pagekeeperd / fio 4k = %.2fx (wall clock: %.2fx)   (goal >= %.2fx)   %s\n",
		d, bw_ratio(r, BV_FIO_4K, true, &ok), GOAL_BW_RATIO, met(ok, d >= GOAL_BW_RATIO));
	d = bw_ratio(r, BV_FIO_1M, false, &ok);
	fprintf(out, "  pagekeeperd / fio 1M = %.2fx (wall clock: %.2fx)   (goal >= %.2fx)   %s\n",
		d, bw_ratio(r, BV_FIO_1M, true, &ok), GOAL_BW_1M_RATIO,
		met(ok, d >= GOAL_BW_1M_RATIO));
	d = bw_dv(r, false, &ok);
	fprintf(out, "  durable state's cost, pagekeeperd / pk-volatile = %.2fx (wall clock: "
		"%.2fx)   (no goal)\n    per round:", d, bw_dv(r, true, &ok));
	for (unsigned i = 0; i < r->bw[BV_DAEMON].rounds && i < r->bw[BV_VOLATILE].rounds; i++)
		fprintf(out, "%s %.2fx", i ? "," : "", r->bw[BV_VOLATILE].mib_s[i] > 0 ?
			r->bw[BV_DAEMON].mib_s[i] / r->bw[BV_VOLATILE].mib_s[i] : 0);
	fputc('\n', out);
}

void swap_report_text(const struct swap_results *r, FILE *out)
{
	fprintf(out, "pk-bench-swap: memfd MAP_SHARED guest RAM, 4 KiB pages, %ld CPUs; "
		"all files on the file system of %s\n", r->cpus, r->dir);
	if (r->latency || r->bandwidth)
		fprintf(out, "pagekeeperd: %s (private, --swap-size %zu MiB, state dir under %s, "
			"run dir on /dev/shm); pk-volatile: a second one, the same with "
			"--volatile-state\n", r->daemon_path, r->daemon_swap_bytes >> 20, r->dir);
	else
		fprintf(out, "pagekeeperd: %s\n", r->daemon_path);
	fprintf(out, "timer: one clock_gettime pair costs %llu ns (included in every sample)\n",
		(unsigned long long)r->timer_overhead_ns);
	fprintf(out, "fairness: variants interleaved in rounds, order rotated each round; "
		"fresh memory and new content every round\n");
	if (r->other_swaps)
		fprintf(out, "note: %u other swap area(s) were active; ours had priority 32767\n",
			r->other_swaps);
	if (r->latency)
		text_latency(r, out);
	if (r->bandwidth)
		text_bandwidth(r, out);
	if (r->seq)
		seq_report_text(r, out);
	if (r->restart)
		restart_report_text(r, out);
	fprintf(out, "\nrun time: %.0f s\n", r->run_s);
}

static json_object *jd(double v)
{
	return json_object_new_double(v);
}

static void put(json_object *o, const char *k, json_object *v)
{
	json_object_object_add(o, k, v);
}

static json_object *goal(double v, bool ok, double goal, const char *key, bool pass)
{
	json_object *g = json_object_new_object();
	put(g, "value", ok ? jd(v) : NULL);
	put(g, key, jd(goal));
	put(g, "verdict", json_object_new_string(met(ok, pass)));
	return g;
}

static json_object *json_latency(const struct swap_results *r)
{
	json_object *a = json_object_new_object();
	bool ok;
	double d;

	put(a, "region_bytes", json_object_new_int64((int64_t)r->size_bytes));
	put(a, "pages_per_round", json_object_new_int64((int64_t)r->pages));
	put(a, "rounds", json_object_new_int((int)r->rounds));
	for (int v = 0; v < LV_COUNT; v++) {
		const struct lat_result *x = &r->lat[v];
		json_object *o = json_object_new_object(), *rp = json_object_new_array();
		put(o, "samples", json_object_new_int64((int64_t)x->n));
		put(o, "p50_us", jd(x->p50_us));
		put(o, "p90_us", jd(x->p90_us));
		put(o, "p99_us", jd(x->p99_us));
		put(o, "p99_9_us", jd(x->p999_us));
		put(o, "max_us", jd(x->max_us));
		put(o, "mean_us", jd(x->mean_us));
		put(o, "resident_before_touch_pages", json_object_new_int64((int64_t)x->resident_before));
		for (unsigned i = 0; i < x->rounds; i++)
			json_object_array_add(rp, jd(x->round_p50_us[i]));
		put(o, "round_p50_us", rp);
		put(a, v == LV_VOLATILE ? "pk_volatile" : lat_variant_name(v), o);
	}
	json_object *k = json_object_new_object();
	put(k, "region_pages", json_object_new_int64((int64_t)r->region_pages));
	put(k, "min_pages_out_after_drop", json_object_new_int64((int64_t)r->kernel_out_min));
	put(k, "min_vmswap_kib", json_object_new_int64(r->kernel_vmswap_kib_min));
	put(k, "max_cgroup_swapcached_bytes", json_object_new_int64(r->kernel_swapcached_max));
	put(k, "max_pageout_ms", jd(r->kernel_pageout_ms_max));
	put(k, "max_drop_ms", jd(r->kernel_drop_ms_max));
	put(k, "memcg", json_object_new_string(r->memcg));
	put(a, "kernel_evidence", k);
	json_object *rd = json_object_new_array();
	for (unsigned i = 0; i < r->lat[LV_DAEMON].rounds && i < r->lat[LV_FLOOR].rounds; i++)
		json_object_array_add(rd, jd(r->lat[LV_DAEMON].round_p50_us[i] -
					     r->lat[LV_FLOOR].round_p50_us[i]));
	put(a, "round_p50_diff_pagekeeperd_minus_floor_us", rd);
	d = p50_diff(r, &ok);
	put(a, "p50_diff_pagekeeperd_minus_floor_us", goal(d, ok, GOAL_P50_DIFF_US, "goal_max_us",
							   d <= GOAL_P50_DIFF_US));
	d = p99_ratio(r, &ok);
	put(a, "p99_ratio_pagekeeperd_to_kernel", goal(d, ok, GOAL_P99_RATIO, "goal_max",
						       d <= GOAL_P99_RATIO));
	d = p99_ratio_of(r, LV_FLOOR, &ok);
	put(a, "p99_ratio_floor_to_kernel", ok ? jd(d) : NULL);
	d = lat_dv(r, false, &ok);
	put(a, "p50_ratio_durable_to_volatile", ok ? jd(d) : NULL);
	d = lat_dv(r, true, &ok);
	put(a, "p99_ratio_durable_to_volatile", ok ? jd(d) : NULL);
	json_object *vr = json_object_new_array();
	for (unsigned i = 0; i < r->lat[LV_VOLATILE].rounds; i++)
		json_object_array_add(vr, jd(r->volatile_reclaim_mib_s[i]));
	put(a, "round_volatile_reclaim_mib_per_s", vr);
	return a;
}

static json_object *json_bandwidth(const struct swap_results *r)
{
	static const char *const keys[BV_COUNT] = { "pagekeeperd", "pk_volatile", "fio_4k_qd64",
						    "fio_1m_qd8" };
	json_object *b = json_object_new_object();
	bool ok;
	double d;

	put(b, "bytes", json_object_new_int64((int64_t)r->evict_bytes));
	put(b, "rounds", json_object_new_int((int)r->rounds));
	put(b, "fio_version", json_object_new_string(r->fio_version));
	for (int v = 0; v < BV_COUNT; v++) {
		const struct bw_result *x = &r->bw[v];
		json_object *o = json_object_new_object(), *rs = json_object_new_array();
		put(o, "median_mib_per_s", jd(x->median_mib_s));
		for (unsigned i = 0; i < x->rounds; i++)
			json_object_array_add(rs, jd(x->mib_s[i]));
		put(o, "round_mib_per_s", rs);
		if (v == BV_DAEMON || v == BV_VOLATILE) {
			json_object *cs = json_object_new_array();
			put(o, "median_wall_mib_per_s", jd(x->median_wall_mib_s));
			put(o, "median_cpu_s_per_gib", jd(x->median_cpu_s_gib));
			for (unsigned i = 0; i < x->rounds; i++)
				json_object_array_add(cs, jd(x->cpu_s_gib[i]));
			put(o, "round_cpu_s_per_gib", cs);
		}
		put(b, keys[v], o);
	}
	d = bw_ratio(r, BV_FIO_4K, false, &ok);
	put(b, "ratio_pagekeeperd_to_fio_4k", goal(d, ok, GOAL_BW_RATIO, "goal_min",
						   d >= GOAL_BW_RATIO));
	put(b, "ratio_wall_pagekeeperd_to_fio_4k", ok ? jd(bw_ratio(r, BV_FIO_4K, true, &ok)) : NULL);
	d = bw_ratio(r, BV_FIO_1M, false, &ok);
	put(b, "ratio_pagekeeperd_to_fio_1m", goal(d, ok, GOAL_BW_1M_RATIO, "goal_min",
						   d >= GOAL_BW_1M_RATIO));
	put(b, "ratio_wall_pagekeeperd_to_fio_1m", ok ? jd(bw_ratio(r, BV_FIO_1M, true, &ok)) : NULL);
	d = bw_dv(r, false, &ok);
	put(b, "ratio_durable_to_volatile", ok ? jd(d) : NULL);
	put(b, "ratio_wall_durable_to_volatile", ok ? jd(bw_dv(r, true, &ok)) : NULL);
	return b;
}

void swap_report_json(const struct swap_results *r, FILE *out)
{
	json_object *o = json_object_new_object();

	put(o, "benchmark", json_object_new_string("pk-bench-swap"));
	put(o, "memory", json_object_new_string("memfd"));
	put(o, "page_size_bytes", json_object_new_int(4096));
	put(o, "cpus", json_object_new_int64(r->cpus));
	put(o, "dir", json_object_new_string(r->dir));
	put(o, "daemon_path", json_object_new_string(r->daemon_path));
	put(o, "daemon_swap_bytes", r->latency || r->bandwidth ?
		json_object_new_int64((int64_t)r->daemon_swap_bytes) : NULL);
	put(o, "timer_overhead_ns", json_object_new_int64((int64_t)r->timer_overhead_ns));
	put(o, "seed", json_object_new_int64((int64_t)r->seed));
	put(o, "interleaved", json_object_new_boolean(1));
	put(o, "run_s", jd(r->run_s));
	put(o, "latency", r->latency ? json_latency(r) : NULL);
	put(o, "bandwidth", r->bandwidth ? json_bandwidth(r) : NULL);
	put(o, "sequential", r->seq ? seq_report_json(r) : NULL);
	put(o, "restart", r->restart ? restart_report_json(r) : NULL);
	fprintf(out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}
