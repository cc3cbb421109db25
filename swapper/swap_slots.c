/*
 * swap_slots.c - slot bitmaps, lazy scrub and flush (see swap_slots.h).
 *
 * The `taken` bitmap answers "lowest allocatable slot" 64 slots per word,
 * starting at a hint word.  Two more bitmaps age the DIRTY slots: a free
 * sets the slot's bit in dirty_new; a scrub punches what is in dirty_old
 * and then moves dirty_new into dirty_old; an allocation clears both bits.
 * The per-slot state and I/O count bytes answer the safety questions (is
 * this a double free? may this slot be reused or punched yet?).
 *
 * A scrub coalesces contiguous old slots into one fallocate(PUNCH_HOLE)
 * each, and a slot becomes FREE only after its punch has returned.
 */
#include "swapper/swap_slots.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BIT(i) (1ULL << ((i) % 64))

int pk_slots_init(struct pk_swap_slots *s, uint64_t n, pk_slot_punch_fn *punch,
		  void *punch_arg)
{
	memset(s, 0, sizeof(*s));
	if (n == 0 || !punch)
		return -EINVAL;
	s->n = n;
	s->n_words = (n + 63) / 64;
	s->taken = calloc(s->n_words, sizeof(*s->taken));
	s->dirty_new = calloc(s->n_words, sizeof(*s->dirty_new));
	s->dirty_old = calloc(s->n_words, sizeof(*s->dirty_old));
	s->state = calloc(n, sizeof(*s->state));
	s->io = calloc(n, sizeof(*s->io));
	s->refs = calloc(n, sizeof(*s->refs));
	if (!s->taken || !s->dirty_new || !s->dirty_old || !s->state || !s->io ||
	    !s->refs) {
		pk_slots_destroy(s);
		return -ENOMEM;
	}
	/* Bits past the last slot are permanently taken. */
	if (n % 64)
		s->taken[s->n_words - 1] = ~0ULL << (n % 64);
	s->punch = punch;
	s->punch_arg = punch_arg;
	return 0;
}

void pk_slots_destroy(struct pk_swap_slots *s)
{
	free(s->taken);
	free(s->dirty_new);
	free(s->dirty_old);
	free(s->state);
	free(s->io);
	free(s->refs);
	memset(s, 0, sizeof(*s));
}

static void make_allocatable(struct pk_swap_slots *s, uint64_t i)
{
	s->taken[i / 64] &= ~BIT(i);
	if (i / 64 < s->hint)
		s->hint = i / 64;
}

static int find_free(struct pk_swap_slots *s, uint64_t *slot)
{
	for (uint64_t w = s->hint; w < s->n_words; w++) {
		if (s->taken[w] == ~0ULL)
			continue;
		s->hint = w;
		*slot = w * 64 + (uint64_t)__builtin_ctzll(~s->taken[w]);
		return 0;
	}
	s->hint = s->n_words;
	return -ENOSPC;
}

int pk_slots_alloc(struct pk_swap_slots *s, uint64_t *slot)
{
	uint64_t i;

	if (find_free(s, &i) != 0)
		return -ENOSPC;
	if (s->state[i] == PK_SLOT_DIRTY) {
		/* The new owner's write overwrites the old page. */
		s->dirty_new[i / 64] &= ~BIT(i);
		s->dirty_old[i / 64] &= ~BIT(i);
		s->dirty--;
		s->reused_dirty++;
	}
	s->taken[i / 64] |= BIT(i);
	s->state[i] = PK_SLOT_USED;
	s->refs[i] = 1;
	s->used++;
	*slot = i;
	return 0;
}

int pk_slots_ref(struct pk_swap_slots *s, uint64_t slot)
{
	if (slot >= s->n || s->state[slot] != PK_SLOT_USED)
		return -EINVAL;
	if (s->refs[slot] == PK_SLOT_REFS_MAX)
		return -EOVERFLOW;
	s->refs[slot]++;
	s->extra_refs++;
	return 0;
}

