/*
 * share_report.c - pk-bench-share's results as text.
 *
 * What/how/why: see share_report.h.
 */
#include "share_report.h"

#include <stdbool.h>
#include <string.h>

#define CELL 64
#define MIN_GAIN_MIB 16.0

typedef void (*cell_fn)(const struct variant_result *r, const struct share_results *res,
			char *buf, size_t len);

static double pct(double v, double of)
{
	return of > 0 ? 100.0 * v / of : 0;
}

/* CPU seconds per GiB reclaimed after t0, in the t0 -> t95 (or end) window. */
static double cpu_per_gib(const struct variant_result *r, double reachable)
{
	double gained = r->saved_t95_mib - r->head_mib;

	if (gained < MIN_GAIN_MIB || gained < 0.01 * reachable)
		return -1;
	return r->cpu_t95_s / (gained / 1024.0);
}

static void c_supported(const struct variant_result *r, const struct share_results *res,
			char *b, size_t n)
{
	(void)res;
	snprintf(b, n, "%s", r->supported ? "yes" : "NOT SUPPORTED (note)");
}

static void c_setting(const struct variant_result *r, const struct share_results *res,
		      char *b, size_t n)
{
	(void)res;
	snprintf(b, n, "%s", r->setting);
}

static void c_fill(const struct variant_result *r, const struct share_results *res, char *b,
		   size_t n)
{
	(void)res;
	snprintf(b, n, "%s%.1f s", r->fill_timeout ? "NOT DONE after " : "", r->fill_s);
}

static void c_ram_t0(const struct variant_result *r, const struct share_results *res,
		     char *b, size_t n)
{
	snprintf(b, n, "%.0f MiB", r->guest_ram_t0_mib);
	(void)res;
}

static void c_head(const struct variant_result *r, const struct share_results *res, char *b,
		   size_t n)
{
	(void)res;
	snprintf(b, n, "%.1f MiB", r->head_mib);
}

static void c_t95(const struct variant_result *r, const struct share_results *res, char *b,
		  size_t n)
{
	if (r->t95_s >= 0)
		snprintf(b, n, "%.1f s", r->t95_s);
	else if (r->extrapolated)
		snprintf(b, n, "EXTRAPOLATED %.0f s (a)", r->t95_extrap_s);
	else
		snprintf(b, n, "not reached (%.0f%%)", pct(r->saved_proc_mib, res->reachable_mib));
}

/* From guest start: fill + t95; an upper bound when (c) > 0. */
static void c_t95_start(const struct variant_result *r, const struct share_results *res,
			char *b, size_t n)
{
	(void)res;
	if (r->t95_s >= 0)
		snprintf(b, n, "%s%.1f s", r->head_mib > MIN_GAIN_MIB ? "<= " : "",
			 r->fill_s + r->t95_s);
	else if (r->extrapolated)
		snprintf(b, n, "EXTRAPOLATED %.0f s", r->fill_s + r->t95_extrap_s);
	else
		snprintf(b, n, "not reached");
}

static void c_t95_avail(const struct variant_result *r, const struct share_results *res,
			char *b, size_t n)
{
	if (r->t95_avail_s >= 0)
		snprintf(b, n, "%.1f s", r->t95_avail_s);
	else
		snprintf(b, n, "not reached (%.0f%%)", pct(r->saved_avail_mib, res->reachable_mib));
}

static void c_t95_counter(const struct variant_result *r, const struct share_results *res,
			  char *b, size_t n)
{
	if (r->t95_counter_s >= 0)
		snprintf(b, n, "%.1f s", r->t95_counter_s);
	else
		snprintf(b, n, "not reached (%.0f%%)", pct(r->counter_mib, res->reachable_mib));
}

static void c_t95_own(const struct variant_result *r, const struct share_results *res,
		      char *b, size_t n)
{
	(void)res;
	if (r->t95_own_s >= 0 && !(r->t95_s < 0 && r->extrapolated))
		snprintf(b, n, "%.1f s", r->t95_own_s);
	else
		snprintf(b, n, "n/a");
}

