/*
 * swap_store.h - the io_uring swap file: slots, checksums, fixed buffers.
 *
 * One store is one swap file of page-sized slots, written and read with
 * io_uring (IORING_OP_WRITE_FIXED / READ_FIXED on a registered file and
 * registered page buffers).  Completions signal an eventfd, so the daemon's
 * epoll loop watches pk_swap_store_event_fd() and calls pk_swap_reap().
 *
 * The file.  pk_swap_store_open() replaces whatever is at path,
 * creates it mode 0600 and preallocates size_bytes with fallocate.  With
 * PK_SWAP_OPEN_KEEP a file already there with the same size is opened as
 * it is (a restarted daemon's slots hold its guests' pages: the caller
 * replays which slots are owned with pk_swap_slot_restore()), and close
 * leaves the file in place.  It is opened O_DIRECT so swap traffic does not fill the
 * host's page cache; a file system that refuses O_DIRECT (EINVAL at open
 * or at the first aligned read) gets buffered I/O instead, reported by
 * pk_swap_store_is_direct().  pk_swap_store_close() unlinks it.
 *
 * Slots.  pk_swap_slot_alloc() returns the lowest allocatable slot, with
 * one owner; pk_swap_slot_ref() adds owners (swap dedup: pages with the
 * same bytes share a slot) and pk_swap_slot_free() drops one.  A slot
 * whose last owner freed it must not keep its old page on disk: either its next owner
 * overwrites it, or pk_swap_store_scrub() (called once a second) punches
 * it at the second scrub after the free, coalesced into runs;
 * pk_swap_store_flush_frees() punches every freed slot at once
 * (swap_slots.h has the ordering rules).
 *
 * Checksums.  The store keeps one XXH3-64 per slot, in memory or in an
 * array the caller gives it (a durable record that outlives the daemon,
 * engine/state.c).  A write's
 * checksum is computed from the buffer when the write is queued and
 * recorded when the write completes successfully; a read whose data does
 * not match the slot's recorded checksum completes with -EBADMSG.  A slot
 * that was never written successfully fails every read with -EBADMSG.
 *
 * Buffers and I/O.  A buffer is a registered, page-aligned page.  The
 * caller takes one with pk_swap_buf_get(), fills it (write) and queues
 * pk_swap_write(), or queues pk_swap_read() into it; pk_swap_submit()
 * sends everything queued in one io_uring_submit (queueing submits on its
 * own when the submission queue is full).  pk_swap_reap() calls done() for
 * each completion; the buffer is the caller's again at that point (read
 * data is in it) until pk_swap_buf_put().  One I/O per buffer at a time.
 *
 * Caller rules: don't read a slot while a write to it is in flight (its
 * checksum is not recorded yet); freeing a slot with I/O in flight is
 * allowed (its punch waits for the I/O), but reading a freed slot is not.
 *
 * Functions return 0 (or a count) or a negative errno.  Not thread-safe:
 * one event-loop thread owns a store.
 */
#ifndef PK_SWAP_STORE_H
#define PK_SWAP_STORE_H

#include <stdint.h>

#define PK_SWAP_PAGE_SIZE 4096u
#define PK_SWAP_DEFAULT_QUEUE_DEPTH 64u
#define PK_SWAP_MAX_QUEUE_DEPTH 1024u
#define PK_SWAP_BUFS_PER_QUEUE_ENTRY 4u /* buffers = queue_depth * this */

/* pk_swap_store_open_flags() flags. */
#define PK_SWAP_OPEN_BUFFERED 0x1u /* don't try O_DIRECT */
#define PK_SWAP_OPEN_KEEP 0x2u	   /* reuse the file at path; never unlink */

/*
 * An I/O error hook for tests (this kernel has no device-mapper error
 * target): after `after` good pages of the chosen kinds, the next `count`
 * pages' I/O completes with -EIO (a run of pages fails whole).  Zero
 * count: off.
 */
struct pk_swap_inject {
	int writes, reads;
	uint64_t after, count;
};

struct pk_swap_open_opts {
	const char *path;
	uint64_t size_bytes;
	unsigned queue_depth;
	unsigned flags;	     /* PK_SWAP_OPEN_* */
	uint64_t *checksums; /* one per slot, the caller's (it outlives the
				store); NULL: the store keeps its own */
	struct pk_swap_inject inject; /* tests only */
};

struct pk_swap_store;

