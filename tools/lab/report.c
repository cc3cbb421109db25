/*
 * report.c - the lab's report (see report.h): OUT/report.html.
 *
 * What: turns a finished `pagekeeper lab` run into one page a newcomer
 * can open offline: the charts of the seed's figures (state and granted
 * memory, balloon, working sets squeezed, guest page-ins and the
 * stretch, or for a sharing sweep the shared %), a caption per chart
 * telling what the seed saw and what this run shows, and the tables
 * (summary, policy comparison and stretch by policy when several
 * policies ran, the sharing sweep).
 * How: the charts are drawn by gnuplot (Debian's gnuplot-nox), run as a
 * child process once per chart on a script generated here and kept as
 * OUT/NAME.gp (OUT/report.gp loads them all), next to the CSV files it reads (samples.csv, guests.csv, runs.csv
 * written here, sharing.csv), so a user can change and re-run it.  Each
 * chart is written twice, NAME.svg (inlined into the page, its ids
 * prefixed with the chart's name so they stay unique) and NAME.png
 * (pngcairo, for documents such as the README).  The page has a fixed
 * layout (absolute positions in CSS), each chart's box named in its
 * data-box attribute, so a renderer's screenshot can be checked per chart.
 * Why: issue 16: the lab must tell the seed's story - states, balloon
 * first, then swap, working sets squeezed, run time stretched - the way
 * the seed does, as charts of counters over time; a well-kept plotting
 * tool draws them, the lab only says what to draw.
 */
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The layout, in CSS pixels. */
#define PAGE_W 1000
#define HEAD_H 150		/* the title and the scenario, clipped */
#define CAP_H 78		/* a chart's caption, clipped */
#define CHART_X 40
#define CHART_W 920
#define CHART_H 420
#define GAP 24
#define BLOCK_H (CAP_H + CHART_H + GAP)
#define MAX_CHARTS 8
#define GNUPLOT_LIMIT_S 120	/* a few seconds of work; a hung gnuplot is killed */
/* The plot area inside a chart, fractions of it from its left and top
 * (gnuplot's margins "at screen"): the key and the right axis lie right
 * of it, so what is drawn inside is axes, grid and data. */
#define PLOT_L 0.08
#define PLOT_R 0.64
#define PLOT_T 0.09
#define PLOT_B 0.86

struct chart {
	const char *id;		/* chart-ID in the page, ID.svg, ID.png */
	char caption[1024];	/* HTML */
};

struct facts {			/* from samples.csv, for the policy run shown */
	double first_target_s, first_swap_s;	/* -1: none */
	double balloon_peak_mib, swapped_peak_mib, granted_peak_mib;
	double free_min_pct;
	int rows;
};

struct ctx {
	const struct lab_report *r;
	const char *policy;	/* the run the time charts show */
	unsigned policy_run;	/* its index in r->runs */
	struct facts f;
	struct chart charts[MAX_CHARTS];
	unsigned n_charts;
	char note[2048];	/* why charts are missing, for the page */
};

static void html_esc(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '<')
			fputs("&lt;", f);
		else if (*s == '>')
			fputs("&gt;", f);
		else if (*s == '&')
			fputs("&amp;", f);
		else if (*s == '"')
			fputs("&quot;", f);
		else
			fputc(*s, f);
	}
}

static FILE *open_out(const struct lab_report *r, const char *name, char *path, size_t len)
{
	snprintf(path, len, "%s/%s", r->out_dir, name);
	return fopen(path, "w");
}

static double stretch_of(const struct lab_report *r, unsigned run, unsigned i)
{
	const struct lab_report_guest *g = &r->runs[run].g[i], *b = &r->runs[0].g[i];

	if (!g->have || !b->have || !(b->run_s > 0))
		return NAN;
	return g->run_s / b->run_s;
}

/* OUT/runs.csv: run, run_index, vm, vm_index, run_s, stretch, ... */
static int write_runs_csv(const struct lab_report *r, char *err, size_t err_len)
{
	char path[PATH_MAX];
	FILE *f = open_out(r, "runs.csv", path, sizeof(path));

	if (!f) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return -errno;
	}
	fprintf(f, "run,run_index,vm,vm_index,run_s,stretch,timed_out,label,guest_page_ins,"
		"host_swapins,balloon_peak_mib,swapped_peak_mib,states\n");
	for (unsigned k = 0; k < r->n_runs; k++)
		for (unsigned i = 0; i < r->sc->g.count; i++) {
			const struct lab_report_guest *g = &r->runs[k].g[i];
			const struct lab_report_guest *b = &r->runs[0].g[i];
			double st = stretch_of(r, k, i);
			char label[32] = "";
			fprintf(f, "%s,%u,lab%u,%u,", r->runs[k].name, k, i, i);
			/* A guest stopped at the limit: its run time is at least the limit. */
			if (g->timed_out) {
				fprintf(f, "%.3f", r->sc->limit_s);
				if (b->have && b->run_s > 0) {
					st = r->sc->limit_s / b->run_s;
					snprintf(label, sizeof(label), ">%.0fx", st);
				}
			} else if (g->have) {
				fprintf(f, "%.3f", g->run_s);
			}
			fputc(',', f);
			if (!isnan(st))
				fprintf(f, "%.3f", st);
			if (!label[0] && !isnan(st))
				snprintf(label, sizeof(label), "%.1fx", st);
			char states[sizeof(r->runs[k].states)];
			snprintf(states, sizeof(states), "%s", r->runs[k].states);
			for (char *p = states; *p; p++)
				*p = *p == ',' ? '+' : *p;	/* one CSV cell */
			fprintf(f, ",%d,%s,%.0f,%.0f,%.3f,%.3f,%s\n", g->timed_out, label,
				g->have ? g->page_ins : 0, g->swapins, g->balloon_peak_mib,
				g->swapped_peak_mib, states);
		}
	return fclose(f) ? -EIO : 0;
}

