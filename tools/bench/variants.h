/*
 * variants.h - who serves the first-touch faults: kernel, floor, daemon.
 *
 * What: run one timed pattern (random single-page touches, or a
 * sequential sweep) on fresh memory under one of three servers:
 *   kernel  - plain memory, no userfaultfd;
 *   floor   - registered on the benchmark's minimal handler;
 *   daemon  - attached to pagekeeperd with pk_client_attach().
 * How: allocate -> set up the server -> touch -> tear down -> free, so
 * no variant inherits pages, page tables or RAM pressure from another.
 * Attach/detach time is measured but kept out of the touch figures.
 * After the timed touches (untimed) the touched pages' content is
 * checked: a fast server that maps the wrong page must not "win".
 * Why: the variants must differ only in the fault path.
 */
#ifndef PK_BENCH_VARIANTS_H
#define PK_BENCH_VARIANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon_proc.h"
#include "floor_handler.h"
#include "watchdog.h"

enum variant { V_KERNEL, V_FLOOR, V_DAEMON, V_COUNT };

struct bench_env {
	bool anon;
	struct floor_handler *floor;
	struct pk_daemon *daemon;	/* NULL: --skip-daemon */
	struct watchdog *wd;
	unsigned attach_seq;		/* makes VM names unique */
	/* attach/detach cost, pagekeeperd variant only */
	unsigned attaches;
	uint64_t attach_ns_total, attach_ns_max;
	uint64_t detach_ns_total, detach_ns_max;
};

const char *variant_name(enum variant v);

/* Random touches of perm[0..n) pages; lat_ns[i] per touch. 0 or -errno. */
int run_random(struct bench_env *env, enum variant v, const uint32_t *perm,
	       size_t n, uint64_t *lat_ns, size_t *present, char *err,
	       size_t err_len);

/* Sequential sweep of npages; *ns = touch time only. 0 or -errno. */
int run_sequential(struct bench_env *env, enum variant v, size_t npages,
		   uint64_t *ns, char *err, size_t err_len);

#endif
