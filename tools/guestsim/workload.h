/*
 * workload.h - which page each worker op touches.  See workload.c.
 */
#ifndef GS_WORKLOAD_H
#define GS_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "zipf.h"

#define GS_ZIPF_THETA 0.99

enum gs_workload {
	GS_WL_IDLE,
	GS_WL_SEQ,
	GS_WL_RANDOM,
	GS_WL_ZIPF,
	GS_WL_PHASES,
};

const char *gs_workload_name(enum gs_workload kind);
/* 0, or -1 for an unknown name. */
int gs_workload_parse(const char *s, enum gs_workload *out);

/* Where the hot set lies: shared by all workers, read only after init. */
struct gs_hotmap {
	uint64_t n;		/* pages */
	uint64_t mul, add;	/* rank r -> page (r * mul + add) mod n */
	uint64_t phase_shift;	/* added once per phase */
	double phase_period_s;	/* phases: hot set moves this often */
	struct gs_zipf zipf;
};

void gs_hotmap_init(struct gs_hotmap *h, uint64_t n_pages, uint64_t seed,
		    double duration_s);

/* One worker's page chooser: private to its thread. */
struct gs_picker {
	enum gs_workload kind;
	const struct gs_hotmap *hot;
	uint64_t n;
	uint64_t rng;
	uint64_t stride, owner; /* only pages with page % stride == owner */
	uint64_t cursor;	/* seq: next page */
};

/*
 * writer: picks only pages it owns among n_of_kind writers; a reader
 * picks any page, and readers start their seq sweeps spread apart.
 */
void gs_picker_init(struct gs_picker *pk, enum gs_workload kind,
		    const struct gs_hotmap *hot, uint64_t seed, bool writer,
		    unsigned index, unsigned n_of_kind);

/* Next page to touch; elapsed_s is time since the workload started. */
uint64_t gs_picker_next(struct gs_picker *pk, double elapsed_s);

#endif