/* ---- what the samples say ---- */

static int col_of(char **h, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(h[i], name))
			return i;
	return -1;
}

static int split(char *line, char **f, int max)
{
	int n = 0;

	line[strcspn(line, "\r\n")] = '\0';
	f[n++] = line;
	for (char *p = line; *p && n < max; p++)
		if (*p == ',') {
			*p = '\0';
			f[n++] = p + 1;
		}
	return n;
}

static void read_facts(struct ctx *c)
{
	char path[PATH_MAX], hline[2048], line[2048], *h[64], *v[64];
	struct facts *f = &c->f;
	FILE *in;
	int nh;

	*f = (struct facts){ .first_target_s = -1, .first_swap_s = -1, .free_min_pct = 100 };
	snprintf(path, sizeof(path), "%s/samples.csv", c->r->out_dir);
	if (!c->policy || !(in = fopen(path, "r")))
		return;
	if (!fgets(hline, sizeof(hline), in)) {
		fclose(in);
		return;
	}
	nh = split(hline, h, 64);
	int c_run = col_of(h, nh, "run"), c_t = col_of(h, nh, "t_s"),
	    c_tg = col_of(h, nh, "balloon_target_mib"), c_sw = col_of(h, nh, "swapped_mib"),
	    c_bl = col_of(h, nh, "ballooned_mib"), c_gr = col_of(h, nh, "granted_mib"),
	    c_fr = col_of(h, nh, "free_pct");
	while (c_run >= 0 && c_t >= 0 && fgets(line, sizeof(line), in)) {
		if (split(line, v, 64) != nh || strcmp(v[c_run], c->policy))
			continue;
		double t = atof(v[c_t]);
		f->rows++;
		if (c_tg >= 0 && v[c_tg][0] && f->first_target_s < 0)
			f->first_target_s = t;
		if (c_sw >= 0 && atof(v[c_sw]) > 0 && f->first_swap_s < 0)
			f->first_swap_s = t;
		if (c_sw >= 0)
			f->swapped_peak_mib = fmax(f->swapped_peak_mib, atof(v[c_sw]));
		if (c_bl >= 0)
			f->balloon_peak_mib = fmax(f->balloon_peak_mib, atof(v[c_bl]));
		if (c_gr >= 0)
			f->granted_peak_mib = fmax(f->granted_peak_mib, atof(v[c_gr]));
		if (c_fr >= 0 && v[c_fr][0])
			f->free_min_pct = fmin(f->free_min_pct, atof(v[c_fr]));
	}
	fclose(in);
}

/* "at 12.0 s" or "never". */
static const char *when(double t, char *buf, size_t len)
{
	if (t < 0)
		snprintf(buf, len, "never");
	else
		snprintf(buf, len, "at %.1f s", t);
	return buf;
}

/* ---- the gnuplot script ---- */

static void gp_common(FILE *g)
{
	fputs("# A chart of report.html, written by pagekeeper lab.\n"
	      "# Re-run by hand in this directory: gnuplot report.gp (every chart)\n"
	      "# (set PNG = 0 on the command line, gnuplot -e 'PNG=0' report.gp, for SVG only)\n"
	      "if (!exists(\"PNG\")) PNG = 1\n"
	      "set datafile separator ','\n"
	      "set datafile columnheaders\n"
	      "set datafile missing NaN\n"
	      "set grid lc rgb '#dddddd'\n"
	      "set key at screen 0.99, screen 0.9 right top vertical\n"
	      "set border back lc rgb '#444444'\n"	/* a series at 0 shows */
	      "state_num(s) = s eq 'high' ? 3 : s eq 'soft' ? 2 : s eq 'hard' ? 1 : "
	      "s eq 'low' ? 0 : NaN\n"
	      "is(run, vm) = strcol('run') eq run && strcol('vm') eq vm\n", g);
	fprintf(g, "W = %d; H = %d\n", CHART_W, CHART_H);
	fprintf(g, "set lmargin at screen %.2f; set rmargin at screen %.2f\n"
		"set tmargin at screen %.2f; set bmargin at screen %.2f\n", PLOT_L, PLOT_R,
		1 - PLOT_T, 1 - PLOT_B);
	/* Each chart: a macro-free pair of passes, SVG then PNG. */
	fputs("svg(name) = sprintf(\"set terminal svg size %d,%d font 'sans,12' "
	      "background rgb 'white'; set output '%s.svg'\", W, H, name)\n"
	      "png(name) = sprintf(\"set terminal pngcairo size %d,%d font 'sans,10' "
	      "background rgb 'white'; set output '%s.png'\", W, H, name)\n", g);
}

/* Emit "do for [pass=1:1+PNG] { eval(pass == 1 ? svg(ID) : png(ID)); BODY }". */
static void gp_begin(FILE *g, const char *id)
{
	fprintf(g, "\n# ---- %s ----\nreset session\n", id);
	gp_common(g);
	fprintf(g, "do for [pass=1:1+PNG] {\n  eval(pass == 1 ? svg('%s') : png('%s'))\n",
		id, id);
}