struct pk_swap_stats {
	uint64_t slots_total;
	uint64_t slots_used;	 /* allocated */
	uint64_t slot_extra_refs; /* owners beyond each used slot's first */
	uint64_t slots_dirty;	 /* freed, old page not yet overwritten/punched */
	uint64_t slots_reused_dirty; /* freed slots overwritten, no punch needed */
	uint64_t slots_punched;	 /* punched so far */
	uint64_t punch_calls;	 /* fallocate(PUNCH_HOLE) calls so far */
	uint64_t punch_errors;
	uint64_t writes, reads;	 /* completed */
	uint64_t io_errors;	 /* completions with an I/O error or short I/O */
	uint64_t checksum_errors; /* reads completed with -EBADMSG */
	uint64_t submits;	 /* io_uring_submit calls that sent something */
	uint64_t write_reqs;	 /* write requests queued (a run is one) */
	uint64_t run_writes_fixed;  /* runs written from the registered
				       buffer: no page pinning */
	uint64_t run_writes_pinned; /* runs written by WRITEV (kernel < 6.15,
				       buffers not adjacent) */
	unsigned in_flight;	 /* queued or submitted, not reaped */
	unsigned bufs_total, bufs_free;
	int direct;
	int preallocated; /* fallocate worked (else the file is sparse) */
};

/*
 * Create the swap file at path (replacing any file there) and the ring.
 * size_bytes: a non-zero multiple of the page size.  queue_depth: ring
 * entries, 0 for PK_SWAP_DEFAULT_QUEUE_DEPTH, at most
 * PK_SWAP_MAX_QUEUE_DEPTH.  Registered buffers (queue_depth * 4 pages,
 * registered page by page and once more whole, for runs) count twice
 * against RLIMIT_MEMLOCK for an unprivileged daemon; if that is refused,
 * only the pages are registered and runs go out as WRITEV.
 */
int pk_swap_store_open(struct pk_swap_store **out, const char *path,
		       uint64_t size_bytes, unsigned queue_depth);
int pk_swap_store_open_flags(struct pk_swap_store **out, const char *path,
			     uint64_t size_bytes, unsigned queue_depth,
			     unsigned flags);
/*
 * Everything above, and the checksum array.  With PK_SWAP_OPEN_KEEP, a
 * file at path of another size is -EEXIST (never replaced).
 */
int pk_swap_store_open_opts(struct pk_swap_store **out,
			    const struct pk_swap_open_opts *o);
/*
 * From now on keep the checksums in sums (one per slot, the caller's;
 * the current ones are copied there): a record made after the file.
 */
void pk_swap_store_use_checksums(struct pk_swap_store *store, uint64_t *sums);
/* 1 if KEEP found the previous daemon's file (its slots are replayed). */
int pk_swap_store_reopened(const struct pk_swap_store *store);
/*
 * Restart: one more owner of slot, as a replayed page names it (a free
 * slot becomes used).  -EINVAL: out of range.  Once every owner is
 * replayed, pk_swap_store_restore_done() makes the slots that hold a page
 * (a checksum) but no owner dirty, so the scrub punches them; it returns
 * how many.
 */
int pk_swap_slot_restore(struct pk_swap_store *store, uint64_t slot);
uint64_t pk_swap_store_restore_done(struct pk_swap_store *store);

/*
 * Submit anything queued, wait for all I/O in flight (completions not yet
 * reaped are dropped without calling anyone: reap first if user_data owns
 * memory), unregister, close and (unless KEEP) unlink the file.  NULL is
 * a no-op.
 */
void pk_swap_store_close(struct pk_swap_store *store);

int pk_swap_store_is_direct(const struct pk_swap_store *store);
/* Readable when completions are ready; pk_swap_reap() drains it. */
int pk_swap_store_event_fd(const struct pk_swap_store *store);
void pk_swap_store_stats(const struct pk_swap_store *store,
			 struct pk_swap_stats *st);
uint64_t pk_swap_slots_total(const struct pk_swap_store *store);
uint64_t pk_swap_slots_used(const struct pk_swap_store *store);
unsigned pk_swap_bufs_free(const struct pk_swap_store *store);

/* Slots.  alloc: -ENOSPC when every slot is in use. */
int pk_swap_slot_alloc(struct pk_swap_store *store, uint64_t *slot);
/*
 * Swap dedup: another owner for a used slot (swap_slots.h).  -EINVAL if
 * it is not allocated, -EOVERFLOW at PK_SLOT_REFS_MAX owners.
 */
