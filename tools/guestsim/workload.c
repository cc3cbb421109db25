/*
 * workload.c - which page each worker op touches.
 *
 * What: the access patterns a guest can run.  Every op of a worker thread
 * touches one page: a writer writes a new version, a reader verifies it.
 *
 *   seq     each thread sweeps its pages in order, wrapping around;
 *           readers start spread evenly over RAM so they don't move in step;
 *   random  uniform over RAM;
 *   zipf    Zipf(0.99) over page ranks; rank r lives at page
 *           (r * mul + add) mod n with mul ~ 0.618 n coprime with n, so
 *           consecutive hot ranks land far apart (golden-ratio spacing) and
 *           the hot set is scattered over all of RAM, not one hot block;
 *   phases  zipf whose hot set moves every duration/4 s: phase k adds
 *           k * 0.382 n to every hot page, so each quarter of the run has
 *           its own, disjoint set of hot pages (4 phases whatever the
 *           duration, so a long run gives the daemon time to adapt).
 *
 * How: writers own disjoint pages (page % writers == writer index), so a
 * page never has two writers; a sampled page is moved to the nearest owned
 * page at or below it (in its row of `writers` pages), which keeps the
 * shape of the distribution.
 *
 * Why: the daemon's decisions (what to swap, what to merge) depend on
 * which pages are hot; these patterns cover streaming, no locality, a
 * stable hot set and a moving one.
 */
#include <math.h>
#include <string.h>

#include "workload.h"
#include "rng.h"

static const char *const names[] = {
	[GS_WL_IDLE] = "idle",	   [GS_WL_SEQ] = "seq",
	[GS_WL_RANDOM] = "random", [GS_WL_ZIPF] = "zipf",
	[GS_WL_PHASES] = "phases",
};

const char *gs_workload_name(enum gs_workload kind)
{
	return names[kind];
}

int gs_workload_parse(const char *s, enum gs_workload *out)
{
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum gs_workload)i;
			return 0;
		}
	}
	return -1;
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

void gs_hotmap_init(struct gs_hotmap *h, uint64_t n_pages, uint64_t seed,
		    double duration_s)
{
	uint64_t mul = (uint64_t)((double)n_pages * 0.6180339887498949);

	if (mul == 0)
		mul = 1;
	while (gcd(mul, n_pages) != 1)
		mul++;
	h->n = n_pages;
	h->mul = mul;
	h->add = n_pages ? gs_hash2(seed, 0x686f74ULL /* "hot" */) % n_pages : 0;
	h->phase_shift = (uint64_t)((double)n_pages * 0.3819660112501051);
	h->phase_period_s = duration_s > 0 ? duration_s / 4 : INFINITY;
	gs_zipf_init(&h->zipf, n_pages, GS_ZIPF_THETA);
}

void gs_picker_init(struct gs_picker *pk, enum gs_workload kind,
		    const struct gs_hotmap *hot, uint64_t seed, bool writer,
		    unsigned index, unsigned n_of_kind)
{
	memset(pk, 0, sizeof(*pk));
	pk->kind = kind;
	pk->hot = hot;
	pk->n = hot->n;
	pk->rng = gs_hash3(seed, writer ? 0x77ULL : 0x72ULL, index);
	if (writer) {
		pk->stride = n_of_kind;
		pk->owner = index;
		pk->cursor = index;
	} else {
		pk->stride = 1;
		pk->owner = 0;
		pk->cursor = (uint64_t)((unsigned __int128)hot->n * index /
					n_of_kind);
	}
}

static uint64_t hot_page(const struct gs_hotmap *h, uint64_t rank,
			 uint64_t phase)
{
	uint64_t base = (uint64_t)((h->add + (unsigned __int128)phase *
						     h->phase_shift) % h->n);

	return (uint64_t)(((unsigned __int128)rank * h->mul + base) % h->n);
}

/* Map any page to an owned one: same row of `stride` pages, or the row
 * before when the last row is short.  Needs stride <= n. */
static uint64_t owned(const struct gs_picker *pk, uint64_t p)
{
	uint64_t q;

	if (pk->stride == 1)
		return p;
	q = p - p % pk->stride + pk->owner;
	return q < pk->n ? q : q - pk->stride;
}

uint64_t gs_picker_next(struct gs_picker *pk, double elapsed_s)
{
	const struct gs_hotmap *h = pk->hot;
	uint64_t p, phase;

	switch (pk->kind) {
	case GS_WL_SEQ:
		p = pk->cursor;
		pk->cursor += pk->stride;
		if (pk->cursor >= pk->n)
			pk->cursor = pk->owner;
		return p;
	case GS_WL_RANDOM:
		p = gs_below(&pk->rng, pk->n);
		break;
	case GS_WL_ZIPF:
		p = hot_page(h, gs_zipf_next(&h->zipf, &pk->rng), 0);
		break;
	case GS_WL_PHASES:
		phase = (uint64_t)(elapsed_s / h->phase_period_s);
		p = hot_page(h, gs_zipf_next(&h->zipf, &pk->rng), phase);
		break;
	default:
		p = 0;
		break;
	}
	return owned(pk, p);
}
