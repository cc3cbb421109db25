/*
 * share_opts.h - pk-bench-share's command line.
 *
 * What: the options of the sharing benchmark (guests, content, which
 * memory kinds and variants run, KSM's and pagekeeperd's speeds, the
 * time limits, paths) checked into struct share_opts, and --help.
 * How: getopt_long, every value checked whole; a bad value is named in
 * one message.
 * Why: one place that says what the benchmark can be asked to do.
 */
#ifndef PK_BENCH_SHARE_OPTS_H
#define PK_BENCH_SHARE_OPTS_H

#include <stdbool.h>
#include <stdint.h>

enum share_kind { SHARE_ANON, SHARE_MEMFD, SHARE_KINDS };
enum share_mech { MECH_KSM_DEFAULT, MECH_KSM_FULL, MECH_PK_DEFAULT, MECH_PK_FULL,
		  SHARE_MECHS };

#define SHARE_MAX_GUESTS 32

struct share_opts {
	uint64_t total_bytes;		/* all guests together */
	uint64_t guest_bytes;		/* total / guests, whole pages */
	unsigned guests;
	double zero_frac, shared_frac;
	uint64_t seed;
	const char *content;		/* as given, for the guests */
	bool kind[SHARE_KINDS];
	bool mech[SHARE_MECHS];
	double ksm_default_cap_s;
	bool ksm_default_complete;	/* run KSM defaults until it settles */
	unsigned ksm_full_pages, ksm_full_sleep_ms;
	const char *pk_rate;		/* NULL: pagekeeperd's default */
	const char *pk_full_rate;
	double max_wait_s, idle_s, fill_timeout_s, poll_ms, progress_s;
	double pss_ms;			/* anonymous guests' PSS sampling period */
	double settled_cpu_s;		/* watch settled variants this long; 0: off */
	const char *daemon, *guestsim;	/* NULL: next to this binary */
};

/* Kept when --ksm-default-complete: the KSM-defaults variant's own limit. */
#define SHARE_COMPLETE_CAP_S 7200.0

/* 0: run; 1: --help printed; -EINVAL: message printed. */
int share_opts_parse(int argc, char **argv, struct share_opts *o);

const char *share_kind_name(enum share_kind k);	/* "anon", "memfd" */
const char *share_mech_name(enum share_mech m);	/* "ksm-default", ... */
bool share_mech_is_ksm(enum share_mech m);

#endif
