/*
 * evict.c - evict guest pages to the swap store without losing a write.
 *
 * A reclaim request evicts a VM's pages in batches of up to
 * PK_EVICT_BATCH pages chosen by the victim policy.  One batch per VM is
 * in flight at a time, and each batch follows the order measured safe in
 * FACTS.md (Eviction), for shmem RAM:
 *
 *   1. mark the pages busy, so only this batch decides their fate, and
 *      write-protect them with synchronous UFFDIO_WRITEPROTECT, one ioctl
 *      per contiguous run;
 *   2. copy each page out with pread on the RAM file (never through the
 *      daemon's mapping: reading a punched page there would allocate a
 *      zero page the guest then reads);
 *   3. read the uffd dry: a write-protect fault on a batch page means the
 *      guest wrote it; the page is unprotected at once (waking the guest)
 *      and dropped from the batch;
 *   4. all-zero pages need no write; a page whose bytes the domain keeps
 *      already, as a canonical copy or in a swap slot, takes a reference
 *      instead (swap dedup: a slot is read back and compared first); the
 *      others go to freshly allocated slots through io_uring, all in one
 *      submission;
 *   5. when the writes complete, read the uffd dry again, record each
 *      surviving page's slot (or copy, or the zero state) in its
 *      page-table entry, which is its durable record (state.h), and only
 *      then punch it out of the RAM file.
 *
 * A page the guest wrote at any point after step 1 is kept resident and
 * its slot freed.  A write that races with the punch cannot be lost: the
 * page is still write-protected, so the guest is blocked in a WP fault
 * that the fault path answers with a wake once the page is swapped, and
 * its retry becomes a MISSING fault served from the slot.  A page the
 * guest discards meanwhile (REMOVE) stays removed and its slot is freed.
 *
 * The page-to-slot map is the page table's payload: one entry per page,
 * changed only here and in fault.c, in the VM's record in the run
 * directory, so it outlives the daemon.
 */
#include "engine/vm.h"
#include "engine/swap_dedup.h"
#include "engine/uffd_compat.h"
#include "hashing/canonical_store.h"
#include "hashing/page_hash.h"
#include "hashing/page_zero.h"
#include "swapper/swap_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define PK_EVICT_BATCH 256	/* pages per batch (FACTS.md: >= 64 per run) */
#define PK_EVICT_INFLIGHT 4	/* batches in flight per VM */
#define PK_EVICT_BRIDGE_MAX 64	/* longest gap of evicted pages a run spans */
/* Swap buffers a new batch leaves free, so swap-ins never starve. */
#define PK_EVICT_BUF_RESERVE 256

#define EV_DIRTY 0x1   /* guest wrote the page after protection */
#define EV_REMOVED 0x2 /* guest discarded the page */
#define EV_ZERO 0x4    /* all zeros: no slot written */
#define EV_FAILED 0x8  /* no slot, no buffer, or the write failed */
#define EV_SHARED 0x10 /* holds a reference on canonical copy canon_id */
#define EV_SLOTDUP 0x20 /* holds a reference on an existing slot: no write */
#define EV_UNPUNCHED 0x40 /* its punch failed: the page is still there */

struct pk_evict_page {
	struct pk_io_op op; /* first: the io_uring user_data points here */
	struct pk_evict_batch *batch;
	uint64_t idx;
	uint64_t slot;
	int has_slot;
	unsigned buf_idx;
	void *buf;
	unsigned flags;
	uint64_t canon_id;
	uint64_t hash;	    /* of buf, for swap dedup */
	unsigned vbuf_idx;  /* swap dedup: the candidate slot's bytes */
	void *vbuf;
};

struct pk_evict_batch {
	struct pk_engine *engine;
	struct pk_vm *vm; /* NULL once the VM is gone */
	struct pk_evict_batch *next; /* in vm->evicting */
	unsigned n;
	unsigned io_pending; /* slot writes and dedup reads */
	int nospace;
	int scan; /* the scanner's: no writes, buffers are its scratch */
	struct pk_evict_page pages[PK_EVICT_BATCH];
};

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int wp_range(struct pk_vm *vm, uint64_t addr, uint64_t pages, int on)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = addr, .len = pages * PK_PAGE_SIZE },
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};
	return ioctl(vm->uffd, UFFDIO_WRITEPROTECT, &wp) < 0 ? -errno : 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/*
 * May a run of write-protection or punching span pages [from, to) that
 * are not in the batch?  Only if each is already reclaimed (swapped, zero
 * or shared) and idle: such a page is a hole in the RAM file that carries
 * the uffd-wp marker of its own reclaim, so protecting or punching it
 * again changes nothing.  On a
 * guest whose resident pages are scattered among evicted ones this turns
 * a batch's 64 single-page ioctls and punches (each a TLB shootdown at
 * 40-60 us, FACTS.md) into a few.
 */
