/*
 * swap_dedup.c - one swap slot for every evicted copy of the same bytes.
 *
 * One content index for the whole swap file maps a page hash to index
 * references that pack the slot and the writer's domain id:
 * ref = domain_id << 40 | slot.  Keeping the domain in the reference
 * lets a lookup skip other tenants' slots without a per-slot table, and
 * lets removal find a slot's one entry by walking the entries under its
 * hash (the store still has the slot's checksum when its last owner
 * goes: it is cleared only when the slot is allocated again).
 *
 * Why a slot, not only a canonical copy: a canonical copy keeps the bytes
 * in memory, which is what the hard memory state must give back; a
 * shared slot keeps them on disk once, however many pages hold them.
 */
#include "engine/swap_dedup.h"
#include "engine/engine.h"
#include "engine/share.h"
#include "engine/vm.h"
#include "hashing/content_index.h"
#include "hashing/page_hash.h"
#include "swapper/swap_slots.h"
#include "swapper/swap_store.h"

#include <errno.h>
#include <stdbool.h>

#define SLOT_BITS 40
#define SLOT_MASK ((UINT64_C(1) << SLOT_BITS) - 1)

static uint64_t slot_key(const struct pk_engine *e, uint64_t slot)
{
	return pk_swap_slot_checksum(e->swap, slot) & PK_HASH_MASK;
}

int pk_swap_dedup_init(struct pk_engine *e)
{
	return pk_index_create(&e->swap_index);
}

void pk_swap_dedup_fini(struct pk_engine *e)
{
	pk_index_destroy(e->swap_index);
	e->swap_index = NULL;
}

void pk_swap_dedup_add(struct pk_vm *vm, uint64_t slot)
{
	struct pk_engine *e = vm->engine;

	if (!e->swap_index || !vm->domain || slot > SLOT_MASK)
		return;
	/* -ENOMEM only costs a missed dedup later. */
	pk_index_insert(e->swap_index, slot_key(e, slot),
			(uint64_t)vm->domain->id << SLOT_BITS | slot);
}

int pk_swap_dedup_find(struct pk_vm *vm, uint64_t hash, uint64_t *slot)
{
	struct pk_engine *e = vm->engine;
	struct pk_index_iter it;
	uint64_t ref;

	if (!e->swap_index || !vm->domain)
		return -ENOENT;
	for (bool ok = pk_index_first(e->swap_index, hash, &it, &ref); ok;
	     ok = pk_index_next(e->swap_index, &it, &ref)) {
		uint64_t s = ref & SLOT_MASK;
		unsigned refs = pk_swap_slot_refs(e->swap, s);
		if (ref >> SLOT_BITS != vm->domain->id || refs == 0 ||
		    refs >= PK_SLOT_REFS_MAX)
			continue;
		*slot = s;
		return 0;
	}
	return -ENOENT;
}

void pk_swap_dedup_reserve(struct pk_engine *e, uint64_t pages)
{
	uint64_t free_slots;

	if (!e->swap_index)
		return;
	free_slots = pk_swap_slots_total(e->swap) - pk_swap_slots_used(e->swap);
	if (pages > free_slots)
		pages = free_slots;
	/* -ENOMEM: the index grows as the entries come, as without. */
	(void)pk_index_reserve(e->swap_index,
			       pk_index_entries(e->swap_index) + pages);
}

void pk_swap_dedup_unreserve(struct pk_engine *e)
{
	if (e->swap_index)
		(void)pk_index_reserve(e->swap_index, 0);
}

void pk_swap_dedup_prefetch(const struct pk_engine *e, uint64_t hash)
{
	if (e->swap_index)
		pk_index_prefetch(e->swap_index, hash);
}

void pk_swap_slot_put(struct pk_engine *e, uint64_t slot)
{
	if (e->swap_index && pk_swap_slot_refs(e->swap, slot) == 1) {
		uint64_t key = slot_key(e, slot), ref;
		struct pk_index_iter it;
		for (bool ok = pk_index_first(e->swap_index, key, &it, &ref);
		     ok; ok = pk_index_next(e->swap_index, &it, &ref))
			if ((ref & SLOT_MASK) == slot) {
				pk_index_remove(e->swap_index, key, ref);
				break;
			}
	}
	pk_swap_slot_free(e->swap, slot);
}

uint64_t pk_swap_dedup_entries(const struct pk_engine *e)
{
	return e->swap_index ? pk_index_entries(e->swap_index) : 0;
}

uint64_t pk_swap_dedup_bytes(const struct pk_engine *e)
{
	return e->swap_index ? pk_index_bytes(e->swap_index) : 0;
}
