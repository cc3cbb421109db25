/*
 * share_results.h - what pk-bench-share measured, for the report.
 *
 * What: per memory kind and variant, the figures of one run: fill time,
 * guest RAM at t0 (all guests filled), memory reclaimed before t0, times
 * to 95% of the reachable savings (our processes' memory from /proc,
 * MemAvailable, and the mechanism's counter), CPU seconds, the saved
 * memory four ways (processes, MemAvailable, MemFree, PSS), the counters
 * as a cross-check, and the extrapolation of a capped KSM run.  Sizes in MiB, times and CPU in seconds.
 * How: filled by share_variant.c and share_watch.c, printed by
 * share_report.c.
 * Why: one struct per variant keeps the report a pure function of what
 * was measured.
 */
#ifndef PK_BENCH_SHARE_RESULTS_H
#define PK_BENCH_SHARE_RESULTS_H

#include <stdbool.h>
#include <stdint.h>

#include "ksm_ctl.h"
#include "share_opts.h"

struct variant_result {
	bool ran;
	bool supported;		  /* the mechanism can share this memory kind */
	char note[320];		  /* why unsupported, or a caveat */
	char setting[96];	  /* "pages_to_scan=100 sleep_millisecs=20", "--scan-rate 16G" */
	double fill_s;		  /* guests started -> all HOLDING */
	bool fill_timeout;	  /* the fill did not finish in --fill-timeout: no figures */
	double cpu_fill_s;	  /* CPU of ksmd / pagekeeperd from guest start to t0 (the
				     daemon's includes serving the fill's faults) */
	double guest_ram_t0_mib;  /* guests' RAM in memory at t0 (memfd bytes / anon PSS) */
	double daemon_anon_t0_mib; /* pagekeeperd's anonymous RSS at t0 */
	double head_mib;	  /* reclaimed before t0 (pagekeeperd during the fill) */
	int mergeable_guests;	  /* KSM: guests whose RAM mapping has VmFlags mg */

	double t95_s;		  /* t0 -> 95% of reachable, our processes' memory
				     (share_footprint.h); < 0: not reached */
	double t95_avail_s;	  /* the same by MemAvailable (machine-wide); < 0 */
	double t95_counter_s;	  /* the same by the mechanism's counter; < 0 */
	double t95_own_s;	  /* t0 -> 95% of its own final saving (processes); < 0 n/a */
	double saved_t95_mib;	  /* processes' memory saved at t95 (or at the end) */
	double cpu_t95_s;	  /* CPU t0 -> t95 (or -> end when not reached) */
	double cpu_end_s;	  /* CPU t0 -> end */
	double elapsed_s;	  /* t0 -> end */
	char end_reason[96];

	double saved_proc_mib;	  /* our processes' memory t0 - end, + head */
	double saved_avail_mib;	  /* MemAvailable delta t0 -> end, + head */
	double saved_free_mib;	  /* MemFree delta t0 -> end, + head */
	double saved_pss_mib;	  /* guests' + daemon's PSS t0 - end, + head */
	double pss_t0_mib, pss_end_mib;

	double counter_mib;	  /* KSM pages_sharing, or pagekeeperd's saved figure */
	const char *counter_src;
	double ksm_profit_mib;	  /* KSM general_profit */
	bool has_profit;
	double pk_store_mib;	  /* pagekeeperd sharing.store_mib */
	bool has_store;
	int64_t passes;		  /* full passes after t0 (KSM full_scans, pk min per VM); -1 */
	double scan_mib_per_s;	  /* pages scanned after t0 per second, in MiB/s; < 0 unknown */
	double reclaim_mib_per_s; /* (saved_proc - head) / elapsed */
	double scan_cpu_percent;  /* pagekeeperd's own scanner figure, last second */
	double settled_s;	  /* --settled-cpu: how long it was watched after settling */
	double settled_cpu_pct;	  /* ksmd's / pagekeeperd's CPU meanwhile, % of a core; < 0 n/a */
	double settled_scan_mib_s; /* pages scanned meanwhile, MiB/s; < 0 unknown */

	bool extrapolated;	  /* t95 not reached: estimate below */
	double pass_s;		  /* one full pass at the measured scan rate */
	double t95_extrap_s;	  /* EXTRAPOLATED: two passes */
};

struct share_results {
	double zero_mib, dup_mib, reachable_mib;   /* expected from the content */
	double guest_mib;			   /* one guest */
	double guest_total_mib;			   /* all guests */
	struct variant_result v[SHARE_KINDS][SHARE_MECHS];
	struct ksm_settings ksm_before, ksm_after;
	bool ksm_restored;
	char ksm_diff[256];
	char daemon_path[4096];
	long cpus;
	double mem_total_mib;
	double run_s;				   /* the whole run, start to report */
};

#endif
