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
 * The same holds for a write-protect fault's unprotect, which the kernel
 * refuses then too, waking nobody.  -ESRCH means the guest is gone; its pidfd will tear the VM down.
 *
 * Any other error never loses a page and never hangs a fault.  An ioctl
 * that fails for want of memory (ENOMEM, ENOSPC: the guest's memory
 * cgroup or a tmpfs is at its limit) leaves the page in its state with
 * its slot or canonical copy, and the fault waits for a retry with a
 * back-off that doubles from 1 ms to 1 s: deferred faults carry their
 * due time (vm->deferred), a swap-in keeps its read buffer and its slot
 * (vm->swapin_retry), and the engine's retry timer wakes the loop when
 * the earliest is due, so nothing blocks or spins.  A failed slot read
 * (I/O error, or a checksum that may be a torn read) is read again, with
 * the same back-off, PK_SWAPIN_READ_TRIES times in all (checksums:
 * PK_SWAPIN_CHECKSUM_TRIES) before the page is poisoned: then the guest
 * gets a memory error for that page alone, logged and counted, never
 * wrong bytes.  A read-ahead swap-in, which no guest thread asked for,
 * is never poisoned nor waited on: on any error its page goes back to
 * SWAPPED with its slot, and the guest's own fault, if it comes, tries
 * again.  One log line per VM when an episode of retries starts and one
 * when it ends; the counts are in the VM's status.
 *
 * A drain (pagekeeper drain VM) resolves swapped and merged pages ahead of
 * the guest by the same two resolutions, from the engine loop: see
 * pk_fault_drain_step() at the end.
 *
 * Stall (policy.h): while the policy stalls a VM (the low state), or the
 * guests are at the line the policy keeps near low (pk_policy_room), a
 * fault that would take a new page (zero-fill, swap-in, a merged page's
 * copy) is parked in vm->deferred with no due time, the guest thread
 * left waiting in the kernel, until pk_fault_unpark() (the policy's
 * tick looks at parked faults again every second): the host
 * runs out of nothing and nobody is OOM-killed, the VM just waits while
 * its memory is reclaimed.  Write-protect faults, discards and faults on
 * pages already present are never parked: they take no memory, and
 * eviction needs the first to finish.
 */
#include "engine/state.h"
#include "engine/vm.h"
#include "engine/uffd_compat.h"
#include "hashing/canonical_store.h"
#include "engine/swap_dedup.h"
#include "swapper/swap_store.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

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

/* Is err an error the fault is retried after, with a back-off? */
static int fault_err_retried(int err)
{
	return err != -EAGAIN && err != -EEXIST && err != -ESRCH &&
	       err != -ENOENT;
}

static uint32_t next_backoff(uint32_t backoff_ms)
{
	if (!backoff_ms)
		return PK_RETRY_BACKOFF_MIN_MS;
	return backoff_ms * 2 > PK_RETRY_BACKOFF_MAX_MS
		       ? PK_RETRY_BACKOFF_MAX_MS
		       : backoff_ms * 2;
}

/*
 * A fault or swap-in backs off after err: counted, and logged once per
 * episode (the first back-off while nothing else of the VM waited).
 */
static void retry_note(struct pk_vm *vm, const char *what, int err)
{
	vm->stats.fault_retries++;
	vm->retry_episode_retries++;
	if (vm->retry_episode_ms)
		return;
	vm->retry_episode_ms = pk_monotonic_ms();
	vm->retry_episode_retries = 1;
	pk_log_prio(&vm->engine->log, LOG_WARNING, "vm %s: %s: %s; its faults wait and are retried "
	       "every %u ms to %u ms until it succeeds (logged once per "
	       "episode)", vm->name, what, strerror(-err),
	       PK_RETRY_BACKOFF_MIN_MS, PK_RETRY_BACKOFF_MAX_MS);
}

/*
 * Swap-in, first half: queue an io_uring read of the page's slot.  The
 * page is marked busy, so further faults on it (other threads) are not
 * queued twice: they are all woken by the UFFDIO_COPY that resolves it.
 */