static void c_cpu(const struct variant_result *r, const struct share_results *res, char *b,
		  size_t n)
{
	(void)res;
	snprintf(b, n, "%.2f s%s", r->cpu_t95_s, r->t95_s < 0 ? " (to end)" : "");
}

/* CPU per GiB from guest start: the fill's CPU too, (c) counted as reclaimed. */
static double cpu_per_gib_start(const struct variant_result *r, double reachable)
{
	if (r->saved_t95_mib < MIN_GAIN_MIB || r->saved_t95_mib < 0.01 * reachable)
		return -1;
	return (r->cpu_fill_s + r->cpu_t95_s) / (r->saved_t95_mib / 1024.0);
}

static void c_cpu_fill(const struct variant_result *r, const struct share_results *res,
		       char *b, size_t n)
{
	(void)res;
	snprintf(b, n, "%.2f s", r->cpu_fill_s);
}

static void c_cpu_gib_start(const struct variant_result *r, const struct share_results *res,
			    char *b, size_t n)
{
	double v = cpu_per_gib_start(r, res->reachable_mib);

	if (v < 0)
		snprintf(b, n, "n/a (nothing reclaimed)");
	else
		snprintf(b, n, "%.2f s/GiB", v);
}

static void c_cpu_gib(const struct variant_result *r, const struct share_results *res,
		      char *b, size_t n)
{
	double v = cpu_per_gib(r, res->reachable_mib);

	if (v < 0)
		snprintf(b, n, "n/a (nothing reclaimed)");
	else
		snprintf(b, n, "%.2f s/GiB", v);
}

static void c_saved_proc(const struct variant_result *r, const struct share_results *res,
			 char *b, size_t n)
{
	snprintf(b, n, "%.0f MiB (%.0f%%)", r->saved_proc_mib,
		 pct(r->saved_proc_mib, res->reachable_mib));
}

static void c_saved_avail(const struct variant_result *r, const struct share_results *res,
			  char *b, size_t n)
{
	snprintf(b, n, "%.0f MiB (%.0f%%)", r->saved_avail_mib,
		 pct(r->saved_avail_mib, res->reachable_mib));
}

static void c_saved_free(const struct variant_result *r, const struct share_results *res,
			 char *b, size_t n)
{
	snprintf(b, n, "%.0f MiB (%.0f%%)", r->saved_free_mib,
		 pct(r->saved_free_mib, res->reachable_mib));
}

static void c_saved_pss(const struct variant_result *r, const struct share_results *res,
			char *b, size_t n)
{
	snprintf(b, n, "%.0f MiB (%.0f%%)", r->saved_pss_mib,
		 pct(r->saved_pss_mib, res->reachable_mib));
}

static void c_pss(const struct variant_result *r, const struct share_results *res, char *b,
		  size_t n)
{
	(void)res;
	snprintf(b, n, "%.0f -> %.0f MiB", r->pss_t0_mib, r->pss_end_mib);
}

static void c_counter(const struct variant_result *r, const struct share_results *res,
		      char *b, size_t n)
{
	(void)res;
	snprintf(b, n, "%.0f MiB (b)", r->counter_mib);
}

static void c_overhead(const struct variant_result *r, const struct share_results *res,
		       char *b, size_t n)
{
	(void)res;
	if (r->has_profit)
		snprintf(b, n, "profit %.0f MiB", r->ksm_profit_mib);
	else if (r->has_store)
		snprintf(b, n, "store %.0f MiB", r->pk_store_mib);
	else
		snprintf(b, n, "n/a");
}

static void c_passes(const struct variant_result *r, const struct share_results *res,
		     char *b, size_t n)
{
	(void)res;
	if (r->passes >= 0)
		snprintf(b, n, "%lld", (long long)r->passes);
	else
		snprintf(b, n, "unknown");
}

