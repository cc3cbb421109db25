/*
 * test_swap_store.c - unit tests for the io_uring swap store
 * (swapper/swap_store.c, swapper/swap_slots.c).
 *
 * Real files, real io_uring, no mocks.  Swap files live in a mkdtemp
 * directory under $PK_TEST_SCRATCH (the build dir: ext4 here, where
 * O_DIRECT works; /tmp may be tmpfs), except the tmpfs test's, under
 * /dev/shm; both trees are removed at the end even when a case fails.
 *
 * Covers: argument checks; the file is replaced, mode 0600, preallocated
 * and unlinked on close; 10,000 random pages written and read back with
 * many in flight per submission; a byte flipped on disk makes the read
 * fail with -EBADMSG; -ENOSPC when full and reuse (lowest slot first)
 * after a free, at once; a freed slot is punched at the second scrub
 * after its free unless reused first, coalesced, within the scrub's time
 * budget; a slot freed and reallocated around scrubs and flushes never
 * loses its new data, and one freed with I/O in flight is neither reused
 * nor punched until the I/O ends (also under a random model with frees
 * racing in-flight writes); buffers run out with -EAGAIN;
 * the eventfd signals completions; close with I/O in flight; tmpfs;
 * a slot with several owners (swap dedup) stays in use, readable, and
 * unpunched until its last owner frees it.
 *
 * Runs (pk_swap_write_run): runs of 1, 5, 16 and PK_SWAP_RUN_MAX pages
 * mixed with single writes, one request each; every page's done() once
 * with 0, each slot's checksum recorded, every page read back; refused
 * runs (n 0 or too long, a slot not allocated, past the end, a buffer not
 * held or in flight, one buffer twice) queue nothing and leave buffers
 * and slots as they were; a short write (RLIMIT_FSIZE inside the run)
 * fails every page with -EIO and trusts none of its slots; pk_swap_wait
 * counts a run's pages; a run is one request from the registered
 * buffer (WRITE_FIXED for adjacent buffers, WRITEV_FIXED otherwise on
 * Linux >= 6.15), whatever its buffers' order.  Restart (PK_SWAP_OPEN_KEEP): close leaves the
 * file; reopened with the caller's checksum array, the replayed slots
 * read back their old pages, and restore_done makes the unowned ones
 * dirty for the flush; a file of another size is -EEXIST and untouched;
 * pk_swap_store_use_checksums moves the checksums into the caller's
 * array.
 *
 * Why: a swap slot that silently returns the wrong page corrupts a guest;
 * the checksum and the punch ordering are what stop that.
 */
#include "swapper/swap_slots.h"
#include "swapper/swap_store.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#define PAGE PK_SWAP_PAGE_SIZE

static char dir[4096], path[4200];
/* Made once in the parent: [0] under the scratch dir, [1] on /dev/shm.
 * Each case's dir is made inside one, and both trees go at the end, also
 * what a failed case (whose checked teardown never runs) left. */
static char top[2][4096];

static void make_dir(const char *base)
{
	snprintf(dir, sizeof(dir), "%s/t-XXXXXX", base);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/swap.pk", dir);
}

static void setup_top(void)
{
	const char *base = getenv("PK_TEST_SCRATCH");

	snprintf(top[0], sizeof(top[0]), "%s/swaptest-XXXXXX",
		 base && *base ? base : ".");
	snprintf(top[1], sizeof(top[1]), "/dev/shm/swaptest-XXXXXX");
	for (int i = 0; i < 2; i++)
		if (!mkdtemp(top[i])) {
			perror(top[i]);
			abort();
		}
}

static int rm_one(const char *p, const struct stat *sb, int flag,
		  struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(p);
	else
		unlink(p);
	return 0;
}

static void teardown_top(void)
{
	for (int i = 0; i < 2; i++)
		nftw(top[i], rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
	make_dir(top[0]);
}

static void teardown(void)
{
	unlink(path);
	rmdir(dir);
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* The page content for (slot, gen): never all zeros. */
static void fill(void *page, uint64_t slot, uint64_t gen)
{
	uint64_t st = (slot + 1) * 0x9e3779b97f4a7c15ULL ^ (gen + 7) * 0xbf58476d1ce4e5b9ULL;
	uint64_t *w = page;

	for (unsigned i = 0; i < PAGE / 8; i++)
		w[i] = xorshift(&st);
}

static int matches(const void *page, uint64_t slot, uint64_t gen)
{
	static uint64_t want[PAGE / 8];
	fill(want, slot, gen);
	return memcmp(page, want, PAGE) == 0;
}

/* ---- a tiny driver: one record per buffer, user_data = buffer index ---- */

struct rec {
	int kind; /* 0 idle, 'w', 'r' */
	uint64_t slot, gen;
	void *page;
};

struct driver {
	struct pk_swap_store *s;
	struct rec *recs; /* per buffer */
	unsigned n_bufs;
	uint64_t *gen_of;  /* expected gen per slot (reads) */
	unsigned done_w, done_r, bad_result, bad_data, badmsg;
	int last_result;
	int keep_bufs;	   /* don't put buffers back in done() */
};

static void drv_init(struct driver *d, struct pk_swap_store *s, uint64_t slots)
{
	struct pk_swap_stats st;

	memset(d, 0, sizeof(*d));
	d->s = s;
	pk_swap_store_stats(s, &st);
	d->n_bufs = st.bufs_total;
	d->recs = calloc(d->n_bufs, sizeof(*d->recs));
	d->gen_of = calloc(slots, sizeof(*d->gen_of));
	ck_assert_ptr_nonnull(d->recs);
	ck_assert_ptr_nonnull(d->gen_of);
}

static void drv_free(struct driver *d)
{
	free(d->recs);
	free(d->gen_of);
}

static void on_done(void *arg, uint64_t user_data, int result)
{
	struct driver *d = arg;
	struct rec *r = &d->recs[user_data];

	d->last_result = result;
	if (result == -EBADMSG)
		d->badmsg++;
	else if (result != 0)
		d->bad_result++;
	if (r->kind == 'w') {
		d->done_w++;
	} else {
		d->done_r++;
		if (result == 0 && !matches(r->page, r->slot, r->gen))
			d->bad_data++;
	}
	r->kind = 0;
	if (!d->keep_bufs)
		pk_swap_buf_put(d->s, (unsigned)user_data);
}

static void drv_reap_one(struct driver *d)
{
	ck_assert_int_eq(pk_swap_wait(d->s, 1), 0);
	ck_assert_int_gt(pk_swap_reap(d->s, on_done, d), 0);
}

static void drv_drain(struct driver *d)
{
	struct pk_swap_stats st;

	for (;;) {
		pk_swap_store_stats(d->s, &st);
		if (!st.in_flight)
			break;
		ck_assert_int_eq(pk_swap_wait(d->s, st.in_flight), 0);
		pk_swap_reap(d->s, on_done, d);
	}
}

/* Queue one write or read, waiting for a buffer if all are in flight. */
static void drv_io(struct driver *d, int kind, uint64_t slot, uint64_t gen)
{
	void *page;
	unsigned idx;

	while (pk_swap_buf_get(d->s, &page, &idx) == -EAGAIN)
		drv_reap_one(d);
	d->recs[idx] = (struct rec){ kind, slot, gen, page };
	if (kind == 'w') {
		fill(page, slot, gen);
		d->gen_of[slot] = gen;
		ck_assert_int_eq(pk_swap_write(d->s, slot, idx, idx), 0);
	} else {
		memset(page, 0xa5, PAGE);
		ck_assert_int_eq(pk_swap_read(d->s, slot, idx, idx), 0);
	}
}

static int sync_io(struct driver *d, int kind, uint64_t slot, uint64_t gen)
{
	drv_io(d, kind, slot, gen);
	drv_drain(d);
	return d->last_result;
}

/* Flip one byte of a slot behind the store's back. */
static void corrupt(const char *p, uint64_t slot)
{
	int fd = open(p, O_RDWR);
	unsigned char b;
	off_t off = (off_t)(slot * PAGE + 123);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &b, 1, off), 1);
	b ^= 0x40;
	ck_assert_int_eq(pwrite(fd, &b, 1, off), 1);
	ck_assert_int_eq(fdatasync(fd), 0);
	close(fd);
}

static off_t seek(const char *p, off_t off, int whence)
{
	int fd = open(p, O_RDONLY);
	off_t r;

	ck_assert_int_ge(fd, 0);
	r = lseek(fd, off, whence);
	close(fd);
	return r;
}

static blkcnt_t blocks(const char *p)
{
	struct stat st;
	ck_assert_int_eq(stat(p, &st), 0);
	return st.st_blocks;
}

/* Does this directory's file system do O_DIRECT?  (Independent probe.) */
static int fs_does_direct(const char *d)
{
	char p[4200];
	void *buf;
	int fd, ok;

	snprintf(p, sizeof(p), "%s/probe", d);
	fd = open(p, O_RDWR | O_CREAT | O_DIRECT, 0600);
	if (fd < 0) {
		unlink(p);
		return 0;
	}
	ck_assert_int_eq(ftruncate(fd, PAGE), 0);
	ck_assert_int_eq(posix_memalign(&buf, PAGE, PAGE), 0);
	ok = pread(fd, buf, PAGE, 0) == PAGE;
	free(buf);
	close(fd);
	unlink(p);
	return ok;
}

/* ---- tests -------------------------------------------------------------- */