static int swapin_start(struct pk_vm *vm, uint64_t idx, uint64_t addr,
			int readahead)
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
	op->readahead = (uint8_t)readahead;
	if (!readahead) /* the fault latency histogram (metrics.h) */
		op->fault_ns = pk_metrics_now_ns();
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
	err = swapin_start(vm, idx, addr, 0);
	if (err)
		return err;
	for (i = 1; i < n; i++) {
		if (pk_page_state(pt, idx + i) != PK_PAGE_SWAPPED ||
		    pk_page_busy(pt, idx + i) ||
		    swapin_start(vm, idx + i, addr + i * PK_PAGE_SIZE, 1) < 0)
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
		pk_log_prio(&vm->engine->log, LOG_ERR, "vm %s: UFFDIO_POISON at 0x%llx: %s",
		       vm->name, (unsigned long long)addr, strerror(errno));
	return -errno;
}

static void swapin_free(struct pk_engine *e, struct pk_vm *vm,
			struct pk_swapin *op)
{
	if (vm && op->waiting)
		vm->swapins_waiting--;
	pk_swap_buf_put(e->swap, op->buf_idx);
	if (!op->keep_slot)
		pk_swap_slot_put(e, op->slot);
	free(op);
}

static void retry_episode_check(struct pk_vm *vm);

/* What swapin_resolve left the op to. */
enum swapin_next {
	SWAPIN_DONE,  /* resolved, poisoned or given back: free the op */
	SWAPIN_AGAIN, /* EAGAIN: retry as soon as the events are read */
	SWAPIN_WAIT,  /* back off until op->due_ms (a copy or a re-read) */
};

/*
 * A read-ahead swap-in failed: the page goes back to SWAPPED, not busy,
 * with its slot.  A guest thread that faulted on it meanwhile waits for
 * this op: the wake makes it fault again, on its own account.
 */
static enum swapin_next swapin_give_back(struct pk_vm *vm,
					 struct pk_swapin *op)
{
	pk_page_set_busy(&vm->pages, op->idx, 0);
	op->keep_slot = 1;
	vm->stats.readahead_dropped++;
	wake_page(vm, op->addr);
	return SWAPIN_DONE;
}

static enum swapin_next swapin_back_off(struct pk_vm *vm,
					struct pk_swapin *op, const char *what,
					int err)
{
	op->backoff_ms = next_backoff(op->backoff_ms);
	op->due_ms = pk_monotonic_ms() + op->backoff_ms;
	if (!op->waiting) {
		op->waiting = 1;
		vm->swapins_waiting++;
	}
	retry_note(vm, what, err);
	return SWAPIN_WAIT;
}

/*
 * Swap-in, second half: the read is done and checksummed by the store.
 * Copy the page in, or poison it: the guest gets a memory error, never
 * wrong bytes.  Returns -EAGAIN when UFFDIO_COPY must be retried.
 */
