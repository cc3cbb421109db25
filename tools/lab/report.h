/*
 * report.h - the lab's report: OUT/report.html, one self-contained page
 * with a chart per figure of the case study, and the result tables.
 *
 * What: at the end of every `pagekeeper lab` run, lab_report_write()
 * writes OUT/runs.csv (each guest's result per run), OUT/report.gp (the
 * gnuplot script, re-runnable by hand: `cd OUT && gnuplot report.gp`),
 * runs gnuplot on it (SVG, and PNG through pngcairo, one file per chart),
 * and writes OUT/report.html with the SVGs inlined: no script, no
 * external URL, viewable offline.  The charts follow the seed's figures:
 * fig7 (memory state and each guest's granted memory), fig11 (balloon
 * target and ballooned per guest), fig12 (each guest's resident set and
 * heap, squeezed by the balloon), fig15 (guest page-ins/s under the
 * policy and in the baseline), stretch (run time against the baseline),
 * and for a sharing sweep (identical-guests), sharing (shared % against
 * the number of guests beside ESX's published 67%).
 * How: each chart is an element <div class="chart" id="chart-NAME"
 * data-box="X,Y,W,H" data-plot="X,Y,W,H"> at a fixed place (absolute CSS
 * layout; data-plot is the plot area inside it, the key and the right
 * axis outside), so a
 * renderer's screenshot can be checked chart by chart; <body
 * data-size="W,H"> is the size of the area that holds them.
 * Why: issue 16: the seed's story is told in charts; the report is what
 * a newcomer looks at after the run.
 */
#ifndef PK_LAB_REPORT_H
#define PK_LAB_REPORT_H

#include "scenario.h"

#include <stdbool.h>
#include <stddef.h>

struct lab_report_guest {
	bool have;		/* its report was read: run_s is known */
	bool timed_out;		/* still running at the limit */
	double run_s, page_ins, swapins, balloon_peak_mib, swapped_peak_mib;
};

struct lab_report_run {
	char name[16];		/* baseline, a policy, smaller, or guests-N */
	char states[40];	/* "high,soft,hard" or "-" */
	struct lab_report_guest g[LAB_MAX_GUESTS];
};

/* One step of a sharing sweep (identical-guests). */
struct lab_report_share {
	unsigned guests;
	double configured_mib, shared_mib, zero_mib, shared_pct;
	double saved_mib, saved_pct;	/* net of the canonical copies */
	bool settled;		/* sharing stopped growing before the limit */
};

struct lab_report {
	const struct lab_scenario *sc;
	const char *out_dir;
	const char *scenario_path;
	bool short_run;
	unsigned n_runs;	/* runs[0] is the baseline */
	const struct lab_report_run *runs;
	unsigned n_share;	/* a sharing sweep: its steps (no runs) */
	const struct lab_report_share *share;
};

/* ESX's published share of memory shared for identical Linux VMs, %. */
#define LAB_ESX_IDENTICAL_PCT 67.0

/*
 * Write OUT/runs.csv, OUT/report.gp, the charts and OUT/report.html.
 * 0, or -errno with the reason in err.  Charts gnuplot could not draw
 * (gnuplot missing, or failed) leave a note in the page and in err, and
 * -ENOENT / -EIO; the page and its tables are written all the same.
 */
int lab_report_write(const struct lab_report *r, char *err, size_t err_len);

#endif
