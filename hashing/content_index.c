/*
 * content_index.c - hash -> candidate pages, an open-addressing multimap.
 *
 * What: the sharing scanner's index from a page's content hash to the
 * pages (or canonical copies) that may hold that content.  Several
 * entries can share a hash; the caller verifies content.
 *
 * How: one flat array of 16-byte slots {hash, ref + 1}; ref + 1 == 0
 * marks an empty slot, so a fresh table is calloc'd zero pages and
 * PK_INDEX_REF_INVALID (UINT64_MAX) is the one reference we refuse.  An
 * entry's home slot is its hash, mixed (a truncated or hand-picked hash
 * must still spread), scaled into [0, slots) by a multiply-high, so the
 * table size need not be a power of two.  Robin Hood linear probing keeps
 * each cluster sorted by home slot: a lookup walks from the home slot,
 * skips entries whose home is earlier, looks at those whose home is its
 * own and stops at the first empty slot or entry whose home is later.
 * Removal shifts the following entries of the cluster back one slot
 * (backward-shift deletion), so there are no tombstones and probe lengths
 * do not decay under churn.  Entries with the same hash share a home slot
 * and therefore sit together.
 *
 * pk_index_sweep() walks the slots in order with a caller's cursor and
 * removes the entries the caller no longer wants, re-reading a slot after
 * each removal (the cluster shifted into it); it is how the sharing
 * scanner expires stale candidates without rebuilding the table.  Tables
 * of 2 MiB and more are mapped on their own, with MADV_HUGEPAGE.
 *
 * Why: at 7/8 maximum load Robin Hood probes stay short (a few slots),
 * and growing by 1.5x (not 2x) keeps the table between 7/12 and 7/8 full:
 * 18-27 bytes per entry, against 32+ for chained nodes.  The index holds
 * one entry per candidate page of every guest, so bytes per entry is
 * what matters.
 */
#include "hashing/content_index.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#define MIN_SLOTS 16
/* Tables this big get their own mapping, on huge pages where the kernel
 * has them: lookups land on random slots, and with 4 KiB pages nearly
 * every one of them also missed the TLB (a 1M-entry table spans 6000+
 * pages). */
#define HUGE_TABLE_BYTES (2u << 20)

struct slot {
	uint64_t hash;
	uint64_t ref1; /* ref + 1; 0 = empty */
};

struct pk_content_index {
	struct slot *slots;
	size_t n_slots;
	size_t n_entries;
	size_t floor_slots; /* pk_index_reserve(): no shrinking below */
};

static uint64_t mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static size_t home_of(uint64_t hash, size_t n_slots)
{
	return (size_t)(((unsigned __int128)mix(hash) * n_slots) >> 64);
}

static size_t next_slot(size_t i, size_t n_slots)
{
	return i + 1 == n_slots ? 0 : i + 1;
}

/* How far slot i is from the home slot of the entry it holds. */
static size_t dist_of(const struct slot *s, size_t i, size_t n_slots)
{
	size_t home = home_of(s->hash, n_slots);

	return i >= home ? i - home : i + n_slots - home;
}

/* Robin Hood insert of an entry known to be absent; a free slot exists. */
static void place(struct slot *slots, size_t n_slots, struct slot cur)
{
	size_t i = home_of(cur.hash, n_slots), d = 0;

	for (;;) {
		struct slot *s = &slots[i];

		if (!s->ref1) {
			*s = cur;
			return;
		}
		size_t sd = dist_of(s, i, n_slots);
		if (sd < d) {
			struct slot t = *s;
			*s = cur;
			cur = t;
			d = sd;
		}
		i = next_slot(i, n_slots);
		d++;
	}
}

static struct slot *slots_alloc(size_t n_slots)
{
	size_t bytes = n_slots * sizeof(struct slot);
	void *p;

	if (bytes < HUGE_TABLE_BYTES)
		return calloc(n_slots, sizeof(struct slot));
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	(void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint: fine without */
	return p;
}

static void slots_free(struct slot *slots, size_t n_slots)
{
	size_t bytes = n_slots * sizeof(struct slot);

	if (bytes < HUGE_TABLE_BYTES)
		free(slots);
	else if (slots)
		munmap(slots, bytes);
}

static int rehash(struct pk_content_index *idx, size_t n_slots)
{
	struct slot *slots = slots_alloc(n_slots);

	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < idx->n_slots; i++)
		if (idx->slots[i].ref1)
			place(slots, n_slots, idx->slots[i]);
	slots_free(idx->slots, idx->n_slots);
	idx->slots = slots;
	idx->n_slots = n_slots;
	return 0;
}

int pk_index_create(struct pk_content_index **out)
{
	struct pk_content_index *idx = calloc(1, sizeof(*idx));

	if (!idx)
		return -ENOMEM;
	idx->slots = calloc(MIN_SLOTS, sizeof(*idx->slots));
	if (!idx->slots) {
		free(idx);
		return -ENOMEM;
	}
	idx->n_slots = MIN_SLOTS;
	*out = idx;
	return 0;
}

void pk_index_destroy(struct pk_content_index *idx)
{
	if (!idx)
		return;
	slots_free(idx->slots, idx->n_slots);
	free(idx);
}