static void gp_end(FILE *g)
{
	fputs("  set output\n}\n", g);
}

static void chart_fig7(struct ctx *c, FILE *g)
{
	const struct lab_report *r = c->r;
	unsigned n = r->sc->g.count;
	double share = (double)lab_budget_bytes(r->sc) / 1048576.0 / n;
	char a[32], b[32];

	gp_begin(g, "fig7");
	fprintf(g, "  set title \"Memory state and granted memory per guest (%s)\"\n"
		"  set xlabel 'time since the guests started (s)'\n"
		"  set ylabel 'granted memory (MiB)'\n"
		"  set y2label 'memory state'\n"
		"  set yrange [0:*]\n"
		"  set y2range [-0.3:3.3]\n"
		"  set y2tics ('low' 0, 'hard' 1, 'soft' 2, 'high' 3)\n"
		"  set ytics nomirror\n"
		"  plot for [i=0:%u] 'samples.csv' using 't_s':(is('%s', sprintf('lab%%d', i)) "
		"? column('granted_mib') : NaN) with lines lw 2 lc i+1 "
		"title sprintf('lab%%d granted (MiB)', i), \\\n"
		"       %.3f with lines dt 3 lw 1.5 lc rgb '#555555' title 'budget per guest "
		"(%.0f MiB)', \\\n"
		"       'samples.csv' using 't_s':(is('%s', 'lab0') ? "
		"state_num(strcol('state')) : NaN) axes x1y2 with steps lw 4 "
		"lc rgb '#60c0c0c0' title 'memory state'\n",
		c->policy, n - 1, c->policy, share, share,
		c->policy);
	gp_end(g);
	snprintf(c->charts[c->n_charts].caption, sizeof(c->charts[0].caption),
		 "<b>Fig. 7</b> (seed 002): the memory state (grey steps, right axis) and "
		 "each guest's granted memory under <b>%s</b>. The seed's host ran at 98%% "
		 "usage and went to <i>hard</i>. Here the states visited were <b>%s</b>; "
		 "free memory fell to %.1f%% of the budget; the first balloon target came "
		 "%s, the first swapped page %s.", c->policy,
		 r->runs[c->policy_run].states, c->f.free_min_pct,
		 when(c->f.first_target_s, a, sizeof(a)), when(c->f.first_swap_s, b, sizeof(b)));
	c->charts[c->n_charts++].id = "fig7";
}

static void chart_fig11(struct ctx *c, FILE *g)
{
	const struct lab_report *r = c->r;
	unsigned n = r->sc->g.count;

	gp_begin(g, "fig11");
	fprintf(g, "  set title \"Balloon target and ballooned memory per guest (%s)\"\n"
		"  set xlabel 'time since the guests started (s)'\n"
		"  set ylabel 'balloon (MiB)'\n"
		"  set yrange [0:*]\n"
		"  plot for [i=0:%u] 'samples.csv' using 't_s':(is('%s', sprintf('lab%%d', i)) ? "
		"column('ballooned_mib') : NaN) with lines lw 2 lc i+1 "
		"title sprintf('lab%%d ballooned (MiB)', i), \\\n"
		"       for [i=0:%u] 'samples.csv' using 't_s':(is('%s', sprintf('lab%%d', i)) "
		"&& strlen(strcol('balloon_target_mib')) > 0 ? column('configured_mib') - "
		"column('balloon_target_mib') : NaN) with steps dt 2 lw 2 lc i+1 "
		"title sprintf('lab%%d target (MiB)', i)\n",
		c->policy, n - 1, c->policy, n - 1, c->policy);
	gp_end(g);
	snprintf(c->charts[c->n_charts].caption, sizeof(c->charts[0].caption),
		 "<b>Fig. 11</b> (seed 002): the balloon each guest was asked for "
		 "(dashed: its RAM minus the balloon target) and what its balloon driver "
		 "gave back (solid) under <b>%s</b>. In the seed the targets rose to about "
		 "half of each guest (4 of 8 GB) when machine memory filled. Here the "
		 "largest balloon was %.1f MiB of a %.0f MiB guest.", c->policy,
		 c->f.balloon_peak_mib, (double)r->sc->g.size / 1048576.0);
	c->charts[c->n_charts++].id = "fig11";
}