int pk_swap_slot_ref(struct pk_swap_store *store, uint64_t slot);
/* Owners of a slot, 0 if it is not allocated. */
unsigned pk_swap_slot_refs(const struct pk_swap_store *store, uint64_t slot);
/*
 * Drop one owner; the last one frees the slot.  Double or out-of-range
 * frees are ignored (and return -EINVAL).
 */
int pk_swap_slot_free(struct pk_swap_store *store, uint64_t slot);
/* Punch every freed slot now; returns the number punched or -errno. */
int pk_swap_store_flush_frees(struct pk_swap_store *store);
/*
 * The periodic scrub: punch slots freed before the previous scrub,
 * spending at most budget_ns on it (0: unbounded; the rest waits for the
 * next scrub).  Returns slots punched or -errno.
 */
int pk_swap_store_scrub(struct pk_swap_store *store, uint64_t budget_ns);
/* Recorded XXH3-64 of a slot (0 if never written or out of range). */
uint64_t pk_swap_slot_checksum(const struct pk_swap_store *store,
			       uint64_t slot);

/* Buffers.  get: -EAGAIN when all are taken. */
int pk_swap_buf_get(struct pk_swap_store *store, void **page,
		    unsigned *buf_idx);
void pk_swap_buf_put(struct pk_swap_store *store, unsigned buf_idx);

/*
 * Queue one page of I/O between a held buffer and an allocated slot.
 * -EINVAL: slot not allocated or buffer not held; -EBUSY: the buffer has
 * I/O in flight, or the ring cannot take more.
 */
int pk_swap_write(struct pk_swap_store *store, uint64_t slot,
		  unsigned buf_idx, uint64_t user_data);
int pk_swap_read(struct pk_swap_store *store, uint64_t slot, unsigned buf_idx,
		 uint64_t user_data);
/*
 * Queue one write of n pages (n <= PK_SWAP_RUN_MAX) to the consecutive
 * slots first_slot.. from held buffers buf_idx[0..n): one I/O request
 * instead of n, so eviction runs at the disk's large write bandwidth
 * rather than its 4 KiB IOPS.  The request reads the registered buffers
 * (WRITE_FIXED when buf_idx[] are consecutive, else WRITEV_FIXED where
 * the kernel has it, else WRITEV, which pins each page per write).  Each
 * page still completes on its own with its user_data, and each slot's
 * checksum is recorded when its page is written.  A failed write fails
 * every page of it; after
 * a short one (a file system that filled on the way), the pages it
 * covered are written, the first other page is written again on its
 * own, synchronously, to learn the file's own error (-ENOSPC), and the
 * rest fail with that error (or -EIO if the retry went through).
 * Errors as pk_swap_write().
 */
#define PK_SWAP_RUN_MAX 256u
int pk_swap_write_run(struct pk_swap_store *store, uint64_t first_slot,
		      unsigned n, const unsigned *buf_idx,
		      const uint64_t *user_data);
/*
 * pk_swap_write_run() for a caller that hashed the pages already:
 * csum[k] is XXH3-64 (seed 0) of buffer buf_idx[k]'s bytes, recorded as
 * the slot's checksum instead of hashing the page a second time (the
 * eviction path hashes every page for swap dedup).  A wrong sum is not a
 * silent corruption: the slot then fails its check at swap-in and the
 * page is poisoned.  csum NULL: hash here.
 */
int pk_swap_write_run_sums(struct pk_swap_store *store, uint64_t first_slot,
			   unsigned n, const unsigned *buf_idx,
			   const uint64_t *user_data, const uint64_t *csum);
/* Submit everything queued; returns the number of entries submitted. */
int pk_swap_submit(struct pk_swap_store *store);

/*
 * result: 0, a negative errno for an I/O error (a short transfer is -EIO),
 * or -EBADMSG for a read that fails its checksum.  done() may queue,
 * submit, put buffers and free slots, but must not reap.
 */
typedef void pk_swap_done_fn(void *arg, uint64_t user_data, int result);

/* Drain completions without blocking; returns how many were handled. */
int pk_swap_reap(struct pk_swap_store *store, pk_swap_done_fn *done,
		 void *arg);
/*
 * Submit anything queued and block until at least min_complete
 * completions (capped at the I/O in flight) are ready to reap.
 */
int pk_swap_wait(struct pk_swap_store *store, unsigned min_complete);

#endif