static void c_scan(const struct variant_result *r, const struct share_results *res, char *b,
		   size_t n)
{
	(void)res;
	if (r->scan_mib_per_s >= 0)
		snprintf(b, n, "%.1f MiB/s", r->scan_mib_per_s);
	else
		snprintf(b, n, "unknown");
}

static void c_settled(const struct variant_result *r, const struct share_results *res,
		      char *b, size_t n)
{
	(void)res;
	if (r->settled_cpu_pct < 0)
		snprintf(b, n, "n/a%s", r->end_reason[0] && strncmp(r->end_reason, "settled", 7) ?
			 " (did not settle)" : "");
	else if (r->settled_scan_mib_s >= 0)
		snprintf(b, n, "%.1f%% of a core, %.0f MiB/s", r->settled_cpu_pct,
			 r->settled_scan_mib_s);
	else
		snprintf(b, n, "%.1f%% of a core", r->settled_cpu_pct);
}

static void c_reclaim(const struct variant_result *r, const struct share_results *res,
		      char *b, size_t n)
{
	(void)res;
	snprintf(b, n, "%.1f MiB/s", r->reclaim_mib_per_s);
}

static void c_until(const struct variant_result *r, const struct share_results *res,
		    char *b, size_t n)
{
	(void)res;
	snprintf(b, n, "%.1f s: %s", r->elapsed_s, r->end_reason);
}

static const struct {
	const char *label;
	cell_fn fn;
} rows[] = {
	{ "supported", c_supported },
	{ "setting", c_setting },
	{ "fill (start -> all guests filled)", c_fill },
	{ "guest RAM in memory at t0", c_ram_t0 },
	{ "reclaimed before t0 (c)", c_head },
	{ "time to 95% of R after t0 (d)", c_t95 },
	{ "time to 95% of R from guest start (f)", c_t95_start },
	{ "time to 95% of R, MemAvailable (e)", c_t95_avail },
	{ "time to 95% of R, counter (b)", c_t95_counter },
	{ "time to 95% of own final saving (d)", c_t95_own },
	{ "CPU during the fill", c_cpu_fill },
	{ "CPU from t0 to 95% of R (d)", c_cpu },
	{ "CPU per GiB reclaimed after t0 (d)", c_cpu_gib },
	{ "CPU per GiB from guest start (f)", c_cpu_gib_start },
	{ "saved: our processes (d)", c_saved_proc },
	{ "saved: MemAvailable delta (e)", c_saved_avail },
	{ "saved: MemFree delta (e)", c_saved_free },
	{ "saved: PSS delta + (c)", c_saved_pss },
	{ "PSS guests + daemon t0 -> end", c_pss },
	{ "counter (cross-check only)", c_counter },
	{ "KSM general_profit / pk store", c_overhead },
	{ "full scan passes after t0", c_passes },
	{ "scan rate after t0", c_scan },
	{ "CPU and scan rate once settled (g)", c_settled },
	{ "reclaim rate after t0", c_reclaim },
	{ "measured for", c_until },
};

static const char *const mech_titles[SHARE_MECHS] = {
	"KSM defaults", "KSM full speed", "pagekeeperd default", "pagekeeperd full speed",
};