static void chart_fig12(struct ctx *c, FILE *g)
{
	const struct lab_report *r = c->r;
	unsigned n = r->sc->g.count;

	gp_begin(g, "fig12");
	fprintf(g, "  set title \"Working sets squeezed by the balloon (%s)\"\n"
		"  set xlabel 'time since the guest started (s)'\n"
		"  set ylabel 'memory (MiB)'\n"
		"  set yrange [0:*]\n"
		"  plot for [i=0:%u] 'guests.csv' using 't_s':(is('%s', sprintf('lab%%d', i)) ? "
		"column('resident_mib') : NaN) with lines lw 2 lc i+1 "
		"title sprintf('lab%%d resident (MiB)', i), \\\n"
		"       for [i=0:%u] 'guests.csv' using 't_s':(is('%s', sprintf('lab%%d', i)) ? "
		"column('heap_mib') : NaN) with lines dt 2 lw 1.5 lc i+1 "
		"title sprintf('lab%%d heap (MiB)', i), \\\n"
		"       for [i=0:%u] 'guests.csv' using 't_s':(is('%s', sprintf('lab%%d', i)) ? "
		"column('balloon_mib') : NaN) with lines dt 3 lw 1.5 lc i+1 "
		"title sprintf('lab%%d balloon (MiB)', i)\n",
		c->policy, n - 1, c->policy, n - 1, c->policy, n - 1, c->policy);
	gp_end(g);
	snprintf(c->charts[c->n_charts].caption, sizeof(c->charts[0].caption),
		 "<b>Figs. 12-13</b> (seed 002): inside each guest, the application's "
		 "resident pages (solid) against its heap (dashed) and the balloon (dotted) "
		 "under <b>%s</b>. In the seed the process working set fell from over 4 GB "
		 "to about 2 GB once the balloon inflated, while its heap stayed above "
		 "4 GB: the rest lives in the guest's page file.", c->policy);
	c->charts[c->n_charts++].id = "fig12";
}

/* A run's guests' page-ins, summed; -1 when the report has no such run. */
static double run_page_ins(const struct lab_report *r, const char *name)
{
	for (unsigned i = 0; i < r->n_runs; i++) {
		double sum = 0;

		if (strcmp(r->runs[i].name, name))
			continue;
		for (unsigned k = 0; k < r->sc->g.count; k++)
			sum += r->runs[i].g[k].page_ins;
		return sum;
	}
	return -1;
}

static void chart_fig15(struct ctx *c, FILE *g)
{
	const struct lab_report *r = c->r;
	unsigned n = r->sc->g.count;
	/* Beside the policy, MoM's rules when they ran: the seed's paging
	 * came from the balloon, and that is where it shows. */
	const char *cmp = strcmp(c->policy, "balloon-only") ? "balloon-only" : NULL;
	double pol_in = run_page_ins(r, c->policy),
	       cmp_in = cmp ? run_page_ins(r, cmp) : -1;
	char more[160] = "";

	gp_begin(g, "fig15");
	fprintf(g, "  set title \"Guest page-ins (hard page faults) under %s%s and in the "
		"baseline\"\n"
		"  set xlabel 'time since the guest started (s)'\n"
		"  set ylabel 'guest page-ins (pages/s)'\n"
		"  set yrange [0:*]\n"
		"  plot for [i=0:%u] 'guests.csv' using 't_s':(is('%s', sprintf('lab%%d', i)) ? "
		"column('page_ins_per_s') : NaN) with lines lw 2 lc i+1 "
		"title sprintf('lab%%d %s (pages/s)', i), \\\n",
		c->policy, cmp_in >= 0 ? ", balloon-only" : "", n - 1, c->policy,
		c->policy);
	if (cmp_in >= 0)
		fprintf(g, "       for [i=0:%u] 'guests.csv' using 't_s':(is('%s', "
			"sprintf('lab%%d', i)) ? column('page_ins_per_s') : NaN) with lines "
			"dt 3 lw 2 lc i+1 title sprintf('lab%%d %s (pages/s)', i), \\\n",
			n - 1, cmp, cmp);
	fprintf(g, "       for [i=0:%u] 'guests.csv' using 't_s':(is('baseline', sprintf('lab%%d', i)) "
		"? column('page_ins_per_s') : NaN) with linespoints dt 2 pt 7 ps 0.6 lw 1.5 "
		"lc i+1 title sprintf('lab%%d baseline (pages/s)', i)\n", n - 1);
	gp_end(g);
	if (pol_in >= 0 && cmp_in >= 0)
		snprintf(more, sizeof(more), " Here the guests paged in %.0f pages in all "
			 "under <b>%s</b> and %.0f under <b>%s</b> (dotted).", pol_in,
			 c->policy, cmp_in, cmp);
	else if (pol_in >= 0)
		snprintf(more, sizeof(more), " Here the guests paged in %.0f pages in all "
			 "under <b>%s</b>.", pol_in, c->policy);
	snprintf(c->charts[c->n_charts].caption, sizeof(c->charts[0].caption),
		 "<b>Figs. 15-16</b> (seed 002): each guest's own page-ins from its page "
		 "file (its hard page faults) under <b>%s</b> (solid) and alone with no "
		 "memory limit, the standalone baseline (dashed). In the seed, ballooning "
		 "raised the demand paging of every guest, bounded by the shared paging "
		 "disk, and the run took almost 3 times as long as standalone.%s",
		 c->policy, more);
	c->charts[c->n_charts++].id = "fig15";
}