static int gap_bridgeable(const struct pk_page_table *pt, uint64_t from,
			  uint64_t to)
{
	if (to - from > PK_EVICT_BRIDGE_MAX)
		return 0;
	for (uint64_t i = from; i < to; i++) {
		enum pk_page_state st = pk_page_state(pt, i);
		if ((st != PK_PAGE_SWAPPED && st != PK_PAGE_ZERO &&
		     st != PK_PAGE_SHARED) ||
		    pk_page_busy(pt, i))
			return 0;
	}
	return 1;
}

typedef int run_fn(struct pk_evict_batch *b, unsigned i, unsigned j,
		   uint64_t addr, uint64_t off, uint64_t pages, int arg);

/* How a run may span pages that are not in the batch. */
enum bridge {
	BRIDGE_NONE,
	BRIDGE_RECLAIMED, /* gaps gap_bridgeable() allows: protect, punch */
	BRIDGE_READ,	  /* any gap up to PK_EVICT_READ_GAP_MAX: reads */
};

/*
 * A copy-out reads gaps of up to this many pages into a junk page rather
 * than start another preadv: a syscall costs more here than copying a
 * few pages (reading a hole allocates nothing), and the scanner's zero
 * and duplicate pages sit among unique ones.
 */
#define PK_EVICT_READ_GAP_MAX 4

static int gap_ok(const struct pk_vm *vm, enum bridge bridge, uint64_t from,
		  uint64_t to)
{
	switch (bridge) {
	case BRIDGE_RECLAIMED:
		return gap_bridgeable(&vm->pages, from, to);
	case BRIDGE_READ:
		return to - from <= PK_EVICT_READ_GAP_MAX;
	default:
		return 0;
	}
}

/*
 * Apply fn to each maximal run of the batch pages whose flags match none
 * of skip: pages [i, j) of the batch, spanning `pages` pages from guest
 * address addr and file offset off, contiguous in both.  A run may also
 * span the gaps that bridge allows.
 */
static int for_each_run(struct pk_evict_batch *b, unsigned skip,
			enum bridge bridge, run_fn *fn, int arg)
{
	struct pk_vm *vm = b->vm;
	unsigned i = 0;
	int err = 0;

	while (i < b->n) {
		uint64_t addr, off, a2, o2, first = b->pages[i].idx, last;
		unsigned j;
		if (b->pages[i].flags & skip) {
			i++;
			continue;
		}
		pk_vm_page_where(vm, first, &addr, &off);
		last = first;
		for (j = i + 1; j < b->n; j++) {
			uint64_t q = b->pages[j].idx;
			if (b->pages[j].flags & skip)
				break;
			if (q != last + 1 && !gap_ok(vm, bridge, last + 1, q))
				break;
			pk_vm_page_where(vm, q, &a2, &o2);
			if (a2 != addr + (q - first) * PK_PAGE_SIZE ||
			    o2 != off + (q - first) * PK_PAGE_SIZE)
				break;
			last = q;
		}
		int e = fn(b, i, j, addr, off, last - first + 1, arg);
		if (e && !err)
			err = e;
		i = j;
	}
	return err;
}

static int run_wp(struct pk_evict_batch *b, unsigned i, unsigned j,
		  uint64_t addr, uint64_t off, uint64_t pages, int on)
{
	(void)i, (void)j, (void)off;
	return wp_range(b->vm, addr, pages, on);
}

static int run_punch(struct pk_evict_batch *b, unsigned i, unsigned j,
		     uint64_t addr, uint64_t off, uint64_t pages, int unused)
{
	(void)addr, (void)unused;
	if (fallocate(b->vm->ram_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)off, (off_t)(pages * PK_PAGE_SIZE)) == 0)
		return 0;
	int err = -errno;
	for (unsigned k = i; k < j; k++)
		b->pages[k].flags |= EV_UNPUNCHED;
	return err;
}

/*
 * Step 2 for one run: one preadv into the buffers of its pages, and of
 * the gap pages between them into the junk page (when there is one).
 */