static void table(const struct share_results *res, enum share_kind k, FILE *out)
{
	enum { NROWS = sizeof(rows) / sizeof(rows[0]) };
	char cell[NROWS][SHARE_MECHS][CELL];
	int width[SHARE_MECHS] = { 0 }, lw = 0;
	bool any = false;

	for (int i = 0; i < NROWS; i++)
		if ((int)strlen(rows[i].label) > lw)
			lw = (int)strlen(rows[i].label);
	for (int m = 0; m < SHARE_MECHS; m++) {
		const struct variant_result *r = &res->v[k][m];
		if (!r->ran)
			continue;
		any = true;
		width[m] = (int)strlen(mech_titles[m]);
		for (int i = 0; i < NROWS; i++) {
			if (r->fill_timeout && i > 2)
				snprintf(cell[i][m], CELL, "- (fill timed out)");
			else
				rows[i].fn(r, res, cell[i][m], CELL);
			if ((int)strlen(cell[i][m]) > width[m])
				width[m] = (int)strlen(cell[i][m]);
		}
	}
	if (!any)
		return;
	fprintf(out, "\n%s\n\n", k == SHARE_ANON ? "== private anonymous guest RAM (--anon) ==" :
						 "== memfd MAP_SHARED guest RAM ==");
	fprintf(out, "| %-*s |", lw, "");
	for (int m = 0; m < SHARE_MECHS; m++)
		if (res->v[k][m].ran)
			fprintf(out, " %-*s |", width[m], mech_titles[m]);
	fprintf(out, "\n|-%.*s-|", lw, "------------------------------------------------------");
	for (int m = 0; m < SHARE_MECHS; m++)
		if (res->v[k][m].ran)
			fprintf(out, "-%.*s-|", width[m],
				"----------------------------------------------------------------");
	fputc('\n', out);
	for (int i = 0; i < NROWS; i++) {
		fprintf(out, "| %-*s |", lw, rows[i].label);
		for (int m = 0; m < SHARE_MECHS; m++)
			if (res->v[k][m].ran)
				fprintf(out, " %-*s |", width[m], cell[i][m]);
		fputc('\n', out);
	}
	for (int m = 0; m < SHARE_MECHS; m++) {
		const struct variant_result *r = &res->v[k][m];
		if (r->ran && r->note[0])
			fprintf(out, "note, %s: %s\n", mech_titles[m], r->note);
		if (r->ran && r->extrapolated)
			fprintf(out, "(a) %s: EXTRAPOLATED, not measured: 95%% was not reached in "
				"%.0f s (%.0f%% then, reclaim rate %.2f MiB/s).  KSM merges a page only "
				"when its checksum is unchanged since the previous pass, so the "
				"duplicates are merged during the second full pass: 2 passes x %.0f "
				"MiB / %.2f MiB/s measured pages_scanned rate = 2 x %.0f s.\n",
				mech_titles[m], r->elapsed_s, pct(r->saved_proc_mib,
								   res->reachable_mib),
				r->reclaim_mib_per_s, res->guest_total_mib, r->scan_mib_per_s, r->pass_s);
	}
}

/* "12.3 s" or "EXTRAPOLATED 1000 s"; the value in *v, < 0 when none. */
static const char *t95_of(const struct variant_result *r, double *v)
{
	if (!r->ran || !r->supported || r->fill_timeout) {
		*v = -1;
		return "";
	}
	if (r->t95_s >= 0) {
		*v = r->t95_s;
		return "measured";
	}
	if (r->extrapolated) {
		*v = r->t95_extrap_s;
		return "EXTRAPOLATED";
	}
	*v = -1;
	return "";
}

static void ratio_line(const char *what, double k, const char *how, double p, bool p_bound,
		       double floor_s, FILE *out)
{
	if (k < 0 || p < 0) {
		fprintf(out, "  time to 95%%, %s: n/a\n", what);
		return;
	}
	double ratio = k / (p > floor_s ? p : floor_s);
	bool at_least = p_bound || p <= floor_s;
	fprintf(out, "  time to 95%%, %s: KSM defaults %.0f s (%s) / pagekeeperd %s%.1f s = "
		"%s%.0fx faster (goal >= 50x): %s\n", what, k, how, p_bound ? "<= " : "", p,
		at_least ? ">= " : "", ratio, ratio >= 50 ? "MET" : "MISSED");
}

