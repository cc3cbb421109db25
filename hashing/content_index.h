/*
 * content_index.h - hash -> candidate pages.
 *
 * A multimap from a 64-bit content hash to 64-bit opaque references (the
 * caller encodes what a reference means: a VM id and page index, or a
 * canonical-copy id).  Several entries may share one hash: a hash is only
 * a hint, pages that collide on it are all kept, and the caller proves
 * identity with a full memcmp before it uses a candidate.
 *
 * Each entry is one 16-byte slot {hash, ref} in an open-addressing table
 * (Robin Hood linear probing, deletion by backward shift: no tombstones).
 * The table grows by 1.5x at 7/8 full and halves below 1/4 full, so it
 * costs 18-27 bytes per entry between rehashes; insert, remove and lookup
 * take O(1) expected time, plus the number of entries that share the
 * hash.
 *
 * Not thread-safe.  Errors are negative errno values.
 */
#ifndef PK_CONTENT_INDEX_H
#define PK_CONTENT_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pk_content_index;

/* The one reference value the index cannot hold. */
#define PK_INDEX_REF_INVALID UINT64_MAX

/* Walks the entries of one hash; see pk_index_first(). */
struct pk_index_iter {
	uint64_t hash;
	size_t slot;  /* next slot to look at */
	size_t dist;  /* its distance from the hash's home slot */
};

/* A new, empty index.  -ENOMEM. */
int pk_index_create(struct pk_content_index **out);
void pk_index_destroy(struct pk_content_index *idx);

/*
 * Adds (hash, ref).  -EINVAL if ref is PK_INDEX_REF_INVALID, -EEXIST if
 * that exact pair is present already, -ENOMEM if the table must grow and
 * cannot.
 */
int pk_index_insert(struct pk_content_index *idx, uint64_t hash, uint64_t ref);

/*
 * Makes room for `entries` entries in all: grows the table at once to
 * the size inserts would grow it to one step at a time (one rehash and
 * one new mapping instead of a dozen), and keeps removals from shrinking
 * it below that until pk_index_reserve(idx, 0) lifts the floor.  For a
 * caller that knows a burst of inserts is coming (an eviction of N
 * pages).  -ENOMEM leaves the table as it was, the floor lifted.
 */
int pk_index_reserve(struct pk_content_index *idx, size_t entries);

/* Removes (hash, ref).  -ENOENT if absent. */
int pk_index_remove(struct pk_content_index *idx, uint64_t hash, uint64_t ref);

/*
 * Expiry a little at a time: looks at up to max_slots slots from
 * *cursor on, in table order (wrapping at the end), and removes every
 * entry for which keep(arg, hash, ref) returns false; *cursor is left
 * where the next call goes on.  Calls that add up to pk_index_slots()
 * look at every entry once.  keep must not change the index.  Returns
 * the entries removed.
 */
typedef bool (*pk_index_keep_fn)(void *arg, uint64_t hash, uint64_t ref);
size_t pk_index_sweep(struct pk_content_index *idx, size_t *cursor,
		      size_t max_slots, pk_index_keep_fn keep, void *arg);

/* 1 if (hash, ref) is present, else 0. */
int pk_index_contains(const struct pk_content_index *idx, uint64_t hash,
		      uint64_t ref);

/*
 * Iterates the references stored under hash, in no particular order:
 *
 *	struct pk_index_iter it;
 *	uint64_t ref;
 *	for (bool ok = pk_index_first(idx, h, &it, &ref); ok;
 *	     ok = pk_index_next(idx, &it, &ref))
 *		... compare the candidate's content ...
 *
 * Returns false when there are no more.  Any insert or remove ends the
 * iteration: start again after changing the index.
 */
bool pk_index_first(const struct pk_content_index *idx, uint64_t hash,
		    struct pk_index_iter *it, uint64_t *ref);
bool pk_index_next(const struct pk_content_index *idx,
		   struct pk_index_iter *it, uint64_t *ref);

/*
 * A hint: bring the cache line where hash's entries start (or would go)
 * toward the CPU.  A batch of lookups or inserts prefetches every hash
 * first, so the table's cache misses overlap instead of one per page.
 */
void pk_index_prefetch(const struct pk_content_index *idx, uint64_t hash);

/* Entries stored. */
size_t pk_index_entries(const struct pk_content_index *idx);

/* Slots in the table (capacity). */
size_t pk_index_slots(const struct pk_content_index *idx);

/* Heap bytes the index holds: the table plus its header. */
size_t pk_index_bytes(const struct pk_content_index *idx);

#endif