static int run_copy_out(struct pk_evict_batch *b, unsigned i, unsigned j,
			uint64_t addr, uint64_t off, uint64_t pages, int unused)
{
	struct iovec iov[PK_EVICT_BATCH * (PK_EVICT_READ_GAP_MAX + 1)];
	uint64_t first = b->pages[i].idx;
	unsigned k = i, n = 0;
	ssize_t got;

	(void)addr, (void)unused;
	for (uint64_t q = first; q < first + pages; q++) {
		if (k < j && b->pages[k].idx == q)
			iov[n++] = (struct iovec){ b->pages[k++].buf, PK_PAGE_SIZE };
		else
			iov[n++] = (struct iovec){ b->engine->scan_junk, PK_PAGE_SIZE };
	}
	do
		got = preadv(b->vm->ram_fd, iov, (int)n, (off_t)off);
	while (got < 0 && errno == EINTR);
	for (k = i; k < j; k++)
		if (got < (ssize_t)((b->pages[k].idx - first + 1) * PK_PAGE_SIZE))
			b->pages[k].flags |= EV_FAILED;
	return 0;
}

static void reclaim_reply(struct pk_vm *vm)
{
	struct pk_reclaim_reply r;

	if (vm->reclaim_fd < 0)
		return;
	memset(&r, 0, sizeof(r));
	pk_msg_header_init(&r.hdr, PK_MSG_RECLAIM_REPLY, sizeof(r));
	r.status = vm->reclaim_status;
	r.pages_swapped = vm->reclaim_swapped;
	r.pages_zero = vm->reclaim_zero;
	r.pages_aborted = vm->reclaim_aborted;
	r.elapsed_us = now_us() - vm->reclaim_start_us;
	snprintf(r.reason, sizeof(r.reason), "%s",
		 vm->reclaim_reason ? vm->reclaim_reason : "ok");
	send(vm->reclaim_fd, &r, sizeof(r), MSG_NOSIGNAL | MSG_DONTWAIT);
	close(vm->reclaim_fd);
	vm->reclaim_fd = -1;
	vm->reclaim_left = 0;
}

/* Stop starting batches; the reply goes out when the last one ends. */
static void reclaim_stop(struct pk_vm *vm, int status, const char *reason)
{
	if (!vm->reclaim_status && !vm->reclaim_reason) {
		vm->reclaim_status = status;
		vm->reclaim_reason = reason;
	}
	vm->reclaim_left = 0;
}

static void batch_unlink(struct pk_vm *vm, struct pk_evict_batch *b)
{
	for (struct pk_evict_batch **p = &vm->evicting; *p; p = &(*p)->next)
		if (*p == b) {
			*p = b->next;
			vm->n_evicting--;
			return;
		}
}

static void batch_release(struct pk_evict_batch *b)
{
	struct pk_swap_store *store = b->engine->swap;

	/* Last page first: the buffers go back on the store's free stack so
	 * the next batch takes them in the same, ascending order, and a run
	 * of its slots is one WRITE_FIXED from adjacent buffers. */
	for (unsigned i = b->n; i-- > 0;) {
		struct pk_evict_page *p = &b->pages[i];
		if (p->buf && !b->scan)
			pk_swap_buf_put(store, p->buf_idx);
		if (p->vbuf)
			pk_swap_buf_put(store, p->vbuf_idx);
		if (p->has_slot)
			pk_swap_slot_put(b->engine, p->slot);
	}
	free(b);
}

static void evict_next_batch(struct pk_vm *vm);

/*
 * Step 5: the writes are done; record, punch, or give pages back.
 * Does not start the next batch: the callers loop, so no recursion
 * builds up.
 *
 * Each surviving page's entry is set (ZERO, SHARED(copy) or
 * SWAPPED(slot)) before its punch: the entry is its durable record
 * (state.h), so a daemon killed between the two finds the page still in
 * the RAM file, which then wins.  A punch that fails (the file refused
 * it) puts its pages back: resident, unprotected, slot or copy let go.
 */