static void chart_stretch(struct ctx *c, FILE *g)
{
	const struct lab_report *r = c->r;
	unsigned n = r->sc->g.count, k = r->n_runs;
	double worst = 0;

	bool at_least = false;	/* a guest stopped at the limit: at least this */

	for (unsigned i = 0; i < n; i++) {
		const struct lab_report_guest *b = &r->runs[0].g[i];
		double st = stretch_of(r, c->policy_run, i);
		if (r->runs[c->policy_run].g[i].timed_out && b->have && b->run_s > 0 &&
		    r->sc->limit_s / b->run_s > worst) {
			worst = r->sc->limit_s / b->run_s;
			at_least = true;
		} else if (!isnan(st) && st > worst) {
			worst = st;
			at_least = false;
		}
	}
	gp_begin(g, "stretch");
	fprintf(g, "  set title 'Run time of the same work (labels: stretch = run time / "
		"baseline run time)'\n"
		"  set xlabel 'guest'\n"
		"  set ylabel 'run time (s)'\n"
		"  set yrange [0:*]\n"
		"  set style fill solid 0.8 border -1\n"
		"  set boxwidth 0.9\n"
		"  set xtics (");
	for (unsigned i = 0; i < n; i++)
		fprintf(g, "%s'lab%u' %g", i ? ", " : "", i, i * (k + 1.0) + (k - 1) / 2.0);
	fprintf(g, ")\n  set xrange [-1:%g]\n  RUNS = '", n * (k + 1.0) - 1);
	for (unsigned j = 0; j < k; j++)
		fprintf(g, "%s%s", j ? " " : "", r->runs[j].name);
	fprintf(g, "'\n"
		"  plot for [j=0:%u] 'runs.csv' using (column('vm_index') * %u + j):"
		"(column('run_index') == j ? column('run_s') : NaN) with boxes lc j+1 "
		"title word(RUNS, j+1).' run time (s)', \\\n"
		"       'runs.csv' using (column('vm_index') * %u + column('run_index')):"
		"(column('run_s')):(strcol('label')) with labels offset 0,0.7 font ',9' "
		"notitle\n",
		k - 1, k + 1, k + 1);
	gp_end(g);
	snprintf(c->charts[c->n_charts].caption, sizeof(c->charts[0].caption),
		 "<b>Fig. 16, the run time</b> (seed 002): the benchmark that took about 30 "
		 "minutes standalone ran for over 90 under memory contention, almost 3 "
		 "times longer. Here each guest did the same fixed work in every run; the "
		 "worst stretch under <b>%s</b> was <b>%s%.1fx</b>%s (&gt;: stopped at the "
		 "limit).", c->policy,
		 at_least ? "&gt;" : "", worst, at_least ? " (a guest stopped at the "
		 "scenario's limit)" : "");
	c->charts[c->n_charts++].id = "stretch";
}

static void chart_sharing(struct ctx *c, FILE *g)
{
	const struct lab_report *r = c->r;
	unsigned last = r->n_share ? r->share[r->n_share - 1].guests : 1;
	double top = r->n_share ? r->share[r->n_share - 1].shared_pct : 0;

	gp_begin(g, "sharing");
	fprintf(g, "  set title 'Memory shared by identical guests'\n"
		"  set xlabel 'identical guests (count)'\n"
		"  set ylabel 'shared memory (%% of the guests'' RAM)'\n"
		"  set yrange [0:100]\n"
		"  set xrange [0.5:%u.5]\n"
		"  set xtics 1\n"
		"  plot 'sharing.csv' using 'guests':'shared_pct' with linespoints lw 2 pt 7 "
		"ps 1.2 lc 1 title 'shared (%% of RAM)', \\\n"
		"       'sharing.csv' using 'guests':'saved_pct' with linespoints lw 2 pt 5 "
		"ps 1 lc 2 title 'saved (%% of RAM)', \\\n"
		"       %.1f with lines dt 2 lw 2 lc rgb '#cc0000' title 'ESX published: %.0f%%'\n",
		last, LAB_ESX_IDENTICAL_PCT, LAB_ESX_IDENTICAL_PCT);
	gp_end(g);
	snprintf(c->charts[c->n_charts].caption, sizeof(c->charts[0].caption),
		 "<b>Sharing</b>: %u to %u guests with the same content in one sharing "
		 "domain; the share of their RAM merged into shared copies, against "
		 "ESX's published figure for identical Linux VMs (about 67%% shared; "
		 "Waldspurger, OSDI 2002). "
		 "Shared counts every page merged, its shared copy included; saved is net "
		 "of the copies kept, at most (N-1)/N with N guests. Here %u guests shared "
		 "%.1f%% of their RAM and saved %.1f%%.", r->n_share ? r->share[0].guests : 1,
		 last, last, top,
		 r->n_share ? r->share[r->n_share - 1].saved_pct : 0);
	c->charts[c->n_charts++].id = "sharing";
}

/* ---- gnuplot ---- */

/*
 * gnuplot ID.gp in OUT, in a process group of its own, killed after
 * GNUPLOT_LIMIT_S.  Its messages go to OUT/ID.gp.log.  0, -ENOENT (no
 * gnuplot) or -EIO.
 */
static int run_gnuplot(struct ctx *c, const char *id, char *err, size_t err_len)
{
	char log[PATH_MAX], script[64];
	pid_t pid;
	int st;

	snprintf(log, sizeof(log), "%s/%s.gp.log", c->r->out_dir, id);
	snprintf(script, sizeof(script), "%s.gp", id);
	pid = fork();
	if (pid < 0) {
		snprintf(err, err_len, "fork: %s", strerror(errno));
		return -errno;
	}
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		setpgid(0, 0);
		if (fd < 0 || chdir(c->r->out_dir) < 0)
			_exit(126);
		dup2(fd, 1);
		dup2(fd, 2);
		execlp("gnuplot", "gnuplot", script, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	for (long waited_ms = 0;; waited_ms += 20) {
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			snprintf(err, err_len, "waitpid gnuplot: %s", strerror(errno));
			return -EIO;
		}
		if (waited_ms > GNUPLOT_LIMIT_S * 1000L) {
			kill(-pid, SIGKILL);
			waitpid(pid, &st, 0);
			snprintf(err, err_len, "gnuplot ran longer than %d s and was stopped "
				 "(%s)", GNUPLOT_LIMIT_S, log);
			return -EIO;
		}
		usleep(20000);
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
		snprintf(err, err_len, "gnuplot is not installed, so the report has no "
			 "charts (Debian: apt-get install gnuplot-nox; tools/bootstrap installs "
			 "it), then run: cd %s && gnuplot report.gp", c->r->out_dir);
		return -ENOENT;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		snprintf(err, err_len, "gnuplot failed on chart %s (exit %d; no data in the "
			 "run?); its messages: %s", id,
			 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), log);
		return -EIO;
	}
	struct stat sb;
	if (stat(log, &sb) == 0 && sb.st_size == 0)
		unlink(log);	/* nothing said */
	return 0;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1))) {
		*len = fread(buf, 1, (size_t)n, f);
		buf[*len] = '\0';
	}
	fclose(f);
	return buf;
}

