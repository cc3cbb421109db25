/*
 * swap_store.c - io_uring swap file with per-slot XXH3 checksums
 * (see swap_store.h).
 *
 * How: one io_uring with the swap file registered as fixed file 0 and a
 * pool of page buffers registered as fixed buffers (one mmap, one iovec
 * per page, and the whole pool once more, so a run of pages from anywhere
 * in it is one WRITE_FIXED or WRITEV_FIXED).  Each buffer has at most
 * one I/O in flight, so the buffer index is the CQE's user_data and indexes the op record holding the
 * caller's user_data, the slot and the write's checksum.  An eventfd is
 * registered with the ring for the daemon's epoll loop; reaping reads it
 * first and then drains the CQ, so a completion that races the drain
 * re-arms the eventfd instead of being missed.
 *
 * Why: FACTS.md "Disk": a 4 KiB O_DIRECT read at QD1 costs ~65 us, and
 * QD32 gives 110-140K IOPS, so throughput comes from many pages in flight
 * per submission, not from SQPOLL (slower here) or IOPOLL (unavailable).
 * Fixed files and buffers save the per-I/O fget and page pinning: a run
 * written with plain WRITEV pins and unpins each of its pages in the
 * loop's thread (gup, ~5% of an eviction's CPU), so runs go out as
 * WRITE_FIXED when their buffers are adjacent and as WRITEV_FIXED
 * (Linux >= 6.15, probed) otherwise; WRITEV remains for older kernels.
 *
 * Freed slots are punched with a synchronous fallocate from the scrub
 * (swap_slots.h says when).  On ext4 a punch waits for direct I/O in
 * flight on the inode, so each punch call can stall the caller for about
 * one I/O latency: the scrub runs once a second within a time budget, and a freed slot is reused (overwritten) rather than punched
 * whenever the allocator gets to it first.
 */
#include "swapper/swap_store.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "swapper/swap_slots.h"

/*
 * Linux 6.15's vectored write from registered buffers; liburing 2.3's
 * headers predate it.  Used only when the ring's probe lists it.
 */
#ifdef IORING_OP_WRITEV_FIXED
#define PK_IORING_OP_WRITEV_FIXED IORING_OP_WRITEV_FIXED
#else
#define PK_IORING_OP_WRITEV_FIXED 61
#endif

enum buf_state { BUF_FREE = 0, BUF_HELD, BUF_IO };
enum op_kind { OP_WRITE = 1, OP_READ };

struct buf_op {
	uint64_t user_data;
	uint64_t slot;
	uint64_t csum; /* write: checksum of the data being written */
	struct iovec *run_iov; /* a run's head: its iovecs (freed at the end) */
	unsigned next;	       /* in a run: the next page's buffer */
	unsigned run_len;      /* a run's head: pages in it (0: one page) */
	unsigned run_mark;     /* pk_swap_write_run_sums()'s duplicate check */
	uint8_t state; /* enum buf_state */
	uint8_t kind;  /* enum op_kind while state == BUF_IO */
};

struct pk_swap_store {
	struct io_uring ring;
	int ring_ok;
	int fd, efd;
	int direct, preallocated;
	char *path;
	uint64_t size;
	unsigned flags;	 /* PK_SWAP_OPEN_* */
	int reopened;	 /* KEEP found a file of the right size there */
	struct pk_swap_slots slots;
	uint64_t *csum; /* per slot: XXH3-64 of the last completed write */
	int own_csum;	/* csum is ours (else the caller's durable record) */
	uint8_t *bufmem;
	unsigned n_bufs;
	struct buf_op *ops;   /* per buffer */
	unsigned *free_bufs;  /* stack of free buffer indexes */
	unsigned n_free;
	unsigned run_mark;    /* the last write run's mark */
	unsigned in_flight;   /* queued or submitted, not reaped */
	unsigned reqs_in_flight; /* their requests (a run is one) */
	int whole_buf;		 /* the pool is registered buffer n_bufs too */
	int writev_fixed;	 /* the kernel has IORING_OP_WRITEV_FIXED */
	uint64_t writes, reads, io_errors, checksum_errors, submits;
	uint64_t write_reqs, run_writes_fixed, run_writes_pinned;
	struct pk_swap_inject inject; /* the tests' I/O error hook */
};

