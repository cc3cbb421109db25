/*
 * fault.c - the page-fault path: event -> page state -> resolution.
 *
 * Everything a guest's access to a missing page causes happens here, in
 * this order:
 *
 *   1. Event.  pk_fault_handle_events() drains the VM's userfaultfd in
 *      batches.  UFFD_EVENT_REMOVE (the guest discarded pages with
 *      madvise: balloon, free page reporting) is synchronous for the
 *      guest, so events are always read before anything slow is done.
 *   2. Page state.  The faulting address maps to a region and a page
 *      index; the page-state table says what the page should contain.
 *   3. Resolution.  A page that was never populated, was zero-reclaimed
 *      or was removed is resolved with zeros.  A sequential stream of
 *      first touches gets its next pages resolved ahead of the guest
 *      ("fault-around"), with one batched ioctl per window: a fault round
 *      trip costs ~30 us on this platform while a batched ZEROPAGE costs
 *      under 0.5 us a page, so resolving a window turns a first-touch
 *      sweep from fault-bound to copy-bound.  Random faults get one page,
 *      so fault-around never inflates a random toucher's footprint.
 *      A swapped page is read from its slot (swapin_fault); a shared
 *      page is copied from its domain's canonical copy, which it then
 *      stops referencing (share_refault): the guest gets a private copy
 *      it may write.
 *
 * How zeros are supplied depends on the RAM kind and the access:
 *   - shmem (memfd, /dev/shm): UFFDIO_ZEROPAGE allocates a zeroed page.
 *   - anonymous, read: UFFDIO_ZEROPAGE maps the shared zero page (true
 *     sharing: no memory is used until the guest writes).
 *   - anonymous, write: UFFDIO_COPY from a zero buffer, since a zero page
 *     would cost the guest a second (copy-on-write) fault at once.
 *
 * An ioctl that meets a page already present (-EEXIST) means another
 * thread's fault or an earlier window got there first: the page is
 * resident and the range is woken.  -EAGAIN with no progress means the
 * guest's address space is changing (a REMOVE event is in flight): the
 * fault is deferred and retried after the events are read, never spun on.
 * -ESRCH means the guest is gone; its pidfd will tear the VM down.
 */
#include "engine/vm.h"
#include "engine/uffd_compat.h"
#include "hashing/canonical_store.h"
#include "engine/swap_dedup.h"
#include "swapper/swap_store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define PK_UFFD_READ_BATCH 64

/*
 * Find the stream a fault at page idx continues, growing its window, or
 * recycle the least recently used stream for a new one with a window of
 * one page.  A fault continues a stream when it lands where the stream
 * left off, or on the page before (the guest raced ahead of the ioctl).
 */
static struct pk_fault_stream *fault_stream_for(struct pk_vm *vm, uint64_t idx)
{
	struct pk_fault_stream *s, *lru = &vm->streams[0];
	uint32_t max = vm->engine->cfg.fault_around_max;
	uint64_t stamp = vm->stats.faults;

	for (int i = 0; i < PK_FAULT_STREAMS; i++) {
		s = &vm->streams[i];
		if (s->window && idx + 1 >= s->next_page && idx <= s->next_page) {
			s->window = s->window * 2 > max ? max : s->window * 2;
			s->last_used = stamp;
			return s;
		}
		if (s->last_used < lru->last_used)
			lru = s;
	}
	lru->window = 1;
	lru->last_used = stamp;
	return lru;
}

/* Resolve [addr, addr + n pages) with zeros; returns pages done or -errno. */
static long zero_fill(struct pk_vm *vm, uint64_t addr, uint64_t n, int write)
{
	uint64_t len = n * PK_PAGE_SIZE;

	if (vm->anon && write) {
		struct uffdio_copy c = {
			.dst = addr,
			.src = (uint64_t)(uintptr_t)vm->engine->zero_buf,
			.len = len,
		};
		if (ioctl(vm->uffd, UFFDIO_COPY, &c) == 0)
			return (long)n;
		if (c.copy > 0)
			return (long)(c.copy / PK_PAGE_SIZE);
		return c.copy < 0 ? (long)c.copy : -errno;
	}
	struct uffdio_zeropage z = { .range = { .start = addr, .len = len } };
	if (ioctl(vm->uffd, UFFDIO_ZEROPAGE, &z) == 0)
		return (long)n;
	if (z.zeropage > 0)
		return (long)(z.zeropage / PK_PAGE_SIZE);
	return z.zeropage < 0 ? (long)z.zeropage : -errno;
}

