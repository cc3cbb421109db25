/*
 * refault_variants.h - one round of refaults under pagekeeperd or under
 * the floor, for one page kind.
 *
 * What:
 *   pagekeeperd: a fresh memfd (MAP_SHARED) region filled with the kind's
 *     content (kind_fill), attached with pk_client_attach in a sharing
 *     domain of its own, left alone until the daemon's scanner reports it
 *     reclaimed (zero_mib or shared_mib, refault_wait.c); then the
 *     alternating read/write touches of pages that are out, each timed,
 *     and the content check; the daemon's fault count over the touches;
 *   floor: the same kind of region filled the same way, then emptied by
 *     punching the whole file (as the daemon's reclaim does), registered
 *     on the floor handler in zero mode (zero kind: UFFDIO_ZEROPAGE) or
 *     copy mode (shared kind: UFFDIO_COPY from a source buffer holding
 *     the region's distinct contents), touched and checked the same way.
 * How: allocate -> fill -> serve -> empty -> touch -> verify -> detach or
 * unregister -> free, nothing carried between rounds; the watchdog guards
 * the touches and the check, whose faults another process serves.
 * Why: the variants must differ only in who brings the page back.
 */
#ifndef PK_BENCH_REFAULT_VARIANTS_H
#define PK_BENCH_REFAULT_VARIANTS_H

#include <stddef.h>
#include <stdint.h>

#include "daemon_proc.h"
#include "floor_handler.h"
#include "refault_touch.h"
#include "refault_wait.h"
#include "watchdog.h"

enum rf_variant { RV_DAEMON, RV_FLOOR, RV_COUNT };

const char *rf_variant_name(int v);	/* "pagekeeperd", "floor" */

struct refault_env {
	struct pk_daemon *daemon;
	struct floor_handler *floor;	/* started with floor_start_src */
	struct watchdog *wd;
	unsigned vm_seq;		/* makes VM and domain names unique */
	double min_pct;			/* of the region reclaimed before touching */
	double wait_timeout_s;
};

struct round_out {
	size_t resident[ACC_COUNT];	/* touches that found the page resident */
	double wait_s;			/* pagekeeperd: attach to reclaimed */
	struct vm_pages reclaimed;	/* pagekeeperd: the reading that ended the wait */
	uint64_t faults;		/* pagekeeperd: faults it counted in the touches */
	size_t seconds;			/* shared: touches after their twin's */
};

/*
 * Region of npages; touch the first n pages of perm that are out (n even:
 * n / 2 reads into lat[ACC_READ], n / 2 writes into lat[ACC_WRITE]).
 * 0 or -errno with the reason in err.
 */
int refault_round(struct refault_env *env, enum rf_variant v, enum page_kind k,
		  size_t npages, const uint32_t *perm, size_t n, uint64_t seed,
		  uint64_t *lat[ACC_COUNT], struct round_out *out, char *err,
		  size_t err_len);

#endif