static int punch(void *arg, uint64_t first, uint64_t count)
{
	struct pk_swap_store *s = arg;

	if (fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)(first * PK_SWAP_PAGE_SIZE),
		      (off_t)(count * PK_SWAP_PAGE_SIZE)) < 0)
		return -errno;
	/* A punched slot holds no page: a restart has nothing to scrub. */
	memset(&s->csum[first], 0, count * sizeof(*s->csum));
	return 0;
}

/*
 * KEEP: open the file a previous daemon left at path, if it has exactly
 * the size asked for.  0 and s->fd set; 1: there is no such file.
 */
static int reopen_file(struct pk_swap_store *s)
{
	struct stat st;

	for (;;) {
		s->fd = open(s->path, O_RDWR | O_CLOEXEC | (s->direct ? O_DIRECT : 0));
		if (s->fd >= 0)
			break;
		if (errno == EINVAL && s->direct) {
			s->direct = 0;
			continue;
		}
		return errno == ENOENT ? 1 : -errno;
	}
	if (fstat(s->fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != s->size) {
		close(s->fd);
		s->fd = -1;
		return -EEXIST; /* the caller decides; never replaced here */
	}
	s->reopened = 1;
	return 0;
}

/* Replace the file at path with a fresh one; O_DIRECT unless told not. */
static int create_file(struct pk_swap_store *s, unsigned flags)
{
	int oflags = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC;

	s->direct = !(flags & PK_SWAP_OPEN_BUFFERED);
	if (flags & PK_SWAP_OPEN_KEEP) {
		int r = reopen_file(s);
		if (r <= 0)
			return r;
	}
	for (;;) {
		if (unlink(s->path) < 0 && errno != ENOENT)
			return -errno;
		s->fd = open(s->path, oflags | (s->direct ? O_DIRECT : 0), 0600);
		if (s->fd >= 0)
			break;
		/* The file may exist now: open refuses O_DIRECT after creating. */
		if (errno == EINVAL && s->direct) {
			s->direct = 0;
			continue;
		}
		return -errno;
	}
	if (fchmod(s->fd, 0600) < 0)
		return -errno;
	if (fallocate(s->fd, 0, 0, (off_t)s->size) == 0) {
		s->preallocated = 1;
	} else if (errno == EOPNOTSUPP) {
		if (ftruncate(s->fd, (off_t)s->size) < 0)
			return -errno;
	} else {
		return -errno;
	}
	return 0;
}

/*
 * Some file systems accept O_DIRECT at open and refuse it on I/O; find out
 * now with one aligned read, and fall back to buffered I/O.
 */
static int probe_direct(struct pk_swap_store *s)
{
	int fl;

	if (!s->direct)
		return 0;
	if (pread(s->fd, s->bufmem, PK_SWAP_PAGE_SIZE, 0) == PK_SWAP_PAGE_SIZE)
		return 0;
	if (errno != EINVAL)
		return -errno;
	fl = fcntl(s->fd, F_GETFL);
	if (fl < 0 || fcntl(s->fd, F_SETFL, fl & ~O_DIRECT) < 0)
		return -errno;
	s->direct = 0;
	return 0;
}

static int setup_bufs(struct pk_swap_store *s, unsigned queue_depth)
{
	size_t len;

	s->n_bufs = queue_depth * PK_SWAP_BUFS_PER_QUEUE_ENTRY;
	len = (size_t)s->n_bufs * PK_SWAP_PAGE_SIZE;
	s->bufmem = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s->bufmem == MAP_FAILED) {
		s->bufmem = NULL;
		return -ENOMEM;
	}
	s->ops = calloc(s->n_bufs, sizeof(*s->ops));
	s->free_bufs = calloc(s->n_bufs, sizeof(*s->free_bufs));
	if (!s->ops || !s->free_bufs)
		return -ENOMEM;
	/* Stack with buffer 0 on top. */
	for (unsigned i = 0; i < s->n_bufs; i++)
		s->free_bufs[i] = s->n_bufs - 1 - i;
	s->n_free = s->n_bufs;
	return 0;
}

