/*
 * swap_slots.c - slot bitmap, pending-punch list and flush (see swap_slots.h).
 *
 * The bitmap answers "lowest allocatable slot" 64 slots per word, starting
 * at a hint word; the per-slot state and I/O count bytes answer the safety
 * questions (is this a double free? may this slot be punched yet?).  Cost:
 * one bit + 3 bytes per 4 KiB slot.
 *
 * A flush sorts the pending list so that contiguous freed slots become one
 * fallocate(PUNCH_HOLE) each; slots with I/O still in flight are kept on
 * the list for a later flush.  Bits are cleared only after the punch call
 * has returned, which is what makes reuse safe.
 */
#include "swapper/swap_slots.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int pk_slots_init(struct pk_swap_slots *s, uint64_t n, unsigned punch_batch,
		  unsigned max_io, pk_slot_punch_fn *punch, void *punch_arg)
{
	memset(s, 0, sizeof(*s));
	if (n == 0 || punch_batch == 0 || !punch)
		return -EINVAL;
	s->n = n;
	s->n_words = (n + 63) / 64;
	s->cap_pending = punch_batch + max_io;
	s->taken = calloc(s->n_words, sizeof(*s->taken));
	s->state = calloc(n, sizeof(*s->state));
	s->io = calloc(n, sizeof(*s->io));
	s->pending = calloc(s->cap_pending, sizeof(*s->pending));
	if (!s->taken || !s->state || !s->io || !s->pending) {
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
	free(s->state);
	free(s->io);
	free(s->pending);
	memset(s, 0, sizeof(*s));
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

	if (find_free(s, &i) != 0) {
		if (s->n_pending == 0)
			return -ENOSPC;
		pk_slots_flush(s);
		if (find_free(s, &i) != 0)
			return -ENOSPC; /* pending slots all have I/O in flight */
	}
	s->taken[i / 64] |= 1ULL << (i % 64);
	s->state[i] = PK_SLOT_USED;
	s->used++;
	*slot = i;
	return 0;
}

int pk_slots_free(struct pk_swap_slots *s, uint64_t slot)
{
	if (slot >= s->n || s->state[slot] != PK_SLOT_USED)
		return -EINVAL;
	s->state[slot] = PK_SLOT_PUNCH;
	s->used--;
	s->pending[s->n_pending++] = slot;
	if (s->n_pending == s->cap_pending)
		pk_slots_flush(s);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static void release(struct pk_swap_slots *s, uint64_t first, uint64_t count)
{
	for (uint64_t i = first; i < first + count; i++) {
		s->state[i] = PK_SLOT_FREE;
		s->taken[i / 64] &= ~(1ULL << (i % 64));
	}
	if (first / 64 < s->hint)
		s->hint = first / 64;
}

int pk_slots_flush(struct pk_swap_slots *s)
{
	unsigned kept = 0, i = 0;
	int released = 0, err = 0;

	qsort(s->pending, s->n_pending, sizeof(*s->pending), cmp_u64);
	while (i < s->n_pending) {
		uint64_t first = s->pending[i], count = 0;
		if (s->io[first]) {
			s->pending[kept++] = s->pending[i++];
			continue;
		}
		while (i < s->n_pending && s->pending[i] == first + count &&
		       !s->io[s->pending[i]]) {
			count++;
			i++;
		}
		int r = s->punch(s->punch_arg, first, count);
		s->punch_calls++;
		if (r < 0) {
			s->punch_errors++;
			if (!err)
				err = r;
		} else {
			s->punched += count;
		}
		release(s, first, count); /* only now: the punch has returned */
		released += (int)count;
	}
	s->n_pending = kept;
	return err ? err : released;
}
