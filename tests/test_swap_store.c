/*
 * test_swap_store.c - unit tests for the io_uring swap store
 * (swapper/swap_store.c, swapper/swap_slots.c).
 *
 * Real files, real io_uring, no mocks.  Swap files live in a mkdtemp
 * directory under $PK_TEST_SCRATCH (the build dir: ext4 here, where
 * O_DIRECT works; /tmp may be tmpfs), except the tmpfs test.
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
 * Why: a swap slot that silently returns the wrong page corrupts a guest;
 * the checksum and the punch ordering are what stop that.
 */
#include "swapper/swap_slots.h"
#include "swapper/swap_store.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define PAGE PK_SWAP_PAGE_SIZE

static char dir[4096], path[4200];

static void make_dir(const char *base)
{
	snprintf(dir, sizeof(dir), "%s/swaptest-XXXXXX", base);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/swap.pk", dir);
}

static void setup(void)
{
	const char *base = getenv("PK_TEST_SCRATCH");
	make_dir(base && *base ? base : ".");
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
	ck_assert_int_eq(poll(&pfd, 1, 0), 0); /* drained */
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
	make_dir("/dev/shm");
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

static Suite *swap_suite(void)
{
	Suite *s = suite_create("swap_store");
	TCase *tc = tcase_create("core");

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