static int setup_ring(struct pk_swap_store *s, unsigned queue_depth)
{
	struct io_uring_params p = { 0 };
	struct io_uring_probe *probe;
	struct iovec *iov;
	int err;

	/* Every buffer may be in flight at once: size the CQ for that. */
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = s->n_bufs;
	err = io_uring_queue_init_params(queue_depth, &s->ring, &p);
	if (err < 0)
		return err;
	s->ring_ok = 1;
	err = io_uring_register_files(&s->ring, &s->fd, 1);
	if (err < 0)
		return err;
	/* Each page its own registered buffer (index = buffer), as single
	 * reads and writes use them, and all of them once more as buffer
	 * n_bufs: a run's pages go out from that one by one WRITE_FIXED
	 * (adjacent buffers) or WRITEV_FIXED, with no page pinning per
	 * write.  Single pages keep their own buffer, so the swap-in read
	 * path is what it was (reads from the whole-pool buffer measured
	 * p50 +5 us in one noisy run: not pursued). */
	iov = calloc(s->n_bufs + 1, sizeof(*iov));
	if (!iov)
		return -ENOMEM;
	for (unsigned i = 0; i < s->n_bufs; i++) {
		iov[i].iov_base = s->bufmem + (size_t)i * PK_SWAP_PAGE_SIZE;
		iov[i].iov_len = PK_SWAP_PAGE_SIZE;
	}
	iov[s->n_bufs].iov_base = s->bufmem;
	iov[s->n_bufs].iov_len = (size_t)s->n_bufs * PK_SWAP_PAGE_SIZE;
	err = io_uring_register_buffers(&s->ring, iov, s->n_bufs + 1);
	if (err == -ENOMEM) {
		/* RLIMIT_MEMLOCK counts the pool twice: runs use WRITEV. */
		err = io_uring_register_buffers(&s->ring, iov, s->n_bufs);
	} else if (err == 0) {
		s->whole_buf = 1;
	}
	free(iov);
	if (err < 0)
		return err;
	probe = io_uring_get_probe_ring(&s->ring);
	if (probe) {
		s->writev_fixed = io_uring_opcode_supported(probe,
						PK_IORING_OP_WRITEV_FIXED);
		io_uring_free_probe(probe);
	}
	s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->efd < 0)
		return -errno;
	return io_uring_register_eventfd(&s->ring, s->efd);
}

static void release_all(struct pk_swap_store *s)
{
	if (s->ring_ok)
		io_uring_queue_exit(&s->ring); /* drops all registrations */
	if (s->efd >= 0)
		close(s->efd);
	if (s->fd >= 0) {
		close(s->fd);
		if (!(s->flags & PK_SWAP_OPEN_KEEP))
			unlink(s->path);
	}
	if (s->bufmem)
		munmap(s->bufmem, (size_t)s->n_bufs * PK_SWAP_PAGE_SIZE);
	pk_slots_destroy(&s->slots);
	free(s->ops);
	free(s->free_bufs);
	if (s->own_csum)
		free(s->csum);
	free(s->path);
	free(s);
}