static enum swapin_next swapin_resolve(struct pk_vm *vm, struct pk_swapin *op,
				       int result)
{
	struct pk_page_table *pt = &vm->pages;

	if (pk_page_state(pt, op->idx) != PK_PAGE_SWAPPED) {
		/* Discarded while the read ran: zeros now, via a refault. */
		pk_page_set_busy(pt, op->idx, 0);
		struct uffdio_range r = { .start = op->addr, .len = PK_PAGE_SIZE };
		ioctl(vm->uffd, UFFDIO_WAKE, &r);
		return SWAPIN_DONE;
	}
	if (result < 0 && op->readahead)
		return swapin_give_back(vm, op);
	if (result < 0 &&
	    op->reads < (result == -EBADMSG ? PK_SWAPIN_CHECKSUM_TRIES
					    : PK_SWAPIN_READ_TRIES)) {
		/* Maybe a transient error or a torn read: read it again. */
		op->reread = 1;
		vm->stats.swapin_read_retries++;
		return swapin_back_off(vm, op, result == -EBADMSG
				       ? "swap slot read failed its checksum"
				       : "swap slot read", result);
	}
	if (result < 0) {
		int err = poison_page(vm, op->addr);
		if (err == -EAGAIN)
			return SWAPIN_AGAIN;
		pk_log_prio(&vm->engine->log, LOG_ERR,
		       "vm %s: PAGE %llu LOST: swap slot %llu %s; the guest "
		       "gets a memory error instead of wrong data (%u reads)",
		       vm->name, (unsigned long long)op->idx,
		       (unsigned long long)op->slot,
		       result == -EBADMSG ? "failed its checksum"
					  : strerror(-result),
		       (unsigned)op->reads);
		pk_page_set(pt, op->idx, PK_PAGE_POISONED, 0);
		vm->stats.poisoned++;
		return SWAPIN_DONE;
	}
	struct uffdio_copy c = { .dst = op->addr,
				 .src = (uint64_t)(uintptr_t)op->buf,
				 .len = PK_PAGE_SIZE };
	if (ioctl(vm->uffd, UFFDIO_COPY, &c) < 0) {
		int err = c.copy < 0 ? (int)c.copy : -errno;
		if (err == -EAGAIN)
			return SWAPIN_AGAIN;
		if (fault_err_retried(err)) {
			/* ENOMEM/ENOSPC: the page keeps its slot and this
			 * buffer; its waiters stay blocked until it works. */
			if (op->readahead)
				return swapin_give_back(vm, op);
			return swapin_back_off(vm, op, "UFFDIO_COPY of a "
					       "swapped page", err);
		}
		/* -EEXIST: present already (woken by whoever put it
		 * there); -ESRCH/-ENOENT: the guest is gone. */
	}
	pk_page_set(pt, op->idx, PK_PAGE_RESIDENT, 0);
	vm->stats.swapins++;
	vm->engine->host_stats.swapins++;
	if (op->fault_ns)
		pk_fault_hist_observe(&vm->engine->host_stats.fault_latency,
				      pk_metrics_now_ns() - op->fault_ns);
	return SWAPIN_DONE;
}

/* Queue op for a retry on vm->swapin_retry. */
static void swapin_queue_retry(struct pk_vm *vm, struct pk_swapin *op,
			       enum swapin_next next)
{
	if (next == SWAPIN_AGAIN)
		op->due_ms = 0;
	op->next_retry = vm->swapin_retry;
	vm->swapin_retry = op;
}

void pk_fault_swapin_done(struct pk_engine *e, struct pk_io_op *o, int result)
{
	struct pk_swapin *op = (struct pk_swapin *)o;
	struct pk_vm *vm = pk_vm_find_by_id(e, op->vm_id);

	op->result = result;
	op->reads++;
	if (vm) {
		enum swapin_next next = swapin_resolve(vm, op, result);
		if (next != SWAPIN_DONE) {
			swapin_queue_retry(vm, op, next);
			if (next == SWAPIN_WAIT)
				pk_engine_retry_at(e, op->due_ms);
			return;
		}
	}
	int was_waiting = op->waiting;
	swapin_free(e, vm, op);
	if (vm && was_waiting)
		retry_episode_check(vm); /* a re-read ended the wait */
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
		pk_log_prio(&vm->engine->log, LOG_ERR, "vm %s: page %llu: canonical copy %llu is "
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
		int err = c.copy < 0 ? (int)c.copy : -errno;
		if (err == -EEXIST) {
			wake_page(vm, addr);
		} else if (fault_err_retried(err)) {
			/* Keep the page shared, and the fault waiting: it is
			 * retried with a back-off (marking the page resident
			 * would zero-fill it). */
			return err;
		}
	}
	/* The entry first: a copy is let go only once nothing names it. */
	pk_page_set(&vm->pages, idx, PK_PAGE_RESIDENT, 0);
	pk_canon_put(store, id);
	vm->stats.share_refaults++;
	return 0;
}

/*
 * A write to a write-protected page (eviction in progress, or done; or
 * write tracking for --victims cold, track.h: a resident page is marked
 * written, then unprotected).  Returns 0, or -EAGAIN: the unprotect was refused because a REMOVE
 * event is in flight (FACTS.md), and the kernel then wakes nobody, so
 * the fault is deferred like any other, never dropped (a dropped one is
 * a vCPU asleep for good).
 */