static void batch_finish(struct pk_evict_batch *b)
{
	struct pk_vm *vm = b->vm;
	struct pk_page_table *pt;
	int punch_err;

	if (!vm) { /* the guest went away meanwhile */
		batch_release(b);
		return;
	}
	pt = &vm->pages;
	/* Writes the guest made while the I/O ran show up as WP faults. */
	pk_fault_handle_events(vm);

	for (unsigned i = 0; i < b->n; i++) {
		struct pk_evict_page *p = &b->pages[i];
		if ((p->flags & (EV_FAILED | EV_DIRTY | EV_REMOVED)) == EV_FAILED) {
			/* No buffer, no slot, or the write failed: still
			 * protected, so give it back.  Dirty ones were
			 * unprotected when the fault arrived. */
			uint64_t addr, off;
			pk_vm_page_where(vm, p->idx, &addr, &off);
			wp_range(vm, addr, 1, 0);
		}
		if (p->flags & (EV_REMOVED | EV_FAILED | EV_DIRTY)) {
			if (p->flags & EV_SHARED) {
				pk_canon_put(vm->domain->store, p->canon_id);
				p->flags &= ~EV_SHARED;
			}
			continue;
		}
		/* The record, before the punch. */
		if (p->flags & EV_ZERO)
			pk_page_set(pt, p->idx, PK_PAGE_ZERO, 0);
		else if (p->flags & EV_SHARED)
			pk_page_set(pt, p->idx, PK_PAGE_SHARED, p->canon_id);
		else {
			pk_page_set(pt, p->idx, PK_PAGE_SWAPPED, p->slot);
			if (!(p->flags & EV_SLOTDUP)) /* indexed below */
				pk_swap_dedup_prefetch(vm->engine, p->hash);
		}
	}
	punch_err = for_each_run(b, EV_DIRTY | EV_REMOVED | EV_FAILED,
				 BRIDGE_RECLAIMED, run_punch, 0);

	for (unsigned i = 0; i < b->n; i++) {
		struct pk_evict_page *p = &b->pages[i];
		if (p->flags & (EV_REMOVED | EV_FAILED)) {
			/* Removed stays removed; failed stays resident. */
		} else if (p->flags & EV_DIRTY) {
			vm->stats.evict_aborts++;
			vm->reclaim_aborted += !b->scan;
		} else if (p->flags & EV_UNPUNCHED) {
			/* Still in the guest: resident again. */
			uint64_t addr, off;
			if (p->flags & EV_SHARED)
				pk_canon_put(vm->domain->store, p->canon_id);
			pk_page_set(pt, p->idx, PK_PAGE_RESIDENT, 0);
			pk_vm_page_where(vm, p->idx, &addr, &off);
			wp_range(vm, addr, 1, 0);
			vm->stats.punch_failures++;
		} else if (p->flags & EV_ZERO) {
			vm->stats.zero_reclaimed++;
			vm->reclaim_zero += !b->scan;
		} else if (p->flags & EV_SHARED) {
			/* The page table holds the reference now. */
			if (b->scan) {
				vm->stats.share_merged++;
			} else {
				vm->stats.swap_dedup++;
				vm->reclaim_swapped++;
			}
		} else {
			p->has_slot = 0; /* the page table owns it now */
			if (p->flags & EV_SLOTDUP) {
				vm->stats.swap_dedup++;
				vm->stats.swap_dedup_slots++;
			} else {
				pk_swap_dedup_add(vm, p->slot);
				vm->engine->host_stats.swap_written_pages++;
			}
			vm->stats.evictions++;
			vm->reclaim_swapped++;
		}
		pk_page_set_busy(pt, p->idx, 0);
	}
	if (punch_err) {
		if (!vm->punch_error_logged++)
			pk_log_prio(&vm->engine->log, LOG_ERR, "vm %s: cannot punch pages out of its "
			       "RAM file (%s): they stay resident; eviction and "
			       "merging of this VM stop here", vm->name,
			       strerror(-punch_err));
		reclaim_stop(vm, punch_err, "punching the RAM file failed");
	}
	if (b->nospace)
		reclaim_stop(vm, -ENOSPC, "swap file full");
	batch_unlink(vm, b);
	batch_release(b);
}

/* Give page p a fresh slot and queue its write.  0, or EV_FAILED set. */
static int queue_write(struct pk_evict_batch *b, struct pk_evict_page *p)
{
	struct pk_engine *e = b->engine;

	if (pk_swap_slot_alloc(e->swap, &p->slot) < 0) {
		p->flags |= EV_FAILED;
		b->nospace = 1;
		return -ENOSPC;
	}
	p->has_slot = 1;
	p->op.kind = PK_IO_EVICT_WRITE;
	if (pk_swap_write(e->swap, p->slot, p->buf_idx,
			  (uint64_t)(uintptr_t)&p->op) < 0) {
		p->flags |= EV_FAILED;
		return -EIO;
	}
	b->io_pending++;
	return 0;
}

/*
 * Give pages[0..n) fresh slots and queue their writes: the allocator
 * hands out the lowest free slots, so a batch's slots are mostly
 * consecutive, and each run of consecutive slots goes out as one write
 * (pk_swap_write_run).  Pages without a slot or whose write cannot be
 * queued are EV_FAILED.
 */