int pk_swap_store_open_opts(struct pk_swap_store **out,
			    const struct pk_swap_open_opts *o)
{
	struct pk_swap_store *s;
	unsigned queue_depth = o->queue_depth, flags = o->flags;
	uint64_t n;
	int err;

	*out = NULL;
	if (!o->path || o->size_bytes == 0 ||
	    o->size_bytes % PK_SWAP_PAGE_SIZE ||
	    queue_depth > PK_SWAP_MAX_QUEUE_DEPTH ||
	    (flags & ~(PK_SWAP_OPEN_BUFFERED | PK_SWAP_OPEN_KEEP)))
		return -EINVAL;
	if (queue_depth == 0)
		queue_depth = PK_SWAP_DEFAULT_QUEUE_DEPTH;
	n = o->size_bytes / PK_SWAP_PAGE_SIZE;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fd = s->efd = -1;
	s->size = o->size_bytes;
	s->flags = flags;
	s->inject = o->inject;
	s->path = strdup(o->path);
	s->csum = o->checksums;
	if (!s->csum) {
		s->csum = calloc(n, sizeof(*s->csum));
		s->own_csum = 1;
	}
	if (!s->path || !s->csum) {
		release_all(s);
		return -ENOMEM;
	}
	if ((err = create_file(s, flags)) != 0 ||
	    (err = setup_bufs(s, queue_depth)) != 0 ||
	    (err = probe_direct(s)) != 0 ||
	    (err = setup_ring(s, queue_depth)) != 0 ||
	    (err = pk_slots_init(&s->slots, n, punch, s)) != 0) {
		release_all(s);
		return err;
	}
	*out = s;
	return 0;
}

int pk_swap_store_open_flags(struct pk_swap_store **out, const char *path,
			     uint64_t size_bytes, unsigned queue_depth,
			     unsigned flags)
{
	struct pk_swap_open_opts o = { .path = path, .size_bytes = size_bytes,
				       .queue_depth = queue_depth,
				       .flags = flags };
	return pk_swap_store_open_opts(out, &o);
}

int pk_swap_store_open(struct pk_swap_store **out, const char *path,
		       uint64_t size_bytes, unsigned queue_depth)
{
	return pk_swap_store_open_flags(out, path, size_bytes, queue_depth, 0);
}

static int complete(struct pk_swap_store *s, unsigned idx, int res);

/*
 * After a short write: write buffer idx's page to its slot synchronously
 * (a rare error path: the loop waits for one I/O, once per short write).  PK_SWAP_PAGE_SIZE,
 * or the negative errno the file gives (-EIO if it writes short again).
 */
static int rewrite_page(struct pk_swap_store *s, unsigned idx)
{
	ssize_t w;

	do
		w = pwrite(s->fd, s->bufmem + (size_t)idx * PK_SWAP_PAGE_SIZE,
			   PK_SWAP_PAGE_SIZE,
			   (off_t)(s->ops[idx].slot * PK_SWAP_PAGE_SIZE));
	while (w < 0 && errno == EINTR);
	return w == (ssize_t)PK_SWAP_PAGE_SIZE ? (int)PK_SWAP_PAGE_SIZE
	       : w < 0 ? -errno : -EIO;
}

/*
 * The I/O error hook (pk_swap_open_opts.inject): a test stand-in for a
 * failing disk, since this kernel has no device-mapper error target.  A
 * completed I/O of the chosen kind, after the first `after` pages of that
 * kind, reports -EIO instead of its result, for `count` pages.
 */
static int inject(struct pk_swap_store *s, uint8_t kind, unsigned pages,
		  int res)
{
	struct pk_swap_inject *in = &s->inject;
	int writes = kind == OP_WRITE;

	if (!in->count || res < 0 || (writes ? !in->writes : !in->reads))
		return res;
	if (in->after >= pages) {
		in->after -= pages;
		return res;
	}
	in->after = 0;
	in->count = in->count > pages ? in->count - pages : 0;
	return -EIO;
}

/*
 * One CQE: one page, or a run of pages written by one request, each told
 * to done() with the run's result (a short run fails every page in it:
 * their slots are not trusted).  Returns the pages completed.
 */
