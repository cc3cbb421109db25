/*
 * balloon_part.h - the runs of pk-bench-balloon: a lab guest with an OS
 * (pk-guestsim --balloon) at balloon targets of 0%, 25% and 50% of its RAM.
 *
 * What: per round, for each variant and target, a fresh guest filled and
 * idle (--idle-before), its balloon set to the target and settled (reached,
 * or stalled for the locked guest), then its fixed work (--ops) run; the
 * guest's JSON report gives the run time and its own paging.  Variants:
 *   no daemon: pk-guestsim --no-daemon; the balloon is set by this process
 *     through the balloon bridge's lab driver (balloon-bridge/balloon.h),
 *     exactly what pagekeeperd would send, with no daemon in the way;
 *   pagekeeperd + lab driver: the guest's RAM is served by a private
 *     pagekeeperd, the target is a BALLOON request (engine/PROTOCOL.md),
 *     settled when STATUS shows balloon_actual_mib at the target (or
 *     balloon_stalled);
 *   locked: the same as the last with --locked F: the balloon stalls short
 *     of a target that needs locked pages; STATUS gives the shortfall.
 * How: guest_proc.c runs the guests, status_json.c reads STATUS, every wait
 * polls with a deadline derived from the work (MiB, ops) and fails naming
 * what it waited for.  The guest's stdout is drained while it runs (its
 * JSON timeline may outgrow a pipe).  The watchdog's phase is kept moving
 * by every poll: it fires only when this process itself hangs, or the
 * daemon serving the guest dies.
 * Why: the run time and page-in rate at each target, side by side with and
 * without pagekeeperd, in one run on one disk, is what the balloon costs a
 * guest (seed 002), and the locked guest's shortfall is seed 000.
 */
#ifndef PK_BENCH_BALLOON_PART_H
#define PK_BENCH_BALLOON_PART_H

#include "balloon_results.h"
#include "daemon_proc.h"
#include "watchdog.h"

/*
 * All rounds into res (res->o, pct and target_bytes set by the caller).
 * d: the running private pagekeeperd.  0, or -errno after printing why.
 */
int balloon_part(struct bal_results *res, struct pk_daemon *d, struct watchdog *wd,
		 const char *guestsim, const char *tmpdir);

#endif
