/*
 * swap_dedup.h - evicted pages with the same bytes share one swap slot.
 *
 * Contract:
 *  - Every slot written by an eviction and now owned by a SWAPPED page is
 *    indexed under its content hash (the swap store's XXH3-64 checksum of
 *    the written page, truncated like pk_page_hash()) together with the
 *    sharing domain of the VM that wrote it.  pk_swap_dedup_add() indexes
 *    it; pk_swap_slot_put() drops an owner and un-indexes the slot with
 *    its last owner, so the index holds exactly the live, written slots.
 *  - pk_swap_dedup_find() proposes a slot of the same domain whose hash
 *    matches.  A hash is only a hint: the caller reads the slot back and
 *    compares it with the page in full before it takes a reference
 *    (evict.c), so a collision costs one read and nothing else.
 *  - Domains are tenant boundaries (share.h): a slot written by one
 *    domain is never proposed to another.
 *  - Cost: one index entry (16-27 bytes) per swapped slot, and a hash per
 *    evicted page (about 0.3 us, against about 2 us of eviction work).
 *
 * Every engine path that gives up a SWAPPED page's slot calls
 * pk_swap_slot_put(), never pk_swap_slot_free() directly.
 */
#ifndef PK_SWAP_DEDUP_H
#define PK_SWAP_DEDUP_H

#include <stdint.h>

struct pk_engine;
struct pk_vm;

int pk_swap_dedup_init(struct pk_engine *e);
void pk_swap_dedup_fini(struct pk_engine *e);

/* A written slot now owned by one of vm's pages: index it. */
void pk_swap_dedup_add(struct pk_vm *vm, uint64_t slot);

/*
 * A slot of vm's domain that may hold a page hashing to hash, with room
 * for another owner.  0 and *slot, or -ENOENT.
 */
int pk_swap_dedup_find(struct pk_vm *vm, uint64_t hash, uint64_t *slot);

/* Prefetch hash's place in the index before a batch's finds or adds
 * (pk_index_prefetch()). */
void pk_swap_dedup_prefetch(const struct pk_engine *e, uint64_t hash);

/*
 * An eviction of up to `pages` pages starts (pk_reclaim_start()): make
 * room in the index for that many more entries at once, capped at the
 * swap file's free slots, rather than grow it a dozen times as they
 * come, and keep swap-ins meanwhile from shrinking it, until an eviction
 * ends (pk_swap_dedup_unreserve(); with several VMs evicting, the first
 * to end lifts the floor for all: the others' tables may then shrink
 * and grow again as without a reserve).  Failure only costs the growth.
 */
void pk_swap_dedup_reserve(struct pk_engine *e, uint64_t pages);
void pk_swap_dedup_unreserve(struct pk_engine *e);

/* Drop one owner of slot; the last one un-indexes and frees it. */
void pk_swap_slot_put(struct pk_engine *e, uint64_t slot);

/* Index entries and heap bytes (for status). */
uint64_t pk_swap_dedup_entries(const struct pk_engine *e);
uint64_t pk_swap_dedup_bytes(const struct pk_engine *e);

#endif