static int handle_wp_fault(struct pk_vm *vm, uint64_t fault_addr)
{
	uint64_t addr = fault_addr & ~(uint64_t)(PK_PAGE_SIZE - 1);
	const struct pk_vm_region *r = pk_vm_region_of(vm, addr);
	struct uffdio_writeprotect wp = {
		.range = { .start = addr, .len = PK_PAGE_SIZE }, .mode = 0 };

	if (r) {
		uint64_t idx = r->first_page + (addr - r->start) / PK_PAGE_SIZE;
		enum pk_page_state st;
		/* Abort its eviction; either way a written page is marked
		 * (track.h), and outside a batch the fault was tracking's. */
		int in_batch = pk_evict_on_wp_fault(vm, idx);
		st = pk_page_state(&vm->pages, idx);
		if (st == PK_PAGE_RESIDENT)
			pk_track_written(vm, idx, !in_batch);
		if (st == PK_PAGE_SWAPPED || st == PK_PAGE_SHARED ||
		    st == PK_PAGE_ZERO) {
			/* Punched after the write faulted: the retry is a
			 * MISSING fault served from the slot or copy. */
			struct uffdio_range rg = { addr, PK_PAGE_SIZE };
			ioctl(vm->uffd, UFFDIO_WAKE, &rg);
			return 0;
		}
	}
	/* Unprotect and wake; the guest gone (ENOENT, ESRCH) needs none. */
	if (ioctl(vm->uffd, UFFDIO_WRITEPROTECT, &wp) < 0 && errno == EAGAIN) {
		vm->stats.wp_deferred++;
		return -EAGAIN;
	}
	return 0;
}

/*
 * Returns 0; -EAGAIN when the fault must be deferred; another -errno
 * when it must be retried with a back-off (the page keeps its state).
 */
/* resolve_fault(): the fault waits for the policy's stall to lift. */
#define PK_FAULT_PARKED 1
/* A parked fault's due time: never, until pk_fault_unpark(). */
#define PK_DUE_PARKED UINT64_MAX

