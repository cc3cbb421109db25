/*
 * scenario.h - a `pagekeeper lab` scenario: what runs, read from an INI file.
 *
 * What: the guests (count, size, OS model and balloon, working set, growth,
 * fixed work, locked fraction, workload), the budget (a fraction of the
 * guests' total memory or a size), the policies to compare, the daemon's
 * state thresholds and swap size, the seed and a time limit per run, plus
 * a [short] section of overrides for `--short` (tests).
 * How: inih (libinih) calls us per key, reading the file through our
 * line-counting reader (ini_parse_stream); each key is checked as it is
 * read and the first bad one is kept with its line, so a bad file fails
 * with "FILE:LINE: [section] key = 'value': why" before anything starts.  [short] is read
 * in a second pass over a copy of the full scenario, so its keys are
 * checked whether or not --short is given.
 * Why: users copy and edit scenarios (README "Lab scenarios"); a typo must
 * not run a two-minute lab with a default in its place.
 */
#ifndef PK_LAB_SCENARIO_H
#define PK_LAB_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LAB_MAX_GUESTS 16
#define LAB_MAX_POLICIES 5

enum lab_policy {
	LAB_ESX,
	LAB_SWAP_ONLY,
	LAB_BALLOON_ONLY,
	LAB_KERNEL,	/* no daemon: a memory cgroup and kernel swap */
	LAB_ESX_COLD,	/* esx with --victims cold (engine/track.h) */
	LAB_POLICY_COUNT
};

struct lab_guests {
	unsigned count;
	uint64_t size;		/* bytes, multiple of 4096 */
	bool balloon;		/* os = balloon: guest OS model with a balloon */
	double ws_frac;		/* working_set as a fraction of size, or 0 */
	uint64_t ws_bytes;	/* ... or in bytes (0: use ws_frac) */
	double grow_s;
	uint64_t ops;
	double locked;
	double live;		/* live = F: elastic heap (pk-guestsim --live) */
	double churn;		/* churn = N: its objects per op, <0: default */
	char workload[16];
	/* identical-guests (issue 16): pk-guestsim --content, --share-domain */
	char content[40];
	char share_domain[64];
};

struct lab_scenario {
	char name[64];
	char description[256];
	struct lab_guests g;
	double budget_frac;	/* of the guests' total memory, or 0 */
	uint64_t budget_bytes;	/* ... or a size (0: use budget_frac) */
	enum lab_policy policies[LAB_MAX_POLICIES];
	unsigned n_policies;
	char thresholds[32];	/* --state-thresholds S,H,L,HYST, "" default */
	uint64_t swap_size;	/* the daemon's --swap-size */
	double limit_s;		/* each run: stopped and failed past it */
	uint64_t smaller;	/* a last run, esx, guests of this size (0: none) */
	uint64_t seed;
	/* sweep = A-B (issue 16): a sharing sweep of A..B guests, no policy runs */
	unsigned sweep_from, sweep_to;
};

/* "esx", "swap-only", "balloon-only", "kernel". */
const char *lab_policy_name(enum lab_policy p);
/* -1 for an unknown name. */
int lab_policy_parse(const char *s);

/*
 * Read path into *s (short_s: with the [short] overrides applied).  0, or
 * -1 with "PATH:LINE: what" (or "PATH: why") in err.
 */
int lab_scenario_load(const char *path, struct lab_scenario *s,
		      struct lab_scenario *short_s, char *err, size_t err_len);

/* Fraction "50%" or "0.5" into *f (0 < f <= max).  NULL or a reason. */
const char *lab_parse_frac(const char *v, double max, double *f);

/* The working set and the budget in bytes. */
uint64_t lab_ws_bytes(const struct lab_scenario *s);
uint64_t lab_budget_bytes(const struct lab_scenario *s);

#endif