static void wake_page(struct pk_vm *vm, uint64_t addr)
{
	struct uffdio_range r = { .start = addr, .len = PK_PAGE_SIZE };
	ioctl(vm->uffd, UFFDIO_WAKE, &r);
}

/*
 * Swap-in, first half: queue an io_uring read of the page's slot.  The
 * page is marked busy, so further faults on it (other threads) are not
 * queued twice: they are all woken by the UFFDIO_COPY that resolves it.
 */
static int swapin_start(struct pk_vm *vm, uint64_t idx, uint64_t addr)
{
	struct pk_engine *e = vm->engine;
	struct pk_swapin *op;

	if (pk_page_busy(&vm->pages, idx))
		return 0;
	op = calloc(1, sizeof(*op));
	if (!op)
		return -EAGAIN;
	if (pk_swap_buf_get(e->swap, &op->buf, &op->buf_idx) < 0) {
		free(op); /* all buffers in flight: retried shortly */
		return -EAGAIN;
	}
	op->op.kind = PK_IO_SWAPIN_READ;
	op->vm_id = vm->id;
	op->idx = idx;
	op->addr = addr;
	op->slot = pk_page_payload(&vm->pages, idx);
	if (pk_swap_read(e->swap, op->slot, op->buf_idx,
			 (uint64_t)(uintptr_t)&op->op) < 0) {
		pk_swap_buf_put(e->swap, op->buf_idx);
		free(op);
		return -EAGAIN;
	}
	pk_page_set_busy(&vm->pages, idx, 1); /* submitted after the batch */
	return 0;
}

/*
 * A fault on a swapped page.  A sequential reader (the stream detector of
 * fault-around) also gets the swapped pages that follow read ahead, up to
 * swap_readahead_max in all, in the same submission: pages evicted
 * together come back together, and the guest's next faults find them
 * resident.  A page whose read is already in flight is left alone: the
 * UFFDIO_COPY that resolves it wakes this fault too, and not counting it
 * as a stream step keeps the stream on the page after the readahead.
 */
static int swapin_fault(struct pk_vm *vm, const struct pk_vm_region *r,
			uint64_t idx, uint64_t addr)
{
	struct pk_page_table *pt = &vm->pages;
	uint64_t region_end = r->first_page + r->length / PK_PAGE_SIZE;
	struct pk_fault_stream *stream;
	uint64_t n, i;
	int err;

	if (pk_page_busy(pt, idx))
		return 0;
	stream = fault_stream_for(vm, idx);
	n = stream->window;
	if (n > vm->engine->cfg.swap_readahead_max)
		n = vm->engine->cfg.swap_readahead_max;
	if (n > region_end - idx)
		n = region_end - idx;
	err = swapin_start(vm, idx, addr);
	if (err)
		return err;
	for (i = 1; i < n; i++) {
		if (pk_page_state(pt, idx + i) != PK_PAGE_SWAPPED ||
		    pk_page_busy(pt, idx + i) ||
		    swapin_start(vm, idx + i, addr + i * PK_PAGE_SIZE) < 0)
			break;
		vm->stats.swapins_readahead++;
	}
	stream->next_page = idx + i;
	return 0;
}

/*
 * Give the guest a memory error at addr.  UFFDIO_POISON wants an empty
 * PTE, but an evicted page keeps the uffd-wp marker the punch left:
 * resolving write protection on the page clears it first.
 */