static void ratios(const struct share_opts *o, const struct share_results *res, FILE *out)
{
	const struct variant_result *kd = &res->v[SHARE_ANON][MECH_KSM_DEFAULT];
	const struct variant_result *kf = &res->v[SHARE_ANON][MECH_KSM_FULL];
	double tk, tp;
	const char *how = t95_of(kd, &tk);
	double floor_s = o->poll_ms / 1000.0;

	fprintf(out, "\n== goals: pagekeeperd on memfd RAM vs KSM on anonymous RAM (each on the "
		"memory kind it can share) ==\n");
	for (int m = MECH_PK_DEFAULT; m <= MECH_PK_FULL; m++) {
		const struct variant_result *p = &res->v[SHARE_MEMFD][m];
		if (!p->ran)
			continue;
		fprintf(out, "%s (%s):\n", mech_titles[m], p->setting);
		if (p->fill_timeout) {
			fprintf(out, "  n/a: the guests' fill did not finish\n");
			continue;
		}
		t95_of(p, &tp);
		if (tk < 0) {
			fprintf(out, "  time to 95%%: no KSM-defaults figure (not run on anonymous "
				"RAM, or it scanned nothing)\n");
		} else if (tp < 0) {
			fprintf(out, "  time to 95%%: n/a: pagekeeperd did not reach 95%% of R; it "
				"saved %.0f MiB (%.0f%% of R), 95%% of that %.1f s after t0; KSM "
				"defaults: %.0f s (%s)\n", p->saved_proc_mib,
				pct(p->saved_proc_mib, res->reachable_mib), p->t95_own_s, tk, how);
		} else {
			ratio_line("after t0", tk, how, tp, false, floor_s, out);
			ratio_line("from guest start", kd->fill_s + tk, how, p->fill_s + tp,
				   p->head_mib > MIN_GAIN_MIB, floor_s, out);
			if (p->head_mib > MIN_GAIN_MIB)
				fprintf(out, "    (pagekeeperd had reclaimed %.0f MiB, %.0f%% of R, "
					"during its %.1f s fill; KSM's fill took %.1f s)\n",
					p->head_mib, pct(p->head_mib, res->reachable_mib), p->fill_s,
					kd->fill_s);
		}
		bool kf_ok = kf->ran && !kf->fill_timeout;
		double ck = kf_ok ? cpu_per_gib(kf, res->reachable_mib) : -1;
		double cp = cpu_per_gib(p, res->reachable_mib);
		if (ck < 0 || cp < 0)
			fprintf(out, "  CPU per GiB after t0: n/a (%s)\n", ck < 0 ? "no KSM "
				"full-speed figure" : "pagekeeperd reclaimed (almost) nothing after t0");
		else
			fprintf(out, "  CPU per GiB after t0: pagekeeperd %.2f s/GiB / KSM full "
				"speed %.2f s/GiB = %.2fx (goal <= 1x, no worse): %s\n", cp, ck,
				cp / ck, cp <= ck ? "MET" : "MISSED");
		ck = kf_ok ? cpu_per_gib_start(kf, res->reachable_mib) : -1;
		cp = cpu_per_gib_start(p, res->reachable_mib);
		if (ck >= 0 && cp >= 0)
			fprintf(out, "  CPU per GiB from guest start (pagekeeperd's includes the "
				"fill's faults): %.2f s/GiB / %.2f s/GiB = %.2fx: %s\n", cp, ck,
				cp / ck, cp <= ck ? "MET" : "MISSED");
	}
}

static void ksm_settings(const struct share_results *res, FILE *out)
{
	fprintf(out, "\nKSM settings (%s) before:", KSM_DIR);
	for (unsigned i = 0; i < res->ksm_before.n; i++)
		fprintf(out, " %s=%s", res->ksm_before.s[i].name, res->ksm_before.s[i].value);
	fprintf(out, "\nKSM settings after the run:");
	for (unsigned i = 0; i < res->ksm_after.n; i++)
		fprintf(out, " %s=%s", res->ksm_after.s[i].name, res->ksm_after.s[i].value);
	fprintf(out, "\nKSM settings restored: %s%s\n", res->ksm_restored ? "yes" : "NO, differ: ",
		res->ksm_restored ? "" : res->ksm_diff);
}