START_TEST(test_open_bad_args)
{
	struct pk_swap_store *s = (void *)1;
	char nodir[4300];

	ck_assert_int_eq(pk_swap_store_open(&s, path, 0, 0), -EINVAL);
	ck_assert_ptr_null(s);
	ck_assert_int_eq(pk_swap_store_open(&s, path, 4095, 0), -EINVAL);
	ck_assert_int_eq(pk_swap_store_open(&s, path, 4097, 0), -EINVAL);
	ck_assert_int_eq(pk_swap_store_open(&s, path, 3 * PAGE + 1, 0), -EINVAL);
	ck_assert_int_eq(pk_swap_store_open(&s, NULL, PAGE, 0), -EINVAL);
	ck_assert_int_eq(pk_swap_store_open(&s, path, PAGE,
					    PK_SWAP_MAX_QUEUE_DEPTH + 1),
			 -EINVAL);
	ck_assert_int_eq(pk_swap_store_open_flags(&s, path, PAGE, 0, 0x80),
			 -EINVAL);
	snprintf(nodir, sizeof(nodir), "%s/no/such/dir/swap", dir);
	ck_assert_int_eq(pk_swap_store_open(&s, nodir, PAGE, 0), -ENOENT);
	ck_assert_int_eq(access(path, F_OK), -1); /* nothing left behind */
	pk_swap_store_close(NULL);
}
END_TEST

START_TEST(test_open_replaces_mode_prealloc)
{
	struct pk_swap_store *s;
	struct pk_swap_stats st;
	struct stat sb;
	const uint64_t size = 256 * PAGE;
	char junk[PAGE], back[PAGE];
	int fd;

	/* A stale file from a previous run: other mode, other size, data. */
	fd = open(path, O_RDWR | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	memset(junk, 'J', sizeof(junk));
	for (int i = 0; i < 1000; i++)
		ck_assert_int_eq(write(fd, junk, sizeof(junk)), PAGE);
	close(fd);

	ck_assert_int_eq(pk_swap_store_open(&s, path, size, 0), 0);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 07777, 0600);
	ck_assert_int_eq(sb.st_size, (off_t)size);
	ck_assert_int_ge((uint64_t)sb.st_blocks * 512, size); /* fallocated */
	fd = open(path, O_RDONLY);
	ck_assert_int_eq(pread(fd, back, PAGE, 0), PAGE);
	close(fd);
	memset(junk, 0, sizeof(junk));
	ck_assert_mem_eq(back, junk, PAGE); /* fresh, no stale data */

	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.slots_total, 256);
	ck_assert_uint_eq(pk_swap_slots_total(s), 256);
	ck_assert_uint_eq(pk_swap_slots_used(s), 0);
	ck_assert_uint_eq(st.bufs_total,
			  PK_SWAP_DEFAULT_QUEUE_DEPTH * PK_SWAP_BUFS_PER_QUEUE_ENTRY);
	ck_assert_int_eq(st.preallocated, 1);
	ck_assert_int_ge(pk_swap_store_event_fd(s), 0);
	ck_assert_int_eq(pk_swap_store_is_direct(s), fs_does_direct(dir));
	fprintf(stderr, "swap store on %s: %s\n", dir,
		pk_swap_store_is_direct(s) ? "O_DIRECT" : "buffered");
	pk_swap_store_close(s);
	ck_assert_int_eq(access(path, F_OK), -1); /* unlinked */
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(test_roundtrip_10k_random)
{
	enum { N = 10000 };
	struct pk_swap_store *s;
	struct pk_swap_stats st;
	struct driver d;
	uint64_t *order = malloc(N * sizeof(*order)), rng = 12345;

	ck_assert_int_eq(pk_swap_store_open(&s, path, (uint64_t)N * PAGE, 32), 0);
	drv_init(&d, s, N);
	for (uint64_t i = 0; i < N; i++) {
		uint64_t slot;
		ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
		ck_assert_uint_eq(slot, i); /* lowest first */
		order[i] = i;
	}
	ck_assert_int_eq(pk_swap_slot_alloc(s, &(uint64_t){ 0 }), -ENOSPC);

	/* Write in random order, 32 per submission. */
	for (uint64_t i = N - 1; i > 0; i--) {
		uint64_t j = xorshift(&rng) % (i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (unsigned i = 0; i < N; i++) {
		drv_io(&d, 'w', order[i], xorshift(&rng) | 1);
		if (i % 32 == 31)
			ck_assert_int_ge(pk_swap_submit(s), 0);
	}
	drv_drain(&d);
	ck_assert_uint_eq(d.done_w, N);
	ck_assert_uint_eq(d.bad_result, 0);
	for (unsigned i = 0; i < 5; i++)
		ck_assert_uint_ne(pk_swap_slot_checksum(s, order[i]), 0);

	/* Read back in another random order. */
	for (uint64_t i = N - 1; i > 0; i--) {
		uint64_t j = xorshift(&rng) % (i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (unsigned i = 0; i < N; i++) {
		drv_io(&d, 'r', order[i], d.gen_of[order[i]]);
		if (i % 64 == 63)
			ck_assert_int_ge(pk_swap_submit(s), 0);
	}
	drv_drain(&d);
	ck_assert_uint_eq(d.done_r, N);
	ck_assert_uint_eq(d.bad_result, 0);
	ck_assert_uint_eq(d.badmsg, 0);
	ck_assert_uint_eq(d.bad_data, 0);

	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.writes, N);
	ck_assert_uint_eq(st.reads, N);
	ck_assert_uint_eq(st.io_errors + st.checksum_errors, 0);
	ck_assert_uint_eq(st.bufs_free, st.bufs_total);
	/* Batching: far fewer submissions than pages. */
	ck_assert_uint_le(st.submits, 2 * N / 16);
	fprintf(stderr, "10k roundtrip: %llu submits for %d I/Os\n",
		(unsigned long long)st.submits, 2 * N);
	drv_free(&d);
	free(order);
	pk_swap_store_close(s);
}
END_TEST

/* Shared by the ext4 and tmpfs tests. */
static void check_corruption_detected(struct pk_swap_store *s, const char *p)
{
	struct driver d;
	uint64_t slot;
	char page[PAGE];

	drv_init(&d, s, 16);
	for (uint64_t i = 0; i < 16; i++) {
		ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
		drv_io(&d, 'w', slot, 100 + i);
	}
	drv_drain(&d);
	ck_assert_uint_eq(d.bad_result, 0);
	fill(page, 7, 107);
	ck_assert_uint_eq(pk_swap_slot_checksum(s, 7), XXH3_64bits(page, PAGE));

	corrupt(p, 7);
	ck_assert_int_eq(sync_io(&d, 'r', 7, 107), -EBADMSG);
	ck_assert_int_eq(sync_io(&d, 'r', 6, 106), 0);
	ck_assert_int_eq(sync_io(&d, 'r', 8, 108), 0);
	ck_assert_uint_eq(d.bad_data, 0);
	/* Rewriting the slot heals it. */
	ck_assert_int_eq(sync_io(&d, 'w', 7, 200), 0);
	ck_assert_int_eq(sync_io(&d, 'r', 7, 200), 0);
	ck_assert_uint_eq(d.bad_data, 0);

	struct pk_swap_stats st;
	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.checksum_errors, 1);
	drv_free(&d);
}

START_TEST(test_checksum_mismatch)
{
	struct pk_swap_store *s;
	struct driver d;
	uint64_t slot;

	ck_assert_int_eq(pk_swap_store_open(&s, path, 64 * PAGE, 8), 0);
	check_corruption_detected(s, path);

	/* An allocated slot never written fails its read, never reads zeros. */
	drv_init(&d, s, 64);
	ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
	ck_assert_uint_eq(pk_swap_slot_checksum(s, slot), 0);
	ck_assert_int_eq(sync_io(&d, 'r', slot, 0), -EBADMSG);
	drv_free(&d);
	pk_swap_store_close(s);
}
END_TEST

START_TEST(test_enospc_and_reuse)
{
	struct pk_swap_store *s;
	uint64_t slot;

	ck_assert_int_eq(pk_swap_store_open(&s, path, 16 * PAGE, 4), 0);
	for (uint64_t i = 0; i < 16; i++) {
		ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
		ck_assert_uint_eq(slot, i);
	}
	ck_assert_uint_eq(pk_swap_slots_used(s), 16);
	ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), -ENOSPC);

	ck_assert_int_eq(pk_swap_slot_free(s, 9), 0);
	ck_assert_int_eq(pk_swap_slot_free(s, 5), 0);
	ck_assert_int_eq(pk_swap_slot_free(s, 5), -EINVAL);  /* double free */
	ck_assert_int_eq(pk_swap_slot_free(s, 16), -EINVAL); /* out of range */
	ck_assert_uint_eq(pk_swap_slots_used(s), 14);
	/* Freed slots are reusable at once, lowest first, no punch needed. */
	ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
	ck_assert_uint_eq(slot, 5);
	ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
	ck_assert_uint_eq(slot, 9);
	ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), -ENOSPC);
	ck_assert_uint_eq(pk_swap_slots_used(s), 16);

	/* Free everything, flush, and the allocator starts from 0 again. */
	for (uint64_t i = 0; i < 16; i++)
		ck_assert_int_eq(pk_swap_slot_free(s, i), 0);
	ck_assert_int_eq(pk_swap_store_flush_frees(s), 16);
	ck_assert_int_eq(pk_swap_store_flush_frees(s), 0);
	ck_assert_uint_eq(pk_swap_slots_used(s), 0);
	ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
	ck_assert_uint_eq(slot, 0);
	pk_swap_store_close(s);
}
END_TEST

/*
 * A freed slot keeps its old page until it is reused or two scrubs have
 * passed; then it is punched, coalesced with its neighbours.
 */