static int complete_cqe(struct pk_swap_store *s, unsigned idx, int res,
			pk_swap_done_fn *done, void *arg)
{
	unsigned n;
	struct iovec *iov;
	int page_res;

	if (idx >= s->n_bufs || s->ops[idx].state != BUF_IO)
		return 0; /* not ours: cannot happen */
	s->reqs_in_flight--;
	n = s->ops[idx].run_len ? s->ops[idx].run_len : 1;
	iov = s->ops[idx].run_iov;
	res = inject(s, s->ops[idx].kind, n, res);
	s->ops[idx].run_iov = NULL;
	s->ops[idx].run_len = 0;
	/* A short write: the pages it covered are written; the rest say
	 * why the file refused them (ENOSPC when its file system filled on
	 * the way), learnt by writing the first of them again: one
	 * synchronous write, on an error path only. */
	unsigned whole = res >= 0 ? (unsigned)res / PK_SWAP_PAGE_SIZE : 0;
	int short_write = s->ops[idx].kind == OP_WRITE && res >= 0 &&
			  whole < n;
	page_res = res == (int)(n * PK_SWAP_PAGE_SIZE) ? (int)PK_SWAP_PAGE_SIZE
		   : res < 0 ? res : -EIO;
	for (unsigned k = 0; k < n; k++) {
		unsigned next = s->ops[idx].next;
		uint64_t user_data = s->ops[idx].user_data;
		if (short_write)
			page_res = k < whole ? (int)PK_SWAP_PAGE_SIZE
				   : k == whole ? rewrite_page(s, idx)
				   : page_res < 0 ? page_res : -EIO;
		int result = complete(s, idx, page_res);
		if (done)
			done(arg, user_data, result);
		idx = next;
	}
	free(iov);
	return (int)n;
}

/* Account for one page's I/O; returns its result for the caller. */
static int complete(struct pk_swap_store *s, unsigned idx, int res)
{
	struct buf_op *op = &s->ops[idx];
	int result;

	if (res == (int)PK_SWAP_PAGE_SIZE)
		result = 0;
	else
		result = res < 0 ? res : -EIO;
	if (result < 0) {
		s->io_errors++;
	} else if (op->kind == OP_WRITE) {
		s->csum[op->slot] = op->csum;
		s->writes++;
	} else {
		s->reads++;
		if (XXH3_64bits(s->bufmem + (size_t)idx * PK_SWAP_PAGE_SIZE,
				PK_SWAP_PAGE_SIZE) != s->csum[op->slot]) {
			result = -EBADMSG;
			s->checksum_errors++;
		}
	}
	pk_slots_io_end(&s->slots, op->slot);
	op->state = BUF_HELD;
	op->kind = 0;
	s->in_flight--;
	return result;
}

void pk_swap_store_close(struct pk_swap_store *s)
{
	struct io_uring_cqe *cqe;

	if (!s)
		return;
	if (s->ring_ok) {
		io_uring_submit(&s->ring);
		while (s->in_flight) {
			int err = io_uring_wait_cqe(&s->ring, &cqe);
			if (err == -EINTR)
				continue;
			if (err < 0)
				break; /* queue_exit cancels the rest */
			unsigned idx = (unsigned)io_uring_cqe_get_data64(cqe);
			int res = cqe->res;
			io_uring_cqe_seen(&s->ring, cqe);
			complete_cqe(s, idx, res, NULL, NULL);
		}
		io_uring_unregister_eventfd(&s->ring);
		io_uring_unregister_buffers(&s->ring);
		io_uring_unregister_files(&s->ring);
	}
	release_all(s);
}

int pk_swap_store_reopened(const struct pk_swap_store *s)
{
	return s->reopened;
}

void pk_swap_store_use_checksums(struct pk_swap_store *s, uint64_t *sums)
{
	memcpy(sums, s->csum, s->slots.n * sizeof(*sums));
	if (s->own_csum)
		free(s->csum);
	s->csum = sums;
	s->own_csum = 0;
}

int pk_swap_slot_restore(struct pk_swap_store *s, uint64_t slot)
{
	return pk_slots_restore_ref(&s->slots, slot);
}

