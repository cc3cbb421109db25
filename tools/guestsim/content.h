/*
 * content.h - deterministic guest page content and its verification.
 * See content.c for the model.
 */
#ifndef GS_CONTENT_H
#define GS_CONTENT_H

#include <stdint.h>

#define GS_PAGE_SIZE 4096u
#define GS_PAGE_WORDS (GS_PAGE_SIZE / sizeof(uint64_t))

enum gs_class {
	GS_CLASS_ZERO,	 /* base content all zero bytes */
	GS_CLASS_SHARED, /* base content identical in every guest of a seed */
	GS_CLASS_UNIQUE, /* base content private to (seed, name) */
};

struct gs_content {
	uint64_t class_key;    /* seed only: guests of one seed agree on classes */
	uint64_t shared_key;   /* seed only: shared pages equal across guests */
	uint64_t unique_key;   /* seed and name: everything else */
	uint64_t zero_limit;   /* 53-bit class hash below this: zero page */
	uint64_t shared_limit; /* ... else below this: shared page */
};

void gs_content_init(struct gs_content *c, uint64_t seed, const char *name,
		     double zero_frac, double shared_frac);

enum gs_class gs_content_class(const struct gs_content *c, uint64_t page);

const char *gs_class_name(enum gs_class cls);

/* Write the content of page at version into dst (GS_PAGE_SIZE, 8-aligned). */
void gs_content_generate(const struct gs_content *c, uint64_t page,
			 uint32_t version, void *dst);

/*
 * Compare mem with the expected content of page at version, generated
 * into scratch (GS_PAGE_SIZE, 8-aligned).  Returns -1 when equal, else
 * the offset of the first differing byte.
 */
long gs_content_check(const struct gs_content *c, uint64_t page,
		      uint32_t version, const void *mem, void *scratch);

/* -1 when the page at mem is all zeros, else its first nonzero byte. */
long gs_content_check_zero(const void *mem);

#endif
