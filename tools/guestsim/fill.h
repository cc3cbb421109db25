/*
 * fill.h - give every guest page its base content.  See fill.c.
 */
#ifndef GS_FILL_H
#define GS_FILL_H

#include <stdbool.h>
#include <stdint.h>

#include "guestsim.h"

struct gs_fill_result {
	bool complete;	/* every page filled */
	uint64_t pages;	/* pages filled */
	double seconds;
	int signal;	/* signal that cut it short, or 0 */
};

/* 0, or -errno when the fill threads could not start. */
int gs_fill(struct gs_ctx *ctx, struct gs_fill_result *res);

#endif
