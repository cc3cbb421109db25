/*
 * guestapp.h - the application that runs on the lab guest's OS
 * (--balloon): its fill, workload and verify.  See guestapp.c.
 */
#ifndef GS_GUESTAPP_H
#define GS_GUESTAPP_H

#include "fill.h"
#include "guestsim.h"
#include "verify.h"
#include "worker.h"

/* Each: 0, or -errno for a page file I/O error (named on stderr). */
int gs_app_fill(struct gs_ctx *ctx, struct gs_fill_result *res);
int gs_app_workload(struct gs_ctx *ctx, struct gs_workload_result *res);
int gs_app_verify(struct gs_ctx *ctx, struct gs_verify_result *res);

#endif