/* Swap dedup: a slot's owners share it until the last one frees it. */
START_TEST(test_slot_refs)
{
	struct pk_swap_store *s;
	struct pk_swap_stats st;
	uint64_t slot, other;
	unsigned idx;
	void *buf;

	ck_assert_int_eq(pk_swap_store_open(&s, path, 16 * PAGE, 4), 0);
	ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
	ck_assert_uint_eq(pk_swap_slot_refs(s, slot), 1);
	ck_assert_int_eq(pk_swap_buf_get(s, &buf, &idx), 0);
	memset(buf, 0x5a, PAGE);
	ck_assert_int_eq(pk_swap_write(s, slot, idx, 1), 0);
	ck_assert_int_eq(pk_swap_submit(s), 1);
	ck_assert_int_eq(pk_swap_wait(s, 1), 0);
	ck_assert_int_eq(pk_swap_reap(s, NULL, NULL), 1);

	ck_assert_int_eq(pk_swap_slot_ref(s, slot), 0);
	ck_assert_int_eq(pk_swap_slot_ref(s, slot), 0);
	ck_assert_uint_eq(pk_swap_slot_refs(s, slot), 3);
	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.slots_used, 1);
	ck_assert_uint_eq(st.slot_extra_refs, 2);
	/* Two owners go: the slot stays, is not punched, reads back. */
	ck_assert_int_eq(pk_swap_slot_free(s, slot), 0);
	ck_assert_int_eq(pk_swap_slot_free(s, slot), 0);
	ck_assert_int_eq(pk_swap_store_flush_frees(s), 0);
	ck_assert_uint_eq(pk_swap_slot_refs(s, slot), 1);
	ck_assert_int_eq(pk_swap_slot_alloc(s, &other), 0);
	ck_assert_uint_ne(other, slot);
	memset(buf, 0, PAGE);
	ck_assert_int_eq(pk_swap_read(s, slot, idx, 2), 0);
	ck_assert_int_eq(pk_swap_submit(s), 1);
	ck_assert_int_eq(pk_swap_wait(s, 1), 0);
	ck_assert_int_eq(pk_swap_reap(s, NULL, NULL), 1);
	ck_assert_uint_eq(((unsigned char *)buf)[PAGE - 1], 0x5a);
	/* The last owner frees it. */
	ck_assert_int_eq(pk_swap_slot_free(s, slot), 0);
	ck_assert_uint_eq(pk_swap_slot_refs(s, slot), 0);
	ck_assert_int_eq(pk_swap_slot_free(s, slot), -EINVAL);
	ck_assert_int_eq(pk_swap_slot_ref(s, slot), -EINVAL); /* not in use */
	ck_assert_int_eq(pk_swap_slot_ref(s, 99), -EINVAL);   /* out of range */
	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.slots_used, 1);
	ck_assert_uint_eq(st.slot_extra_refs, 0);
	ck_assert_int_eq(pk_swap_store_flush_frees(s), 1);
	/* Owners are counted up to PK_SLOT_REFS_MAX, then refused. */
	unsigned added = 0;
	while (pk_swap_slot_ref(s, other) == 0)
		added++;
	ck_assert_uint_eq(added, PK_SLOT_REFS_MAX - 1);
	ck_assert_int_eq(pk_swap_slot_ref(s, other), -EOVERFLOW);
	pk_swap_buf_put(s, idx);
	pk_swap_store_close(s);
}
END_TEST

START_TEST(test_scrub_punches_old_frees)
{
	struct pk_swap_store *s;
	struct pk_swap_stats st;
	struct driver d;
	uint64_t slot;
	blkcnt_t before;

	ck_assert_int_eq(pk_swap_store_open(&s, path, 128 * PAGE, 16), 0);
	drv_init(&d, s, 128);
	for (uint64_t i = 0; i < 64; i++) {
		ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
		drv_io(&d, 'w', slot, 1);
	}
	drv_drain(&d);
	ck_assert_uint_eq(d.bad_result, 0);
	before = blocks(path);

	for (uint64_t i = 19; i >= 10; i--) /* out of order on purpose */
		ck_assert_int_eq(pk_swap_slot_free(s, i), 0);
	ck_assert_int_eq(pk_swap_slot_free(s, 30), 0);
	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.slots_dirty, 11);
	ck_assert_uint_eq(st.slots_used, 53);
	/* The first scrub only ages them: they still hold their pages. */
	ck_assert_int_eq(pk_swap_store_scrub(s, 0), 0);
	ck_assert_int_eq(blocks(path), before);
	ck_assert_int_eq(seek(path, 10 * PAGE, SEEK_DATA), 10 * PAGE);
	/* Reused before the second scrub: overwritten, never punched. */
	ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
	ck_assert_uint_eq(slot, 10);
	ck_assert_int_eq(sync_io(&d, 'w', 10, 2), 0);

	ck_assert_int_eq(pk_swap_store_scrub(s, 0), 10);
	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.slots_dirty, 0);
	ck_assert_uint_eq(st.slots_punched, 10);
	ck_assert_uint_eq(st.slots_reused_dirty, 1);
	ck_assert_uint_eq(st.punch_calls, 2); /* 11..19 coalesced, then 30 */
	ck_assert_uint_eq(st.punch_errors, 0);
	/* 10 pages freed; allow one extent-tree block more. */
	ck_assert_int_ge(before - blocks(path), 10 * PAGE / 512 - 8);
	ck_assert_int_le(before - blocks(path), 10 * PAGE / 512);
	ck_assert_int_eq(seek(path, 10 * PAGE, SEEK_HOLE), 11 * PAGE);
	ck_assert_int_eq(seek(path, 11 * PAGE, SEEK_DATA), 20 * PAGE);
	ck_assert_int_eq(seek(path, 30 * PAGE, SEEK_DATA), 31 * PAGE);
	/* The reused slot and the surviving neighbours are intact. */
	ck_assert_int_eq(sync_io(&d, 'r', 10, 2), 0);
	ck_assert_int_eq(sync_io(&d, 'r', 9, 1), 0);
	ck_assert_int_eq(sync_io(&d, 'r', 20, 1), 0);
	ck_assert_int_eq(sync_io(&d, 'r', 31, 1), 0);
	ck_assert_uint_eq(d.bad_data, 0);
	/* Now the punched slots come back, lowest first. */
	ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
	ck_assert_uint_eq(slot, 11);
	drv_free(&d);
	pk_swap_store_close(s);
}
END_TEST

START_TEST(test_scrub_budget)
{
	struct pk_swap_store *s;
	struct pk_swap_stats st;
	uint64_t slot;
	int first;

	ck_assert_int_eq(pk_swap_store_open(&s, path, 4096 * PAGE, 4), 0);
	for (uint64_t i = 0; i < 4096; i++)
		ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
	for (uint64_t i = 0; i < 4096; i += 2) /* 2048 scattered runs */
		ck_assert_int_eq(pk_swap_slot_free(s, i), 0);
	ck_assert_int_eq(pk_swap_store_scrub(s, 0), 0); /* ages them */
	/* 1 ns: one punch call, then out of time. */
	first = pk_swap_store_scrub(s, 1);
	ck_assert_int_eq(first, 1);
	/* The rest stays old and goes at the next unbounded scrub. */
	ck_assert_int_eq(pk_swap_store_scrub(s, 0), 2047);
	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.slots_dirty, 0);
	ck_assert_uint_eq(st.punch_calls, 2048);
	pk_swap_store_close(s);
}
END_TEST

START_TEST(test_realloc_never_loses_new_data)
{
	struct pk_swap_store *s;
	struct pk_swap_stats st;
	struct driver d;
	uint64_t slot;

	ck_assert_int_eq(pk_swap_store_open(&s, path, 8 * PAGE, 4), 0);
	drv_init(&d, s, 8);
	for (uint64_t i = 0; i < 8; i++) {
		ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
		drv_io(&d, 'w', slot, 1);
	}
	drv_drain(&d);

	/* Freed, aged by a scrub, then reallocated and rewritten: later
	 * scrubs and flushes leave the new data alone. */
	ck_assert_int_eq(pk_swap_slot_free(s, 3), 0);
	ck_assert_int_eq(pk_swap_store_scrub(s, 0), 0);
	ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
	ck_assert_uint_eq(slot, 3);
	ck_assert_int_eq(sync_io(&d, 'w', 3, 2), 0);
	ck_assert_int_eq(pk_swap_slot_free(s, 5), 0);
	ck_assert_int_eq(pk_swap_store_scrub(s, 0), 0);
	ck_assert_int_eq(pk_swap_store_flush_frees(s), 1); /* slot 5 */
	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.slots_punched, 1);
	ck_assert_int_eq(seek(path, 3 * PAGE, SEEK_DATA), 3 * PAGE);
	ck_assert_int_eq(sync_io(&d, 'r', 3, 2), 0);

	/* Freed while its write is in flight: neither reusable nor punched
	 * until the I/O ends. */
	drv_io(&d, 'w', 3, 3);
	ck_assert_int_eq(pk_swap_submit(s), 1);
	ck_assert_int_eq(pk_swap_slot_free(s, 3), 0);
	ck_assert_int_eq(pk_swap_store_flush_frees(s), 0); /* kept */
	ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
	ck_assert_uint_eq(slot, 5); /* not 3 */
	ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), -ENOSPC);
	drv_drain(&d);
	ck_assert_int_eq(pk_swap_store_flush_frees(s), 1);
	ck_assert_int_eq(seek(path, 3 * PAGE, SEEK_HOLE), 3 * PAGE);
	ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
	ck_assert_uint_eq(slot, 3);
	ck_assert_int_eq(sync_io(&d, 'w', 3, 4), 0);
	ck_assert_int_eq(sync_io(&d, 'r', 3, 4), 0);
	ck_assert_int_eq(sync_io(&d, 'r', 5, 1), -EBADMSG); /* never written */
	ck_assert_uint_eq(d.bad_data, 0);

	/* Queue I/O on a freed slot is refused. */
	ck_assert_int_eq(pk_swap_slot_free(s, 6), 0);
	void *page;
	unsigned idx;
	ck_assert_int_eq(pk_swap_buf_get(s, &page, &idx), 0);
	ck_assert_int_eq(pk_swap_read(s, 6, idx, 0), -EINVAL);
	ck_assert_int_eq(pk_swap_write(s, 6, idx, 0), -EINVAL);
	pk_swap_buf_put(s, idx);
	drv_free(&d);
	pk_swap_store_close(s);
}
END_TEST