uint64_t pk_swap_store_restore_done(struct pk_swap_store *s)
{
	uint64_t stale = 0;

	for (uint64_t i = 0; i < s->slots.n; i++)
		if (s->csum[i] && pk_slots_state(&s->slots, i) == PK_SLOT_FREE) {
			pk_slots_restore_dirty(&s->slots, i);
			stale++;
		}
	return stale;
}

int pk_swap_store_is_direct(const struct pk_swap_store *s)
{
	return s->direct;
}

int pk_swap_store_event_fd(const struct pk_swap_store *s)
{
	return s->efd;
}

uint64_t pk_swap_slots_total(const struct pk_swap_store *s)
{
	return s->slots.n;
}

uint64_t pk_swap_slots_used(const struct pk_swap_store *s)
{
	return s->slots.used;
}

unsigned pk_swap_bufs_free(const struct pk_swap_store *s)
{
	return s->n_free;
}

void pk_swap_store_stats(const struct pk_swap_store *s,
			 struct pk_swap_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->slots_total = s->slots.n;
	st->slots_used = s->slots.used;
	st->slot_extra_refs = s->slots.extra_refs;
	st->slots_dirty = s->slots.dirty;
	st->slots_reused_dirty = s->slots.reused_dirty;
	st->slots_punched = s->slots.punched;
	st->punch_calls = s->slots.punch_calls;
	st->punch_errors = s->slots.punch_errors;
	st->writes = s->writes;
	st->reads = s->reads;
	st->io_errors = s->io_errors;
	st->checksum_errors = s->checksum_errors;
	st->submits = s->submits;
	st->write_reqs = s->write_reqs;
	st->run_writes_fixed = s->run_writes_fixed;
	st->run_writes_pinned = s->run_writes_pinned;
	st->in_flight = s->in_flight;
	st->bufs_total = s->n_bufs;
	st->bufs_free = s->n_free;
	st->direct = s->direct;
	st->preallocated = s->preallocated;
}

int pk_swap_slot_alloc(struct pk_swap_store *s, uint64_t *slot)
{
	int err = pk_slots_alloc(&s->slots, slot);

	if (err == 0)
		s->csum[*slot] = 0;
	return err;
}

int pk_swap_slot_ref(struct pk_swap_store *s, uint64_t slot)
{
	return pk_slots_ref(&s->slots, slot);
}

unsigned pk_swap_slot_refs(const struct pk_swap_store *s, uint64_t slot)
{
	return pk_slots_refs(&s->slots, slot);
}

int pk_swap_slot_free(struct pk_swap_store *s, uint64_t slot)
{
	return pk_slots_free(&s->slots, slot);
}

int pk_swap_store_flush_frees(struct pk_swap_store *s)
{
	return pk_slots_flush(&s->slots);
}

int pk_swap_store_scrub(struct pk_swap_store *s, uint64_t budget_ns)
{
	return pk_slots_scrub(&s->slots, budget_ns);
}

uint64_t pk_swap_slot_checksum(const struct pk_swap_store *s, uint64_t slot)
{
	return slot < s->slots.n ? s->csum[slot] : 0;
}

int pk_swap_buf_get(struct pk_swap_store *s, void **page, unsigned *buf_idx)
{
	unsigned i;

	if (s->n_free == 0)
		return -EAGAIN;
	i = s->free_bufs[--s->n_free];
	s->ops[i].state = BUF_HELD;
	*buf_idx = i;
	*page = s->bufmem + (size_t)i * PK_SWAP_PAGE_SIZE;
	return 0;
}

void pk_swap_buf_put(struct pk_swap_store *s, unsigned buf_idx)
{
	/* A buffer with I/O in flight is the kernel's until reaped. */
	if (buf_idx >= s->n_bufs || s->ops[buf_idx].state != BUF_HELD)
		return;
	s->ops[buf_idx].state = BUF_FREE;
	s->free_bufs[s->n_free++] = buf_idx;
}

