/*
 * page_hash.h - the content hash of one 4 KiB page.
 *
 * XXH3-64 of the page.  A hash is only a hint: two pages with the same
 * hash are candidates, and nothing is ever shared or merged before a full
 * memcmp proves them identical (content_index.h, canonical_store.h).
 *
 * PK_HASH_BITS (compile-time, default 64): below 64, pk_page_hash()
 * keeps only that many low bits.  A test build with -DPK_HASH_BITS=8
 * makes collisions constant, so every path that must verify content is
 * exercised all the time.  The library and its users must be built with
 * the same value (tests/meson.build builds a separate copy of hashing/
 * for that).
 */
#ifndef PK_PAGE_HASH_H
#define PK_PAGE_HASH_H

#include <stdint.h>

/* The page size everything in hashing/ works in (the engine's 4 KiB). */
#define PK_HASH_PAGE_SIZE 4096u

#ifndef PK_HASH_BITS
#define PK_HASH_BITS 64
#endif
#if PK_HASH_BITS < 1 || PK_HASH_BITS > 64
#error "PK_HASH_BITS must be 1..64"
#endif

/* The bits a page hash can have set. */
#if PK_HASH_BITS == 64
#define PK_HASH_MASK UINT64_MAX
#else
#define PK_HASH_MASK ((UINT64_C(1) << PK_HASH_BITS) - 1)
#endif

/*
 * XXH3-64 of PK_HASH_PAGE_SIZE bytes at page (any alignment), truncated
 * to PK_HASH_BITS.  Runs the AVX2 copy of XXH3 where the CPU has AVX2,
 * else the SSE2 one (same values, a different speed).
 */
uint64_t pk_page_hash(const void *page);

/* Which copy pk_page_hash() runs on this CPU: "avx2" or "sse2" (for logs). */
const char *pk_page_hash_impl(void);

#endif