/*
 * Random model: alloc+write, free (also while writes are in flight),
 * flush, read, reap, in random order on a small store so slots are reused
 * constantly.  Every read of a live slot must return its last write.
 */
START_TEST(test_random_model)
{
	enum { NS = 48, STEPS = 20000 };
	struct pk_swap_store *s;
	struct pk_swap_stats st;
	struct driver d;
	int live[NS] = { 0 };
	uint64_t rng = 0xfeed, gen = 1, slot;
	unsigned reads_inflight[NS];

	ck_assert_int_eq(pk_swap_store_open(&s, path, NS * PAGE, 4), 0);
	drv_init(&d, s, NS);
	for (int step = 0; step < STEPS; step++) {
		unsigned op = xorshift(&rng) % 100;
		uint64_t pick = xorshift(&rng) % NS;

		memset(reads_inflight, 0, sizeof(reads_inflight));
		for (unsigned b = 0; b < d.n_bufs; b++)
			if (d.recs[b].kind == 'r')
				reads_inflight[d.recs[b].slot]++;
		if (op < 40) {
			if (pk_swap_slot_alloc(s, &slot) == 0) {
				ck_assert_int_eq(live[slot], 0);
				live[slot] = 1;
				drv_io(&d, 'w', slot, gen++);
			}
		} else if (op < 65) {
			if (live[pick] && !reads_inflight[pick]) {
				ck_assert_int_eq(pk_swap_slot_free(s, pick), 0);
				live[pick] = 0;
			}
		} else if (op < 72) {
			ck_assert_int_ge(pk_swap_store_scrub(s, 0), 0);
		} else if (op < 85) {
			pk_swap_submit(s);
			pk_swap_reap(s, on_done, &d);
		} else {
			int writing = 0;
			for (unsigned b = 0; b < d.n_bufs; b++)
				writing |= d.recs[b].kind == 'w' &&
					   d.recs[b].slot == pick;
			if (live[pick] && !writing)
				drv_io(&d, 'r', pick, d.gen_of[pick]);
		}
		if (step % 7 == 0)
			pk_swap_submit(s);
	}
	drv_drain(&d);
	ck_assert_int_ge(pk_swap_store_flush_frees(s), 0);
	for (uint64_t i = 0; i < NS; i++)
		if (live[i])
			drv_io(&d, 'r', i, d.gen_of[i]);
	drv_drain(&d);
	ck_assert_uint_eq(d.bad_result, 0);
	ck_assert_uint_eq(d.badmsg, 0);
	ck_assert_uint_eq(d.bad_data, 0);
	pk_swap_store_stats(s, &st);
	/* Both ways out of DIRTY happened many times. */
	ck_assert_uint_gt(st.slots_punched, 200);
	ck_assert_uint_gt(st.slots_reused_dirty, 200);
	ck_assert_uint_gt(d.done_r, 1000);
	fprintf(stderr, "model: %u writes, %u reads, %llu slots punched in "
		"%llu calls, %llu reused unpunched\n", d.done_w, d.done_r,
		(unsigned long long)st.slots_punched,
		(unsigned long long)st.punch_calls,
		(unsigned long long)st.slots_reused_dirty);
	drv_free(&d);
	pk_swap_store_close(s);
}
END_TEST

START_TEST(test_buffers_exhaust)
{
	struct pk_swap_store *s;
	struct pk_swap_stats st;
	void *pages[16], *p;
	unsigned idx[16], i2;
	uint64_t slot;

	ck_assert_int_eq(pk_swap_store_open(&s, path, 32 * PAGE, 4), 0);
	for (int i = 0; i < 16; i++) {
		ck_assert_int_eq(pk_swap_buf_get(s, &pages[i], &idx[i]), 0);
		ck_assert_uint_eq((uintptr_t)pages[i] % PAGE, 0);
		for (int j = 0; j < i; j++) {
			ck_assert_ptr_ne(pages[i], pages[j]);
			ck_assert_uint_ne(idx[i], idx[j]);
		}
		memset(pages[i], i, PAGE); /* writable */
	}
	ck_assert_int_eq(pk_swap_buf_get(s, &p, &i2), -EAGAIN);
	pk_swap_buf_put(s, idx[4]);
	pk_swap_buf_put(s, idx[4]); /* double put is ignored */
	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.bufs_free, 1);
	ck_assert_int_eq(pk_swap_buf_get(s, &p, &i2), 0);
	ck_assert_int_eq(i2, idx[4]);
	ck_assert_int_eq(pk_swap_buf_get(s, &p, &i2), -EAGAIN);

	/* Misuse is refused. */
	ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
	ck_assert_int_eq(pk_swap_write(s, slot + 1, idx[0], 0), -EINVAL);
	ck_assert_int_eq(pk_swap_write(s, slot, 9999, 0), -EINVAL);
	ck_assert_int_eq(pk_swap_write(s, slot, idx[0], 0), 0);
	ck_assert_int_eq(pk_swap_write(s, slot, idx[0], 0), -EBUSY);
	pk_swap_buf_put(s, idx[0]); /* in flight: still the kernel's */
	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.bufs_free, 0);
	ck_assert_int_eq(pk_swap_wait(s, 1), 0);
	ck_assert_int_eq(pk_swap_reap(s, NULL, NULL), 1);
	pk_swap_buf_put(s, idx[0]);
	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.bufs_free, 1);
	ck_assert_int_eq(pk_swap_wait(s, 5), 0); /* nothing in flight: no hang */
	pk_swap_store_close(s);
}
END_TEST

START_TEST(test_event_fd_signals)
{
	struct pk_swap_store *s;
	struct driver d;
	struct pollfd pfd;
	uint64_t slot;
	int n = 0;

	ck_assert_int_eq(pk_swap_store_open(&s, path, 64 * PAGE, 32), 0);
	drv_init(&d, s, 64);
	pfd.fd = pk_swap_store_event_fd(s);
	pfd.events = POLLIN;
	ck_assert_int_eq(poll(&pfd, 1, 0), 0);
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
		drv_io(&d, 'w', slot, 5);
	}
	ck_assert_int_eq(pk_swap_submit(s), 20);
	/* What the daemon's epoll loop does: wait for the fd, then reap. */
	while (n < 20) {
		ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
		int r = pk_swap_reap(s, on_done, &d);
		ck_assert_int_ge(r, 0);
		n += r;
	}
	ck_assert_int_eq(n, 20);
	/* Drained.  A completion posted between a reap's eventfd read and
	 * its drain of the CQ re-arms the fd (by design: none is missed), so
	 * one spurious wakeup may be left; a reap then finds nothing, and
	 * after it the fd is quiet. */
	if (poll(&pfd, 1, 0) == 1)
		ck_assert_int_eq(pk_swap_reap(s, on_done, &d), 0);
	ck_assert_int_eq(poll(&pfd, 1, 0), 0);
	ck_assert_uint_eq(d.bad_result, 0);
	drv_free(&d);
	pk_swap_store_close(s);
}
END_TEST

START_TEST(test_close_with_io_in_flight)
{
	struct pk_swap_store *s;
	struct driver d;
	uint64_t slot;

	ck_assert_int_eq(pk_swap_store_open(&s, path, 1024 * PAGE, 64), 0);
	drv_init(&d, s, 1024);
	for (int i = 0; i < 256; i++) { /* every buffer: 256 writes in flight */
		ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
		drv_io(&d, 'w', slot, 9);
	}
	ck_assert_int_gt(pk_swap_submit(s), 0);
	for (int i = 0; i < 10; i++) /* and some pending frees */
		ck_assert_int_eq(pk_swap_slot_free(s, (uint64_t)i), 0);
	pk_swap_store_close(s);
	ck_assert_int_eq(access(path, F_OK), -1);

	/* Queued but never submitted. */
	ck_assert_int_eq(pk_swap_store_open(&s, path, 64 * PAGE, 8), 0);
	drv_free(&d);
	drv_init(&d, s, 64);
	for (int i = 0; i < 8; i++) {
		ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
		drv_io(&d, 'w', slot, 9);
	}
	pk_swap_store_close(s);
	drv_free(&d);
}
END_TEST

/*
 * tmpfs: since Linux 6.6 tmpfs accepts O_DIRECT (served from the page
 * cache), so the store reports whatever the file system really does; the
 * buffered path is forced with PK_SWAP_OPEN_BUFFERED and must behave the
 * same, checksums included.
 */
START_TEST(test_tmpfs_and_buffered)
{
	struct pk_swap_store *s;
	int expect;

	teardown();
	make_dir(top[1]);
	expect = fs_does_direct(dir);
	ck_assert_int_eq(pk_swap_store_open(&s, path, 64 * PAGE, 4), 0);
	ck_assert_int_eq(pk_swap_store_is_direct(s), expect);
	fprintf(stderr, "swap store on tmpfs: %s\n",
		expect ? "O_DIRECT accepted" : "buffered fallback");
	check_corruption_detected(s, path);
	pk_swap_store_close(s);

	ck_assert_int_eq(pk_swap_store_open_flags(&s, path, 64 * PAGE, 4,
						  PK_SWAP_OPEN_BUFFERED), 0);
	ck_assert_int_eq(pk_swap_store_is_direct(s), 0);
	check_corruption_detected(s, path);
	pk_swap_store_close(s);
	ck_assert_int_eq(access(path, F_OK), -1);
}
END_TEST

