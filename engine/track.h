/*
 * track.h - write tracking for cold-first victims (--victims cold).
 *
 * What: while a VM may be a victim of host swapping and the daemon runs
 * with --victims cold, every PK_TRACK_PERIOD_MS its resident pages are
 * write-protected (synchronous uffd-wp, as eviction uses) and a period
 * begins; a guest write to such a page is a write-protect fault that
 * fault.c marks in the page table (PK_PTE_FLAG_WRITTEN) before it
 * unprotects the page.  At the next period's start the mark moves to
 * PK_PTE_FLAG_WRITTEN_PREV, so a page counts as written for one to two
 * periods: cold-first victims (engine/victim.h, pk_victim_cold) take
 * pages marked neither, and are never blind right after a period began.
 *
 * Limits: writes only (a page the guest only reads counts as cold); a
 * page that came back resident without a write fault that tracking saw
 * (a swap-in, fault-around, a page the sharing scanner kept and
 * unprotected) counts as cold until its next tracked write.
 * Cost: one write-protect fault (a round trip, FACTS.md) per page the
 * guest writes per period while tracking runs, a pass over the page
 * table and one UFFDIO_WRITEPROTECT per run of resident pages per period.
 */
#ifndef PK_TRACK_H
#define PK_TRACK_H

#include <stdint.h>

struct pk_vm;

#define PK_TRACK_PERIOD_MS 2000u

/* A period begins in steps of the event loop (pk_track_step), each at
 * most this many pages of the table and this many protect ioctls: no
 * step holds the loop for more than a fraction of a millisecond. */
#define PK_TRACK_STEP_PAGES 32768u
#define PK_TRACK_STEP_RUNS 256u

/* Per VM (embedded in struct pk_vm). */
struct pk_vm_track {
	int on;			 /* tracking runs for this VM */
	int sweeping;		 /* a period is beginning: pk_track_step */
	int sweep_clear;	 /* ... after tracking was off: clear marks */
	uint64_t cursor;	 /* the sweep's next page */
	uint64_t period_start_ms; /* CLOCK_MONOTONIC; 0: none begun */
	uint64_t periods;	 /* periods begun (their sweeps done) */
	uint64_t write_faults;	 /* write-protect faults that found a page
				  * written first in a period */
	uint64_t wp_again;	 /* period starts put off by EAGAIN */
};

/*
 * The policy's tick (policy.c): want says whether vm may be a victim now
 * and the victims are cold.  Starts a period's sweep when one is due.
 */
void pk_track_tick(struct pk_vm *vm, uint64_t now_ms, int want);

/*
 * One step of a beginning period's sweep, from the engine's loop while
 * vm->track.sweeping.  Returns 1 while there is more to do (a protection
 * the kernel refused with EAGAIN, a REMOVE in flight, is tried again at
 * the next step, once the events are read), 0 when the period has begun.
 */
int pk_track_step(struct pk_vm *vm);

/*
 * The fault path saw the guest write page idx: a write-protect fault of
 * tracking's (wp: on a page in no eviction batch; counted in write_faults
 * when it is the page's first this period), or one that aborted the
 * page's eviction, or a MISSING fault resolved for a write.  Only a
 * resident page is marked.
 */
void pk_track_written(struct pk_vm *vm, uint64_t idx, int wp);

#endif