static void queue_writes(struct pk_evict_batch *b, struct pk_evict_page **pages,
			 unsigned n)
{
	struct pk_engine *e = b->engine;
	unsigned got = 0;

	for (; got < n; got++) {
		struct pk_evict_page *p = pages[got];
		if (pk_swap_slot_alloc(e->swap, &p->slot) < 0) {
			b->nospace = 1;
			break;
		}
		p->has_slot = 1;
		p->op.kind = PK_IO_EVICT_WRITE;
	}
	for (unsigned k = got; k < n; k++)
		pages[k]->flags |= EV_FAILED;
	for (unsigned i = 0; i < got;) {
		unsigned bufs[PK_EVICT_BATCH], j = i;
		uint64_t ud[PK_EVICT_BATCH], sums[PK_EVICT_BATCH];
		while (j < got && pages[j]->slot == pages[i]->slot + (j - i)) {
			bufs[j - i] = pages[j]->buf_idx;
			ud[j - i] = (uint64_t)(uintptr_t)&pages[j]->op;
			sums[j - i] = pages[j]->hash;
			j++;
		}
		/* The dedup hash is the slot's checksum (XXH3-64) unless a
		 * test build truncates it (PK_HASH_BITS): then the store
		 * hashes again. */
		if (pk_swap_write_run_sums(e->swap, pages[i]->slot, j - i, bufs,
					   ud, PK_HASH_MASK == UINT64_MAX
						   ? sums : NULL) < 0)
			for (unsigned k = i; k < j; k++)
				pages[k]->flags |= EV_FAILED;
		else
			b->io_pending += j - i;
		i = j;
	}
}

/*
 * Swap dedup against a slot: a slot of the domain that may hold the same
 * bytes is read back into a second buffer (verify_done compares).  1 if
 * the read is queued.
 */
static int verify_start(struct pk_evict_batch *b, struct pk_evict_page *p)
{
	struct pk_engine *e = b->engine;
	uint64_t cand;

	if (pk_swap_dedup_find(b->vm, p->hash, &cand) < 0)
		return 0;
	if (pk_swap_buf_get(e->swap, &p->vbuf, &p->vbuf_idx) < 0) {
		p->vbuf = NULL;
		return 0;
	}
	p->op.kind = PK_IO_EVICT_VERIFY;
	p->slot = cand;
	if (pk_swap_read(e->swap, cand, p->vbuf_idx,
			 (uint64_t)(uintptr_t)&p->op) < 0) {
		pk_swap_buf_put(e->swap, p->vbuf_idx);
		p->vbuf = NULL;
		return 0;
	}
	b->io_pending++;
	return 1;
}

/*
 * The candidate slot's bytes are in vbuf (checksummed by the store).  Equal
 * to the page: take a reference on the slot, which must still be in use
 * (its last owner may have let it go while the read ran; the store keeps
 * such a slot from being reused until the read ends, so "still in use"
 * means still the same bytes).  Otherwise write the page to a slot of its
 * own after all.  1 if a write is now pending instead.
 */
static int verify_done(struct pk_evict_batch *b, struct pk_evict_page *p,
		       int result)
{
	struct pk_engine *e = b->engine;
	int same = result == 0 && memcmp(p->buf, p->vbuf, PK_PAGE_SIZE) == 0;

	pk_swap_buf_put(e->swap, p->vbuf_idx);
	p->vbuf = NULL;
	if (!b->vm || p->flags & (EV_DIRTY | EV_REMOVED))
		return 0; /* nothing to store any more */
	if (same && pk_swap_slot_ref(e->swap, p->slot) == 0) {
		p->has_slot = 1;
		p->flags |= EV_SLOTDUP;
		return 0;
	}
	if (!same)
		b->vm->stats.swap_dedup_misses++;
	if (queue_write(b, p) < 0)
		return 0;
	pk_swap_submit(e->swap);
	return 1;
}

void pk_evict_io_done(struct pk_engine *e, struct pk_io_op *op, int result)
{
	struct pk_evict_page *p = (struct pk_evict_page *)op;
	struct pk_evict_batch *b = p->batch;
	struct pk_vm *vm = b->vm;

	b->io_pending--;
	if (op->kind == PK_IO_EVICT_VERIFY) {
		if (verify_done(b, p, result))
			return;
	} else if (result < 0) {
		/* The page stays in the guest (its write protection goes in
		 * batch_finish); eviction of this VM stops, said once. */
		p->flags |= EV_FAILED;
		e->swap_write_errors++;
		if (vm) {
			vm->stats.swap_write_errors++;
			if (!vm->reclaim_status && !vm->reclaim_reason)
				pk_log_prio(&e->log, LOG_ERR, "vm %s: writing the swap file failed "
				       "(%s): eviction stops, the pages stay in "
				       "the guest", vm->name, strerror(-result));
			reclaim_stop(vm, result, result == -ENOSPC
				     ? "the swap file's file system is full"
				     : "writing the swap file failed");
		}
	}
	if (b->io_pending)
		return;
	batch_finish(b);
	if (vm)
		evict_next_batch(vm);
}