START_TEST(test_buffered_on_scratch)
{
	struct pk_swap_store *s;

	ck_assert_int_eq(pk_swap_store_open_flags(&s, path, 64 * PAGE, 4,
						  PK_SWAP_OPEN_BUFFERED), 0);
	ck_assert_int_eq(pk_swap_store_is_direct(s), 0);
	check_corruption_detected(s, path);
	pk_swap_store_close(s);
}
END_TEST

/* ---- runs: pk_swap_write_run ------------------------------------------- */

/* done() for runs: each buffer's calls and last result, then the driver's
 * own bookkeeping (which puts the buffer back). */
struct run_watch {
	struct driver *d;
	unsigned *calls; /* per buffer */
	int *res;	 /* per buffer */
};

static void watch_init(struct run_watch *w, struct driver *d)
{
	w->d = d;
	w->calls = calloc(d->n_bufs, sizeof(*w->calls));
	w->res = calloc(d->n_bufs, sizeof(*w->res));
	ck_assert_ptr_nonnull(w->calls);
	ck_assert_ptr_nonnull(w->res);
}

static void watch_reset(struct run_watch *w)
{
	memset(w->calls, 0, w->d->n_bufs * sizeof(*w->calls));
	memset(w->res, 0, w->d->n_bufs * sizeof(*w->res));
}

static void watch_free(struct run_watch *w)
{
	free(w->calls);
	free(w->res);
}

static void on_run_done(void *arg, uint64_t user_data, int result)
{
	struct run_watch *w = arg;

	ck_assert_uint_lt(user_data, w->d->n_bufs);
	w->calls[user_data]++;
	w->res[user_data] = result;
	on_done(w->d, user_data, result);
}

/* Since the last reset: pages told, each at most once, all with want. */
static unsigned watch_check(const struct run_watch *w, int want)
{
	unsigned told = 0;

	for (unsigned b = 0; b < w->d->n_bufs; b++) {
		if (!w->calls[b])
			continue;
		ck_assert_msg(w->calls[b] == 1, "buffer %u: done() called %u times",
			      b, w->calls[b]);
		ck_assert_msg(w->res[b] == want, "buffer %u: result %d, want %d",
			      b, w->res[b], want);
		told++;
	}
	return told;
}

/*
 * Reap until nothing is in flight, one completion at a time: waiting for
 * in_flight completions is what drv_drain does, and a run is one
 * request for many pages (test_wait_with_runs_in_flight).
 */
static void drain_runs(struct run_watch *w)
{
	struct pk_swap_stats st;

	for (;;) {
		pk_swap_store_stats(w->d->s, &st);
		if (!st.in_flight)
			break;
		ck_assert_int_eq(pk_swap_wait(w->d->s, 1), 0);
		ck_assert_int_ge(pk_swap_reap(w->d->s, on_run_done, w), 0);
	}
}

/*
 * Queue one run of n pages at slots first.. (allocated by the caller),
 * page k holding (first + k, gen + k), from n fresh buffers; user_data is
 * each buffer's index.  Returns pk_swap_write_run()'s result; a refused
 * run's buffers go back to the store.
 */
static int drv_run_order(struct driver *d, uint64_t first, unsigned n,
			 uint64_t gen, int reversed);

static int drv_run(struct driver *d, uint64_t first, unsigned n, uint64_t gen)
{
	return drv_run_order(d, first, n, gen, 0);
}

/* drv_run(), with the buffers in the reverse of the order taken when
 * reversed (fresh ones come off the store's stack adjacent, ascending). */
static int drv_run_order(struct driver *d, uint64_t first, unsigned n,
			 uint64_t gen, int reversed)
{
	unsigned idx[PK_SWAP_RUN_MAX + 1];
	uint64_t ud[PK_SWAP_RUN_MAX + 1];
	void *pages[PK_SWAP_RUN_MAX + 1];
	int r;

	ck_assert_uint_le(n, PK_SWAP_RUN_MAX + 1);
	for (unsigned k = 0; k < n; k++) {
		unsigned j = reversed ? n - 1 - k : k;
		ck_assert_int_eq(pk_swap_buf_get(d->s, &pages[j], &idx[j]), 0);
	}
	for (unsigned k = 0; k < n; k++) {
		d->recs[idx[k]] = (struct rec){ 'w', first + k, gen + k, pages[k] };
		fill(pages[k], first + k, gen + k);
		ud[k] = idx[k];
	}
	r = pk_swap_write_run(d->s, first, n, idx, ud);
	for (unsigned k = 0; k < n; k++) {
		if (r == 0) {
			d->gen_of[first + k] = gen + k;
		} else {
			d->recs[idx[k]].kind = 0;
			pk_swap_buf_put(d->s, idx[k]);
		}
	}
	return r;
}

/* Slots [first, first + n) hold their last write: checksum and bytes. */
static void verify_slots(struct driver *d, uint64_t first, unsigned n)
{
	static unsigned char page[PAGE];
	unsigned bad = d->bad_data, reads = d->done_r;

	for (uint64_t slot = first; slot < first + n; slot++) {
		fill(page, slot, d->gen_of[slot]);
		ck_assert_msg(pk_swap_slot_checksum(d->s, slot) ==
				      XXH3_64bits(page, PAGE),
			      "slot %llu: recorded checksum is not its data's",
			      (unsigned long long)slot);
		drv_io(d, 'r', slot, d->gen_of[slot]);
	}
	drv_drain(d);
	ck_assert_uint_eq(d->done_r - reads, n);
	ck_assert_uint_eq(d->bad_data, bad);
	ck_assert_uint_eq(d->bad_result + d->badmsg, 0);
}

/*
 * Runs of 16, 1 and 5 pages and a single write in one submission (one
 * request each), then a run of PK_SWAP_RUN_MAX pages: every page's done()
 * is called once with 0, every slot's checksum recorded, every page
 * reads back; an overwriting run replaces exactly its slots.
 */
START_TEST(test_write_run)
{
	struct pk_swap_store *s;
	struct pk_swap_stats st;
	struct driver d;
	struct run_watch w;
	uint64_t slot;
	static unsigned char page[PAGE];

	/* 64 entries: 256 buffers, one run of PK_SWAP_RUN_MAX. */
	ck_assert_int_eq(pk_swap_store_open(&s, path, 1024 * PAGE, 64), 0);
	drv_init(&d, s, 1024);
	watch_init(&w, &d);
	for (uint64_t i = 0; i < 600; i++) {
		ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
		ck_assert_uint_eq(slot, i);
	}

	ck_assert_int_eq(drv_run(&d, 3, 16, 100), 0);
	drv_io(&d, 'w', 40, 7);
	ck_assert_int_eq(drv_run(&d, 41, 1, 200), 0);
	ck_assert_int_eq(drv_run(&d, 50, 5, 300), 0);
	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.in_flight, 23);
	ck_assert_int_eq(pk_swap_submit(s), 4); /* one request per run */
	drain_runs(&w);
	ck_assert_uint_eq(watch_check(&w, 0), 23);
	ck_assert_uint_eq(d.done_w, 23);
	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.writes, 23);
	ck_assert_uint_eq(st.io_errors, 0);
	ck_assert_uint_eq(st.bufs_free, st.bufs_total);
	verify_slots(&d, 3, 16);
	verify_slots(&d, 40, 2);
	verify_slots(&d, 50, 5);
	/* Neighbours of the runs were never written. */
	ck_assert_uint_eq(pk_swap_slot_checksum(s, 2), 0);
	ck_assert_uint_eq(pk_swap_slot_checksum(s, 19), 0);
	ck_assert_uint_eq(pk_swap_slot_checksum(s, 55), 0);

	/* The longest run, with every buffer of the store. */
	watch_reset(&w);
	ck_assert_int_eq(drv_run(&d, 300, PK_SWAP_RUN_MAX, 1000), 0);
	ck_assert_int_eq(pk_swap_submit(s), 1);
	drain_runs(&w);
	ck_assert_uint_eq(watch_check(&w, 0), PK_SWAP_RUN_MAX);
	verify_slots(&d, 300, PK_SWAP_RUN_MAX);

	/* A run over slots 5..8 of the first run replaces exactly those. */
	watch_reset(&w);
	ck_assert_int_eq(drv_run(&d, 5, 4, 5000), 0);
	drain_runs(&w);
	ck_assert_uint_eq(watch_check(&w, 0), 4);
	fill(page, 5, 5000);
	ck_assert_uint_eq(pk_swap_slot_checksum(s, 5), XXH3_64bits(page, PAGE));
	ck_assert_uint_eq(d.gen_of[4], 101);
	ck_assert_uint_eq(d.gen_of[9], 106);
	verify_slots(&d, 3, 16);
	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.writes, 23 + PK_SWAP_RUN_MAX + 4);
	ck_assert_uint_eq(st.checksum_errors, 0);
	watch_free(&w);
	drv_free(&d);
	pk_swap_store_close(s);
}
END_TEST

/* 1 if the running kernel is at least major.minor. */
static int kernel_at_least(unsigned major, unsigned minor)
{
	struct utsname u;
	unsigned ma = 0, mi = 0;

	ck_assert_int_eq(uname(&u), 0);
	ck_assert_int_eq(sscanf(u.release, "%u.%u", &ma, &mi), 2);
	return ma > major || (ma == major && mi >= minor);
}