static int queue_io(struct pk_swap_store *s, enum op_kind kind, uint64_t slot,
		    unsigned idx, uint64_t user_data, const uint64_t *csum)
{
	struct io_uring_sqe *sqe;
	struct buf_op *op;
	void *buf;
	off_t off = (off_t)(slot * PK_SWAP_PAGE_SIZE);

	if (slot >= s->slots.n || pk_slots_state(&s->slots, slot) != PK_SLOT_USED ||
	    idx >= s->n_bufs || s->ops[idx].state == BUF_FREE)
		return -EINVAL;
	op = &s->ops[idx];
	if (op->state == BUF_IO || s->slots.io[slot] == PK_SLOT_IO_MAX)
		return -EBUSY;
	sqe = io_uring_get_sqe(&s->ring);
	if (!sqe) {
		/* SQ full: send what is queued and take the freed entry. */
		pk_swap_submit(s);
		sqe = io_uring_get_sqe(&s->ring);
		if (!sqe)
			return -EBUSY;
	}
	buf = s->bufmem + (size_t)idx * PK_SWAP_PAGE_SIZE;
	if (kind == OP_WRITE) {
		op->csum = csum ? *csum : XXH3_64bits(buf, PK_SWAP_PAGE_SIZE);
		io_uring_prep_write_fixed(sqe, 0, buf, PK_SWAP_PAGE_SIZE, off,
					  (int)idx);
		s->write_reqs++;
	} else {
		io_uring_prep_read_fixed(sqe, 0, buf, PK_SWAP_PAGE_SIZE, off,
					 (int)idx);
	}
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, idx);
	op->user_data = user_data;
	op->slot = slot;
	op->kind = (uint8_t)kind;
	op->state = BUF_IO;
	pk_slots_io_begin(&s->slots, slot);
	s->in_flight++;
	s->reqs_in_flight++;
	return 0;
}

int pk_swap_write(struct pk_swap_store *s, uint64_t slot, unsigned buf_idx,
		  uint64_t user_data)
{
	return queue_io(s, OP_WRITE, slot, buf_idx, user_data, NULL);
}

int pk_swap_write_run(struct pk_swap_store *s, uint64_t first_slot,
		      unsigned n, const unsigned *buf_idx,
		      const uint64_t *user_data)
{
	return pk_swap_write_run_sums(s, first_slot, n, buf_idx, user_data,
				      NULL);
}

