/*
 * balloon_report.c - print one pk-bench-balloon run as a table or as JSON.
 *
 * What: per balloon target (0%, 25%, 50% of the guest's RAM) the guest's
 * page-ins per second and run-time stretch without a daemon and through
 * pagekeeperd's lab driver, then the locked guest's balloon: where it
 * settled, whether it stalled, its shortfall (the guest's and pagekeeperd's
 * figures), its page-ins and stretch.  Medians over the rounds; stretch is
 * the median of each round's run time / the same variant's run time at 0%
 * in that round, so it is 1.00x at 0% by construction.
 * How: printf for text (every number with its unit); json-c builds the
 * JSON (units in the key names, every round's figures too).
 * Why: humans read the table, the smoke test and scripts read the JSON.
 */
#include "balloon_results.h"
#include "timing.h"

#include <json-c/json.h>
#include <string.h>

const char *bal_variant_name(int v)
{
	static const char *const n[BV_COUNT] = { "no daemon", "pagekeeperd + lab driver",
						 "locked guest via pagekeeperd" };
	return v >= 0 && v < BV_COUNT ? n[v] : "?";
}

static const char *const json_key[BV_COUNT] = { "no_daemon", "pagekeeperd", "locked" };

/* Median over the rounds of the figure at byte offset off of struct bal_run. */
static double med(const struct bal_cell *c, size_t off)
{
	double v[BAL_MAX_ROUNDS];

	for (unsigned i = 0; i < c->n; i++)
		memcpy(&v[i], (const char *)&c->r[i] + off, sizeof(double));
	return median_double(v, c->n);
}

#define MED(c, field) med((c), offsetof(struct bal_run, field))

static double med_stretch(const struct bal_cell *c)
{
	double v[BAL_MAX_ROUNDS];

	memcpy(v, c->stretch, sizeof(double) * c->n);
	return median_double(v, c->n);
}

static unsigned stalled_rounds(const struct bal_cell *c, bool daemon_view)
{
	unsigned k = 0;

	for (unsigned i = 0; i < c->n; i++)
		k += daemon_view ? c->r[i].d_stalled : c->r[i].stalled;
	return k;
}

/* 12345.6 as "12,346". */
static const char *grouped(double v, char *buf, size_t len)
{
	char raw[32];
	long long n = (long long)(v + 0.5);
	int l = snprintf(raw, sizeof(raw), "%lld", n < 0 ? -n : n), o = 0;

	if (n < 0 && o < (int)len - 1)
		buf[o++] = '-';
	for (int i = 0; i < l && o < (int)len - 1; i++) {
		buf[o++] = raw[i];
		if ((l - i - 1) % 3 == 0 && i < l - 1 && o < (int)len - 1)
			buf[o++] = ',';
	}
	buf[o] = '\0';
	return buf;
}

static const char *stalled_word(unsigned k, unsigned n, char *buf, size_t len)
{
	if (k == 0)
		return "no";
	if (k == n)
		return "yes";
	snprintf(buf, len, "%u of %u", k, n);
	return buf;
}

void balloon_report_text(const struct bal_results *r, FILE *out)
{
	const struct bal_opts *o = &r->o;
	char a[32], b[32], w1[32], w2[32];

	fprintf(out, "pk-bench-balloon: a lab guest with an OS (pk-guestsim --balloon): %.1f MiB "
		"RAM, %.1f MiB working set,\nzipf, %llu ops per run, its page file in %s;\n"
		"medians of %u round%s; stretch = run time / the same guest's run time at 0%% "
		"in the same round.\n", (double)o->ram_bytes / 1048576.0,
		(double)o->ws_bytes / 1048576.0, (unsigned long long)o->ops, r->dir, o->rounds,
		o->rounds == 1 ? "" : "s");
	fprintf(out, "pagekeeperd: %s %s\n\n", r->daemon_path, r->daemon_args);
	fprintf(out, "%-22s %-32s %s\n", "balloon target", "no daemon",
		"pagekeeperd + lab driver");
	fprintf(out, "%-22s %10s %8s %10s   %10s %8s %10s\n", "(the guest keeps)", "page-ins/s",
		"stretch", "run time", "page-ins/s", "stretch", "run time");
	for (int t = 0; t < BAL_NT; t++) {
		const struct bal_cell *n = &r->c[BV_NODAEMON][t], *d = &r->c[BV_DAEMON][t];
		char label[32];
		snprintf(label, sizeof(label), "%2u%% (%.1f MiB)", r->pct[t],
			 (double)r->target_bytes[t] / 1048576.0);
		fprintf(out, "%-22s %10s %7.2fx %8.2f s   %10s %7.2fx %8.2f s\n", label,
			grouped(MED(n, page_ins_per_s), a, sizeof(a)), med_stretch(n),
			MED(n, run_s), grouped(MED(d, page_ins_per_s), b, sizeof(b)),
			med_stretch(d), MED(d, run_s));
	}
	fprintf(out, "balloon settled in (ms):  no daemon");
	for (int t = 0; t < BAL_NT; t++)
		fprintf(out, " %s%.0f", t ? "/ " : "", MED(&r->c[BV_NODAEMON][t], settle_ms));
	fprintf(out, ";  pagekeeperd");
	for (int t = 0; t < BAL_NT; t++)
		fprintf(out, " %s%.0f", t ? "/ " : "", MED(&r->c[BV_DAEMON][t], settle_ms));
	fprintf(out, "  (0%%/25%%/50%%)\n\n");

	fprintf(out, "locked guest (--locked %g: %.1f MiB of its working set locked), through "
		"pagekeeperd:\n", o->locked, r->locked_mib);
	fprintf(out, "%-22s %10s %9s %10s %10s   %10s %8s %10s\n", "balloon target",
		"keeps", "stalled", "shortfall", "(daemon)", "page-ins/s", "stretch",
		"run time");
	for (int t = 0; t < BAL_NT; t++) {
		const struct bal_cell *l = &r->c[BV_LOCKED][t];
		char label[32];
		snprintf(label, sizeof(label), "%2u%% (%.1f MiB)", r->pct[t],
			 (double)r->target_bytes[t] / 1048576.0);
		unsigned ks = stalled_rounds(l, false), kd = stalled_rounds(l, true);
		char st[80];
		snprintf(st, sizeof(st), "%s", stalled_word(ks, l->n, w1, sizeof(w1)));
		if (kd != ks)
			snprintf(st, sizeof(st), "%s (daemon: %s)",
				 stalled_word(ks, l->n, w1, sizeof(w1)),
				 stalled_word(kd, l->n, w2, sizeof(w2)));
		fprintf(out, "%-22s %6.1f MiB %9s %6.1f MiB %6.1f MiB   %10s %7.2fx %8.2f s\n",
			label, MED(l, actual_mib), st, MED(l, shortfall_mib),
			MED(l, d_shortfall_mib), grouped(MED(l, page_ins_per_s), a, sizeof(a)),
			med_stretch(l), MED(l, run_s));
	}
	fprintf(out, "\n%u guest runs, every page verified; %.0f s in all on %ld CPUs.\n",
		(unsigned)(BV_COUNT * BAL_NT) * o->rounds, r->run_s, r->cpus);
}

