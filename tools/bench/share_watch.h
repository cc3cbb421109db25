/*
 * share_watch.h - follow one sharing variant from t0 until it settles.
 *
 * What: from t0 (all guests filled; KSM is switched on right then),
 * sample every --poll-ms: our processes' memory (share_footprint.h; the
 * anonymous guests' PSS only every --pss-ms, it costs a page-table
 * walk), MemAvailable and MemFree, the CPU time of the process doing the
 * work (ksmd, or pagekeeperd), the mechanism's counter (KSM
 * pages_sharing, or pagekeeperd's saved figure) and its scan progress
 * (full passes, pages scanned).  Record when each of the three saved
 * figures first reaches 95% of the reachable savings (interpolated
 * between samples), print progress on stderr, and stop on the first of:
 *   - settled: 3 or more full passes since t0 and the counter grew by
 *     less than max(0.5% of reachable, 4 MiB) during the last one;
 *   - idle: no page scanned and the counter unchanged for --idle
 *     seconds (the mechanism does not handle this memory kind);
 *   - the variant's time cap.
 * A dead daemon or guest ends it with an error.  With --settled-cpu, a
 * variant that settled is watched that much longer for the CPU share
 * and scan rate of scanning merged guests that change nothing.
 * How: saved at t = footprint(t0) - footprint(t) + head_mib (what
 * pagekeeperd had already reclaimed during the fill, measured by the
 * caller the same way); machine-wide: MemAvailable(t) - MemAvailable(t0)
 * + head_mib, MemAvailable and MemFree counting the free pages on
 * per-CPU lists too, which /proc/meminfo leaves out (proc_mem.h).  A
 * capped KSM run that did not reach 95% is extrapolated: KSM merges a
 * page only when its checksum is unchanged since the previous pass, so
 * the duplicates are merged during the second full pass; EXTRAPOLATED
 * t95 = 2 x (guest pages / measured pages_scanned rate).
 * Why: the time to 95% is the goal figure; polling at ~200 ms times it
 * to a fraction of a second while costing the machine almost nothing.
 */
#ifndef PK_BENCH_SHARE_WATCH_H
#define PK_BENCH_SHARE_WATCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon_proc.h"
#include "guest_proc.h"
#include "share_opts.h"
#include "share_results.h"

struct share_watch {
	const struct share_opts *o;
	enum share_kind kind;
	enum share_mech mech;
	const char *label;		 /* for progress lines: "anon ksm-full" */
	double reachable_mib;
	double head_mib;
	double footprint_t0_mib;	 /* guest RAM + daemon anonymous RSS at t0 */
	double cap_s;
	pid_t cpu_pid;			 /* ksmd or pagekeeperd */
	const struct pk_daemon *daemon;	 /* pagekeeperd variants, else NULL */
	struct guest *guests;
	unsigned n_guests;
};

/* Fills res's time, CPU, counter and saved-memory fields (not the PSS ones).
 * 0, or -errno with the reason in err. */
int share_watch_run(const struct share_watch *w, struct variant_result *res, char *err,
		    size_t err_len);

#endif