static int poison_page(struct pk_vm *vm, uint64_t addr)
{
	struct uffdio_poison p = { .range = { .start = addr, .len = PK_PAGE_SIZE } };

	if (ioctl(vm->uffd, UFFDIO_POISON, &p) == 0)
		return 0;
	if (errno == EEXIST) {
		struct uffdio_writeprotect wp = {
			.range = p.range,
			.mode = UFFDIO_WRITEPROTECT_MODE_DONTWAKE,
		};
		ioctl(vm->uffd, UFFDIO_WRITEPROTECT, &wp);
		if (ioctl(vm->uffd, UFFDIO_POISON, &p) == 0)
			return 0;
	}
	if (errno != EAGAIN)
		pk_log(vm->engine, "vm %s: UFFDIO_POISON at 0x%llx: %s",
		       vm->name, (unsigned long long)addr, strerror(errno));
	return -errno;
}

static void swapin_free(struct pk_engine *e, struct pk_swapin *op)
{
	pk_swap_buf_put(e->swap, op->buf_idx);
	pk_swap_slot_put(e, op->slot);
	free(op);
}

/*
 * Swap-in, second half: the read is done and checksummed by the store.
 * Copy the page in, or poison it: the guest gets a memory error, never
 * wrong bytes.  Returns -EAGAIN when UFFDIO_COPY must be retried.
 */
static int swapin_resolve(struct pk_vm *vm, struct pk_swapin *op, int result)
{
	struct pk_page_table *pt = &vm->pages;

	if (pk_page_state(pt, op->idx) != PK_PAGE_SWAPPED) {
		/* Discarded while the read ran: zeros now, via a refault. */
		pk_page_set_busy(pt, op->idx, 0);
		struct uffdio_range r = { .start = op->addr, .len = PK_PAGE_SIZE };
		ioctl(vm->uffd, UFFDIO_WAKE, &r);
		return 0;
	}
	if (result < 0) {
		int err = poison_page(vm, op->addr);
		if (err == -EAGAIN)
			return -EAGAIN;
		pk_log(vm->engine,
		       "vm %s: PAGE %llu LOST: swap slot %llu %s; the guest gets "
		       "a memory error instead of wrong data",
		       vm->name, (unsigned long long)op->idx,
		       (unsigned long long)op->slot,
		       result == -EBADMSG ? "failed its checksum"
					  : strerror(-result));
		pk_page_set(pt, op->idx, PK_PAGE_POISONED, 0);
		vm->stats.poisoned++;
		return 0;
	}
	struct uffdio_copy c = { .dst = op->addr,
				 .src = (uint64_t)(uintptr_t)op->buf,
				 .len = PK_PAGE_SIZE };
	if (ioctl(vm->uffd, UFFDIO_COPY, &c) < 0 && errno == EAGAIN)
		return -EAGAIN;
	pk_page_set(pt, op->idx, PK_PAGE_RESIDENT, 0);
	vm->stats.swapins++;
	return 0;
}

void pk_fault_swapin_done(struct pk_engine *e, struct pk_io_op *o, int result)
{
	struct pk_swapin *op = (struct pk_swapin *)o;
	struct pk_vm *vm = pk_vm_find_by_id(e, op->vm_id);

	op->result = result;
	if (vm && swapin_resolve(vm, op, result) == -EAGAIN) {
		op->next_retry = vm->swapin_retry;
		vm->swapin_retry = op;
		return;
	}
	swapin_free(e, op);
}

/*
 * A fault on a page merged into a canonical copy: UFFDIO_COPY the copy
 * in, then drop the page's reference (the last one frees the copy).
 * Synchronous: the copy is in the daemon's memory, so the fault costs one
 * round trip plus a 4 KiB copy, like a first touch.
 */