/*
 * A run of n pages is one write request from the registered buffer, with
 * no page pinning: WRITE_FIXED when its buffers are adjacent (any
 * kernel), WRITEV_FIXED when they are not (Linux >= 6.15; WRITEV before).
 * Either way each slot reads back its own page, whatever the buffers'
 * order.
 */
START_TEST(test_write_run_fixed)
{
	struct pk_swap_store *s;
	struct pk_swap_stats st0, st;
	struct driver d;
	struct run_watch w;
	uint64_t slot;
	int vec_fixed = kernel_at_least(6, 15);

	ck_assert_int_eq(pk_swap_store_open(&s, path, 1024 * PAGE, 64), 0);
	drv_init(&d, s, 1024);
	watch_init(&w, &d);
	for (uint64_t i = 0; i < 600; i++)
		ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);

	/* Adjacent buffers, ascending: one WRITE_FIXED of 64 pages. */
	pk_swap_store_stats(s, &st0);
	ck_assert_int_eq(drv_run(&d, 100, 64, 10), 0);
	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.write_reqs - st0.write_reqs, 1);
	ck_assert_uint_eq(st.run_writes_fixed - st0.run_writes_fixed, 1);
	ck_assert_uint_eq(st.run_writes_pinned - st0.run_writes_pinned, 0);
	drain_runs(&w);
	ck_assert_uint_eq(watch_check(&w, 0), 64);
	verify_slots(&d, 100, 64);

	/* The same buffers in reverse: one vectored write. */
	watch_reset(&w);
	pk_swap_store_stats(s, &st0);
	ck_assert_int_eq(drv_run_order(&d, 200, 64, 20, 1), 0);
	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.write_reqs - st0.write_reqs, 1);
	ck_assert_uint_eq(st.run_writes_fixed - st0.run_writes_fixed,
			  vec_fixed ? 1 : 0);
	ck_assert_uint_eq(st.run_writes_pinned - st0.run_writes_pinned,
			  vec_fixed ? 0 : 1);
	drain_runs(&w);
	ck_assert_uint_eq(watch_check(&w, 0), 64);
	verify_slots(&d, 200, 64);
	verify_slots(&d, 100, 64);

	/* Single pages still go from the registered buffer too. */
	pk_swap_store_stats(s, &st0);
	drv_io(&d, 'w', 300, 30);
	drv_drain(&d);
	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.write_reqs - st0.write_reqs, 1);
	verify_slots(&d, 300, 1);
	ck_assert_uint_eq(st.checksum_errors + st.io_errors, 0);
	watch_free(&w);
	drv_free(&d);
	pk_swap_store_close(s);
}
END_TEST

/*
 * Refused runs: -EINVAL for n == 0, n > PK_SWAP_RUN_MAX, a slot not
 * allocated (a gap in the run), past the end of the file, a buffer not
 * held; -EBUSY for a buffer with I/O in flight.  A refused run queues
 * nothing and leaves its buffers and slots as they were.
 */
START_TEST(test_write_run_refused)
{
	struct pk_swap_store *s;
	struct pk_swap_stats st;
	struct driver d;
	struct run_watch w;
	unsigned idx[PK_SWAP_RUN_MAX + 1], busy, saved;
	uint64_t ud[PK_SWAP_RUN_MAX + 1] = { 0 }, slot;
	void *pages[PK_SWAP_RUN_MAX + 1], *page;

	/* 128 entries: 512 buffers, enough for a run one too long. */
	ck_assert_int_eq(pk_swap_store_open(&s, path, 600 * PAGE, 128), 0);
	drv_init(&d, s, 600);
	watch_init(&w, &d);
	for (uint64_t i = 0; i < 600; i++)
		ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
	for (unsigned k = 0; k <= PK_SWAP_RUN_MAX; k++) {
		ck_assert_int_eq(pk_swap_buf_get(s, &pages[k], &idx[k]), 0);
		fill(pages[k], k, 1);
	}
	ck_assert_int_eq(pk_swap_write_run(s, 0, 0, idx, ud), -EINVAL);
	ck_assert_int_eq(pk_swap_write_run(s, 0, PK_SWAP_RUN_MAX + 1, idx, ud),
			 -EINVAL);
	ck_assert_int_eq(pk_swap_slot_free(s, 10), 0); /* a gap at 10 */
	ck_assert_int_eq(pk_swap_write_run(s, 5, 10, idx, ud), -EINVAL);
	ck_assert_int_eq(pk_swap_write_run(s, 10, 1, idx, ud), -EINVAL);
	ck_assert_int_eq(pk_swap_write_run(s, 595, 6, idx, ud), -EINVAL);
	ck_assert_int_eq(pk_swap_write_run(s, UINT64_MAX - 1, 4, idx, ud),
			 -EINVAL);
	/* A buffer not held; one that does not exist. */
	saved = idx[3];
	pk_swap_buf_put(s, idx[3]);
	ck_assert_int_eq(pk_swap_write_run(s, 20, 8, idx, ud), -EINVAL);
	ck_assert_int_eq(pk_swap_buf_get(s, &page, &idx[3]), 0);
	ck_assert_uint_eq(idx[3], saved);
	idx[3] = 99999;
	ck_assert_int_eq(pk_swap_write_run(s, 20, 8, idx, ud), -EINVAL);
	idx[3] = saved;
	/* A buffer with a write in flight, as the run's third page. */
	ck_assert_int_eq(pk_swap_buf_get(s, &page, &busy), 0);
	d.recs[busy] = (struct rec){ 'w', 200, 1, page };
	fill(page, 200, 1);
	d.gen_of[200] = 1;
	ck_assert_int_eq(pk_swap_write(s, 200, busy, busy), 0);
	unsigned run[4] = { idx[0], idx[1], busy, idx[2] };
	ck_assert_int_eq(pk_swap_write_run(s, 30, 4, run, ud), -EBUSY);

	/* Nothing of the refused runs was queued. */
	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.in_flight, 1);
	ck_assert_int_eq(pk_swap_submit(s), 1);
	drain_runs(&w);
	ck_assert_uint_eq(watch_check(&w, 0), 1);
	verify_slots(&d, 200, 1);

	/* The buffers are still just held: they take a run now... */
	watch_reset(&w);
	for (unsigned k = 0; k < 8; k++) {
		d.recs[idx[k]] = (struct rec){ 'w', 30 + k, 2, pages[k] };
		fill(pages[k], 30 + k, 2);
		d.gen_of[30 + k] = 2;
		ud[k] = idx[k];
	}
	ck_assert_int_eq(pk_swap_write_run(s, 30, 8, idx, ud), 0);
	drain_runs(&w);
	ck_assert_uint_eq(watch_check(&w, 0), 8);
	verify_slots(&d, 30, 8);
	/* ...and no slot kept an I/O of a refused run: freed, every one of
	 * 0..39 is punched at once. */
	for (slot = 0; slot < 40; slot++)
		if (slot != 10)
			ck_assert_int_eq(pk_swap_slot_free(s, slot), 0);
	ck_assert_int_eq(pk_swap_store_flush_frees(s), 40);
	for (unsigned k = 8; k <= PK_SWAP_RUN_MAX; k++)
		pk_swap_buf_put(s, idx[k]);
	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.bufs_free, st.bufs_total);
	watch_free(&w);
	drv_free(&d);
	pk_swap_store_close(s);
}
END_TEST

/*
 * One buffer twice in a run would be two I/Os on one buffer ("one I/O per
 * buffer at a time"): refused like a buffer already in flight, never
 * queued.
 */
