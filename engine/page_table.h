/*
 * page_table.h - per-VM page-state table.
 *
 * One 64-bit entry per guest page, in a flat array indexed by the VM's
 * page number (regions are laid end to end, see vm.h).  The entry packs
 * the page's state in the low 4 bits, flag bits 4-6 (busy, and the two
 * write-tracking bits of engine/track.h), and a 56-bit payload (swap slot
 * or canonical-copy id in later issues).  8 bytes per guest
 * page is the whole per-page cost: there is no other per-page index.
 *
 * The table keeps a count of pages in each state, so status figures are
 * O(1) and always agree with the entries: pk_page_set() is the only way
 * an entry's state changes (pk_page_set_payload() and the flag setters
 * leave the state, and so the counts, alone).
 *
 * Not thread-safe: the engine touches a VM's table from its one event
 * loop thread.
 */
#ifndef PK_PAGE_TABLE_H
#define PK_PAGE_TABLE_H

#include <stdint.h>

enum pk_page_state {
	PK_PAGE_UNTOUCHED = 0, /* never populated: zero-fill on fault */
	PK_PAGE_RESIDENT,      /* populated in guest RAM */
	PK_PAGE_ZERO,	       /* reclaimed because it was all zeros */
	PK_PAGE_REMOVED,       /* discarded by the guest (balloon, DONTNEED) */
	PK_PAGE_SWAPPED,       /* payload: swap slot (swapper issue) */
	PK_PAGE_SHARED,	       /* payload: canonical copy (sharing issue) */
	PK_PAGE_POISONED,      /* lost (bad checksum): faults get SIGBUS */
	PK_PAGE_NSTATES
};

#define PK_PTE_STATE_MASK 0xfULL
#define PK_PTE_FLAG_BUSY 0x10ULL /* an operation owns the page (eviction) */
/* Write tracking (engine/track.h), for cold-first victims: the guest
 * wrote the page in the current tracking period, or in the one before. */
#define PK_PTE_FLAG_WRITTEN 0x20ULL
#define PK_PTE_FLAG_WRITTEN_PREV 0x40ULL
#define PK_PTE_FLAGS_WRITTEN (PK_PTE_FLAG_WRITTEN | PK_PTE_FLAG_WRITTEN_PREV)
#define PK_PTE_PAYLOAD_SHIFT 8
#define PK_PTE_PAYLOAD_MAX ((1ULL << 56) - 1)

struct pk_page_table {
	uint64_t *entries;
	uint64_t n_pages;
	uint64_t count[PK_PAGE_NSTATES];
	int borrowed; /* entries belong to a state file (engine/state.c) */
};

/* Bytes the table costs per guest page, for reporting. */
#define PK_PAGE_TABLE_BYTES_PER_PAGE sizeof(uint64_t)

int pk_page_table_init(struct pk_page_table *pt, uint64_t n_pages);
/*
 * A table over entries the caller owns (a VM's durable record, mapped):
 * the counts are taken from what the entries say.  Invalid states count
 * as poisoned, and pk_page_table_attach() rewrites them so.
 */
void pk_page_table_attach(struct pk_page_table *pt, uint64_t *entries,
			  uint64_t n_pages);
void pk_page_table_free(struct pk_page_table *pt);

static inline enum pk_page_state pk_page_state(const struct pk_page_table *pt,
					       uint64_t idx)
{
	return (enum pk_page_state)(pt->entries[idx] & PK_PTE_STATE_MASK);
}

static inline uint64_t pk_page_payload(const struct pk_page_table *pt,
				       uint64_t idx)
{
	return pt->entries[idx] >> PK_PTE_PAYLOAD_SHIFT;
}

/* Set one page's state and payload; clears its flags. */
void pk_page_set(struct pk_page_table *pt, uint64_t idx,
		 enum pk_page_state state, uint64_t payload);

/*
 * Change one page's payload and keep its state and flags (the sharing
 * scanner's hash and stamps on a resident page: write tracking's marks
 * must outlive a scan).  The counts do not change.
 */
static inline void pk_page_set_payload(struct pk_page_table *pt, uint64_t idx,
				       uint64_t payload)
{
	pt->entries[idx] = (payload << PK_PTE_PAYLOAD_SHIFT) |
			   (pt->entries[idx] & ((1ULL << PK_PTE_PAYLOAD_SHIFT) - 1));
}

static inline int pk_page_busy(const struct pk_page_table *pt, uint64_t idx)
{
	return !!(pt->entries[idx] & PK_PTE_FLAG_BUSY);
}

/* Mark a page owned by an in-flight operation (eviction, swap-in). */
static inline void pk_page_set_busy(struct pk_page_table *pt, uint64_t idx,
				    int busy)
{
	if (busy)
		pt->entries[idx] |= PK_PTE_FLAG_BUSY;
	else
		pt->entries[idx] &= ~PK_PTE_FLAG_BUSY;
}

/* Written in this tracking period or the one before (engine/track.h)? */
static inline int pk_page_written(const struct pk_page_table *pt, uint64_t idx)
{
	return !!(pt->entries[idx] & PK_PTE_FLAGS_WRITTEN);
}

/* Mark a page written in this tracking period; 1 if it was not yet. */
static inline int pk_page_set_written(struct pk_page_table *pt, uint64_t idx)
{
	int was = !!(pt->entries[idx] & PK_PTE_FLAG_WRITTEN);

	pt->entries[idx] |= PK_PTE_FLAG_WRITTEN;
	return !was;
}

/* Set [first, first + n) to state with payload 0. */
void pk_page_set_range(struct pk_page_table *pt, uint64_t first, uint64_t n,
		       enum pk_page_state state);

/* Does a fault on a page in this state resolve to a zero page? */
static inline int pk_page_state_is_zero_fill(enum pk_page_state s)
{
	return s == PK_PAGE_UNTOUCHED || s == PK_PAGE_ZERO ||
	       s == PK_PAGE_REMOVED;
}

const char *pk_page_state_name(enum pk_page_state s);

#endif