static int resolve_fault(struct pk_vm *vm, uint64_t fault_addr, uint64_t flags)
{
	uint64_t addr = fault_addr & ~(uint64_t)(PK_PAGE_SIZE - 1);
	const struct pk_vm_region *r = pk_vm_region_of(vm, addr);
	int write = !!(flags & UFFD_PAGEFAULT_FLAG_WRITE);
	uint64_t idx, region_end, n;
	enum pk_page_state st;
	struct pk_fault_stream *stream = NULL;
	uint64_t room = UINT64_MAX;
	long done;

	if (!r) {
		/* Cannot happen for a range we registered; never hang it. */
		pk_log(&vm->engine->log, "vm %s: fault at 0x%llx outside every region",
		       vm->name, (unsigned long long)fault_addr);
		wake_page(vm, addr);
		return 0;
	}
	idx = r->first_page + (addr - r->start) / PK_PAGE_SIZE;
	st = pk_page_state(&vm->pages, idx);
	if (st != PK_PAGE_RESIDENT && st != PK_PAGE_POISONED &&
	    !pk_page_busy(&vm->pages, idx)) {
		room = pk_policy_room(vm);
		if (!room)
			return PK_FAULT_PARKED;
	}

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
		if (n > room)
			n = room; /* the policy's line (pk_policy_room) */
		for (uint64_t i = 1; i < n; i++)
			if (!pk_page_state_is_zero_fill(
				    pk_page_state(&vm->pages, idx + i))) {
				n = i;
				break;
			}
		break;
	case PK_PAGE_SWAPPED:
		return swapin_fault(vm, r, idx, addr);
	case PK_PAGE_SHARED: {
		int err = share_refault(vm, idx, addr);
		if (!err && write) /* a write tracking did not see */
			pk_track_written(vm, idx, 0);
		return err;
	}
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
			pk_log_prio(&vm->engine->log, LOG_ERR, "vm %s: page %llu in state %s has "
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
		if (write) /* a write tracking did not see (track.h) */
			pk_track_written(vm, idx, 0);
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
	if (done == -EAGAIN || fault_err_retried((int)done))
		return (int)done; /* deferred, or backing off */
	return 0; /* -ESRCH/-ENOENT: the guest is gone */
}

/* The back-off that follows backoff_ms, after a failure err of a fault. */
static struct pk_deferred_fault deferred_entry(struct pk_vm *vm, uint64_t addr,
					       uint64_t flags, int err,
					       uint32_t backoff_ms)
{
	struct pk_deferred_fault d = { .addr = addr, .flags = flags,
				       .backoff_ms = backoff_ms };

	if (err != -EAGAIN) {
		d.backoff_ms = next_backoff(backoff_ms);
		d.due_ms = pk_monotonic_ms() + d.backoff_ms;
		retry_note(vm, "resolving a fault", err);
	}
	return d;
}

static void defer_fault(struct pk_vm *vm, uint64_t addr, uint64_t flags,
			int err)
{
	struct pk_deferred_fault d;

	if (vm->n_deferred == PK_DEFERRED_MAX) {
		/* The guest re-faults after a wake; nothing is lost (a
		 * fault backing off then comes round sooner than due). */
		wake_page(vm, addr & ~(uint64_t)(PK_PAGE_SIZE - 1));
		return;
	}
	d = deferred_entry(vm, addr, flags, err, 0);
	vm->deferred[vm->n_deferred++] = d;
	if (d.due_ms)
		pk_engine_retry_at(vm->engine, d.due_ms);
}

/* A fault of a stalled VM waits, with no due time, for the stall to lift. */
static void park_fault(struct pk_vm *vm, uint64_t addr, uint64_t flags)
{
	if (vm->n_deferred == PK_DEFERRED_MAX) {
		/* Not lost: the guest faults again after the wake. */
		wake_page(vm, addr & ~(uint64_t)(PK_PAGE_SIZE - 1));
		return;
	}
	vm->deferred[vm->n_deferred++] = (struct pk_deferred_fault){
		.addr = addr, .flags = flags, .due_ms = PK_DUE_PARKED
	};
	vm->policy.faults_parked++;
	if (!vm->policy.parked_since_ms)
		vm->policy.parked_since_ms = pk_monotonic_ms();
}

void pk_fault_unpark(struct pk_vm *vm)
{
	for (unsigned i = 0; i < vm->n_deferred; i++)
		if (vm->deferred[i].due_ms == PK_DUE_PARKED)
			vm->deferred[i].due_ms = 0;
}

/* After a retry pass: a stall episode ends when no fault is parked. */
static void parked_episode_check(struct pk_vm *vm)
{
	if (!vm->policy.parked_since_ms)
		return;
	for (unsigned i = 0; i < vm->n_deferred; i++)
		if (vm->deferred[i].due_ms == PK_DUE_PARKED)
			return;
	vm->policy.stalled_ms += pk_monotonic_ms() - vm->policy.parked_since_ms;
	vm->policy.parked_since_ms = 0;
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
	rc->due_ms = pk_monotonic_ms() + PK_RECHECK_DELAY_MS;
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
		uint64_t first, n = pk_vm_range_in_region(vm, i, start, end,
							   &first);
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

/*
 * One read of the uffd that never blocks.  The uffd's file description
 * is shared with the guest, which can clear O_NONBLOCK on it (fcntl
 * F_SETFL) at any time, and eviction reads it with no event pending: a
 * plain read() would then hang the whole loop.  RWF_NOWAIT makes this
 * one read non-blocking whatever the flags say (userfaultfd has
 * read_iter since Linux 6.10).  Older kernels say EOPNOTSUPP: there a
 * zero-timeout poll comes first (a guest that also reads its own uffd
 * could still take the event between the two; only there).
 */
static ssize_t uffd_read_nowait(int uffd, void *buf, size_t len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct pollfd p = { .fd = uffd, .events = POLLIN };
	ssize_t n = preadv2(uffd, &iov, 1, -1, RWF_NOWAIT);

	if (n >= 0 || errno != EOPNOTSUPP)
		return n;
	if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN)) {
		errno = EAGAIN;
		return -1;
	}
	return read(uffd, buf, len);
}

/*
 * After resolve_fault() returned 0: is the page still on its way (a
 * swap-in read)?  Then swapin_resolve() counts its latency, not us.
 */
static int fault_in_flight(const struct pk_vm *vm, uint64_t fault_addr)
{
	uint64_t addr = fault_addr & ~(uint64_t)(PK_PAGE_SIZE - 1);
	const struct pk_vm_region *r = pk_vm_region_of(vm, addr);

	return r && pk_page_busy(&vm->pages, r->first_page +
				 (addr - r->start) / PK_PAGE_SIZE);
}