void share_report_text(const struct share_opts *o, const struct share_results *res, FILE *out)
{
	fprintf(out, "pk-bench-share: page sharing, pagekeeperd vs KSM (%ld CPUs, %.0f MiB RAM)\n",
		res->cpus, res->mem_total_mib);
	fprintf(out, "guests: %u x %.0f MiB = %.0f MiB, seed %llu, --content %s, one sharing "
		"domain\n", o->guests, res->guest_mib, res->guest_total_mib,
		(unsigned long long)o->seed, o->content);
	fprintf(out, "reachable savings R = zero S*N*z + duplicates S*(N-1)*d = %.0f MiB*%u*%.2f + "
		"%.0f MiB*%u*%.2f = %.1f MiB + %.1f MiB = %.1f MiB\n", res->guest_mib, o->guests,
		o->zero_frac, res->guest_mib, o->guests - 1, o->shared_frac, res->zero_mib,
		res->dup_mib, res->reachable_mib);
	fprintf(out, "t0 = all guests filled (each printed HOLDING).  KSM is switched on (run=1) "
		"at t0; its guests run --no-daemon --mergeable.  pagekeeperd (%s,\n"
		"--swap-size 0) scans from the first attach, so it may reclaim during the fill; "
		"that is (c), counted in every saved figure (its time is not in the times).\n"
		"(c) reclaimed before t0 = N*S minus the guests' memfd bytes at t0, minus the "
		"daemon's anonymous RSS growth since before the guests (its page tables, store\n"
		"    and index count against it).\n"
		"(d) machine memory held by our processes, from /proc: guests' memfd bytes "
		"(st_blocks) or anonymous PSS (smaps_rollup, sampled every %.0f ms), plus the\n"
		"    daemon's RssAnon; saved = its drop since t0 + (c).  The time to 95%% and the "
		"CPU per GiB use it.  KSM's own metadata (slab) is not in it: see general_profit.\n"
		"(e) machine-wide: MemAvailable / MemFree (+ the free pages on per-CPU lists) "
		"delta since t0 + (c); other tenants of the machine move it too.\n"
		"(f) from guest start: fill time + time to 95%% after t0 (an upper bound, \"<=\", "
		"when (c) > 0: 95%% may have been reached during the fill); CPU: the fill's too\n"
		"    (pagekeeperd's includes serving the fill's faults, so it is an upper bound of "
		"its sharing cost), over everything saved at that point including (c).\n"
		"(b) counter: KSM pages_sharing, or pagekeeperd's own saved figure; a cross-check "
		"only.\n"
		"(g) with --settled-cpu S: ksmd's or pagekeeperd's CPU share and scan rate in the S "
		"s after the variant settled, when\n"
		"    the guests are merged and change nothing (n/a without --settled-cpu).\n",
		res->daemon_path, o->pss_ms);
	table(res, SHARE_ANON, out);
	table(res, SHARE_MEMFD, out);
	const char *ksm_src = NULL, *pk_src = NULL;
	for (int k = 0; k < SHARE_KINDS; k++)
		for (int m = 0; m < SHARE_MECHS; m++) {
			const char **src = share_mech_is_ksm(m) ? &ksm_src : &pk_src;
			if (res->v[k][m].ran && res->v[k][m].counter_src && !*src)
				*src = res->v[k][m].counter_src;
		}
	fprintf(out, "\n(b) counters read: KSM: %s; pagekeeperd: %s\n", ksm_src ? ksm_src : "-",
		pk_src ? pk_src : "-");
	ratios(o, res, out);
	ksm_settings(res, out);
	fprintf(out, "\nrun time: %.0f s\n", res->run_s);
}
