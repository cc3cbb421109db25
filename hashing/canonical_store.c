/*
 * canonical_store.c - refcounted canonical copies of shared pages.
 *
 * What: the one copy of each shared page content that merged guest
 * pages refer to, with a reference count per copy, found by content.
 *
 * How: copies sit in chunks of CHUNK_PAGES pages (2 MiB), each an
 * anonymous private mmap backed by one transparent huge page where the
 * kernel has one (page-aligned either way, so UFFDIO_COPY can take a copy
 * straight from it) or, for a store made with pk_canon_store_open_file(),
 * a MAP_SHARED mapping of 2 MiB of the store's file, so the copies
 * outlive the daemon; on tmpfs each chunk is collapsed into a huge page
 * with MADV_COLLAPSE, which works there even where shmem THP is off.  A copy's id is chunk * CHUNK_PAGES + slot; beside
 * each chunk, a metadata array holds each copy's hash (to find its index
 * entry again when it is freed), its reference count and, while free,
 * the next free id.  Freed ids form a LIFO list, so a freed id is the
 * next one handed out and ids stay dense.  A content index maps hash ->
 * ids; every candidate is compared with memcmp before it is used.
 *
 * Memory is given back a whole chunk at a time: pk_canon_release_freed()
 * (from the daemon's 1 s tick, off the fault path: each MADV_DONTNEED is
 * a TLB shootdown) drops every backed chunk that holds no live copy, and
 * the chunk is backed again when one of its ids is handed out.  A file's
 * chunk is given back by punching its range out of the file.  So the
 * footprint is exactly the backed chunks, and that is what page_bytes
 * counts: every figure that claims savings subtracts it.
 *
 * Why huge pages: a shared page's refault is a UFFDIO_COPY from its
 * copy, and with 4 KiB pages most of those copies missed the TLB.  On
 * this platform (paravirtualised, 2 vCPUs) that cost 6-7 us per refault,
 * 1.20x the bare round trip; with 2 MiB pages the refault is 1.03x.  The
 * price is granularity: a freed copy's page stays held until its whole
 * chunk is free (ids are reused first in the chunks freed last).  Giving
 * back 4 KiB out of a huge page would only split its mapping; the kernel
 * keeps the huge page until memory pressure, and the count would lie.
 *
 * Why ids: they must be small (56-bit page-table payloads, dense for
 * later per-id arrays) and lookups by id O(1): a two-level array does
 * both.  Never trusting the hash is the sharing issue's first rule: a
 * collision must cost a memcmp, never a guest's data.
 */
#include "hashing/canonical_store.h"

#include "hashing/content_index.h"
#include "hashing/page_hash.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define PAGE PK_HASH_PAGE_SIZE
#define CHUNK_PAGES PK_CANON_CHUNK_PAGES
#define NO_ID UINT32_MAX

struct frame_meta {
	uint64_t hash;
	uint32_t refs;	    /* 0: free */
	uint32_t next_free; /* while free: next id on the free list */
};

struct chunk {
	unsigned char *pages; /* CHUNK_PAGES * PAGE bytes, mmap'd */
	uint32_t live;	      /* copies in it */
	bool backed;	      /* its memory is there (not given back) */
	struct frame_meta meta[CHUNK_PAGES];
};

struct pk_canon_store {
	struct pk_content_index *index;
	struct chunk **chunks;
	size_t n_chunks, chunks_cap;
	size_t n_backed;    /* chunks whose memory is there */
	uint64_t n_ids;	    /* ids ever handed out: the next fresh id */
	uint32_t free_head; /* most recently freed id, or NO_ID */
	uint64_t frames, refs, added;
	int fd;		    /* the copies' file, or -1: anonymous memory */
	bool tmpfs;	    /* fd is on tmpfs: chunks become huge pages */
	bool restoring;	    /* opened on a file: refs being replayed */
	uint64_t *filter;	   /* 1 << filter_log2 bits; NULL: none yet */
	unsigned filter_log2;
	uint64_t filter_adds;	   /* copies added since it was built */
};

static struct frame_meta *meta_of(const struct pk_canon_store *s, uint64_t id)
{
	return &s->chunks[id / CHUNK_PAGES]->meta[id % CHUNK_PAGES];
}

static unsigned char *page_of(const struct pk_canon_store *s, uint64_t id)
{
	return s->chunks[id / CHUNK_PAGES]->pages + (id % CHUNK_PAGES) * PAGE;
}

/* The metadata of a live copy, or NULL. */
static struct frame_meta *live(const struct pk_canon_store *s, uint64_t id)
{
	struct frame_meta *m;

	if (id >= s->n_ids)
		return NULL;
	m = meta_of(s, id);
	return m->refs ? m : NULL;
}