/*
 * Swap dedup: when the domain already keeps a canonical copy of the
 * page's bytes (memcmp-verified), the page takes a reference on it and
 * becomes SHARED instead of being written.  Costs a hash per evicted page
 * while the domain has copies.
 */
static int join_canonical(struct pk_vm *vm, struct pk_evict_page *p)
{
	struct pk_canon_store *store = vm->domain ? vm->domain->store : NULL;
	struct pk_canon_stats st;

	if (!store)
		return 0;
	pk_canon_stats(store, &st);
	if (!st.frames ||
	    pk_canon_get(store, p->buf, p->hash, &p->canon_id) < 0)
		return 0;
	p->flags |= EV_SHARED;
	return 1;
}

/* Steps 1-4 for one batch.  Returns 0 when nothing was left to evict. */
static int batch_start(struct pk_vm *vm, unsigned want)
{
	struct pk_engine *e = vm->engine;
	struct pk_evict_batch *b;
	uint64_t idx[PK_EVICT_BATCH];
	unsigned n;
	int err;

	if (want > PK_EVICT_BATCH)
		want = PK_EVICT_BATCH;
	n = e->victim_policy(&vm->pages, idx, want, &e->rng);
	if (n == 0)
		return 0;
	qsort(idx, n, sizeof(idx[0]), cmp_u64);
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->engine = e;
	b->vm = vm;
	b->n = n;
	for (unsigned i = 0; i < n; i++) {
		b->pages[i].op.kind = PK_IO_EVICT_WRITE;
		b->pages[i].batch = b;
		b->pages[i].idx = idx[i];
		pk_page_set_busy(&vm->pages, idx[i], 1);
	}
	b->next = vm->evicting;
	vm->evicting = b;
	vm->n_evicting++;

	/* 1. Protect. */
	err = for_each_run(b, 0, BRIDGE_RECLAIMED, run_wp, 1);
	if (err) {
		/* EAGAIN: a REMOVE is in flight.  Undo and let the caller
		 * retry after the events are read. */
		for_each_run(b, 0, BRIDGE_NONE, run_wp, 0);
		for (unsigned i = 0; i < n; i++)
			pk_page_set_busy(&vm->pages, idx[i], 0);
		batch_unlink(vm, b);
		free(b);
		return err;
	}

	/* 2. Copy out, one preadv per contiguous run. */
	for (unsigned i = 0; i < n; i++) {
		struct pk_evict_page *p = &b->pages[i];
		if (pk_swap_buf_get(e->swap, &p->buf, &p->buf_idx) < 0) {
			p->buf = NULL;
			p->flags |= EV_FAILED;
		}
	}
	for_each_run(b, EV_FAILED, BRIDGE_NONE, run_copy_out, 0);

	/* 3. Any write so far shows up as a WP fault now. */
	pk_fault_handle_events(vm);

	/* 4. Zero pages need no I/O; the rest go out in one submission,
	 * consecutive slots as one write each. */
	unsigned n_write = 0;
	struct pk_evict_page *to_write[PK_EVICT_BATCH];
	for (unsigned i = 0; i < n; i++) {
		struct pk_evict_page *p = &b->pages[i];
		if (p->flags & (EV_FAILED | EV_DIRTY | EV_REMOVED))
			continue;
		if (pk_page_is_zero(p->buf, PK_PAGE_SIZE)) {
			p->flags |= EV_ZERO;
			continue;
		}
		/* Swap dedup: the bytes may be stored already.  All hashes
		 * first, each prefetching its index line, so the lookups
		 * below overlap their cache misses. */
		p->hash = pk_page_hash(p->buf);
		pk_swap_dedup_prefetch(e, p->hash);
	}
	for (unsigned i = 0; i < n; i++) {
		struct pk_evict_page *p = &b->pages[i];
		if (p->flags & (EV_FAILED | EV_DIRTY | EV_REMOVED | EV_ZERO))
			continue;
		if (join_canonical(vm, p) || verify_start(b, p))
			continue;
		to_write[n_write++] = p;
	}
	queue_writes(b, to_write, n_write);
	if (b->io_pending)
		pk_swap_submit(e->swap);
	else
		batch_finish(b);
	return 1;
}

