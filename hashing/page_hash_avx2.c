/*
 * page_hash_avx2.c - XXH3-64 of a page, compiled with AVX2 enabled.
 *
 * The target pragma comes before any include, so xxhash.h sees __AVX2__
 * and compiles its AVX2 kernel into this file only; the rest of the
 * project stays baseline x86-64.  page_hash.c calls this only when the
 * CPU reports AVX2.
 */
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC target("avx2")
#endif

#include "hashing/page_hash.h"
#include "hashing/page_hash_impl.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#if (defined(__x86_64__) || defined(__i386__)) && XXH_VECTOR != XXH_AVX2
#error "xxhash.h did not pick its AVX2 kernel under the avx2 target pragma"
#endif

uint64_t pk_page_xxh3_avx2(const void *page)
{
	return XXH3_64bits(page, PK_HASH_PAGE_SIZE);
}
