/*
 * victim.c - the random and cold-first victim policies (see victim.h).
 *
 * Each pick starts at a uniformly random page and takes the resident,
 * non-busy pages of the next PK_VICTIM_RUN pages.  Over many picks every
 * resident page is equally likely to go, as with ESX's random
 * replacement; the run only makes the kernel work per page cheaper.
 * Cold-first picks the same way among the pages the write tracking has
 * not marked written (engine/track.h), then tops up with random ones:
 * it never evicts fewer pages than random would.
 */
#include "engine/victim.h"

#define PK_VICTIM_RUN 64
#define PK_VICTIM_TRIES 64
/* Cold-first sweeps at most this many pages (1 GiB of guest) for cold
 * ones before it falls back to random: each batch would otherwise read
 * the whole table of a big guest whose pages are all hot. */
#define PK_VICTIM_COLD_SWEEP (1ULL << 18)

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ULL;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* May page i be taken?  cold: only a page not marked written. */
static int eligible(const struct pk_page_table *pt, uint64_t i, int cold)
{
	return pk_page_state(pt, i) == PK_PAGE_RESIDENT && !pk_page_busy(pt, i) &&
	       !(cold && pk_page_written(pt, i));
}

static int chosen(const uint64_t *out, unsigned n, uint64_t i)
{
	for (unsigned k = 0; k < n; k++)
		if (out[k] == i)
			return 1;
	return 0;
}

/* Add up to max - n pages to out[0..n): runs from random starting
 * points, then one sweep from a random point.  Returns the new n. */
static unsigned pick(const struct pk_page_table *pt, uint64_t *out,
		     unsigned n, unsigned max, uint64_t *rng_state, int cold)
{
	uint64_t starts[PK_VICTIM_TRIES];
	unsigned n0 = n;

	for (int t = 0; t < PK_VICTIM_TRIES && n < max; t++) {
		uint64_t start = xorshift64(rng_state) % pt->n_pages;
		/* A page can be out already only if an earlier run of this
		 * pick overlaps this one, or the caller's pages are there:
		 * the linear search (a batch's pages times its pages) is
		 * paid only then. */
		int check = n0 > 0;
		for (int u = 0; u < t && !check; u++)
			check = starts[u] < start + PK_VICTIM_RUN &&
				start < starts[u] + PK_VICTIM_RUN;
		starts[t] = start;
		for (uint64_t i = start; i < start + PK_VICTIM_RUN &&
					 i < pt->n_pages && n < max; i++)
			if (eligible(pt, i, cold) && (!check || !chosen(out, n, i)))
				out[n++] = i;
	}
	/* Few eligible pages left: random probes miss them, so sweep the
	 * table once from a random point rather than give up early. */
	if (n < max) {
		uint64_t start = xorshift64(rng_state) % pt->n_pages;
		uint64_t len = cold && pt->n_pages > PK_VICTIM_COLD_SWEEP
				       ? PK_VICTIM_COLD_SWEEP : pt->n_pages;
		for (uint64_t k = 0; k < len && n < max; k++) {
			uint64_t i = (start + k) % pt->n_pages;
			if (eligible(pt, i, cold) && !chosen(out, n, i))
				out[n++] = i;
		}
	}
	return n;
}

unsigned pk_victim_random(const struct pk_page_table *pt, uint64_t *out,
			  unsigned max, uint64_t *rng_state)
{
	if (pt->count[PK_PAGE_RESIDENT] == 0)
		return 0;
	return pick(pt, out, 0, max, rng_state, 0);
}

unsigned pk_victim_cold(const struct pk_page_table *pt, uint64_t *out,
			unsigned max, uint64_t *rng_state)
{
	unsigned n;

	if (pt->count[PK_PAGE_RESIDENT] == 0)
		return 0;
	n = pick(pt, out, 0, max, rng_state, 1);
	return n < max ? pick(pt, out, n, max, rng_state, 0) : n;
}