static int share_refault(struct pk_vm *vm, uint64_t idx, uint64_t addr)
{
	struct pk_canon_store *store = vm->domain->store;
	uint64_t id = pk_page_payload(&vm->pages, idx);
	const void *src = pk_canon_data(store, id);
	struct uffdio_copy c = { .dst = addr,
				 .src = (uint64_t)(uintptr_t)src,
				 .len = PK_PAGE_SIZE };

	if (!src) { /* cannot happen: the page holds a reference */
		pk_log(vm->engine, "vm %s: page %llu: canonical copy %llu is "
		       "gone; poisoned", vm->name, (unsigned long long)idx,
		       (unsigned long long)id);
		if (poison_page(vm, addr) == -EAGAIN)
			return -EAGAIN;
		pk_page_set(&vm->pages, idx, PK_PAGE_POISONED, 0);
		return 0;
	}
	if (ioctl(vm->uffd, UFFDIO_COPY, &c) < 0) {
		if (errno == EAGAIN)
			return -EAGAIN;
		if (errno == EEXIST) {
			wake_page(vm, addr);
		} else if (errno != ESRCH && errno != ENOENT) {
			/* Keep the page shared: its next fault tries again,
			 * where marking it resident would zero-fill it. */
			pk_log(vm->engine, "vm %s: UFFDIO_COPY of shared page "
			       "%llu: %s", vm->name, (unsigned long long)idx,
			       strerror(errno));
			wake_page(vm, addr);
			return 0;
		}
	}
	pk_canon_put(store, id);
	pk_page_set(&vm->pages, idx, PK_PAGE_RESIDENT, 0);
	vm->stats.share_refaults++;
	return 0;
}

/* A write to a write-protected page (eviction in progress, or done). */
static void handle_wp_fault(struct pk_vm *vm, uint64_t fault_addr)
{
	uint64_t addr = fault_addr & ~(uint64_t)(PK_PAGE_SIZE - 1);
	const struct pk_vm_region *r = pk_vm_region_of(vm, addr);
	struct uffdio_writeprotect wp = {
		.range = { .start = addr, .len = PK_PAGE_SIZE }, .mode = 0 };

	if (r) {
		uint64_t idx = r->first_page + (addr - r->start) / PK_PAGE_SIZE;
		enum pk_page_state st;
		pk_evict_on_wp_fault(vm, idx); /* abort its eviction */
		st = pk_page_state(&vm->pages, idx);
		if (st == PK_PAGE_SWAPPED || st == PK_PAGE_SHARED ||
		    st == PK_PAGE_ZERO) {
			/* Punched after the write faulted: the retry is a
			 * MISSING fault served from the slot or copy. */
			struct uffdio_range rg = { addr, PK_PAGE_SIZE };
			ioctl(vm->uffd, UFFDIO_WAKE, &rg);
			return;
		}
	}
	ioctl(vm->uffd, UFFDIO_WRITEPROTECT, &wp); /* unprotect and wake */
}