/*
 * The scanner's reclaim of entries[0..n): pages it found stable over
 * its passes, either all zeros or (tagged may_share) duplicates of other
 * pages in the VM's sharing domain.  The same protocol as a swap batch,
 * minus the writes: protect, copy out, drop the pages the guest wrote,
 * then look at the bytes really there.  All zeros: the page becomes ZERO,
 * served back by UFFDIO_ZEROPAGE.  Otherwise, if may_share, it takes a reference
 * on the domain's canonical copy of exactly those bytes (found by hash,
 * proved by memcmp, made from this copy if none exists) and becomes
 * SHARED, served back by UFFDIO_COPY from the copy.  Any other page is
 * unprotected and stays resident.  Pages are punched only after a second
 * look at the events, in batch_finish.  Synchronous: no I/O is involved.
 * Returns the number of pages reclaimed, or -EAGAIN (a REMOVE is in
 * flight: the scanner tries again next pass).
 */
int pk_evict_scan_pages(struct pk_vm *vm, const uint64_t *entries,
			unsigned n, void *scratch)
{
	struct pk_evict_batch *b;
	uint64_t sorted[PK_EVICT_BATCH];
	uint64_t before = vm->stats.zero_reclaimed + vm->stats.share_merged;
	bool may_share[PK_EVICT_BATCH];

	if (n == 0 || vm->anon || vm->drained)
		return 0;
	if (n > PK_EVICT_BATCH)
		n = PK_EVICT_BATCH;
	/* Runs and batch_page() want the pages in table order (the tag is
	 * the low bit, so the entries sort as their pages do). */
	memcpy(sorted, entries, n * sizeof(*entries));
	qsort(sorted, n, sizeof(*sorted), cmp_u64);
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->engine = vm->engine;
	b->vm = vm;
	b->scan = 1;
	for (unsigned i = 0; i < n; i++) {
		struct pk_evict_page *p = &b->pages[b->n];
		uint64_t idx = sorted[i] >> 1;
		if (pk_page_state(&vm->pages, idx) != PK_PAGE_RESIDENT ||
		    pk_page_busy(&vm->pages, idx))
			continue; /* changed since it was queued, or a repeat */
		p->batch = b;
		p->idx = idx;
		p->buf = (char *)scratch + (size_t)b->n * PK_PAGE_SIZE;
		may_share[b->n] = sorted[i] & 1;
		pk_page_set_busy(&vm->pages, idx, 1);
		b->n++;
	}
	if (b->n == 0) {
		free(b);
		return 0;
	}
	b->next = vm->evicting;
	vm->evicting = b;
	vm->n_evicting++;
	if (for_each_run(b, 0, BRIDGE_RECLAIMED, run_wp, 1) < 0) {
		for_each_run(b, 0, BRIDGE_NONE, run_wp, 0);
		for (unsigned i = 0; i < b->n; i++)
			pk_page_set_busy(&vm->pages, b->pages[i].idx, 0);
		batch_unlink(vm, b);
		free(b);
		return -EAGAIN;
	}
	for_each_run(b, 0, BRIDGE_READ, run_copy_out, 0);
	pk_fault_handle_events(vm);
	for (unsigned i = 0; i < b->n; i++) {
		struct pk_evict_page *p = &b->pages[i];
		bool is_new;
		if (p->flags & (EV_FAILED | EV_DIRTY | EV_REMOVED))
			continue;
		if (pk_page_is_zero(p->buf, PK_PAGE_SIZE)) {
			p->flags |= EV_ZERO;
		} else if (may_share[i] && vm->domain &&
			   pk_canon_get_or_add(vm->domain->store, p->buf,
					       pk_page_hash(p->buf),
					       &p->canon_id, &is_new) == 0) {
			p->flags |= EV_SHARED;
		} else {
			/* Kept: unprotected by batch_finish. */
			p->flags |= EV_FAILED;
		}
	}
	batch_finish(b);
	return (int)(vm->stats.zero_reclaimed + vm->stats.share_merged - before);
}

/*
 * Keep up to PK_EVICT_INFLIGHT batches of the VM's reclaim in flight, so
 * the write-protect, copy and punch work of one batch overlaps the disk
 * writes of the others; reply once the reclaim is done and the last
 * batch has finished.
 */