START_TEST(test_write_run_same_buffer_twice)
{
	struct pk_swap_store *s;
	struct pk_swap_stats st;
	unsigned idx[2];
	uint64_t ud[3] = { 1, 2, 3 }, slot;
	void *page;

	ck_assert_int_eq(pk_swap_store_open(&s, path, 16 * PAGE, 4), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
	ck_assert_int_eq(pk_swap_buf_get(s, &page, &idx[0]), 0);
	ck_assert_int_eq(pk_swap_buf_get(s, &page, &idx[1]), 0);
	unsigned run[3] = { idx[0], idx[1], idx[0] };
	int r = pk_swap_write_run(s, 0, 3, run, ud);
	pk_swap_store_stats(s, &st);
	ck_assert_msg(r == -EBUSY || r == -EINVAL,
		      "a run naming buffer %u twice returned %d (in flight: %u)",
		      idx[0], r, st.in_flight);
	ck_assert_uint_eq(st.in_flight, 0);
	pk_swap_buf_put(s, idx[0]);
	pk_swap_buf_put(s, idx[1]);
	pk_swap_store_close(s);
}
END_TEST

/*
 * pk_swap_write_run_sums: the caller's checksums are what the store
 * records (the eviction path hashes each page once, for swap dedup and
 * the slot).  A run of 4 and a run of 1 with the right sums read back; a
 * run whose third sum is wrong is written, and exactly that slot then
 * fails its check at swap-in (-EBADMSG) while its neighbours read back:
 * a wrong sum poisons, it never passes wrong bytes.  A buffer named twice
 * is refused, and its buffers take the next run.
 */
START_TEST(test_write_run_sums)
{
	struct pk_swap_store *s;
	struct driver d;
	uint64_t slot, ud[4], sums[4];
	unsigned idx[4];

	ck_assert_int_eq(pk_swap_store_open(&s, path, 64 * PAGE, 16), 0);
	drv_init(&d, s, 64);
	for (uint64_t i = 0; i < 16; i++)
		ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
	for (unsigned round = 0; round < 3; round++) {
		uint64_t first = round * 4;
		unsigned n = round == 1 ? 1 : 4;
		for (unsigned k = 0; k < n; k++) {
			void *page;
			ck_assert_int_eq(pk_swap_buf_get(s, &page, &idx[k]), 0);
			d.recs[idx[k]] = (struct rec){ 'w', first + k, 9, page };
			fill(page, first + k, 9);
			d.gen_of[first + k] = 9;
			ud[k] = idx[k];
			sums[k] = XXH3_64bits(page, PAGE);
		}
		if (round == 2)
			sums[2] ^= 1; /* the caller hashed wrong */
		ck_assert_int_eq(pk_swap_write_run_sums(s, first, n, idx, ud,
							 sums), 0);
		ck_assert_int_eq(pk_swap_submit(s), 1);
		drv_drain(&d);
		ck_assert_uint_eq(d.bad_result + d.badmsg, 0);
		for (unsigned k = 0; k < n; k++)
			ck_assert_uint_eq(pk_swap_slot_checksum(s, first + k),
					  sums[k]);
	}
	verify_slots(&d, 0, 4);
	verify_slots(&d, 4, 1);
	verify_slots(&d, 8, 2);
	verify_slots(&d, 11, 1);
	ck_assert_int_eq(sync_io(&d, 'r', 10, 9), -EBADMSG);
	d.badmsg = 0;

	/* Named twice: refused, nothing queued; the same buffers then go. */
	void *pages[2];
	ck_assert_int_eq(pk_swap_buf_get(s, &pages[0], &idx[0]), 0);
	ck_assert_int_eq(pk_swap_buf_get(s, &pages[1], &idx[1]), 0);
	unsigned twice[3] = { idx[0], idx[1], idx[0] };
	ck_assert_int_eq(pk_swap_write_run_sums(s, 12, 3, twice, ud, NULL),
			 -EBUSY);
	for (unsigned k = 0; k < 2; k++) {
		d.recs[idx[k]] = (struct rec){ 'w', 12 + k, 10, pages[k] };
		fill(pages[k], 12 + k, 10);
		d.gen_of[12 + k] = 10;
		ud[k] = idx[k];
	}
	ck_assert_int_eq(pk_swap_write_run_sums(s, 12, 2, idx, ud, NULL), 0);
	ck_assert_int_eq(pk_swap_submit(s), 1);
	drv_drain(&d);
	verify_slots(&d, 12, 2);
	drv_free(&d);
	pk_swap_store_close(s);
}
END_TEST

/*
 * A short write tells each page what happened: with RLIMIT_FSIZE at 12
 * pages, a run over slots 8..15 writes 4 pages and stops.  Those 4 are
 * written (checksummed); the first page past the limit is written again
 * on its own to learn the file's error, EFBIG (a full file system gives
 * ENOSPC the same way), which every page past the limit then gets: no
 * checksum, and a failed read
 * (-EBADMSG); a run below the limit is unaffected.
 */
START_TEST(test_write_run_short_tells_each_page)
{
	struct pk_swap_store *s;
	struct pk_swap_stats st;
	struct driver d;
	struct run_watch w;
	struct rlimit old, lim;
	uint64_t slot;

	ck_assert(signal(SIGXFSZ, SIG_IGN) != SIG_ERR);
	ck_assert_int_eq(pk_swap_store_open(&s, path, 64 * PAGE, 8), 0);
	drv_init(&d, s, 64);
	watch_init(&w, &d);
	for (int i = 0; i < 16; i++)
		ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 12 * PAGE;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);

	ck_assert_int_eq(drv_run(&d, 0, 8, 10), 0);
	ck_assert_int_eq(pk_swap_submit(s), 1);
	drain_runs(&w);
	ck_assert_uint_eq(watch_check(&w, 0), 8);

	watch_reset(&w);
	ck_assert_int_eq(drv_run(&d, 8, 8, 20), 0);
	ck_assert_int_eq(pk_swap_submit(s), 1);
	drain_runs(&w);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	/* Short at the limit: the 4 pages below it are written, each page
	 * above it fails with the file's own error (EFBIG), not -EIO. */
	unsigned ok = 0, big = 0;
	for (unsigned b = 0; b < d.n_bufs; b++) {
		if (!w.calls[b])
			continue;
		ck_assert_msg(w.calls[b] == 1, "buffer %u: done() called %u "
			      "times", b, w.calls[b]);
		ok += w.res[b] == 0;
		big += w.res[b] == -EFBIG;
	}
	ck_assert_uint_eq(ok, 4);
	ck_assert_uint_eq(big, 4);
	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.writes, 8 + 4);
	ck_assert_uint_eq(st.io_errors, 4);
	for (slot = 12; slot < 16; slot++) {
		/* No slot past the limit is trusted. */
		ck_assert_uint_eq(pk_swap_slot_checksum(s, slot), 0);
		ck_assert_int_eq(sync_io(&d, 'r', slot, 20), -EBADMSG);
	}
	ck_assert_uint_eq(d.bad_result, 4); /* the pages past the limit */
	ck_assert_uint_eq(d.badmsg, 4);	    /* their reads */
	d.bad_result = d.badmsg = 0;
	verify_slots(&d, 0, 8);
	/* Without the limit the same run goes through. */
	watch_reset(&w);
	ck_assert_int_eq(drv_run(&d, 8, 8, 30), 0);
	drain_runs(&w);
	ck_assert_uint_eq(watch_check(&w, 0), 8);
	verify_slots(&d, 8, 8);
	watch_free(&w);
	drv_free(&d);
	pk_swap_store_close(s);
}
END_TEST

/*
 * pk_swap_wait(n) with one run of n pages in flight: the run's n pages
 * are n completions to the caller ("each page still completes on its
 * own").  Run in a child with an alarm, so a wait that never returns
 * fails the test instead of hanging it: an 8-page write takes
 * milliseconds, 10 s is the deadline.
 */
START_TEST(test_wait_with_runs_in_flight)
{
	pid_t pid = fork();
	int status;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct pk_swap_store *s;
		unsigned idx[8];
		uint64_t ud[8], slot;
		void *page;

		/* (Check's own SIGALRM handler kills the whole test.) */
		signal(SIGALRM, SIG_DFL);
		alarm(10);
		if (pk_swap_store_open(&s, path, 16 * PAGE, 4))
			_exit(2);
		for (unsigned k = 0; k < 8; k++) {
			if (pk_swap_slot_alloc(s, &slot) ||
			    pk_swap_buf_get(s, &page, &idx[k]))
				_exit(2);
			fill(page, k, 1);
			ud[k] = k;
		}
		if (pk_swap_write_run(s, 0, 8, idx, ud) ||
		    pk_swap_wait(s, 8) != 0)
			_exit(3);
		if (pk_swap_reap(s, NULL, NULL) != 8)
			_exit(4);
		pk_swap_store_close(s);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(!(WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM),
		      "pk_swap_wait(8) with one 8-page run in flight did not "
		      "return within 10 s");
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child failed (status 0x%x: 2 setup, 3 queue/wait, "
		      "4 reap)", status);
}
END_TEST

/* ---- PK_SWAP_OPEN_KEEP: the swap file of a restarted daemon -------------- */

static struct pk_swap_open_opts keep_opts(uint64_t slots, uint64_t *sums)
{
	return (struct pk_swap_open_opts){ .path = path,
					   .size_bytes = slots * PAGE,
					   .queue_depth = 8,
					   .flags = PK_SWAP_OPEN_KEEP,
					   .checksums = sums };
}

/*
 * First daemon: slots 0..11 written (0..7 as a run) with their checksums
 * in the caller's array, slot 8 freed and punched, slot 7 freed but not
 * yet punched; close leaves the file.  Second daemon, same file and
 * array: the slots its tables name (0..6, 9, 10, and 2 twice) are owned
 * again and read back their old pages; restore_done makes the two that
 * hold a page nobody owns (7, 11) dirty, and the flush punches them.
 */
