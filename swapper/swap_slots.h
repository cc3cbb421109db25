/*
 * swap_slots.h - the swap file's slot allocator, with lazy scrubbing.
 *
 * A slot is one page-sized offset in the swap file (slot * 4096).  Each
 * slot is FREE (allocatable, holds no data), USED (allocated), or DIRTY
 * (freed, still holding the old page until it is overwritten or punched).
 *
 * A USED slot has a reference count: swap dedup lets several evicted
 * pages with the same bytes own one slot.  Allocation gives the first
 * reference, pk_slots_ref() adds one, and pk_slots_free() drops one; the
 * slot turns DIRTY when the last goes.
 *
 * Why freed slots are not punched at once: on ext4 a hole punch takes the
 * inode lock and waits for every direct I/O in flight on the file, and
 * the next write to the hole must allocate blocks again.  Punching each
 * freed slot made eviction under swap-in traffic 3-4x slower (measured
 * in the adversarial test).  A DIRTY slot is allocatable at once: its
 * next owner overwrites it, which scrubs the old data for free.  Slots
 * that stay DIRTY are punched by pk_slots_scrub(), which the daemon calls
 * once a second: a slot is punched at the second scrub after its free,
 * so guest data lingers in a free slot for at most two scrub periods.
 *
 * The ordering rules that keep data safe:
 *   - a slot with I/O in flight is neither allocatable nor punched: a
 *     freed slot whose read or write is still running stays taken until
 *     the last I/O ends (pk_slots_io_end);
 *   - a punch is a synchronous call made while the slot is DIRTY, and an
 *     allocation clears DIRTY, so a punch never hits a new owner's data.
 *
 * Allocation prefers low slots (a bitmap scanned from a hint that is the
 * lowest word that may have a clear bit), which keeps the file's used part
 * dense and freed runs contiguous.  Cost: 3 bits + 5 bytes per slot.
 *
 * Not thread-safe: the store and its caller run on one event-loop thread.
 */
#ifndef PK_SWAP_SLOTS_H
#define PK_SWAP_SLOTS_H

#include <stdint.h>

enum pk_slot_state {
	PK_SLOT_FREE = 0,
	PK_SLOT_USED,
	PK_SLOT_DIRTY, /* freed, old data not yet overwritten or punched */
};

/*
 * Punches slots [first, first + count).  Returns 0 or a negative errno.
 * The slots become FREE even when it fails (their stale content is only
 * ever overwritten, never read as someone else's page); the error is
 * counted and returned by the scrub.
 */
typedef int pk_slot_punch_fn(void *arg, uint64_t first, uint64_t count);

struct pk_swap_slots {
	uint64_t n;	     /* slots in the file */
	uint64_t used;	     /* USED slots */
	uint64_t dirty;	     /* DIRTY slots */
	uint64_t *taken;     /* bit set: USED, or DIRTY with I/O in flight */
	uint64_t *dirty_new; /* bit set: freed since the last scrub */
	uint64_t *dirty_old; /* bit set: freed before the last scrub */
	uint64_t n_words;
	uint64_t hint;	     /* no clear bit in taken[0 .. hint) */
	uint8_t *state;	     /* enum pk_slot_state per slot */
	uint16_t *io;	     /* I/O operations in flight per slot */
	uint16_t *refs;	     /* owners of a USED slot */
	pk_slot_punch_fn *punch;
	void *punch_arg;
	uint64_t punched;      /* slots punched so far */
	uint64_t punch_calls;  /* punch calls (runs) so far */
	uint64_t punch_errors; /* failed punch calls */
	uint64_t reused_dirty; /* DIRTY slots reallocated before a punch */
	uint64_t extra_refs;   /* references beyond each USED slot's first */
};

/* Most I/O operations that may be in flight on one slot at a time. */
#define PK_SLOT_IO_MAX UINT16_MAX
/* Most owners of one slot. */
#define PK_SLOT_REFS_MAX UINT16_MAX

int pk_slots_init(struct pk_swap_slots *s, uint64_t n, pk_slot_punch_fn *punch,
		  void *punch_arg);
void pk_slots_destroy(struct pk_swap_slots *s);

/* Lowest FREE or DIRTY slot without I/O in flight; -ENOSPC when none. */
int pk_slots_alloc(struct pk_swap_slots *s, uint64_t *slot);

/*
 * One more owner of a USED slot.  -EINVAL if the slot is out of range or
 * not USED, -EOVERFLOW if it has PK_SLOT_REFS_MAX owners already.
 */
int pk_slots_ref(struct pk_swap_slots *s, uint64_t slot);

/*
 * Drop one owner; the last makes the slot DIRTY.  -EINVAL if the slot is
 * out of range or not USED.
 */
int pk_slots_free(struct pk_swap_slots *s, uint64_t slot);

/* Owners of a slot: 0 unless USED. */
static inline unsigned pk_slots_refs(const struct pk_swap_slots *s,
				     uint64_t slot)
{
	return slot < s->n && s->state[slot] == PK_SLOT_USED ? s->refs[slot]
							      : 0;
}

/*
 * The periodic scrub: punch the slots that were already DIRTY at the
 * previous scrub (those with I/O in flight wait for the next one).
 * budget_ns bounds the time one scrub spends punching (0: no bound), so a
 * burst of scattered frees costs a few milliseconds per period rather
 * than one long stall; what is left over is punched first at the next
 * scrub.  Returns the number of slots punched, or the first punch error.
 */
int pk_slots_scrub(struct pk_swap_slots *s, uint64_t budget_ns);

/*
 * Restart (the swap file of a previous daemon): one more owner of slot,
 * as a replayed page-state table names it; a FREE slot becomes USED.
 * -EINVAL if out of range, -EOVERFLOW at PK_SLOT_REFS_MAX owners.
 */
int pk_slots_restore_ref(struct pk_swap_slots *s, uint64_t slot);
/* Restart: a FREE slot that still holds a page nobody owns: DIRTY. */
void pk_slots_restore_dirty(struct pk_swap_slots *s, uint64_t slot);

/* Punch every DIRTY slot without I/O in flight now, whatever its age. */
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

/* The last I/O on a DIRTY slot makes it allocatable. */
void pk_slots_io_end(struct pk_swap_slots *s, uint64_t slot);

#endif
