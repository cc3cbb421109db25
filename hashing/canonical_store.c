/*
 * canonical_store.c - refcounted canonical copies of shared pages.
 *
 * What: the one copy of each shared page content that merged guest
 * pages refer to, with a reference count per copy, found by content.
 *
 * How: copies sit in chunks of CHUNK_PAGES pages, each an anonymous
 * private mmap (page-aligned, so UFFDIO_COPY can take a copy straight
 * from it) with transparent huge pages turned off (a huge page would make
 * one copy cost 2 MiB and the byte count a lie).  A copy's id is
 * chunk * CHUNK_PAGES + slot; beside each chunk, a metadata array holds
 * each copy's hash (to find its index entry again when it is freed), its
 * reference count and, while free, the next free id.  Freed ids form a
 * LIFO list, so a freed id is the next one handed out and ids stay dense.
 * A content index maps hash -> ids; every candidate is compared with
 * memcmp before it is used.  When a copy's last reference goes, its id
 * is freed at once but its page is given back later, in bulk, by
 * pk_canon_release_freed() (MADV_DONTNEED over runs of adjacent freed
 * pages): the last put usually happens on a guest's fault path, and each
 * MADV_DONTNEED is a TLB shootdown that held the next fault up (a third
 * more refault latency).  Freed pages not yet given back are counted in
 * page_bytes, so the byte count stays the store's real footprint.
 *
 * Why: ids must be small (56-bit page-table payloads, dense for later
 * per-id arrays) and lookups by id O(1): a two-level array does both.
 * Never trusting the hash is the sharing issue's first rule: a collision
 * must cost a memcmp, never a guest's data.
 */
#include "hashing/canonical_store.h"

#include "hashing/content_index.h"
#include "hashing/page_hash.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define PAGE PK_HASH_PAGE_SIZE
#define CHUNK_PAGES 512u
#define NO_ID UINT32_MAX

struct frame_meta {
	uint64_t hash;
	uint32_t refs;	    /* 0: free */
	uint32_t next_free; /* while free: next id on the free list */
	bool held;	    /* free, but its page not yet given back */
};

struct chunk {
	unsigned char *pages; /* CHUNK_PAGES * PAGE bytes, mmap'd */
	struct frame_meta meta[CHUNK_PAGES];
};

struct pk_canon_store {
	struct pk_content_index *index;
	struct chunk **chunks;
	size_t n_chunks, chunks_cap;
	uint64_t n_ids;	    /* ids ever handed out: the next fresh id */
	uint32_t free_head; /* most recently freed id, or NO_ID */
	uint64_t frames, refs;
	uint32_t *to_release; /* freed ids whose pages are still held */
	size_t n_to_release, to_release_cap;
	uint64_t held;	      /* free ids with their page still held */
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

int pk_canon_store_create(struct pk_canon_store **out)
{
	struct pk_canon_store *s = calloc(1, sizeof(*s));
	int rc;

	if (!s)
		return -ENOMEM;
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
	free(s->chunks);
	free(s->to_release);
	pk_index_destroy(s->index);
	free(s);
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
	c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->pages = mmap(NULL, (size_t)CHUNK_PAGES * PAGE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c->pages == MAP_FAILED) {
		free(c);
		return -ENOMEM;
	}
	/* Best effort: without it THP could back a chunk with 2 MiB at once. */
	(void)madvise(c->pages, (size_t)CHUNK_PAGES * PAGE, MADV_NOHUGEPAGE);
	/* New ids fill a new chunk in order, so populate it in one call
	 * rather than one page fault per copy (5% of the scanner's CPU
	 * while merging).  Best effort, like the THP hint. */
	(void)madvise(c->pages, (size_t)CHUNK_PAGES * PAGE, MADV_POPULATE_WRITE);
	s->chunks[s->n_chunks++] = c;
	return 0;
}

/* A free id, its metadata zeroed; the store's chunk list grows as needed. */
static int alloc_id(struct pk_canon_store *s, uint64_t *id)
{
	if (s->free_head != NO_ID) {
		struct frame_meta *m = meta_of(s, s->free_head);
		*id = s->free_head;
		s->free_head = m->next_free;
		if (m->held) { /* reused before its page was given back */
			m->held = false;
			s->held--;
		}
		return 0;
	}
	if (s->n_ids >= PK_CANON_ID_LIMIT)
		return -ENOSPC;
	if (s->n_ids == (uint64_t)s->n_chunks * CHUNK_PAGES) {
		int rc = add_chunk(s);

		if (rc < 0)
			return rc;
	}
	*id = s->n_ids++;
	return 0;
}

/* The page of freed id stays held until pk_canon_release_freed(). */
static void hold_page(struct pk_canon_store *s, uint64_t id)
{
	if (s->n_to_release == s->to_release_cap) {
		size_t cap = s->to_release_cap ? s->to_release_cap * 2 : 256;
		uint32_t *v = realloc(s->to_release, cap * sizeof(*v));
		if (!v) { /* no list: give it back now */
			(void)madvise(page_of(s, id), PAGE, MADV_DONTNEED);
			return;
		}
		s->to_release = v;
		s->to_release_cap = cap;
	}
	s->to_release[s->n_to_release++] = (uint32_t)id;
	meta_of(s, id)->held = true;
	s->held++;
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
	m = meta_of(s, nid);
	m->hash = hash;
	m->refs = 1;
	m->next_free = NO_ID;
	s->frames++;
	s->refs++;
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
	s->frames--;
	hold_page(s, id);
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

size_t pk_canon_release_freed(struct pk_canon_store *s)
{
	size_t released = 0, i = 0;

	if (!s->n_to_release)
		return 0;
	qsort(s->to_release, s->n_to_release, sizeof(*s->to_release), cmp_u32);
	while (i < s->n_to_release) {
		uint32_t first = s->to_release[i], last = first;
		size_t j = i + 1;
		if (!meta_of(s, first)->held) { /* reused, or listed twice */
			i++;
			continue;
		}
		/* A run of held pages in one chunk is one range of memory. */
		while (j < s->n_to_release &&
		       s->to_release[j] == last + 1 &&
		       (last + 1) % CHUNK_PAGES != 0 &&
		       meta_of(s, last + 1)->held)
			last = s->to_release[j++];
		(void)madvise(page_of(s, first), (size_t)(last - first + 1) * PAGE,
			      MADV_DONTNEED);
		for (uint32_t id = first; id <= last; id++)
			meta_of(s, id)->held = false;
		released += last - first + 1;
		s->held -= last - first + 1;
		i = j;
	}
	s->n_to_release = 0;
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
	st->refs = s->refs;
	st->held = s->held;
	st->page_bytes = (s->frames + s->held) * PAGE;
	st->meta_bytes = sizeof(*s) + s->chunks_cap * sizeof(*s->chunks) +
			 s->n_chunks * sizeof(struct chunk) +
			 s->to_release_cap * sizeof(*s->to_release) +
			 pk_index_bytes(s->index);
	st->bytes = st->page_bytes + st->meta_bytes;
}
