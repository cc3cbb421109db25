/*
 * active.c - how much of each VM's memory is active: ESX's sampled
 * invalidation, for the idle memory tax (policy.h, alloc.h).
 *
 * What: every PK_SAMPLE_PERIOD_MS the policy's tick takes
 * PK_SAMPLE_PAGES resident pages of the VM at random and invalidates
 * them; at the end of the period the fraction the guest touched again is
 * one sample of its active fraction f, fed to pk_active_add() (a fast
 * and a slow moving average and the last period, the estimate is their
 * max: it rises within a period and falls slowly).
 *
 * How: invalidation is the sharing scanner's own reclaim
 * (pk_evict_scan_pages with every page tagged "may share"): write-
 * protect, copy out, then the page becomes a canonical copy of its own
 * bytes (SHARED, refcount 1) or ZERO if it is all zeros, and is punched.
 * A guest access - read or write - is then a fault that fault.c serves as
 * it serves any merged page (UFFDIO_COPY from the copy) and the page is
 * RESIDENT again.  So at the end of the period a sampled page that is
 * RESIDENT was touched; one still SHARED or ZERO was not; one the guest
 * discarded, or whose invalidation did not happen (a write raced it:
 * that counts as touched), is judged by what it is.  The fault path
 * gains nothing: no flag, no count, no lookup.
 *
 * Why this mechanism: ESX's, and it sees reads as well as writes
 * (write protection alone would miss a VM that only reads, and uffd-wp's
 * async mode cannot be combined with the synchronous protection eviction
 * relies on: FACTS.md).  Its cost per VM and period: PK_SAMPLE_PAGES
 * page copies and punches, and one refault (a copy, as fast as a merged
 * page's) per touched page - about 100 faults per 10 s for a busy VM;
 * measured in status (sample_cpu_us).  Untouched samples stay merged
 * copies: they cost the machine no more than the guest's page did.
 * Not for VMs with private anonymous RAM (no punch): they keep f = 1.
 */
#include "engine/vm.h"

#include <string.h>
#include <time.h>

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* End of a period: count what the guest touched again. */
static void sample_judge(struct pk_vm *vm)
{
	struct pk_vm_policy *vp = &vm->policy;
	unsigned touched = 0, sampled = 0;

	for (unsigned i = 0; i < vp->n_samples; i++) {
		enum pk_page_state st = pk_page_state(&vm->pages,
						      vp->samples[i]);
		if (st == PK_PAGE_RESIDENT)
			touched++;
		else if (st != PK_PAGE_SHARED && st != PK_PAGE_ZERO)
			continue; /* discarded or swapped: no evidence */
		sampled++;
	}
	if (sampled) {
		pk_active_add(&vp->active, touched, sampled);
		vp->sample_periods++;
	}
	vp->n_samples = 0;
}

/* Start of a period: invalidate PK_SAMPLE_PAGES random resident pages. */
static void sample_start(struct pk_vm *vm)
{
	struct pk_vm_policy *vp = &vm->policy;
	uint64_t n = vm->pages.n_pages, batch[PK_SHARE_QUEUE];
	uint64_t merged0 = vm->stats.share_merged;
	uint64_t zero0 = vm->stats.zero_reclaimed;
	unsigned nb = 0;

	if (!n || !vm->pages.count[PK_PAGE_RESIDENT])
		return;
	for (unsigned tries = 0;
	     vp->n_samples < PK_SAMPLE_PAGES && tries < 4 * PK_SAMPLE_PAGES;
	     tries++) {
		uint64_t idx = xorshift64(&vm->engine->rng) % n;
		if (pk_page_state(&vm->pages, idx) != PK_PAGE_RESIDENT ||
		    pk_page_busy(&vm->pages, idx))
			continue;
		/* A repeat would be judged twice. */
		int dup = 0;
		for (unsigned i = 0; i < vp->n_samples && !dup; i++)
			dup = vp->samples[i] == idx;
		if (dup)
			continue;
		vp->samples[vp->n_samples++] = idx;
		batch[nb++] = idx << 1 | 1; /* tagged: may share */
		if (nb == PK_SHARE_QUEUE) {
			pk_evict_scan_pages(vm, batch, nb,
					    vm->engine->scan_scratch);
			nb = 0;
		}
	}
	if (nb)
		pk_evict_scan_pages(vm, batch, nb, vm->engine->scan_scratch);
	/* The sharing figures are the scanner's: these are not merges. */
	vm->stats.share_merged = merged0;
	vm->stats.zero_reclaimed = zero0;
}

void pk_active_sample_tick(struct pk_vm *vm, uint64_t now_ms)
{
	struct pk_vm_policy *vp = &vm->policy;
	uint64_t t0;

	if (vm->anon || vm->drained || !vm->domain ||
	    !vm->engine->scan_scratch)
		return;
	if (vp->sample_start_ms &&
	    now_ms - vp->sample_start_ms < PK_SAMPLE_PERIOD_MS)
		return;
	t0 = cpu_ns();
	if (vp->sample_start_ms)
		sample_judge(vm);
	/* Sampling goes on while the host is overcommitted. */
	if (vm->engine->policy->overcommitted) {
		sample_start(vm);
		vp->sample_start_ms = now_ms;
	} else {
		vp->sample_start_ms = 0;
	}
	vp->sample_cpu_ns += cpu_ns() - t0;
}