void pk_fault_handle_events(struct pk_vm *vm)
{
	/* The kernel lets a discarding guest go on as this read takes its
	 * REMOVE event, before handle_remove has recorded it; reading into
	 * the VM's record closes that window for a kill (state.c). */
	struct uffd_msg *msgs = vm->inbox;

	for (;;) {
		ssize_t got = uffd_read_nowait(vm->uffd, msgs,
					       PK_UFFD_READ_BATCH *
						       sizeof(msgs[0]));
		if (got <= 0)
			break; /* EAGAIN: drained */
		size_t n = (size_t)got / sizeof(msgs[0]);
		uint64_t read_ns = pk_metrics_now_ns(); /* metrics.h */
		if (vm->engine->cfg.test_kill_on_remove)
			for (size_t i = 0; i < n; i++)
				if (msgs[i].event == UFFD_EVENT_REMOVE)
					kill(getpid(), SIGKILL);
		for (size_t i = 0; i < n; i++) {
			struct uffd_msg *m = &msgs[i];
			switch (m->event) {
			case UFFD_EVENT_PAGEFAULT:
				if (m->arg.pagefault.flags &
				    UFFD_PAGEFAULT_FLAG_WP) {
					if (handle_wp_fault(vm,
							    m->arg.pagefault.address) < 0)
						defer_fault(vm,
							    m->arg.pagefault.address,
							    m->arg.pagefault.flags,
							    -EAGAIN);
					break;
				}
				vm->stats.faults++;
				vm->engine->host_stats.faults++;
				int err = resolve_fault(
					vm, m->arg.pagefault.address,
					m->arg.pagefault.flags);
				if (err == 0 && !fault_in_flight(vm,
						m->arg.pagefault.address))
					pk_fault_hist_observe(
						&vm->engine->host_stats
							 .fault_latency,
						pk_metrics_now_ns() - read_ns);
				if (err < 0)
					defer_fault(vm,
						    m->arg.pagefault.address,
						    m->arg.pagefault.flags, err);
				else if (err == PK_FAULT_PARKED)
					park_fault(vm,
						   m->arg.pagefault.address,
						   m->arg.pagefault.flags);
				break;
			case UFFD_EVENT_REMOVE:
				handle_remove(vm, m->arg.remove.start,
					      m->arg.remove.end);
				/* Recorded: a restart must not replay it
				 * (the page may be in use again by then).
				 * The table's stores come first. */
				__atomic_signal_fence(__ATOMIC_SEQ_CST);
				m->event = 0;
				break;
			default:
				pk_log_prio(&vm->engine->log, LOG_WARNING, "vm %s: unexpected uffd event %u",
				       vm->name, m->event);
			}
		}
		if (n < PK_UFFD_READ_BATCH)
			break;
	}
	uint64_t next_due = UINT64_MAX;
	pk_fault_retry_deferred(vm, pk_monotonic_ms(), &next_due);
	pk_engine_retry_at(vm->engine, next_due);
}

static void submit_swapins(struct pk_vm *vm)
{
	/* One submission for every swap-in read the batch queued: on a
	 * virtio disk each submission costs a doorbell (a VM exit). */
	if (vm->engine->swap)
		pk_swap_submit(vm->engine->swap);
}

/* A swap-in due for a retry: read its slot again, or copy it again. */
static enum swapin_next swapin_retry(struct pk_vm *vm, struct pk_swapin *op)
{
	struct pk_engine *e = vm->engine;

	if (!op->reread)
		return swapin_resolve(vm, op, op->result);
	if (pk_page_state(&vm->pages, op->idx) != PK_PAGE_SWAPPED)
		return swapin_resolve(vm, op, 0); /* discarded meanwhile */
	if (pk_swap_read(e->swap, op->slot, op->buf_idx,
			 (uint64_t)(uintptr_t)&op->op) < 0) {
		op->due_ms = 0; /* the ring is full: once it drains */
		return SWAPIN_AGAIN;
	}
	op->reread = 0;
	return SWAPIN_WAIT; /* in flight: pk_fault_swapin_done has it */
}