/*
 * The filter in front of the index.  Most lookups are for bytes the
 * store does not hold (each candidate page of the scanner asks again
 * while copies are being made), and a miss in the index costs a cache
 * miss in a table of megabytes; the filter answers most of them from a
 * bitmap of 16-32 bits per copy, one bit per copy set.  Bits are set
 * when a copy is added and left set when it is freed; once more copies
 * were added since the last build than the store holds, it is built
 * again, sized for twice the copies held.  A set bit only means "look
 * in the index": the filter can make a lookup cheaper, never wrong.
 */
#define FILTER_MIN_LOG2 16

static uint64_t filter_bit(unsigned log2, uint64_t hash)
{
	return (hash * 0x9e3779b97f4a7c15ULL) >> (64 - log2);
}

static bool filter_may_hold(const struct pk_canon_store *s, uint64_t hash)
{
	uint64_t b;

	if (!s->filter)
		return true;
	b = filter_bit(s->filter_log2, hash);
	return s->filter[b / 64] >> (b % 64) & 1;
}

static void filter_set(struct pk_canon_store *s, uint64_t hash)
{
	uint64_t b;

	if (!s->filter)
		return;
	b = filter_bit(s->filter_log2, hash);
	s->filter[b / 64] |= UINT64_C(1) << (b % 64);
}

static size_t filter_bytes(unsigned log2)
{
	return ((size_t)1 << log2) / 8;
}

/* Builds the filter anew from the live copies; on ENOMEM, none. */
static void filter_build(struct pk_canon_store *s)
{
	unsigned log2 = FILTER_MIN_LOG2;

	while (((uint64_t)1 << log2) < 32 * s->frames && log2 < 34)
		log2++;
	free(s->filter);
	s->filter = calloc(filter_bytes(log2) / 8, sizeof(uint64_t));
	s->filter_log2 = log2;
	s->filter_adds = 0;
	if (!s->filter)
		return;
	for (uint64_t id = 0; id < s->n_ids; id++) {
		const struct frame_meta *m = meta_of(s, id);
		if (m->refs)
			filter_set(s, m->hash);
	}
}

int pk_canon_store_create(struct pk_canon_store **out)
{
	struct pk_canon_store *s = calloc(1, sizeof(*s));
	int rc;

	if (!s)
		return -ENOMEM;
	s->fd = -1;
	rc = pk_index_create(&s->index);
	if (rc < 0) {
		free(s);
		return rc;
	}
	s->free_head = NO_ID;
	*out = s;
	return 0;
}

void pk_canon_store_destroy(struct pk_canon_store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_chunks; i++) {
		munmap(s->chunks[i]->pages, (size_t)CHUNK_PAGES * PAGE);
		free(s->chunks[i]);
	}
	if (s->fd >= 0)
		close(s->fd);
	free(s->chunks);
	pk_index_destroy(s->index);
	free(s->filter);
	free(s);
}

#define CHUNK_BYTES ((size_t)CHUNK_PAGES * PAGE)

