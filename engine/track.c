/*
 * track.c - write tracking for cold-first victims (see track.h).
 *
 * How a period begins (pk_track_tick, from the policy's 1 s tick):
 *   1. write-protect the VM's resident pages with UFFDIO_WRITEPROTECT,
 *      one ioctl per run of resident pages in a region; a run spans
 *      reclaimed pages (swapped, zero, merged: holes that already carry
 *      the uffd-wp marker of their eviction), never untouched or removed
 *      ones, so that protecting a sparse guest installs no markers (and
 *      page tables) over memory it never used;
 *   2. only once every run is protected, age the marks: WRITTEN becomes
 *      WRITTEN_PREV, and a VM whose tracking was off starts clean.
 * Marks change only on this thread, so a write fault queued during (1)
 * is read after (2) and marks the current period.  EAGAIN (a REMOVE in
 * flight, FACTS.md) leaves the period unbegun; the next tick tries again
 * (runs already protected stay so: their writes are marked, never lost).
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

/* Step 1: protect every run of resident pages.  0 or -errno. */
static int protect_resident(struct pk_vm *vm)
{
	const struct pk_page_table *pt = &vm->pages;

	for (uint32_t i = 0; i < vm->n_regions; i++) {
		const struct pk_vm_region *r = &vm->regions[i];
		uint64_t end = r->first_page + r->length / PK_PAGE_SIZE;
		uint64_t first = UINT64_MAX, last = 0;

		for (uint64_t p = r->first_page; p <= end; p++) {
			enum pk_page_state st = p < end ? pk_page_state(pt, p)
							: PK_PAGE_UNTOUCHED;
			if (st == PK_PAGE_RESIDENT) {
				if (first == UINT64_MAX)
					first = p;
				last = p;
			} else if (st != PK_PAGE_SWAPPED && st != PK_PAGE_ZERO &&
				   st != PK_PAGE_SHARED && first != UINT64_MAX) {
				int err = wp_run(vm, r, first, last);
				if (err)
					return err;
				first = UINT64_MAX;
			}
		}
	}
	return 0;
}

/* Step 2: age the marks (or clear them: tracking was off). */
static void age_marks(struct pk_vm *vm, int clear)
{
	uint64_t *e = vm->pages.entries;

	for (uint64_t i = 0; i < vm->pages.n_pages; i++) {
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
	int err;

	if (!want || vm->anon || vm->drained) {
		t->on = 0; /* the pages still protected unprotect as written */
		return;
	}
	if (t->on &&
	    now_ms - t->period_start_ms + PK_TRACK_SLACK_MS < PK_TRACK_PERIOD_MS)
		return;
	err = protect_resident(vm);
	if (err) {
		t->wp_again += err == -EAGAIN;
		return; /* the next tick tries again */
	}
	age_marks(vm, !t->on);
	t->on = 1;
	t->period_start_ms = now_ms;
	t->periods++;
}

void pk_track_written(struct pk_vm *vm, uint64_t idx, int wp)
{
	if (pk_page_state(&vm->pages, idx) == PK_PAGE_RESIDENT &&
	    pk_page_set_written(&vm->pages, idx) && wp && vm->track.on)
		vm->track.write_faults++;
}
