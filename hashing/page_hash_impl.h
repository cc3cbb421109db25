/*
 * page_hash_impl.h - internal: the two compiled copies of XXH3-64 over a
 * page that page_hash.c chooses between.  Both return the full 64-bit
 * XXH3 value (identical for the same input); truncation to PK_HASH_BITS
 * happens in pk_page_hash().  Declared here so the tests can check each
 * copy against libxxhash.
 */
#ifndef PK_PAGE_HASH_IMPL_H
#define PK_PAGE_HASH_IMPL_H

#include <stdint.h>

/* Compiled for the baseline x86-64 target (SSE2). Any CPU. */
uint64_t pk_page_xxh3_sse2(const void *page);

/* Compiled with AVX2 enabled: call only where the CPU has AVX2. */
uint64_t pk_page_xxh3_avx2(const void *page);

#endif
