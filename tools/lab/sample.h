/*
 * sample.h - the lab's CSV files: the daemon's status every second, and
 * the guests' own timelines.
 *
 * What: samples.csv, one row per VM per second of each run, host figures
 * (state, free %, budget, PSI, ...) repeated on each row, the VM's figures
 * (granted, active, target, shared, zero, swapped, ballooned, balloon
 * target, swap-ins, the guest's page-ins/s and page-outs/s, stalled
 * time, ...) after them; guests.csv, one row per guest per second of its
 * own timeline (ops/s, page-ins/s, page-outs/s, balloon, resident, heap),
 * from its JSON report at its end.
 * How: one table of columns, each with its status key and its meaning,
 * writes the header, the rows (json-c reads the status; a null or absent
 * figure is an empty cell, a bool 0/1) and `pagekeeper lab --columns`.
 * Why: the columns are documented in one place, next to the code that
 * fills them, so the README, --columns and the files cannot drift apart.
 */
#ifndef PK_LAB_SAMPLE_H
#define PK_LAB_SAMPLE_H

#include <json-c/json.h>
#include <stdio.h>

struct lab_csv {
	FILE *samples;	/* DIR/samples.csv */
	FILE *guests;	/* DIR/guests.csv */
	unsigned rows;	/* samples.csv data rows written */
};

/* Create DIR (and parents) and both files with their headers. 0 or -errno. */
int lab_csv_open(struct lab_csv *c, const char *dir, char *err, size_t err_len);

/* One row per VM of root (a status reply) at t_s of run. */
void lab_csv_sample(struct lab_csv *c, const char *run, double t_s, json_object *root);

/*
 * A run without a daemon (the kernel anchor): one row for guest vm with
 * the figures a memory cgroup and /proc give; a negative figure is an
 * empty cell, every other column is empty.
 */
struct lab_plain {
	double free_pct, budget_mib, used_mib;	/* the cgroup */
	double configured_mib, resident_mib;	/* the guest */
	double swapins;				/* its major faults */
};
void lab_csv_plain(struct lab_csv *c, const char *run, double t_s, const char *vm,
		   const struct lab_plain *p);

/* The "timeline" array of a guest's JSON report. */
void lab_csv_timeline(struct lab_csv *c, const char *run, const char *vm,
		      json_object *report);

void lab_csv_close(struct lab_csv *c);

/* Every column of both files with its unit and meaning. */
void lab_csv_columns(FILE *out);

#endif