/* Returns 0, or -EAGAIN when the fault must be deferred. */
static int resolve_fault(struct pk_vm *vm, uint64_t fault_addr, uint64_t flags)
{
	uint64_t addr = fault_addr & ~(uint64_t)(PK_PAGE_SIZE - 1);
	const struct pk_vm_region *r = pk_vm_region_of(vm, addr);
	int write = !!(flags & UFFD_PAGEFAULT_FLAG_WRITE);
	uint64_t idx, region_end, n;
	enum pk_page_state st;
	struct pk_fault_stream *stream = NULL;
	long done;

	if (!r) {
		/* Cannot happen for a range we registered; never hang it. */
		pk_log(vm->engine, "vm %s: fault at 0x%llx outside every region",
		       vm->name, (unsigned long long)fault_addr);
		wake_page(vm, addr);
		return 0;
	}
	idx = r->first_page + (addr - r->start) / PK_PAGE_SIZE;
	st = pk_page_state(&vm->pages, idx);

	switch (st) {
	case PK_PAGE_UNTOUCHED:
	case PK_PAGE_ZERO:
	case PK_PAGE_REMOVED:
		/* Window: stop at the region end or the first page that is
		 * not a zero-fill page. */
		region_end = r->first_page + r->length / PK_PAGE_SIZE;
		stream = fault_stream_for(vm, idx);
		n = stream->window;
		if (n > region_end - idx)
			n = region_end - idx;
		for (uint64_t i = 1; i < n; i++)
			if (!pk_page_state_is_zero_fill(
				    pk_page_state(&vm->pages, idx + i))) {
				n = i;
				break;
			}
		break;
	case PK_PAGE_SWAPPED:
		return swapin_fault(vm, r, idx, addr);
	case PK_PAGE_SHARED:
		return share_refault(vm, idx, addr);
	case PK_PAGE_RESIDENT:
		/* Our table says present but the kernel says missing: the
		 * guest punched the page itself (shmem hole punch raises no
		 * event) and reads zeros, as the file now holds. */
		n = 1;
		break;
	default: {
		/* Poisoned (its data was lost), or a state with no resolver:
		 * a memory error for the guest, never wrong bytes, never a
		 * loop. */
		if (st != PK_PAGE_POISONED)
			pk_log(vm->engine, "vm %s: page %llu in state %s has "
			       "no resolver; poisoned", vm->name, (unsigned long long)idx,
		       pk_page_state_name(st));
		if (poison_page(vm, addr) == -EAGAIN)
			return -EAGAIN;
		return 0;
	}
	}

	done = zero_fill(vm, addr, n, write);
	if (done > 0) {
		pk_page_set_range(&vm->pages, idx, (uint64_t)done,
				  PK_PAGE_RESIDENT);
		vm->stats.pages_zero_filled += (uint64_t)done;
		vm->stats.pages_around += (uint64_t)done - 1;
		if (stream)
			stream->next_page = idx + (uint64_t)done;
		return 0;
	}
	if (done == -EEXIST) {
		/* Someone resolved it first (another thread's fault). */
		if (st != PK_PAGE_RESIDENT)
			pk_page_set(&vm->pages, idx, PK_PAGE_RESIDENT, 0);
		vm->stats.faults_spurious++;
		wake_page(vm, addr);
		return 0;
	}
	if (done == -EAGAIN)
		return -EAGAIN;
	if (done != -ESRCH && done != -ENOENT)
		pk_log(vm->engine, "vm %s: resolving fault at 0x%llx: %s",
		       vm->name, (unsigned long long)fault_addr,
		       strerror((int)-done));
	return 0;
}

