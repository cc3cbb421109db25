/*
 * track.c - write tracking for cold-first victims (see track.h).
 *
 * How a period begins: pk_track_tick (the policy's 1 s tick) starts a
 * sweep of the page table, which pk_track_step carries out from the
 * engine's loop in steps of at most PK_TRACK_STEP_PAGES pages and
 * PK_TRACK_STEP_RUNS ioctls (a 16 GiB guest is 4M entries: in one go that
 * would hold every guest's faults for tens of milliseconds).  Each step:
 *   1. write-protects the resident pages of its span with
 *      UFFDIO_WRITEPROTECT, one ioctl per run of resident pages in a
 *      region; a run spans reclaimed pages (swapped, zero, merged: holes
 *      that already carry the uffd-wp marker of their eviction), never
 *      untouched or removed ones, so that protecting a sparse guest
 *      installs no markers (and page tables) over memory it never used;
 *   2. then ages the marks of the pages it protected: WRITTEN becomes
 *      WRITTEN_PREV (a VM whose tracking was off starts clean).
 * Marks change only on this thread, so a write fault queued during (1)
 * is read after (2) and marks the current period.  EAGAIN (a REMOVE in
 * flight, FACTS.md) stops the step where it is; the next step, after the
 * loop has read the events, goes on from there (the runs already
 * protected stay so: their writes are marked, never lost).  The spans of
 * one sweep begin their period a few loop turns apart: no matter for a
 * period of PK_TRACK_PERIOD_MS.
 *
 * Why write protection and not PAGEMAP_SCAN's written bits: uffd-wp's
 * async mode, which the scan needs, applies to the whole uffd and cannot
 * be combined with the synchronous protection eviction relies on
 * (FACTS.md).  Why two marks: with one, every page would look cold just
 * after a period began, until the guest wrote it again.
 *
 * Private anonymous RAM is not tracked: the daemon cannot evict it.
 */
#include "engine/track.h"
#include "engine/vm.h"
#include "engine/uffd_compat.h"

#include <errno.h>
#include <sys/ioctl.h>

/* A tick may come a little early: a period is due half a tick early. */
#define PK_TRACK_SLACK_MS 500u

static int wp_run(struct pk_vm *vm, const struct pk_vm_region *r,
		  uint64_t first, uint64_t last)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = r->start + (first - r->first_page) * PK_PAGE_SIZE,
			   .len = (last - first + 1) * PK_PAGE_SIZE },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};

	return ioctl(vm->uffd, UFFDIO_WRITEPROTECT, &wp) < 0 ? -errno : 0;
}

/* Is st a page a protected run may span (a hole that already carries the
 * uffd-wp marker of its eviction)? */
static int bridges(enum pk_page_state st)
{
	return st == PK_PAGE_SWAPPED || st == PK_PAGE_ZERO || st == PK_PAGE_SHARED;
}

/*
 * Protect the runs of resident pages in [from, to) of region r, at most
 * *runs_left ioctls.  Returns the first page not yet protected (to when
 * all are), with *err set by a refused ioctl.
 */
static uint64_t protect_span(struct pk_vm *vm, const struct pk_vm_region *r,
			     uint64_t from, uint64_t to, unsigned *runs_left,
			     int *err)
{
	const struct pk_page_table *pt = &vm->pages;
	uint64_t first = UINT64_MAX, last = 0;

	for (uint64_t p = from; p <= to; p++) {
		enum pk_page_state st = p < to ? pk_page_state(pt, p)
					       : PK_PAGE_UNTOUCHED;
		if (st == PK_PAGE_RESIDENT) {
			if (first == UINT64_MAX)
				first = p;
			last = p;
		} else if (!bridges(st) && first != UINT64_MAX) {
			if (!*runs_left)
				return first;
			if ((*err = wp_run(vm, r, first, last)) != 0)
				return first;
			--*runs_left;
			first = UINT64_MAX;
		}
	}
	return to;
}

/* Age the marks of pages [from, to) (or clear them: tracking was off). */
static void age_marks(struct pk_vm *vm, uint64_t from, uint64_t to, int clear)
{
	uint64_t *e = vm->pages.entries;

	for (uint64_t i = from; i < to; i++) {
		uint64_t w = e[i];
		if (!(w & PK_PTE_FLAGS_WRITTEN))
			continue;
		w &= ~PK_PTE_FLAGS_WRITTEN;
		if (!clear && e[i] & PK_PTE_FLAG_WRITTEN)
			w |= PK_PTE_FLAG_WRITTEN_PREV;
		e[i] = w;
	}
}

void pk_track_tick(struct pk_vm *vm, uint64_t now_ms, int want)
{
	struct pk_vm_track *t = &vm->track;

	if (!want || vm->anon || vm->drained) {
		t->on = t->sweeping = 0; /* still protected: unprotect as written */
		return;
	}
	if (t->sweeping || (t->on && now_ms - t->period_start_ms +
					     PK_TRACK_SLACK_MS < PK_TRACK_PERIOD_MS))
		return;
	t->sweep_clear = !t->on;
	t->on = t->sweeping = 1;
	t->cursor = 0;
	t->period_start_ms = now_ms;
}

int pk_track_step(struct pk_vm *vm)
{
	struct pk_vm_track *t = &vm->track;
	uint64_t stop = t->cursor + PK_TRACK_STEP_PAGES, done = t->cursor;
	unsigned runs = PK_TRACK_STEP_RUNS;
	int err = 0;

	if (!t->sweeping)
		return 0;
	if (stop > vm->pages.n_pages)
		stop = vm->pages.n_pages;
	/* Each page protected, then its marks aged: a write fault queued
	 * meanwhile is read after this step and marks the new period. */
	for (uint32_t i = 0; i < vm->n_regions && done < stop && !err; i++) {
		const struct pk_vm_region *r = &vm->regions[i];
		uint64_t end = r->first_page + r->length / PK_PAGE_SIZE;
		uint64_t from = done > r->first_page ? done : r->first_page;
		uint64_t to = stop < end ? stop : end;

		if (from >= to)
			continue;
		done = protect_span(vm, r, from, to, &runs, &err);
		if (done < to)
			break; /* out of runs, or refused */
	}
	if (done < stop && !err && runs) /* past the last region */
		done = stop;
	age_marks(vm, t->cursor, done, t->sweep_clear);
	t->cursor = done;
	if (err && err != -EAGAIN) {
		t->sweeping = 0; /* the guest is going: the next tick tries */
		return 0;
	}
	t->wp_again += err == -EAGAIN;
	if (t->cursor < vm->pages.n_pages)
		return 1;
	t->sweeping = 0;
	t->periods++;
	return 0;
}

void pk_track_written(struct pk_vm *vm, uint64_t idx, int wp)
{
	if (pk_page_state(&vm->pages, idx) == PK_PAGE_RESIDENT &&
	    pk_page_set_written(&vm->pages, idx) && wp && vm->track.on)
		vm->track.write_faults++;
}