/*
 * OUT/ID.svg into the page from its <svg element on, every id and
 * reference to one prefixed with "ID-" (gnuplot names them the same in
 * every chart).  0, or -1 when the file is missing or has no <svg.
 */
static int inline_svg(FILE *out, const char *dir, const char *id)
{
	static const char *const pats[] = { "id='", "id=\"", "href='#", "href=\"#",
					    "url(#" };
	char path[PATH_MAX];
	size_t len = 0;
	char *svg, *p;

	snprintf(path, sizeof(path), "%s/%s.svg", dir, id);
	svg = slurp(path, &len);
	p = svg ? strstr(svg, "<svg") : NULL;
	if (!p) {
		free(svg);
		return -1;
	}
	while (*p) {
		size_t k, best = 0;
		for (k = 0; k < sizeof(pats) / sizeof(pats[0]); k++)
			if (!strncmp(p, pats[k], strlen(pats[k])))
				best = strlen(pats[k]);
		if (best) {
			fwrite(p, 1, best, out);
			fprintf(out, "%s-", id);
			p += best;
		} else {
			fputc(*p++, out);
		}
	}
	free(svg);
	return 0;
}

/* ---- the page ---- */

static void cell_num(FILE *f, bool have, const char *fmt, double v)
{
	fputs("<td>", f);
	if (have)
		fprintf(f, fmt, v);
	else
		fputs("-", f);
	fputs("</td>", f);
}

static void table_summary(FILE *f, const struct lab_report *r)
{
	const struct lab_scenario *s = r->sc;

	fputs("<h2>Summary</h2>\n<table>\n<tr><th>policy</th><th>guest</th><th>run time</th>"
	      "<th>stretch</th><th>guest page-ins</th><th>host swap-ins</th>"
	      "<th>balloon peak</th><th>swapped peak</th><th>states visited</th></tr>\n", f);
	for (unsigned k = 0; k < r->n_runs; k++)
		for (unsigned i = 0; i < s->g.count; i++) {
			const struct lab_report_guest *g = &r->runs[k].g[i];
			double st = stretch_of(r, k, i);
			fprintf(f, "<tr><td>%s</td><td>lab%u</td>", r->runs[k].name, i);
			if (g->timed_out)
				fprintf(f, "<td>&gt;%.0f s</td><td>-</td>", s->limit_s);
			else {
				cell_num(f, g->have, "%.2f s", g->run_s);
				cell_num(f, !isnan(st), "%.2fx", st);
			}
			cell_num(f, g->have, "%.0f pages", g->page_ins);
			cell_num(f, true, "%.0f pages", g->swapins);
			cell_num(f, true, "%.1f MiB", g->balloon_peak_mib);
			cell_num(f, true, "%.1f MiB", g->swapped_peak_mib);
			fprintf(f, "<td>%s</td></tr>\n", r->runs[k].states);
		}
	fputs("</table>\n", f);
}

/* With several policies: one row per policy, then the stretch side by side. */
static void table_policies(FILE *f, const struct lab_report *r)
{
	unsigned n = r->sc->g.count;

	if (r->n_runs < 3)
		return;
	fputs("<h2>Policy comparison</h2>\n<table>\n<tr><th>policy</th><th>mean stretch"
	      "</th><th>worst stretch</th><th>guest page-ins</th><th>host swap-ins</th>"
	      "<th>balloon peak</th><th>swapped peak</th><th>guests past the limit</th>"
	      "<th>states visited</th></tr>\n", f);
	for (unsigned k = 1; k < r->n_runs; k++) {
		double sum = 0, worst = 0, pin = 0, sin = 0, bp = 0, sp = 0;
		unsigned m = 0, late = 0;
		for (unsigned i = 0; i < n; i++) {
			const struct lab_report_guest *g = &r->runs[k].g[i];
			double st = stretch_of(r, k, i);
			if (!isnan(st)) {
				sum += st;
				worst = fmax(worst, st);
				m++;
			}
			late += g->timed_out;
			pin += g->have ? g->page_ins : 0;
			sin += g->swapins;
			bp = fmax(bp, g->balloon_peak_mib);
			sp = fmax(sp, g->swapped_peak_mib);
		}
		fprintf(f, "<tr><td>%s</td>", r->runs[k].name);
		cell_num(f, m > 0, "%.2fx", m ? sum / m : 0);
		cell_num(f, m > 0, "%.2fx", worst);
		cell_num(f, true, "%.0f pages", pin);
		cell_num(f, true, "%.0f pages", sin);
		cell_num(f, true, "%.1f MiB", bp);
		cell_num(f, true, "%.1f MiB", sp);
		fprintf(f, "<td>%u of %u</td><td>%s</td></tr>\n", late, n, r->runs[k].states);
	}
	fputs("</table>\n<h2>Stretch by policy (run time / baseline run time)</h2>\n"
	      "<table>\n<tr><th>guest</th>", f);
	for (unsigned k = 1; k < r->n_runs; k++)
		fprintf(f, "<th>%s</th>", r->runs[k].name);
	fputs("</tr>\n", f);
	for (unsigned i = 0; i < n; i++) {
		fprintf(f, "<tr><td>lab%u</td>", i);
		for (unsigned k = 1; k < r->n_runs; k++) {
			const struct lab_report_guest *g = &r->runs[k].g[i];
			double st = stretch_of(r, k, i);
			if (g->timed_out && r->runs[0].g[i].have)
				fprintf(f, "<td>&gt;%.0fx (&gt;%.0f s)</td>",
					r->sc->limit_s / r->runs[0].g[i].run_s, r->sc->limit_s);
			else if (!isnan(st))
				fprintf(f, "<td>%.2fx (%.1f s)</td>", st, g->run_s);
			else
				fputs("<td>-</td>", f);
		}
		fputs("</tr>\n", f);
	}
	fputs("</table>\n", f);
}

