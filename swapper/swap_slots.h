/*
 * swap_slots.h - the swap file's slot allocator, with batched hole punching.
 *
 * A slot is one page-sized offset in the swap file (slot * 4096).  Each
 * slot is FREE (allocatable), USED (allocated), or PUNCH (freed, waiting
 * for its hole to be punched).  The ordering rule that keeps data safe:
 *
 *   a freed slot is not allocatable again until its punch has returned,
 *   and it is not punched while I/O on it is still in flight.
 *
 * Otherwise a punch issued late would destroy the data a new owner wrote
 * to the same slot, or a write landing after the punch would leave guest
 * data behind in a slot believed empty.
 *
 * Frees are batched: pk_slots_free() parks the slot on a pending list;
 * pk_slots_flush() sorts the list, coalesces contiguous runs, punches each
 * run with one call, and only then makes the slots allocatable.  A flush
 * happens by itself when the pending list fills, and when an allocation
 * finds no FREE slot but some are pending, so -ENOSPC means really full.
 *
 * Allocation prefers low slots (a bitmap scanned from a hint that is the
 * lowest word that may have a clear bit), which keeps the file's used part
 * dense and freed runs contiguous.
 *
 * Not thread-safe: the store and its caller run on one event-loop thread.
 */
#ifndef PK_SWAP_SLOTS_H
#define PK_SWAP_SLOTS_H

#include <stdint.h>

enum pk_slot_state {
	PK_SLOT_FREE = 0,
	PK_SLOT_USED,
	PK_SLOT_PUNCH, /* freed, hole not punched yet: not allocatable */
};

/*
 * Punches slots [first, first + count).  Returns 0 or a negative errno.
 * The slots are released even when it fails (their stale content is only
 * ever overwritten, never read as someone else's page); the error is
 * counted and returned by the flush.
 */
typedef int pk_slot_punch_fn(void *arg, uint64_t first, uint64_t count);

struct pk_swap_slots {
	uint64_t n;	    /* slots in the file */
	uint64_t used;	    /* USED slots */
	uint64_t *taken;    /* bit set: USED or PUNCH (not allocatable) */
	uint64_t n_words;
	uint64_t hint;	    /* no clear bit in taken[0 .. hint) */
	uint8_t *state;	    /* enum pk_slot_state per slot */
	uint16_t *io;	    /* I/O operations in flight per slot */
	uint64_t *pending;  /* PUNCH slots, unsorted */
	unsigned n_pending;
	unsigned cap_pending;
	pk_slot_punch_fn *punch;
	void *punch_arg;
	uint64_t punched;      /* slots punched so far */
	uint64_t punch_calls;  /* punch calls (runs) so far */
	uint64_t punch_errors; /* failed punch calls */
};

/* Most I/O operations that may be in flight on one slot at a time. */
#define PK_SLOT_IO_MAX UINT16_MAX

/*
 * n slots; a flush happens when punch_batch slots are pending with no I/O.
 * max_io bounds the slots that can have I/O in flight (those stay pending
 * across a flush), so the pending list never overflows.
 */
int pk_slots_init(struct pk_swap_slots *s, uint64_t n, unsigned punch_batch,
		  unsigned max_io, pk_slot_punch_fn *punch, void *punch_arg);
void pk_slots_destroy(struct pk_swap_slots *s);

/* Lowest FREE slot, flushing pending frees if needed; -ENOSPC when full. */
int pk_slots_alloc(struct pk_swap_slots *s, uint64_t *slot);

/* USED -> PUNCH.  -EINVAL if the slot is out of range or not USED. */
int pk_slots_free(struct pk_swap_slots *s, uint64_t slot);

/*
 * Punch and release every pending slot that has no I/O in flight.  Returns
 * the number of slots released, or the first punch error (the slots are
 * released anyway, see pk_slot_punch_fn).
 */
int pk_slots_flush(struct pk_swap_slots *s);

static inline enum pk_slot_state pk_slots_state(const struct pk_swap_slots *s,
						uint64_t slot)
{
	return slot < s->n ? (enum pk_slot_state)s->state[slot] : PK_SLOT_FREE;
}

static inline void pk_slots_io_begin(struct pk_swap_slots *s, uint64_t slot)
{
	s->io[slot]++;
}

static inline void pk_slots_io_end(struct pk_swap_slots *s, uint64_t slot)
{
	s->io[slot]--;
}

#endif