static void defer_fault(struct pk_vm *vm, uint64_t addr, uint64_t flags)
{
	if (vm->n_deferred == PK_DEFERRED_MAX) {
		/* The guest re-faults after a wake; nothing is lost. */
		wake_page(vm, addr & ~(uint64_t)(PK_PAGE_SIZE - 1));
		return;
	}
	vm->deferred[vm->n_deferred].addr = addr;
	vm->deferred[vm->n_deferred].flags = flags;
	vm->n_deferred++;
}

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * UFFD_EVENT_REMOVE arrives before the kernel discards anything, and on
 * shmem not every discard frees data: MADV_REMOVE and a hole punch (the
 * balloon's path) do, but MADV_DONTNEED only unmaps, and the next access
 * is then a minor fault the kernel serves from the file without asking
 * us.  So pages are marked removed at once (the balloon case), and for
 * shmem the range is compared with the file a little later; pages that
 * still hold data go back to resident.
 */
static void queue_recheck(struct pk_vm *vm, uint64_t start, uint64_t end)
{
	struct pk_remove_recheck *rc;

	if (vm->n_rechecks == PK_RECHECK_MAX) {
		/* Full: widen the last entry to cover this range too. */
		rc = &vm->rechecks[PK_RECHECK_MAX - 1];
		rc->start = start < rc->start ? start : rc->start;
		rc->end = end > rc->end ? end : rc->end;
	} else {
		rc = &vm->rechecks[vm->n_rechecks++];
		rc->start = start;
		rc->end = end;
	}
	rc->due_ms = monotonic_ms() + PK_RECHECK_DELAY_MS;
}

void pk_fault_run_rechecks(struct pk_vm *vm, uint64_t now_ms)
{
	unsigned kept = 0;

	for (unsigned i = 0; i < vm->n_rechecks; i++) {
		struct pk_remove_recheck rc = vm->rechecks[i];
		if (rc.due_ms <= now_ms)
			pk_vm_recheck_removed(vm, rc.start, rc.end);
		else
			vm->rechecks[kept++] = rc;
	}
	vm->n_rechecks = kept;
}

static void handle_remove(struct pk_vm *vm, uint64_t start, uint64_t end)
{
	vm->stats.remove_events++;
	if (!vm->anon)
		queue_recheck(vm, start, end);
	for (uint32_t i = 0; i < vm->n_regions; i++) {
		const struct pk_vm_region *r = &vm->regions[i];
		uint64_t lo = start > r->start ? start : r->start;
		uint64_t hi = end < r->start + r->length ? end
							 : r->start + r->length;
		if (lo >= hi)
			continue;
		uint64_t first = r->first_page + (lo - r->start) / PK_PAGE_SIZE;
		uint64_t n = (hi - lo + PK_PAGE_SIZE - 1) / PK_PAGE_SIZE;
		for (uint64_t p = first; p < first + n; p++) {
			int busy = pk_page_busy(&vm->pages, p);
			if (busy)
				pk_evict_on_remove(vm, p);
			/* A swap-in in flight owns its slot and frees it. */
			if (pk_page_state(&vm->pages, p) == PK_PAGE_SWAPPED &&
			    !busy)
				pk_swap_slot_put(vm->engine,
						 pk_page_payload(&vm->pages, p));
			if (pk_page_state(&vm->pages, p) == PK_PAGE_SHARED)
				pk_canon_put(vm->domain->store,
					     pk_page_payload(&vm->pages, p));
			pk_page_set(&vm->pages, p, PK_PAGE_REMOVED, 0);
			if (busy)
				pk_page_set_busy(&vm->pages, p, 1);
		}
		vm->stats.pages_removed += n;
	}
}

void pk_fault_handle_events(struct pk_vm *vm)
{
	struct uffd_msg msgs[PK_UFFD_READ_BATCH];

	for (;;) {
		ssize_t got = read(vm->uffd, msgs, sizeof(msgs));
		if (got <= 0)
			break; /* EAGAIN: drained */
		size_t n = (size_t)got / sizeof(msgs[0]);
		for (size_t i = 0; i < n; i++) {
			struct uffd_msg *m = &msgs[i];
			switch (m->event) {
			case UFFD_EVENT_PAGEFAULT:
				if (m->arg.pagefault.flags &
				    UFFD_PAGEFAULT_FLAG_WP) {
					handle_wp_fault(vm,
							m->arg.pagefault.address);
					break;
				}
				vm->stats.faults++;
				if (resolve_fault(vm, m->arg.pagefault.address,
						  m->arg.pagefault.flags) ==
				    -EAGAIN)
					defer_fault(vm,
						    m->arg.pagefault.address,
						    m->arg.pagefault.flags);
				break;
			case UFFD_EVENT_REMOVE:
				handle_remove(vm, m->arg.remove.start,
					      m->arg.remove.end);
				break;
			default:
				pk_log(vm->engine, "vm %s: unexpected uffd event %u",
				       vm->name, m->event);
			}
		}
		if (n < PK_UFFD_READ_BATCH)
			break;
	}
	pk_fault_retry_deferred(vm);
}

static void submit_swapins(struct pk_vm *vm)
{
	/* One submission for every swap-in read the batch queued: on a
	 * virtio disk each submission costs a doorbell (a VM exit). */
	if (vm->engine->swap)
		pk_swap_submit(vm->engine->swap);
}

unsigned pk_fault_retry_deferred(struct pk_vm *vm)
{
	unsigned n = vm->n_deferred, kept = 0;
	struct pk_swapin *retry = vm->swapin_retry;

	vm->swapin_retry = NULL;
	while (retry) {
		struct pk_swapin *op = retry;
		retry = op->next_retry;
		if (swapin_resolve(vm, op, op->result) == -EAGAIN) {
			op->next_retry = vm->swapin_retry;
			vm->swapin_retry = op;
			kept++;
		} else {
			swapin_free(vm->engine, op);
		}
	}

	for (unsigned i = 0; i < n; i++) {
		struct pk_deferred_fault d = vm->deferred[i];
		if (resolve_fault(vm, d.addr, d.flags) == -EAGAIN)
			vm->deferred[kept++] = d;
	}
	vm->n_deferred = kept;
	submit_swapins(vm);
	return kept;
}