int pk_slots_restore_ref(struct pk_swap_slots *s, uint64_t slot)
{
	if (slot >= s->n)
		return -EINVAL;
	if (s->state[slot] == PK_SLOT_USED)
		return pk_slots_ref(s, slot);
	if (s->state[slot] == PK_SLOT_DIRTY) {
		s->dirty_new[slot / 64] &= ~BIT(slot);
		s->dirty_old[slot / 64] &= ~BIT(slot);
		s->dirty--;
	}
	s->taken[slot / 64] |= BIT(slot);
	s->state[slot] = PK_SLOT_USED;
	s->refs[slot] = 1;
	s->used++;
	return 0;
}

void pk_slots_restore_dirty(struct pk_swap_slots *s, uint64_t slot)
{
	if (slot >= s->n || s->state[slot] != PK_SLOT_FREE)
		return;
	s->state[slot] = PK_SLOT_DIRTY;
	s->dirty++;
	s->dirty_new[slot / 64] |= BIT(slot);
}

int pk_slots_free(struct pk_swap_slots *s, uint64_t slot)
{
	if (slot >= s->n || s->state[slot] != PK_SLOT_USED)
		return -EINVAL;
	if (--s->refs[slot]) {
		s->extra_refs--;
		return 0;
	}
	s->state[slot] = PK_SLOT_DIRTY;
	s->used--;
	s->dirty++;
	s->dirty_new[slot / 64] |= BIT(slot);
	if (!s->io[slot])
		make_allocatable(s, slot);
	return 0;
}

void pk_slots_io_end(struct pk_swap_slots *s, uint64_t slot)
{
	if (--s->io[slot] == 0 && s->state[slot] == PK_SLOT_DIRTY)
		make_allocatable(s, slot);
}

static int is_old(const struct pk_swap_slots *s, uint64_t i)
{
	return i < s->n && (s->dirty_old[i / 64] & BIT(i)) && !s->io[i];
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int pk_slots_scrub(struct pk_swap_slots *s, uint64_t budget_ns)
{
	uint64_t deadline = budget_ns ? now_ns() + budget_ns : UINT64_MAX;
	int punched = 0, err = 0, out_of_time = 0;

	for (uint64_t w = 0; w < s->n_words && s->dirty && !out_of_time; w++) {
		uint64_t bits = s->dirty_old[w];
		while (bits) {
			uint64_t first = w * 64 + (uint64_t)__builtin_ctzll(bits);
			uint64_t count = 0;
			bits &= bits - 1;
			if (s->io[first])
				continue; /* I/O in flight: next scrub */
			while (is_old(s, first + count))
				count++;
			int r = s->punch(s->punch_arg, first, count);
			s->punch_calls++;
			if (r < 0) {
				s->punch_errors++;
				if (!err)
					err = r;
			} else {
				s->punched += count;
			}
			/* Only now, after the punch returned: FREE. */
			for (uint64_t i = first; i < first + count; i++) {
				s->dirty_old[i / 64] &= ~BIT(i);
				s->state[i] = PK_SLOT_FREE;
			}
			s->dirty -= count;
			punched += (int)count;
			/* The run may have consumed later bits of this word. */
			bits &= s->dirty_old[w];
			if (budget_ns && now_ns() >= deadline) {
				out_of_time = 1;
				break;
			}
		}
	}
	/* Left over (I/O in flight, or out of time) stays old. */
	for (uint64_t w = 0; w < s->n_words; w++) {
		s->dirty_old[w] |= s->dirty_new[w];
		s->dirty_new[w] = 0;
	}
	return err ? err : punched;
}

int pk_slots_flush(struct pk_swap_slots *s)
{
	for (uint64_t w = 0; w < s->n_words; w++) {
		s->dirty_old[w] |= s->dirty_new[w];
		s->dirty_new[w] = 0;
	}
	return pk_slots_scrub(s, 0);
}
