/*
 * victim.c - the random victim policy (see victim.h).
 *
 * Each pick starts at a uniformly random page and takes the resident,
 * non-busy pages of the next PK_VICTIM_RUN pages.  Over many picks every
 * resident page is equally likely to go, as with ESX's random
 * replacement; the run only makes the kernel work per page cheaper.
 */
#include "swapper/victim.h"

#define PK_VICTIM_RUN 64
#define PK_VICTIM_TRIES 64

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ULL;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

unsigned pk_victim_random(const struct pk_page_table *pt, uint64_t *out,
			  unsigned max, uint64_t *rng_state)
{
	unsigned n = 0;

	if (pt->count[PK_PAGE_RESIDENT] == 0)
		return 0;
	for (int t = 0; t < PK_VICTIM_TRIES && n < max; t++) {
		uint64_t start = xorshift64(rng_state) % pt->n_pages;
		for (uint64_t i = start; i < start + PK_VICTIM_RUN &&
					 i < pt->n_pages && n < max; i++) {
			int dup = 0;
			if (pk_page_state(pt, i) != PK_PAGE_RESIDENT ||
			    pk_page_busy(pt, i))
				continue;
			for (unsigned k = 0; k < n && !dup; k++)
				dup = out[k] == i;
			if (!dup)
				out[n++] = i;
		}
	}
	/* Few resident pages left: random probes miss them, so sweep the
	 * table once from a random point rather than give up early. */
	if (n < max) {
		uint64_t start = xorshift64(rng_state) % pt->n_pages;
		for (uint64_t k = 0; k < pt->n_pages && n < max; k++) {
			uint64_t i = (start + k) % pt->n_pages;
			int dup = 0;
			if (pk_page_state(pt, i) != PK_PAGE_RESIDENT ||
			    pk_page_busy(pt, i))
				continue;
			for (unsigned j = 0; j < n && !dup; j++)
				dup = out[j] == i;
			if (!dup)
				out[n++] = i;
		}
	}
	return n;
}