int pk_swap_write_run_sums(struct pk_swap_store *s, uint64_t first_slot,
			   unsigned n, const unsigned *buf_idx,
			   const uint64_t *user_data, const uint64_t *csum)
{
	struct io_uring_sqe *sqe;
	struct iovec *iov = NULL;
	unsigned mark;
	int adjacent = 1;
	uint64_t off = first_slot * PK_SWAP_PAGE_SIZE;

	if (n == 1)
		return queue_io(s, OP_WRITE, first_slot, buf_idx[0], user_data[0],
				csum);
	if (n == 0 || n > PK_SWAP_RUN_MAX || first_slot + n > s->slots.n)
		return -EINVAL;
	/* A buffer named twice is refused: each buffer is stamped with this
	 * call's mark as it is checked (linear, not a pairwise compare). */
	mark = ++s->run_mark ? s->run_mark : ++s->run_mark;
	for (unsigned k = 0; k < n; k++) {
		unsigned idx = buf_idx[k];
		if (pk_slots_state(&s->slots, first_slot + k) != PK_SLOT_USED ||
		    idx >= s->n_bufs || s->ops[idx].state == BUF_FREE)
			return -EINVAL;
		if (s->ops[idx].state == BUF_IO ||
		    s->slots.io[first_slot + k] == PK_SLOT_IO_MAX ||
		    s->ops[idx].run_mark == mark)
			return -EBUSY;
		s->ops[idx].run_mark = mark;
		adjacent &= idx == buf_idx[0] + k;
	}
	/* Adjacent buffers: one WRITE_FIXED; else the pages' iovecs. */
	adjacent &= s->whole_buf;
	if (!adjacent && !(iov = malloc(n * sizeof(*iov))))
		return -ENOMEM;
	sqe = io_uring_get_sqe(&s->ring);
	if (!sqe) {
		pk_swap_submit(s);
		sqe = io_uring_get_sqe(&s->ring);
		if (!sqe) {
			free(iov);
			return -EBUSY;
		}
	}
	for (unsigned k = 0; k < n; k++) {
		struct buf_op *op = &s->ops[buf_idx[k]];
		void *buf = s->bufmem + (size_t)buf_idx[k] * PK_SWAP_PAGE_SIZE;
		if (iov)
			iov[k] = (struct iovec){ buf, PK_SWAP_PAGE_SIZE };
		op->csum = csum ? csum[k] : XXH3_64bits(buf, PK_SWAP_PAGE_SIZE);
		op->user_data = user_data[k];
		op->slot = first_slot + k;
		op->kind = OP_WRITE;
		op->state = BUF_IO;
		op->next = k + 1 < n ? buf_idx[k + 1] : 0;
		op->run_len = 0;
		pk_slots_io_begin(&s->slots, first_slot + k);
	}
	s->ops[buf_idx[0]].run_len = n;
	s->ops[buf_idx[0]].run_iov = iov;
	if (!iov) {
		io_uring_prep_write_fixed(sqe, 0, s->bufmem + (size_t)buf_idx[0] *
					  PK_SWAP_PAGE_SIZE, n * PK_SWAP_PAGE_SIZE,
					  off, (int)s->n_bufs);
		s->run_writes_fixed++;
	} else if (s->writev_fixed && s->whole_buf) {
		io_uring_prep_rw(PK_IORING_OP_WRITEV_FIXED, sqe, 0, iov, n, off);
		sqe->buf_index = (uint16_t)s->n_bufs;
		s->run_writes_fixed++;
	} else {
		io_uring_prep_writev(sqe, 0, iov, n, off);
		s->run_writes_pinned++;
	}
	s->write_reqs++;
	/* Not IOSQE_ASYNC: moving the submission to io_uring's worker took
	 * ~4% of the loop's CPU off it, but made later swap-ins slower
	 * (p50 +15-28 us) on this 2-CPU host. */
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, buf_idx[0]);
	s->in_flight += n;
	s->reqs_in_flight++;
	return 0;
}

int pk_swap_read(struct pk_swap_store *s, uint64_t slot, unsigned buf_idx,
		 uint64_t user_data)
{
	return queue_io(s, OP_READ, slot, buf_idx, user_data, NULL);
}

int pk_swap_submit(struct pk_swap_store *s)
{
	int n;

	if (io_uring_sq_ready(&s->ring) == 0)
		return 0;
	do
		n = io_uring_submit(&s->ring);
	while (n == -EINTR);
	if (n > 0)
		s->submits++;
	return n;
}

int pk_swap_reap(struct pk_swap_store *s, pk_swap_done_fn *done, void *arg)
{
	struct io_uring_cqe *cqe;
	uint64_t count;
	int n = 0;

	/* Drain the eventfd first: a CQE posted after this re-arms it. */
	if (read(s->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		return -errno;
	while (io_uring_peek_cqe(&s->ring, &cqe) == 0) {
		unsigned idx = (unsigned)io_uring_cqe_get_data64(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&s->ring, cqe);
		n += complete_cqe(s, idx, res, done, arg);
	}
	return n;
}

int pk_swap_wait(struct pk_swap_store *s, unsigned min_complete)
{
	struct io_uring_cqe *cqe;
	int err;

	err = pk_swap_submit(s);
	if (err < 0)
		return err;
	if (min_complete > s->reqs_in_flight)
		min_complete = s->reqs_in_flight;
	if (min_complete == 0)
		return 0;
	do
		err = io_uring_wait_cqe_nr(&s->ring, &cqe, min_complete);
	while (err == -EINTR);
	return err;
}
