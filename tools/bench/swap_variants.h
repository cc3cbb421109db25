/*
 * swap_variants.h - one round of pagekeeperd's and the floor's swap-in,
 * and one pagekeeperd eviction for bandwidth.
 *
 * What:
 *   pagekeeperd: a fresh memfd (MAP_SHARED) guest region filled with the
 *     round's unique content, attached with pk_client_attach, evicted
 *     whole with one RECLAIM (pages_swapped must equal the page count),
 *     then read in the random order, each touch timed, content checked;
 *   floor: the same kind of region, empty, served by file_floor.c from a
 *     source file holding the same content on the same file system;
 *   eviction: a fresh region of the eviction size, filled, attached,
 *     RECLAIMed whole; the daemon's elapsed_us and our wall time kept;
 *   sequential (part C): pagekeeperd and the floor as above, but one word
 *     of every page read in address order, the sweep timed as a whole,
 *     every page checked; for pagekeeperd also the VM's swap-in counters
 *     (STATUS) before the detach.
 * How: allocate -> fill -> serve -> touch -> verify -> detach -> free,
 * nothing carried between rounds; the watchdog guards every phase whose
 * faults another process serves.  The kernel variant is kswap.c.
 * Why: the variants must differ only in who brings a page back.
 */
#ifndef PK_BENCH_SWAP_VARIANTS_H
#define PK_BENCH_SWAP_VARIANTS_H

#include <stddef.h>
#include <stdint.h>

#include "daemon_proc.h"
#include "reclaim_req.h"
#include "status_req.h"
#include "watchdog.h"

struct swap_env {
	struct pk_daemon *daemon;
	struct pk_daemon *volatile_daemon; /* parts A and B: --volatile-state */
	struct watchdog *wd;
	const char *floor_src;	/* source file of the floor */
	unsigned vm_seq;	/* makes VM names unique */
};

int pk_swapin_round(struct swap_env *env, size_t region_pages,
		    const uint32_t *perm, size_t n, uint64_t seed,
		    uint64_t *lat_ns, size_t *resident_before,
		    struct reclaim_result *rr, char *err, size_t err_len);

int floor_swapin_round(struct swap_env *env, size_t region_pages,
		       const uint32_t *perm, size_t n, uint64_t seed,
		       uint64_t *lat_ns, size_t *resident_before,
		       char *err, size_t err_len);

/* One RECLAIM of a filled region; *cpu_s: the daemon's CPU time (user +
 * system, all its threads) from the request to the reply. */
int pk_evict_round(struct swap_env *env, size_t pages, uint64_t seed,
		   struct reclaim_result *rr, double *cpu_s, char *err,
		   size_t err_len);

/* Sequential sweeps of a whole region of pages; *ns: the sweep. */
int pk_seq_round(struct swap_env *env, size_t pages, uint64_t seed, uint64_t *ns,
		 struct reclaim_result *rr, struct vm_swap_counters *cnt,
		 char *err, size_t err_len);

int floor_seq_round(struct swap_env *env, size_t pages, uint64_t seed, uint64_t *ns,
		    char *err, size_t err_len);

#endif