static void evict_next_batch(struct pk_vm *vm)
{
	while (vm->reclaim_left && vm->n_evicting < PK_EVICT_INFLIGHT) {
		if (pk_swap_bufs_free(vm->engine->swap) <
		    PK_EVICT_BATCH + PK_EVICT_BUF_RESERVE) {
			/* Other VMs' batches hold the buffers: retried from
			 * the engine loop. */
			if (!vm->n_evicting)
				vm->engine->evict_pending = 1;
			return;
		}
		unsigned want = vm->reclaim_left > PK_EVICT_BATCH
					? PK_EVICT_BATCH
					: (unsigned)vm->reclaim_left;
		int r;
		/* Counted before the start: a batch that finishes at once
		 * may end the reclaim (swap file full). */
		vm->reclaim_left -= want;
		r = batch_start(vm, want);
		if (r == -EAGAIN) {
			/* Retried from the engine loop once events are read. */
			vm->reclaim_left += want;
			vm->engine->evict_pending = 1;
			return;
		}
		if (r < 0)
			reclaim_stop(vm, r, "eviction failed");
		else if (r == 0)
			reclaim_stop(vm, 0, "no more resident pages");
	}
	if (!vm->reclaim_left && !vm->n_evicting) {
		pk_swap_dedup_unreserve(vm->engine);
		reclaim_reply(vm);
	}
}

void pk_evict_resume(struct pk_vm *vm)
{
	if (vm->reclaim_left)
		evict_next_batch(vm);
}

int pk_reclaim_start(struct pk_vm *vm, uint64_t pages, int reply_fd,
		     char *reason, size_t reason_len)
{
	if (!vm->engine->swap) {
		snprintf(reason, reason_len, "the daemon runs without a swap file");
		return -EOPNOTSUPP;
	}
	if (vm->anon) {
		snprintf(reason, reason_len,
			 "eviction of private anonymous RAM needs the in-guest "
			 "agent (not built yet)");
		return -EOPNOTSUPP;
	}
	if (vm->drained) {
		snprintf(reason, reason_len, "vm %s is drained (pagekeeper "
			 "drain): its pages are not evicted any more", vm->name);
		return -EPERM;
	}
	if (vm->reclaim_fd >= 0 || vm->reclaim_left || vm->n_evicting) {
		snprintf(reason, reason_len, "a reclaim of vm %s is running",
			 vm->name);
		return -EBUSY;
	}
	vm->reclaim_fd = reply_fd;
	vm->reclaim_left = pages;
	vm->reclaim_status = 0;
	vm->reclaim_reason = NULL;
	vm->reclaim_start_us = now_us();
	vm->reclaim_swapped = vm->reclaim_zero = vm->reclaim_aborted = 0;
	/* Room for what it can evict: no more than is resident. */
	pk_swap_dedup_reserve(vm->engine,
			      pages < vm->pages.count[PK_PAGE_RESIDENT]
				      ? pages : vm->pages.count[PK_PAGE_RESIDENT]);
	evict_next_batch(vm);
	return 0;
}

/* The batch page for table page idx, if idx is in a batch in flight. */
static struct pk_evict_page *batch_page(struct pk_vm *vm, uint64_t idx)
{
	if (!pk_page_busy(&vm->pages, idx))
		return NULL;
	for (struct pk_evict_batch *b = vm->evicting; b; b = b->next) {
		if (idx < b->pages[0].idx || idx > b->pages[b->n - 1].idx)
			continue; /* pages are sorted */
		for (unsigned i = 0; i < b->n; i++)
			if (b->pages[i].idx == idx)
				return &b->pages[i];
	}
	return NULL;
}

int pk_evict_on_wp_fault(struct pk_vm *vm, uint64_t idx)
{
	struct pk_evict_page *p = batch_page(vm, idx);

	if (!p)
		return 0;
	p->flags |= EV_DIRTY;
	return 1;
}

void pk_evict_on_remove(struct pk_vm *vm, uint64_t idx)
{
	struct pk_evict_page *p = batch_page(vm, idx);

	if (p)
		p->flags |= EV_REMOVED;
}

void pk_evict_vm_gone(struct pk_vm *vm)
{
	while (vm->evicting) {
		struct pk_evict_batch *b = vm->evicting;
		vm->evicting = b->next;
		b->vm = NULL;
		/* Dedup references go back now: the domain may not outlive
		 * the VM, and the batch's writes may. */
		for (unsigned i = 0; i < b->n; i++)
			if (b->pages[i].flags & EV_SHARED) {
				pk_canon_put(vm->domain->store,
					     b->pages[i].canon_id);
				b->pages[i].flags &= ~EV_SHARED;
			}
		if (!b->io_pending)
			batch_release(b);
	}
	vm->n_evicting = 0;
	if (vm->reclaim_fd >= 0) {
		vm->reclaim_status = -ESRCH;
		vm->reclaim_reason = "the VM went away";
		reclaim_reply(vm);
	}
}
