/*
 * share_report.h - pk-bench-share's results as text.
 *
 * What: the set-up (guests, content, the reachable savings and the
 * formula it comes from, what t0 is), one table per memory kind with a
 * column per variant and a unit on every number, the notes (unsupported
 * combinations, EXTRAPOLATED figures and how they were extrapolated), the
 * goal ratios, and KSM's settings before and after.
 * How: cells are formatted into strings first, so the columns line up.
 * Why: one readable page that says what was measured and against which
 * goal, without the reader having to know the code.
 */
#ifndef PK_BENCH_SHARE_REPORT_H
#define PK_BENCH_SHARE_REPORT_H

#include <stdio.h>

#include "share_opts.h"
#include "share_results.h"

void share_report_text(const struct share_opts *o, const struct share_results *res, FILE *out);

#endif