/* 2 MiB of the file at a 2 MiB boundary, so it can be a huge page. */
static unsigned char *map_file_chunk(struct pk_canon_store *s, size_t i)
{
	unsigned char *raw, *at;

	raw = mmap(NULL, 2 * CHUNK_BYTES, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	at = (unsigned char *)(((uintptr_t)raw + CHUNK_BYTES - 1) &
			       ~(uintptr_t)(CHUNK_BYTES - 1));
	if (mmap(at, CHUNK_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 s->fd, (off_t)(i * CHUNK_BYTES)) == MAP_FAILED) {
		munmap(raw, 2 * CHUNK_BYTES);
		return NULL;
	}
	if (at > raw)
		munmap(raw, (size_t)(at - raw));
	if (at + CHUNK_BYTES < raw + 2 * CHUNK_BYTES)
		munmap(at + CHUNK_BYTES,
		       (size_t)(raw + 2 * CHUNK_BYTES - (at + CHUNK_BYTES)));
	return at;
}

/* Populate a chunk (and on tmpfs make it one huge page): best effort. */
static void back_chunk(const struct pk_canon_store *s, struct chunk *c)
{
	(void)madvise(c->pages, CHUNK_BYTES, MADV_POPULATE_WRITE);
	if (s->tmpfs)
		(void)madvise(c->pages, CHUNK_BYTES, MADV_COLLAPSE);
}

static int add_chunk(struct pk_canon_store *s)
{
	struct chunk *c;

	if (s->n_chunks == s->chunks_cap) {
		size_t cap = s->chunks_cap ? s->chunks_cap * 2 : 8;
		struct chunk **v = realloc(s->chunks, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->chunks = v;
		s->chunks_cap = cap;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (s->fd >= 0) {
		struct stat st;
		if (fstat(s->fd, &st) < 0 ||
		    ((uint64_t)st.st_size < (s->n_chunks + 1) * CHUNK_BYTES &&
		     ftruncate(s->fd, (off_t)((s->n_chunks + 1) * CHUNK_BYTES)) < 0) ||
		    !(c->pages = map_file_chunk(s, s->n_chunks))) {
			int err = errno == ENOSPC ? -ENOSPC : -ENOMEM;
			free(c);
			return err;
		}
		back_chunk(s, c);
	} else {
		c->pages = mmap(NULL, CHUNK_BYTES, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (c->pages == MAP_FAILED) {
			free(c);
			return -ENOMEM;
		}
		/* Best effort, both: a huge page where the kernel has one
		 * (the refault's TLB misses), populated in one call rather
		 * than one fault per copy (5% of the scanner's CPU while
		 * merging, with 4 KiB). */
		(void)madvise(c->pages, CHUNK_BYTES, MADV_HUGEPAGE);
		(void)madvise(c->pages, CHUNK_BYTES, MADV_POPULATE_WRITE);
	}
	c->backed = true;
	s->n_backed++;
	s->chunks[s->n_chunks++] = c;
	return 0;
}

/* A free id, its metadata zeroed; the store's chunk list grows as needed. */
static int alloc_id(struct pk_canon_store *s, uint64_t *id)
{
	struct chunk *c;

	if (s->free_head != NO_ID) {
		*id = s->free_head;
		s->free_head = meta_of(s, *id)->next_free;
	} else {
		if (s->n_ids >= PK_CANON_ID_LIMIT)
			return -ENOSPC;
		if (s->n_ids == (uint64_t)s->n_chunks * CHUNK_PAGES) {
			int rc = add_chunk(s);

			if (rc < 0)
				return rc;
		}
		*id = s->n_ids++;
	}
	c = s->chunks[*id / CHUNK_PAGES];
	if (!c->backed) { /* given back: the copy's memcpy brings it back */
		c->backed = true;
		s->n_backed++;
		if (s->fd >= 0)
			back_chunk(s, c); /* as one huge page again */
	}
	return 0;
}

static void free_id(struct pk_canon_store *s, uint64_t id)
{
	struct frame_meta *m = meta_of(s, id);

	m->refs = 0;
	m->next_free = s->free_head;
	s->free_head = (uint32_t)id;
}

int pk_canon_find(const struct pk_canon_store *s, const void *page,
		  uint64_t hash, uint64_t *id)
{
	struct pk_index_iter it;
	uint64_t cand;

	if (!filter_may_hold(s, hash))
		return -ENOENT;
	for (bool ok = pk_index_first(s->index, hash, &it, &cand); ok;
	     ok = pk_index_next(s->index, &it, &cand)) {
		if (memcmp(page_of(s, cand), page, PAGE) != 0)
			continue; /* same hash, different content */
		*id = cand;
		return 0;
	}
	return -ENOENT;
}

int pk_canon_get(struct pk_canon_store *s, const void *page, uint64_t hash,
		 uint64_t *id)
{
	struct frame_meta *m;
	int rc = pk_canon_find(s, page, hash, id);

	if (rc < 0)
		return rc;
	m = meta_of(s, *id);
	if (m->refs == PK_CANON_REFS_MAX)
		return -EOVERFLOW;
	m->refs++;
	s->refs++;
	return 0;
}

int pk_canon_get_or_add(struct pk_canon_store *s, const void *page,
			uint64_t hash, uint64_t *id, bool *is_new)
{
	struct frame_meta *m;
	uint64_t nid;
	int rc;

	rc = pk_canon_get(s, page, hash, id);
	if (rc != -ENOENT) {
		if (rc == 0)
			*is_new = false;
		return rc;
	}
	rc = alloc_id(s, &nid);
	if (rc < 0)
		return rc;
	rc = pk_index_insert(s->index, hash, nid);
	if (rc < 0) {
		free_id(s, nid);
		return rc;
	}
	memcpy(page_of(s, nid), page, PAGE);
	s->chunks[nid / CHUNK_PAGES]->live++;
	m = meta_of(s, nid);
	m->hash = hash;
	m->refs = 1;
	m->next_free = NO_ID;
	s->frames++;
	s->added++;
	s->refs++;
	if (!s->filter || ++s->filter_adds > s->frames)
		filter_build(s);
	else
		filter_set(s, hash);
	*id = nid;
	*is_new = true;
	return 0;
}

int pk_canon_ref(struct pk_canon_store *s, uint64_t id)
{
	struct frame_meta *m = live(s, id);

	if (!m)
		return -ENOENT;
	if (m->refs == PK_CANON_REFS_MAX)
		return -EOVERFLOW;
	m->refs++;
	s->refs++;
	return 0;
}

int64_t pk_canon_put(struct pk_canon_store *s, uint64_t id)
{
	struct frame_meta *m = live(s, id);

	if (!m)
		return -ENOENT;
	s->refs--;
	if (--m->refs)
		return m->refs;
	/* The entry is there: it was inserted with the copy. */
	(void)pk_index_remove(s->index, m->hash, id);
	free_id(s, id);
	s->chunks[id / CHUNK_PAGES]->live--;
	s->frames--;
	return 0;
}

size_t pk_canon_release_freed(struct pk_canon_store *s)
{
	size_t released = 0;

	if (s->n_backed * CHUNK_PAGES == s->frames)
		return 0; /* every backed page holds a copy */
	for (size_t i = 0; i < s->n_chunks; i++) {
		struct chunk *c = s->chunks[i];
		if (!c->backed || c->live)
			continue;
		if (s->fd >= 0)
			(void)fallocate(s->fd, FALLOC_FL_PUNCH_HOLE |
					FALLOC_FL_KEEP_SIZE,
					(off_t)(i * CHUNK_BYTES),
					(off_t)CHUNK_BYTES);
		else
			(void)madvise(c->pages, CHUNK_BYTES, MADV_DONTNEED);
		c->backed = false;
		s->n_backed--;
		released += CHUNK_PAGES;
	}
	return released;
}

const void *pk_canon_data(const struct pk_canon_store *s, uint64_t id)
{
	return live(s, id) ? page_of(s, id) : NULL;
}

uint32_t pk_canon_refs(const struct pk_canon_store *s, uint64_t id)
{
	const struct frame_meta *m = live(s, id);

	return m ? m->refs : 0;
}

void pk_canon_stats(const struct pk_canon_store *s, struct pk_canon_stats *st)
{
	st->frames = s->frames;
	st->added = s->added;
	st->refs = s->refs;
	st->held = s->n_backed * CHUNK_PAGES - s->frames;
	st->page_bytes = s->n_backed * CHUNK_PAGES * PAGE;
	st->meta_bytes = sizeof(*s) + s->chunks_cap * sizeof(*s->chunks) +
			 s->n_chunks * sizeof(struct chunk) +
			 pk_index_bytes(s->index) +
			 (s->filter ? filter_bytes(s->filter_log2) : 0);
	st->bytes = st->page_bytes + st->meta_bytes;
}

int pk_canon_store_open_file(struct pk_canon_store **out, int fd)
{
	struct pk_canon_store *s;
	struct statfs sfs;
	struct stat st;
	size_t chunks;
	int rc;

	*out = NULL;
	if (fstat(fd, &st) < 0 || fstatfs(fd, &sfs) < 0)
		return -errno;
	rc = pk_canon_store_create(&s);
	if (rc < 0)
		return rc;
	s->fd = fd;
	s->tmpfs = sfs.f_type == TMPFS_MAGIC;
	chunks = (size_t)((uint64_t)st.st_size / CHUNK_BYTES);
	/* A previous daemon's copies: map them all; which are live comes
	 * from the page tables that name them (pk_canon_restore_ref). */
	for (size_t i = 0; i < chunks; i++) {
		rc = add_chunk(s);
		if (rc < 0) {
			s->fd = -1; /* the caller keeps fd on failure */
			pk_canon_store_destroy(s);
			return rc;
		}
	}
	s->n_ids = (uint64_t)chunks * CHUNK_PAGES;
	s->restoring = s->n_ids > 0;
	*out = s;
	return 0;
}

int pk_canon_restore_ref(struct pk_canon_store *s, uint64_t id)
{
	struct frame_meta *m;

	if (!s->restoring || id >= s->n_ids)
		return -ENOENT;
	m = meta_of(s, id);
	if (m->refs == PK_CANON_REFS_MAX)
		return -EOVERFLOW;
	if (m->refs == 0) {
		int rc;
		m->hash = pk_page_hash(page_of(s, id));
		rc = pk_index_insert(s->index, m->hash, id);
		if (rc < 0)
			return rc;
		m->next_free = NO_ID;
		s->chunks[id / CHUNK_PAGES]->live++;
		s->frames++;
	}
	m->refs++;
	s->refs++;
	return 0;
}

void pk_canon_restore_done(struct pk_canon_store *s)
{
	if (!s->restoring)
		return;
	s->restoring = false;
	/* Highest first, so the lowest free id is handed out first. */
	for (uint64_t id = s->n_ids; id-- > 0;)
		if (meta_of(s, id)->refs == 0)
			free_id(s, id);
	s->added = s->frames;
	filter_build(s);
	pk_canon_release_freed(s);
}