START_TEST(test_keep_reopen_restore)
{
	enum { N = 64 };
	static const uint64_t named[] = { 0, 1, 2, 3, 4, 5, 6, 9, 10, 2 };
	struct pk_swap_store *s;
	struct pk_swap_stats st;
	struct pk_swap_open_opts o;
	struct driver d;
	struct run_watch w;
	uint64_t *sums = calloc(N, sizeof(*sums)), old[N], gens[N], slot;
	static unsigned char page[PAGE], back[PAGE];
	int fd;

	ck_assert_ptr_nonnull(sums);
	o = keep_opts(N, sums);
	ck_assert_int_eq(pk_swap_store_open_opts(&s, &o), 0);
	ck_assert_int_eq(pk_swap_store_reopened(s), 0); /* nothing was there */
	ck_assert_int_eq(pk_swap_store_is_direct(s), fs_does_direct(dir));
	drv_init(&d, s, N);
	watch_init(&w, &d);
	for (int i = 0; i < 12; i++)
		ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
	ck_assert_int_eq(drv_run(&d, 0, 8, 40), 0);
	for (slot = 8; slot < 12; slot++)
		drv_io(&d, 'w', slot, 40 + slot);
	drain_runs(&w);
	ck_assert_uint_eq(watch_check(&w, 0), 12);
	for (slot = 0; slot < 12; slot++) {
		ck_assert_uint_ne(sums[slot], 0);
		ck_assert_uint_eq(sums[slot], pk_swap_slot_checksum(s, slot));
	}
	ck_assert_int_eq(pk_swap_slot_free(s, 8), 0);
	ck_assert_int_eq(pk_swap_store_flush_frees(s), 1);
	ck_assert_uint_eq(sums[8], 0); /* punched: nothing to scrub later */
	ck_assert_int_eq(pk_swap_slot_free(s, 7), 0);
	ck_assert_uint_ne(sums[7], 0);
	memcpy(old, sums, sizeof(old));
	memcpy(gens, d.gen_of, sizeof(gens));
	watch_free(&w);
	drv_free(&d);
	pk_swap_store_close(s);

	/* Close left the file, its size and its pages. */
	ck_assert_int_eq(access(path, F_OK), 0);
	ck_assert_int_eq(seek(path, 0, SEEK_END), N * PAGE);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, back, PAGE, 9 * PAGE), PAGE);
	close(fd);
	fill(page, 9, 49);
	ck_assert_mem_eq(back, page, PAGE);

	/* The restarted daemon. */
	ck_assert_int_eq(pk_swap_store_open_opts(&s, &o), 0);
	ck_assert_int_eq(pk_swap_store_reopened(s), 1);
	ck_assert_int_eq(pk_swap_store_is_direct(s), fs_does_direct(dir));
	ck_assert_uint_eq(pk_swap_slots_used(s), 0);
	ck_assert_mem_eq(sums, old, sizeof(old)); /* opening kept them */
	for (unsigned k = 0; k < sizeof(named) / sizeof(named[0]); k++)
		ck_assert_int_eq(pk_swap_slot_restore(s, named[k]), 0);
	ck_assert_int_eq(pk_swap_slot_restore(s, N), -EINVAL);
	ck_assert_uint_eq(pk_swap_slot_refs(s, 2), 2);
	ck_assert_uint_eq(pk_swap_slot_refs(s, 9), 1);
	ck_assert_uint_eq(pk_swap_slot_refs(s, 7), 0);
	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.slots_used, 9);
	ck_assert_uint_eq(st.slot_extra_refs, 1);
	ck_assert_uint_eq(st.slots_dirty, 0);

	ck_assert_uint_eq(pk_swap_store_restore_done(s), 2); /* 7 and 11 */
	pk_swap_store_stats(s, &st);
	ck_assert_uint_eq(st.slots_dirty, 2);
	ck_assert_uint_eq(st.slots_used, 9);

	drv_init(&d, s, N);
	memcpy(d.gen_of, gens, sizeof(gens));
	for (unsigned k = 0; k < 9; k++) {
		ck_assert_uint_eq(pk_swap_slot_checksum(s, named[k]), old[named[k]]);
		verify_slots(&d, named[k], 1);
	}
	/* The unowned pages go at the flush, and their checksums with them. */
	ck_assert_int_eq(pk_swap_store_flush_frees(s), 2);
	ck_assert_uint_eq(sums[7], 0);
	ck_assert_uint_eq(sums[11], 0);
	ck_assert_int_eq(seek(path, 7 * PAGE, SEEK_HOLE), 7 * PAGE);
	ck_assert_int_eq(seek(path, 11 * PAGE, SEEK_HOLE), 11 * PAGE);
	ck_assert_int_eq(seek(path, 6 * PAGE, SEEK_HOLE), 7 * PAGE);
	ck_assert_int_eq(seek(path, 10 * PAGE, SEEK_HOLE), 11 * PAGE);
	/* The owned slots stay out of the allocator's way. */
	ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
	ck_assert_uint_eq(slot, 7);
	ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
	ck_assert_uint_eq(slot, 8);
	ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
	ck_assert_uint_eq(slot, 11);
	/* A slot with two owners stays until both let it go. */
	ck_assert_int_eq(pk_swap_slot_free(s, 2), 0);
	ck_assert_int_eq(pk_swap_store_flush_frees(s), 0);
	verify_slots(&d, 2, 1);
	ck_assert_int_eq(pk_swap_slot_free(s, 2), 0);
	ck_assert_int_eq(pk_swap_store_flush_frees(s), 1);
	drv_free(&d);
	pk_swap_store_close(s);
	ck_assert_int_eq(access(path, F_OK), 0); /* KEEP: still there */
	free(sums);
}
END_TEST

/* KEEP never replaces a file of another size (or a non-file): -EEXIST. */
START_TEST(test_keep_other_size_untouched)
{
	struct pk_swap_store *s = (void *)1;
	struct pk_swap_open_opts o;
	struct stat before, after;
	uint64_t sums[64];
	char junk[PAGE], back[PAGE];
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
	ck_assert_int_ge(fd, 0);
	memset(junk, 'J', sizeof(junk));
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(write(fd, junk, sizeof(junk)), PAGE);
	close(fd);
	ck_assert_int_eq(stat(path, &before), 0);

	o = keep_opts(64, sums);
	ck_assert_int_eq(pk_swap_store_open_opts(&s, &o), -EEXIST);
	ck_assert_ptr_null(s);
	o.checksums = NULL;
	ck_assert_int_eq(pk_swap_store_open_opts(&s, &o), -EEXIST);
	o.flags |= PK_SWAP_OPEN_BUFFERED;
	ck_assert_int_eq(pk_swap_store_open_opts(&s, &o), -EEXIST);

	ck_assert_int_eq(stat(path, &after), 0);
	ck_assert_uint_eq(after.st_ino, before.st_ino);
	ck_assert_int_eq(after.st_size, 10 * PAGE);
	ck_assert_int_eq(after.st_mode, before.st_mode);
	ck_assert_int_eq(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
	ck_assert_int_eq(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	for (int i = 0; i < 10; i++) {
		ck_assert_int_eq(pread(fd, back, PAGE, (off_t)i * PAGE), PAGE);
		ck_assert_mem_eq(back, junk, PAGE);
	}
	close(fd);
	unlink(path);

	/* A directory where the file should be. */
	ck_assert_int_eq(mkdir(path, 0700), 0);
	o = keep_opts(64, sums);
	ck_assert_int_lt(pk_swap_store_open_opts(&s, &o), 0);
	ck_assert_ptr_null(s);
	ck_assert_int_eq(rmdir(path), 0);
}
END_TEST

/*
 * use_checksums: a record made after the file.  The current checksums
 * are copied into the caller's array, and from then on the store records
 * into it and checks reads against it.
 */
START_TEST(test_use_checksums)
{
	enum { N = 32 };
	struct pk_swap_store *s;
	struct driver d;
	uint64_t *sums = malloc(N * sizeof(*sums)), slot;
	static unsigned char page[PAGE];

	ck_assert_ptr_nonnull(sums);
	memset(sums, 0xab, N * sizeof(*sums));
	ck_assert_int_eq(pk_swap_store_open(&s, path, N * PAGE, 4), 0);
	drv_init(&d, s, N);
	for (int i = 0; i < 11; i++)
		ck_assert_int_eq(pk_swap_slot_alloc(s, &slot), 0);
	for (slot = 0; slot < 10; slot++)
		drv_io(&d, 'w', slot, 60 + slot);
	drv_drain(&d);
	pk_swap_store_use_checksums(s, sums);
	for (slot = 0; slot < N; slot++) {
		if (slot < 10)
			fill(page, slot, 60 + slot);
		ck_assert_uint_eq(sums[slot],
				  slot < 10 ? XXH3_64bits(page, PAGE) : 0);
		ck_assert_uint_eq(pk_swap_slot_checksum(s, slot), sums[slot]);
	}
	/* New writes are recorded there. */
	ck_assert_int_eq(sync_io(&d, 'w', 10, 70), 0);
	fill(page, 10, 70);
	ck_assert_uint_eq(sums[10], XXH3_64bits(page, PAGE));
	/* Reads are checked against it. */
	sums[3] ^= 1;
	ck_assert_int_eq(sync_io(&d, 'r', 3, 63), -EBADMSG);
	sums[3] ^= 1;
	ck_assert_int_eq(sync_io(&d, 'r', 3, 63), 0);
	/* A punch clears the slot's entry. */
	ck_assert_int_eq(pk_swap_slot_free(s, 4), 0);
	ck_assert_int_eq(pk_swap_store_flush_frees(s), 1);
	ck_assert_uint_eq(sums[4], 0);
	ck_assert_uint_eq(d.bad_data, 0);
	drv_free(&d);
	pk_swap_store_close(s);
	/* Still the caller's: the store did not free it. */
	ck_assert_uint_eq(sums[10], XXH3_64bits(page, PAGE));
	free(sums);
}
END_TEST

static Suite *swap_suite(void)
{
	Suite *s = suite_create("swap_store");
	TCase *tc = tcase_create("core");

	tcase_add_unchecked_fixture(tc, setup_top, teardown_top);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_open_bad_args);
	tcase_add_test(tc, test_open_replaces_mode_prealloc);
	tcase_add_test(tc, test_roundtrip_10k_random);
	tcase_add_test(tc, test_checksum_mismatch);
	tcase_add_test(tc, test_enospc_and_reuse);
	tcase_add_test(tc, test_slot_refs);
	tcase_add_test(tc, test_scrub_punches_old_frees);
	tcase_add_test(tc, test_scrub_budget);
	tcase_add_test(tc, test_realloc_never_loses_new_data);
	tcase_add_test(tc, test_random_model);
	tcase_add_test(tc, test_buffers_exhaust);
	tcase_add_test(tc, test_event_fd_signals);
	tcase_add_test(tc, test_close_with_io_in_flight);
	tcase_add_test(tc, test_tmpfs_and_buffered);
	tcase_add_test(tc, test_buffered_on_scratch);
	tcase_add_test(tc, test_write_run);
	tcase_add_test(tc, test_write_run_fixed);
	tcase_add_test(tc, test_write_run_refused);
	tcase_add_test(tc, test_write_run_same_buffer_twice);
	tcase_add_test(tc, test_write_run_sums);
	tcase_add_test(tc, test_write_run_short_tells_each_page);
	tcase_add_test(tc, test_wait_with_runs_in_flight);
	tcase_add_test(tc, test_keep_reopen_restore);
	tcase_add_test(tc, test_keep_other_size_untouched);
	tcase_add_test(tc, test_use_checksums);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(swap_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