/* Recount what backs off; log the end of an episode once it is over. */
static void retry_episode_check(struct pk_vm *vm)
{
	unsigned deferred_waiting = 0;

	for (unsigned i = 0; i < vm->n_deferred; i++)
		if (vm->deferred[i].backoff_ms)
			deferred_waiting++;
	vm->faults_waiting = deferred_waiting + vm->swapins_waiting;
	if (!vm->retry_episode_ms || vm->faults_waiting)
		return;
	pk_log(&vm->engine->log, "vm %s: faults served again after %llu retries "
	       "over %llu ms", vm->name,
	       (unsigned long long)vm->retry_episode_retries,
	       (unsigned long long)(pk_monotonic_ms() - vm->retry_episode_ms));
	vm->retry_episode_ms = 0;
}

unsigned pk_fault_retry_deferred(struct pk_vm *vm, uint64_t now_ms,
				 uint64_t *next_due_ms)
{
	unsigned n = vm->n_deferred, again = 0, kept = 0;
	struct pk_swapin *retry = vm->swapin_retry;
	struct pk_deferred_fault *d;

	vm->swapin_retry = NULL;
	while (retry) {
		struct pk_swapin *op = retry;
		enum swapin_next next;
		retry = op->next_retry;
		if (op->due_ms > now_ms) {
			next = SWAPIN_WAIT; /* not due yet */
		} else {
			int in_flight = op->reread;
			next = swapin_retry(vm, op);
			if (in_flight && next == SWAPIN_WAIT)
				continue; /* read again: not on the list */
		}
		if (next == SWAPIN_DONE) {
			swapin_free(vm->engine, vm, op);
			continue;
		}
		swapin_queue_retry(vm, op, next);
		if (next == SWAPIN_AGAIN)
			again++;
		else if (op->due_ms < *next_due_ms)
			*next_due_ms = op->due_ms;
	}

	for (unsigned i = 0; i < n; i++) {
		d = &vm->deferred[i];
		if (d->due_ms > now_ms) {
			vm->deferred[kept++] = *d;
		} else {
			int err = d->flags & UFFD_PAGEFAULT_FLAG_WP
					  ? handle_wp_fault(vm, d->addr)
					  : resolve_fault(vm, d->addr, d->flags);
			if (err == 0)
				continue;
			if (err == PK_FAULT_PARKED) {
				d->due_ms = PK_DUE_PARKED;
				vm->deferred[kept++] = *d;
				continue;
			}
			vm->deferred[kept++] = deferred_entry(
				vm, d->addr, d->flags, err, d->backoff_ms);
		}
		d = &vm->deferred[kept - 1];
		if (!d->due_ms)
			again++;
		else if (d->due_ms < *next_due_ms)
			*next_due_ms = d->due_ms;
	}
	vm->n_deferred = kept;
	parked_episode_check(vm);
	retry_episode_check(vm);
	submit_swapins(vm);
	return again;
}

/*
 * Drain: resolve every swapped and merged page of the VM before the guest
 * asks, the way a fault would (a swap-in read, then UFFDIO_COPY; a copy
 * from the canonical copy), so an admin can detach it or uninstall with
 * nothing left in the swap file or the copies.  From the start on, the
 * VM is neither evicted nor merged (vm->drained).  The engine loop calls
 * the step while the drain runs: each step resolves up to
 * PK_DRAIN_STEP pages from a cursor, leaving swap buffers for the
 * guests' own faults; pages busy with a swap-in are passed over, and
 * another pass starts (at most every PK_DRAIN_PASS_MS) until no page is
 * swapped or merged.  A page whose slot cannot be read is poisoned, as
 * for a fault, and counted in the reply.
 */
#define PK_DRAIN_STEP 256u
#define PK_DRAIN_LOOK 65536u /* entries looked at per step */
#define PK_DRAIN_BUF_RESERVE 256u
#define PK_DRAIN_PASS_MS 10u

static uint64_t drain_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

