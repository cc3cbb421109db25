/*
 * content.c - deterministic guest page content and its verification.
 *
 * What: every page of guest RAM has, at any moment, exactly one expected
 * content, a pure function of (seed, name, page index, version).  The
 * version of a page is kept outside guest RAM (worker.c); version 0 is the
 * page's base content, given by its class:
 *
 *   zero    all zero bytes, like never-touched guest memory;
 *   shared  f(seed, page): the same bytes in every guest started with the
 *           same --seed, like the pages of a common OS image;
 *   unique  f(seed, name, page, 0): private to this guest.
 *
 * Version v > 0 is what the v-th write of the workload left there:
 * f(seed, name, page, v), unique to the guest, since a written page has
 * diverged from any image it came from.
 *
 * How: the class comes from a 53-bit hash of (seed, page) compared with
 * the --content fractions, so all guests of one seed agree on it without
 * talking to each other.  Non-zero content is a splitmix64 stream keyed by
 * a hash of the inputs, 512 words per page; word 0 is forced odd so no
 * generated page ever starts with eight zero bytes (a quick peek at a
 * page's head then tells a zero page from a generated one).
 *
 * Why: pagekeeperd dedups, compresses and swaps these pages behind the
 * guest's back; regenerating the expected bytes on demand lets any page be
 * checked exactly at any time for the cost of one page of arithmetic,
 * without keeping a reference copy of guest RAM.
 */
#include <string.h>

#include "content.h"
#include "rng.h"

/* Domain-separation tags, so the three keys never coincide. */
#define TAG_CLASS 0x636c617373ULL	/* "class" */
#define TAG_SHARED 0x736861726564ULL	/* "shared" */
#define TAG_UNIQUE 0x756e69717565ULL	/* "unique" */

static uint64_t frac_limit(double frac)
{
	if (frac <= 0)
		return 0;
	if (frac >= 1)
		return 1ULL << 53;
	return (uint64_t)(frac * 0x1p53);
}

void gs_content_init(struct gs_content *c, uint64_t seed, const char *name,
		     double zero_frac, double shared_frac)
{
	c->class_key = gs_hash2(seed, TAG_CLASS);
	c->shared_key = gs_hash2(seed, TAG_SHARED);
	c->unique_key = gs_hash3(seed, TAG_UNIQUE, gs_hash_str(name));
	c->zero_limit = frac_limit(zero_frac);
	c->shared_limit = frac_limit(zero_frac + shared_frac);
}

enum gs_class gs_content_class(const struct gs_content *c, uint64_t page)
{
	uint64_t h = gs_hash2(c->class_key, page) >> 11;

	if (h < c->zero_limit)
		return GS_CLASS_ZERO;
	if (h < c->shared_limit)
		return GS_CLASS_SHARED;
	return GS_CLASS_UNIQUE;
}

const char *gs_class_name(enum gs_class cls)
{
	switch (cls) {
	case GS_CLASS_ZERO:
		return "zero";
	case GS_CLASS_SHARED:
		return "shared";
	case GS_CLASS_UNIQUE:
		return "unique";
	}
	return "?";
}

static void fill_words(uint64_t *w, uint64_t key)
{
	/* Counter form of splitmix64: iterations are independent. */
	for (unsigned i = 0; i < GS_PAGE_WORDS; i++)
		w[i] = gs_mix64(key + (i + 1) * GS_GOLDEN);
	w[0] |= 1;
}

void gs_content_generate(const struct gs_content *c, uint64_t page,
			 uint32_t version, void *dst)
{
	uint64_t key;

	if (version == 0) {
		switch (gs_content_class(c, page)) {
		case GS_CLASS_ZERO:
			memset(dst, 0, GS_PAGE_SIZE);
			return;
		case GS_CLASS_SHARED:
			key = gs_hash2(c->shared_key, page);
			break;
		default:
			key = gs_hash3(c->unique_key, page, 0);
			break;
		}
	} else {
		key = gs_hash3(c->unique_key, page, version);
	}
	fill_words(dst, key);
}

long gs_content_check(const struct gs_content *c, uint64_t page,
		      uint32_t version, const void *mem, void *scratch)
{
	const unsigned char *a = mem, *b = scratch;

	gs_content_generate(c, page, version, scratch);
	if (memcmp(mem, scratch, GS_PAGE_SIZE) == 0)
		return -1;
	for (long i = 0; i < (long)GS_PAGE_SIZE; i++)
		if (a[i] != b[i])
			return i;
	/* The page changed between the two passes: the caller's seqlock
	 * check sees that; report equality for this pass. */
	return -1;
}

long gs_content_check_zero(const void *mem)
{
	const unsigned char *a = mem;

	for (long i = 0; i < (long)GS_PAGE_SIZE; i++)
		if (a[i])
			return i;
	return -1;
}
