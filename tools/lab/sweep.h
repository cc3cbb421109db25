/*
 * sweep.h - the lab's sharing sweep (scenario identical-guests): the
 * memory identical guests share, against how many of them run.
 *
 * What: for N = [scenario] sweep's first to last count, a fresh
 * pagekeeperd (no memory limit) and N guests with the same content in
 * one sharing domain (pk-guestsim --content, --share-domain, one --seed),
 * held after their fill until the sharing scanner has settled; the
 * shared MiB over the guests' RAM is the step's shared %.  Each step's
 * status goes to samples.csv (run "guests-N") and its result to
 * OUT/sharing.csv; the table is printed on stdout.
 * How: the benchmark harness (tools/bench: daemon_proc, guest_proc,
 * status_json) starts and tracks every process; settled is every guest
 * scanned at least twice (a page merges after one stable scan) and the
 * shared figure unchanged for two samples, a second apart, within the
 * scenario's limit per step.
 * Why: issue 16: ESX's published ~67% of memory shared for identical
 * Linux VMs is the figure an admin compares with.
 */
#ifndef PK_LAB_SWEEP_H
#define PK_LAB_SWEEP_H

#include "report.h"
#include "sample.h"
#include "scenario.h"

#include <signal.h>
#include <stdbool.h>

struct lab_sweep_env {
	const struct lab_scenario *sc;
	const char *daemon_bin, *guestsim_bin;
	struct lab_csv *csv;		/* samples.csv (rows of each step) */
	const char *out_dir;		/* sharing.csv */
	volatile sig_atomic_t *interrupted;
	bool tty;			/* progress redrawn in place */
};

/*
 * Run the sweep; pts (room for LAB_MAX_GUESTS) gets a step per count, *n
 * how many ran.  0, -EINTR, or -errno (a step could not start).
 */
int lab_sweep_run(const struct lab_sweep_env *e, struct lab_report_share *pts,
		  unsigned *n);

#endif