int pk_fault_drain_start(struct pk_vm *vm, int reply_fd, char *reason,
			 size_t reason_len)
{
	if (vm->drain_fd >= 0) {
		snprintf(reason, reason_len, "vm %s is being drained already",
			 vm->name);
		return -EBUSY;
	}
	pk_state_vm_drained(vm);
	vm->drain_fd = reply_fd;
	vm->drain_cursor = 0;
	vm->drain_pass_ms = pk_monotonic_ms();
	vm->drain_start_us = drain_now_us();
	vm->drain_swapins0 = vm->stats.swapins;
	vm->drain_unshared = 0;
	vm->drain_poisoned0 = vm->stats.poisoned;
	/* A reclaim in flight ends with its batches; the queue is dropped. */
	vm->reclaim_left = 0;
	vm->n_share_queue = 0;
	pk_log(&vm->engine->log, "vm %s: draining %llu swapped and %llu merged pages",
	       vm->name,
	       (unsigned long long)vm->pages.count[PK_PAGE_SWAPPED],
	       (unsigned long long)vm->pages.count[PK_PAGE_SHARED]);
	return 0;
}

void pk_fault_drain_end(struct pk_vm *vm, int status, const char *reason)
{
	struct pk_drain_reply r;

	if (vm->drain_fd < 0)
		return;
	memset(&r, 0, sizeof(r));
	pk_msg_header_init(&r.hdr, PK_MSG_DRAIN_REPLY, sizeof(r));
	r.status = status;
	r.pages_swapped_in = vm->stats.swapins - vm->drain_swapins0;
	r.pages_unshared = vm->drain_unshared;
	r.pages_poisoned = vm->stats.poisoned - vm->drain_poisoned0;
	r.elapsed_us = drain_now_us() - vm->drain_start_us;
	snprintf(r.reason, sizeof(r.reason), "%s", reason);
	send(vm->drain_fd, &r, sizeof(r), MSG_NOSIGNAL | MSG_DONTWAIT);
	close(vm->drain_fd);
	vm->drain_fd = -1;
	pk_log(&vm->engine->log, "vm %s: drain %s: %llu pages swapped in, %llu "
	       "unshared, %llu poisoned in %llu ms", vm->name,
	       status ? "stopped" : "done",
	       (unsigned long long)r.pages_swapped_in,
	       (unsigned long long)r.pages_unshared,
	       (unsigned long long)r.pages_poisoned,
	       (unsigned long long)(r.elapsed_us / 1000));
}

void pk_fault_drain_step(struct pk_vm *vm)
{
	struct pk_page_table *pt = &vm->pages;
	struct pk_swap_store *swap = vm->engine->swap;
	unsigned done = 0, looked = 0;

	if (!pt->count[PK_PAGE_SWAPPED] && !pt->count[PK_PAGE_SHARED] &&
	    !vm->n_evicting) {
		pk_fault_drain_end(vm, 0, "ok");
		return;
	}
	/* Bounded both ways: pages resolved, and entries looked at, so a
	 * large guest's table is walked over many loop turns. */
	while (vm->drain_cursor < pt->n_pages && done < PK_DRAIN_STEP &&
	       looked++ < PK_DRAIN_LOOK) {
		uint64_t idx = vm->drain_cursor, addr, off;
		enum pk_page_state st = pk_page_state(pt, idx);

		if ((st != PK_PAGE_SWAPPED && st != PK_PAGE_SHARED) ||
		    pk_page_busy(pt, idx)) {
			vm->drain_cursor++;
			continue;
		}
		pk_vm_page_where(vm, idx, &addr, &off);
		if (st == PK_PAGE_SHARED) {
			if (share_refault(vm, idx, addr) < 0)
				break; /* EAGAIN or no memory: next step */
			vm->drain_unshared++;
		} else {
			if (!swap || pk_swap_bufs_free(swap) <= PK_DRAIN_BUF_RESERVE ||
			    swapin_start(vm, idx, addr, 0) < 0)
				break; /* buffers busy: their completions wake us */
		}
		done++;
		vm->drain_cursor++;
	}
	submit_swapins(vm);
	if (vm->drain_cursor >= pt->n_pages &&
	    pk_monotonic_ms() - vm->drain_pass_ms >= PK_DRAIN_PASS_MS) {
		vm->drain_cursor = 0; /* pages passed over busy: once more */
		vm->drain_pass_ms = pk_monotonic_ms();
	}
}