/* The slot holding (hash, ref1), or n_slots. */
static size_t find(const struct pk_content_index *idx, uint64_t hash,
		   uint64_t ref1)
{
	size_t n = idx->n_slots, i = home_of(hash, n), d = 0;

	for (;; i = next_slot(i, n), d++) {
		const struct slot *s = &idx->slots[i];

		if (!s->ref1 || dist_of(s, i, n) < d)
			return n;
		if (s->hash == hash && s->ref1 == ref1)
			return i;
	}
}

int pk_index_insert(struct pk_content_index *idx, uint64_t hash, uint64_t ref)
{
	if (ref == PK_INDEX_REF_INVALID)
		return -EINVAL;
	if (find(idx, hash, ref + 1) != idx->n_slots)
		return -EEXIST;
	if ((idx->n_entries + 1) * 8 > idx->n_slots * 7) {
		/* A failed growth is survivable while one slot stays free. */
		if (rehash(idx, idx->n_slots + idx->n_slots / 2) < 0 &&
		    idx->n_entries + 2 > idx->n_slots)
			return -ENOMEM;
	}
	place(idx->slots, idx->n_slots, (struct slot){ hash, ref + 1 });
	idx->n_entries++;
	return 0;
}

/* Empties slot i: pulls the rest of its cluster one slot closer home. */
static void remove_at(struct pk_content_index *idx, size_t i)
{
	size_t n = idx->n_slots, j;

	for (j = next_slot(i, n); idx->slots[j].ref1 && dist_of(&idx->slots[j], j, n);
	     j = next_slot(j, n)) {
		idx->slots[i] = idx->slots[j];
		i = j;
	}
	idx->slots[i] = (struct slot){ 0, 0 };
	idx->n_entries--;
}

/* Shrinking is best effort: on failure the bigger table stays. */
static void maybe_shrink(struct pk_content_index *idx)
{
	size_t n = idx->n_slots;

	if (n > MIN_SLOTS && n / 2 >= idx->floor_slots &&
	    idx->n_entries * 4 < n)
		(void)rehash(idx, n / 2 > MIN_SLOTS ? n / 2 : MIN_SLOTS);
}

int pk_index_reserve(struct pk_content_index *idx, size_t entries)
{
	size_t n = idx->n_slots;

	idx->floor_slots = 0;
	if (entries == 0)
		return 0;
	/* The size insert's 1.5x steps would reach: they start from the
	 * same n, so a reserve and a plain fill end up alike. */
	while (entries * 8 > n * 7)
		n += n / 2;
	if (n != idx->n_slots && rehash(idx, n) < 0)
		return -ENOMEM;
	idx->floor_slots = n;
	return 0;
}

int pk_index_remove(struct pk_content_index *idx, uint64_t hash, uint64_t ref)
{
	size_t i;

	if (ref == PK_INDEX_REF_INVALID)
		return -ENOENT;
	i = find(idx, hash, ref + 1);
	if (i == idx->n_slots)
		return -ENOENT;
	remove_at(idx, i);
	maybe_shrink(idx);
	return 0;
}

size_t pk_index_sweep(struct pk_content_index *idx, size_t *cursor,
		      size_t max_slots, pk_index_keep_fn keep, void *arg)
{
	size_t n = idx->n_slots, i = *cursor < n ? *cursor : 0, removed = 0;

	for (size_t k = 0; k < max_slots && k < n;) {
		const struct slot *s = &idx->slots[i];
		if (s->ref1 && !keep(arg, s->hash, s->ref1 - 1)) {
			/* The cluster shifts back: slot i holds the next
			 * entry now, not yet looked at. */
			remove_at(idx, i);
			removed++;
			continue;
		}
		i = next_slot(i, n);
		k++;
	}
	*cursor = i;
	maybe_shrink(idx);
	if (idx->n_slots != n) /* same place, relative to the table */
		*cursor = (size_t)((unsigned __int128)i * idx->n_slots / n);
	return removed;
}

int pk_index_contains(const struct pk_content_index *idx, uint64_t hash,
		      uint64_t ref)
{
	if (ref == PK_INDEX_REF_INVALID)
		return 0;
	return find(idx, hash, ref + 1) != idx->n_slots;
}

bool pk_index_next(const struct pk_content_index *idx,
		   struct pk_index_iter *it, uint64_t *ref)
{
	size_t n = idx->n_slots;

	for (;; it->slot = next_slot(it->slot, n), it->dist++) {
		const struct slot *s = &idx->slots[it->slot];

		if (!s->ref1 || dist_of(s, it->slot, n) < it->dist)
			return false;
		if (s->hash == it->hash) {
			*ref = s->ref1 - 1;
			it->slot = next_slot(it->slot, n);
			it->dist++;
			return true;
		}
	}
}

bool pk_index_first(const struct pk_content_index *idx, uint64_t hash,
		    struct pk_index_iter *it, uint64_t *ref)
{
	it->hash = hash;
	it->slot = home_of(hash, idx->n_slots);
	it->dist = 0;
	return pk_index_next(idx, it, ref);
}

void pk_index_prefetch(const struct pk_content_index *idx, uint64_t hash)
{
	__builtin_prefetch(&idx->slots[home_of(hash, idx->n_slots)]);
}

size_t pk_index_entries(const struct pk_content_index *idx)
{
	return idx->n_entries;
}

size_t pk_index_slots(const struct pk_content_index *idx)
{
	return idx->n_slots;
}

size_t pk_index_bytes(const struct pk_content_index *idx)
{
	return sizeof(*idx) + idx->n_slots * sizeof(struct slot);
}