static void table_share(FILE *f, const struct lab_report *r)
{
	if (!r->n_share)
		return;
	fputs("<h2>Sharing against the number of identical guests</h2>\n<table>\n"
	      "<tr><th>guests</th><th>RAM</th><th>shared</th><th>zero</th>"
	      "<th>shared (% of RAM)</th><th>saved (% of RAM)</th><th>ESX published</th>"
	      "<th>settled</th></tr>\n", f);
	for (unsigned k = 0; k < r->n_share; k++) {
		const struct lab_report_share *p = &r->share[k];
		fprintf(f, "<tr><td>%u</td><td>%.0f MiB</td><td>%.1f MiB</td><td>%.1f MiB</td>"
			"<td>%.1f%%</td><td>%.1f%%</td><td>%.0f%%</td><td>%s</td></tr>\n", p->guests,
			p->configured_mib, p->shared_mib, p->zero_mib, p->shared_pct, p->saved_pct,
			LAB_ESX_IDENTICAL_PCT, p->settled ? "yes" : "no (at the limit)");
	}
	fputs("</table>\n", f);
}

static int write_html(struct ctx *c, char *path, size_t path_len)
{
	const struct lab_report *r = c->r;
	const struct lab_scenario *s = r->sc;
	unsigned k = c->n_charts;
	int top = HEAD_H + (int)k * BLOCK_H;
	char stamp[64];
	time_t now = time(NULL);
	FILE *f = open_out(r, "report.html", path, path_len);

	if (!f)
		return -errno;
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S %Z", localtime(&now));
	fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
		"<title>pagekeeper lab: ");
	html_esc(f, s->name);
	fprintf(f, "</title>\n<style>\n"
		"html, body { margin: 0; padding: 0; background: #ffffff; color: #202020; "
		"font-family: sans-serif; font-size: 14px; }\n"
		"body { position: relative; width: %dpx; }\n"
		"#head { position: absolute; left: %dpx; top: 0; width: %dpx; height: %dpx; "
		"overflow: hidden; }\n"
		".caption { position: absolute; left: %dpx; width: %dpx; height: %dpx; "
		"overflow: hidden; line-height: 1.35; }\n"
		".chart { position: absolute; left: %dpx; width: %dpx; height: %dpx; "
		"overflow: hidden; background: #ffffff; }\n"
		".chart svg { display: block; width: %dpx; height: %dpx; }\n"
		"#tables { position: absolute; left: %dpx; top: %dpx; width: %dpx; "
		"padding-bottom: 40px; }\n"
		"table { border-collapse: collapse; margin: 6px 0 18px 0; }\n"
		"th, td { border: 1px solid #bbbbbb; padding: 3px 8px; text-align: right; }\n"
		"th { background: #eeeeee; }\n"
		"td:first-child, th:first-child { text-align: left; }\n"
		".note { color: #b00000; font-weight: bold; }\n"
		"</style>\n</head>\n<body data-size=\"%d,%d\">\n",
		PAGE_W, CHART_X, CHART_W, HEAD_H, CHART_X, CHART_W, CAP_H, CHART_X, CHART_W,
		CHART_H, CHART_W, CHART_H, CHART_X, top, CHART_W, PAGE_W, top);
	fprintf(f, "<div id=\"head\">\n<h1>pagekeeper lab: ");
	html_esc(f, s->name);
	fprintf(f, "%s</h1>\n<p>", r->short_run ? " (--short)" : "");
	html_esc(f, s->description);
	if (r->n_share)
		fprintf(f, ". %u to %u identical guests of %.0f MiB", s->sweep_from, s->sweep_to,
			(double)s->g.size / 1048576.0);
	else
		fprintf(f, ". %u guests of %.0f MiB", s->g.count, (double)s->g.size / 1048576.0);
	if (!r->n_share)
		fprintf(f, ", working set %.1f MiB, %llu ops (%s), budget %.0f MiB of %.0f MiB",
			(double)lab_ws_bytes(s) / 1048576.0, (unsigned long long)s->g.ops,
			s->g.workload, (double)lab_budget_bytes(s) / 1048576.0,
			(double)(s->g.size * s->g.count) / 1048576.0);
	fprintf(f, ", seed %llu. Scenario ", (unsigned long long)s->seed);
	html_esc(f, r->scenario_path);
	fprintf(f, "; written %s. The data: samples.csv, guests.csv%s%s in this "
		"directory; the charts: report.gp (<code>gnuplot report.gp</code> here "
		"draws them again).</p>\n", stamp, r->n_runs ? ", runs.csv" : "",
		r->n_share ? ", sharing.csv" : "");
	if (c->note[0]) {
		fputs("<p class=\"note\">", f);
		html_esc(f, c->note);
		fputs("</p>\n", f);
	}
	fputs("</div>\n", f);
	for (unsigned i = 0; i < k; i++) {
		int y = HEAD_H + (int)i * BLOCK_H;
		fprintf(f, "<div class=\"caption\" style=\"top: %dpx\">%s</div>\n", y,
			c->charts[i].caption);
		fprintf(f, "<div class=\"chart\" id=\"chart-%s\" data-box=\"%d,%d,%d,%d\" "
			"data-plot=\"%d,%d,%d,%d\" style=\"top: %dpx\">\n", c->charts[i].id,
			CHART_X, y + CAP_H, CHART_W, CHART_H,
			/* inside the border, but for the x axis (a series at 0 lies on it) */
			CHART_X + (int)(PLOT_L * CHART_W) + 2, y + CAP_H + (int)(PLOT_T * CHART_H) + 2,
			(int)((PLOT_R - PLOT_L) * CHART_W) - 4, (int)((PLOT_B - PLOT_T) * CHART_H) + 1,
			y + CAP_H);
		if (inline_svg(f, r->out_dir, c->charts[i].id) < 0)
			fprintf(f, "<p class=\"note\">no chart: %s.svg was not drawn</p>\n",
				c->charts[i].id);
		fputs("\n</div>\n", f);
	}
	fputs("<div id=\"tables\">\n", f);
	if (r->n_runs)
		table_summary(f, r);
	table_policies(f, r);
	table_share(f, r);
	fputs("</div>\n</body>\n</html>\n", f);
	return fclose(f) ? -EIO : 0;
}

