/*
 * verify.h - check every guest page against its expected version.
 * See verify.c.
 */
#ifndef GS_VERIFY_H
#define GS_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "guestsim.h"

struct gs_verify_result {
	bool complete;		/* every page checked (or a mismatch found) */
	bool failed;		/* a mismatch was found */
	uint64_t pages_verified; /* pages found correct */
	uint64_t bad_page;	/* lowest mismatching page, when failed */
	long bad_offset;	/* its first differing byte */
	uint32_t bad_version;	/* the version it should have */
	bool bad_discarded;	/* ... or zeros: it was discarded */
	double seconds;
	int signal;		/* signal that cut it short, or 0 */
};

/* 0 (see res->failed), or -errno when no thread could start.  Prints the
 * mismatch on stderr. */
int gs_verify(struct gs_ctx *ctx, struct gs_verify_result *res);

#endif
