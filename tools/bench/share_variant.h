/*
 * share_variant.h - run one sharing variant: one memory kind, one mechanism.
 *
 * What: check that the guests fit in MemAvailable with a margin; set KSM
 * up (its speed for a KSM variant; run=0, i.e. off, for a pagekeeperd
 * one) or start a private pagekeeperd (--swap-size 0, --scan-rate as
 * asked); start the lab guests (one seed, one sharing domain; KSM
 * variants: --no-daemon --mergeable; pagekeeperd variants: attached,
 * never --mergeable) and wait until all have filled their RAM (t0);
 * measure guest RAM, PSS and what was already reclaimed; follow the
 * variant until it settles (share_watch.c); measure PSS again; tear
 * everything down (guests, daemon, KSM unmerged with run=2 and stopped).
 * How: pagekeeperd scans from the first attach, so it may reclaim during
 * the fill.  That head start is measured from /proc (share_footprint.h)
 * as the guests' memfd bytes missing at t0 (N x S minus the memfds'
 * resident size) minus what the daemon's anonymous RSS (page tables,
 * canonical store, index) grew by since before the guests started, and
 * is added to every saved figure.  KSM variants have none: KSM is
 * switched on at t0.
 * Why: every variant starts from the same filled guests and ends with
 * nothing of it left, so variants can run one after another on a machine
 * that cannot hold two sets of guests.
 */
#ifndef PK_BENCH_SHARE_VARIANT_H
#define PK_BENCH_SHARE_VARIANT_H

#include <stddef.h>
#include <sys/types.h>

#include "share_opts.h"
#include "share_results.h"

struct share_env {
	const struct share_opts *o;
	const char *daemon_exe;
	const char *guestsim_exe;
	pid_t ksmd;
	double reachable_mib;
};

/* Guests' RAM in MiB that must fit in MemAvailable, with the margin. */
double share_needed_mib(const struct share_opts *o, double mem_total_mib);

/* 0, or -errno with the reason in err (everything already torn down). */
int share_variant_run(const struct share_env *env, enum share_kind kind,
		      enum share_mech mech, struct variant_result *r, char *err,
		      size_t err_len);

#endif