static void add_d(json_object *o, const char *key, double v)
{
	json_object_object_add(o, key, json_object_new_double(v));
}

static json_object *cell_json(const struct bal_cell *c, int v)
{
	json_object *o = json_object_new_object();
	json_object *runs = json_object_new_array();

	add_d(o, "page_ins_per_s", MED(c, page_ins_per_s));
	add_d(o, "page_outs_per_s", MED(c, page_outs_per_s));
	add_d(o, "stretch", med_stretch(c));
	add_d(o, "run_s", MED(c, run_s));
	add_d(o, "settle_ms", MED(c, settle_ms));
	add_d(o, "actual_mib", MED(c, actual_mib));
	add_d(o, "balloon_mib", MED(c, balloon_mib));
	add_d(o, "shortfall_mib", MED(c, shortfall_mib));
	json_object_object_add(o, "stalled_rounds",
			       json_object_new_int((int)stalled_rounds(c, false)));
	if (v != BV_NODAEMON) {
		add_d(o, "daemon_actual_mib", MED(c, d_actual_mib));
		add_d(o, "daemon_shortfall_mib", MED(c, d_shortfall_mib));
		json_object_object_add(o, "daemon_stalled_rounds",
				       json_object_new_int((int)stalled_rounds(c, true)));
		add_d(o, "daemon_guest_pageins_per_s_max", MED(c, d_pageins_per_s));
	}
	for (unsigned i = 0; i < c->n; i++) {
		const struct bal_run *x = &c->r[i];
		json_object *e = json_object_new_object();
		add_d(e, "run_s", x->run_s);
		add_d(e, "stretch", c->stretch[i]);
		add_d(e, "page_ins_per_s", x->page_ins_per_s);
		json_object_object_add(e, "page_ins", json_object_new_int64((int64_t)x->page_ins));
		json_object_object_add(e, "page_outs",
				       json_object_new_int64((int64_t)x->page_outs));
		add_d(e, "settle_ms", x->settle_ms);
		json_object_object_add(e, "stalled", json_object_new_boolean(x->stalled));
		json_object_object_add(e, "pages_verified",
				       json_object_new_int64((int64_t)x->pages_verified));
		json_object_array_add(runs, e);
	}
	json_object_object_add(o, "rounds", runs);
	return o;
}

void balloon_report_json(const struct bal_results *r, FILE *out)
{
	const struct bal_opts *o = &r->o;
	json_object *j = json_object_new_object(), *ts = json_object_new_array();

	add_d(j, "ram_mib", (double)o->ram_bytes / 1048576.0);
	add_d(j, "working_set_mib", (double)o->ws_bytes / 1048576.0);
	json_object_object_add(j, "workload", json_object_new_string("zipf"));
	json_object_object_add(j, "ops", json_object_new_int64((int64_t)o->ops));
	json_object_object_add(j, "rounds", json_object_new_int((int)o->rounds));
	add_d(j, "locked", o->locked);
	add_d(j, "locked_mib", r->locked_mib);
	json_object_object_add(j, "dir", json_object_new_string(r->dir));
	json_object_object_add(j, "daemon", json_object_new_string(r->daemon_path));
	json_object_object_add(j, "daemon_args", json_object_new_string(r->daemon_args));
	json_object_object_add(j, "guestsim", json_object_new_string(r->guestsim_path));
	json_object_object_add(j, "cpus", json_object_new_int((int)r->cpus));
	add_d(j, "bench_s", r->run_s);
	for (int t = 0; t < BAL_NT; t++) {
		json_object *e = json_object_new_object();
		json_object_object_add(e, "target_pct", json_object_new_int((int)r->pct[t]));
		add_d(e, "target_mib", (double)r->target_bytes[t] / 1048576.0);
		for (int v = 0; v < BV_COUNT; v++)
			json_object_object_add(e, json_key[v], cell_json(&r->c[v][t], v));
		json_object_array_add(ts, e);
	}
	json_object_object_add(j, "targets", ts);
	fprintf(out, "%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
	json_object_put(j);
}
