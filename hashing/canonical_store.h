/*
 * canonical_store.h - refcounted canonical copies of shared pages.
 *
 * When guest pages with identical content are merged, one copy of the
 * content lives here, in the daemon's memory or in a file that outlives
 * it (pk_canon_store_open_file), and each merged guest page
 * holds one reference to it (its page-table payload is the copy's id).
 * A refault of a merged page is served by UFFDIO_COPY from
 * pk_canon_data(); the guest page then drops its reference.
 *
 * Identity is never taken from the hash: pk_canon_get_or_add() looks the
 * hash up in a content index and returns an existing copy only if a full
 * memcmp of the page matches it.  Pages that collide on the hash get
 * copies of their own.  The hash is the caller's (the scanner computed it
 * with pk_page_hash()); a wrong hash can cost sharing, never correctness.
 *
 * Ids are small integers below PK_CANON_ID_LIMIT (they fit in the page
 * table's 56-bit payload); the id of a freed copy is handed out again,
 * most recently freed first.  Copies live in page-aligned, mmap'd chunks
 * of 512 pages (2 MiB, a huge page where the kernel has one); a chunk
 * that holds no live copy is given back to the kernel by the next
 * pk_canon_release_freed() (each MADV_DONTNEED is a TLB shootdown, too
 * slow for a fault path), and every chunk not given back counts whole in
 * pk_canon_stats().page_bytes, so bytes is always the store's real
 * footprint, which every figure that claims savings must subtract.
 *
 * Not thread-safe.  Errors are negative errno values.
 */
#ifndef PK_CANONICAL_STORE_H
#define PK_CANONICAL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pk_canon_store;

/* Pages per chunk: the unit in which memory is given back. */
#define PK_CANON_CHUNK_PAGES 512u

/* Ids are < PK_CANON_ID_LIMIT. */
#define PK_CANON_ID_LIMIT UINT64_C(0xffffffff)

/* The most references one copy can hold. */
#define PK_CANON_REFS_MAX UINT32_MAX

struct pk_canon_stats {
	uint64_t frames;     /* canonical copies held */
	uint64_t added;      /* copies ever made (a new one: a page may
				match that matched nothing before) */
	uint64_t held;	     /* pages of the store's memory with no copy */
	uint64_t refs;	     /* references held on them, in total */
	uint64_t page_bytes; /* (frames + held) * PK_HASH_PAGE_SIZE */
	uint64_t meta_bytes; /* per-copy metadata, chunk table, content index */
	uint64_t bytes;	     /* page_bytes + meta_bytes */
};

int pk_canon_store_create(struct pk_canon_store **out);

/*
 * A store whose copies live in fd (taken over on success), a file in the
 * run directory, so they outlive the daemon: each chunk is 2 MiB of the
 * file at chunk * 2 MiB, a huge page on tmpfs.  A file that holds a
 * previous daemon's copies opens in restore mode: the caller replays
 * every reference its page tables hold with pk_canon_restore_ref() (the
 * first one makes the copy live again and rehashes it) and then calls
 * pk_canon_restore_done(), which frees the copies nobody named; nothing
 * else may be called on the store until then.  -ENOMEM, -errno.
 */
int pk_canon_store_open_file(struct pk_canon_store **out, int fd);
/* -ENOENT: id is beyond the file (or the store is not restoring). */
int pk_canon_restore_ref(struct pk_canon_store *store, uint64_t id);
void pk_canon_restore_done(struct pk_canon_store *store);

/* Frees every copy, referenced or not (a file's copies stay in it). */
void pk_canon_store_destroy(struct pk_canon_store *store);

/*
 * Finds a copy whose content equals page (PK_HASH_PAGE_SIZE bytes)
 * among those stored under hash, and takes a reference on it (*is_new =
 * false); if none matches, stores a new copy under hash with one
 * reference (*is_new = true).  *id is the copy's id.  -ENOMEM, -ENOSPC
 * (PK_CANON_ID_LIMIT copies), -EOVERFLOW (the matching copy holds
 * PK_CANON_REFS_MAX references).
 */
int pk_canon_get_or_add(struct pk_canon_store *store, const void *page,
			uint64_t hash, uint64_t *id, bool *is_new);

/*
 * Like pk_canon_get_or_add() but never adds: -ENOENT when no stored copy
 * equals page.
 */
int pk_canon_get(struct pk_canon_store *store, const void *page,
		 uint64_t hash, uint64_t *id);

/*
 * Looks up without taking a reference: 0 with *id when a stored copy
 * equals page, else -ENOENT.
 */
int pk_canon_find(const struct pk_canon_store *store, const void *page,
		  uint64_t hash, uint64_t *id);

/* Takes one more reference on id.  -ENOENT if id is not a live copy. */
int pk_canon_ref(struct pk_canon_store *store, uint64_t id);

/*
 * Drops one reference on id and returns the references left (>= 0); at
 * 0 the copy is freed and its data pointer is no longer valid.  -ENOENT
 * if id is not a live copy.
 */
int64_t pk_canon_put(struct pk_canon_store *store, uint64_t id);

/*
 * Gives every chunk that holds no live copy back to the kernel
 * (MADV_DONTNEED of the whole chunk); returns how many pages.  Call it
 * off the fault path, e.g. once a second.
 */
size_t pk_canon_release_freed(struct pk_canon_store *store);

/* The copy's content, or NULL if id is not a live copy.  Read-only. */
const void *pk_canon_data(const struct pk_canon_store *store, uint64_t id);

/* References held on id; 0 if it is not a live copy. */
uint32_t pk_canon_refs(const struct pk_canon_store *store, uint64_t id);

void pk_canon_stats(const struct pk_canon_store *store,
		    struct pk_canon_stats *st);

#endif