int lab_report_write(const struct lab_report *r, char *err, size_t err_len)
{
	struct ctx c = { .r = r };
	char path[PATH_MAX];
	FILE *g;
	int ret = 0;

	err[0] = '\0';
	if (r->n_runs && (ret = write_runs_csv(r, err, err_len)) < 0)
		return ret;
	/* The time charts show esx when it ran, else the first policy run. */
	for (unsigned k = 1; k < r->n_runs; k++)
		if (!c.policy || !strcmp(r->runs[k].name, "esx")) {
			c.policy = r->runs[k].name;
			c.policy_run = k;
			if (!strcmp(c.policy, "esx"))
				break;
		}
	read_facts(&c);
	static void (*const policy_charts[])(struct ctx *, FILE *) = {
		chart_fig7, chart_fig11, chart_fig12, chart_fig15, chart_stretch,
	};
	void (*todo[MAX_CHARTS])(struct ctx *, FILE *);
	unsigned n_todo = 0;
	if (c.policy)
		for (unsigned i = 0; i < sizeof(policy_charts) / sizeof(policy_charts[0]); i++)
			todo[n_todo++] = policy_charts[i];
	if (r->n_share)
		todo[n_todo++] = chart_sharing;
	FILE *all = open_out(r, "report.gp", path, sizeof(path));
	if (!all) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return -errno;
	}
	fputs("# report.gp - every chart of report.html (pagekeeper lab): gnuplot report.gp\n",
	      all);
	/* A chart per script and per gnuplot: one with no data loses only itself. */
	for (unsigned i = 0; i < n_todo; i++) {
		char name[64];
		int r1;
		snprintf(path, sizeof(path), "%s/chart.tmp", r->out_dir);
		if (!(g = fopen(path, "w"))) {
			snprintf(err, err_len, "%s: %s", path, strerror(errno));
			fclose(all);
			return -errno;
		}
		todo[i](&c, g);
		const char *id = c.charts[c.n_charts - 1].id;
		snprintf(name, sizeof(name), "%s.gp", id);
		char dst[PATH_MAX];
		snprintf(dst, sizeof(dst), "%s/%s", r->out_dir, name);
		if (fclose(g) || rename(path, dst) < 0) {
			snprintf(err, err_len, "%s: %s", dst, strerror(errno ? errno : EIO));
			fclose(all);
			return -EIO;
		}
		fprintf(all, "load '%s'\n", name);
		if (ret == -ENOENT)
			continue;	/* no gnuplot: said once */
		if ((r1 = run_gnuplot(&c, id, err, err_len)) < 0) {
			size_t u = strlen(c.note);
			snprintf(c.note + u, sizeof(c.note) - u, "%s%s", u ? " " : "", err);
			ret = r1;
		}
	}
	fclose(all);
	if (ret < 0)
		snprintf(err, err_len, "%s", c.note);
	int w = write_html(&c, path, sizeof(path));
	if (w < 0) {
		snprintf(err, err_len, "%s: %s", path, strerror(-w));
		return w;
	}
	return ret;
}
