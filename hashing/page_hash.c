/*
 * page_hash.c - XXH3-64 of a page, the fastest copy this CPU can run.
 *
 * What: pk_page_hash() hashes one 4 KiB page with XXH3-64 (truncated to
 * PK_HASH_BITS), for the sharing scanner's content index.
 *
 * How: XXH3 is compiled header-inline (XXH_INLINE_ALL) twice: here for
 * the baseline x86-64 target, where xxhash.h picks its SSE2 kernel, and
 * in page_hash_avx2.c under "#pragma GCC target("avx2")", where it picks
 * the AVX2 kernel.  pk_page_hash() asks the CPU (__builtin_cpu_supports,
 * one load and test of libgcc's CPU model word) which one to run, so the
 * binary runs on any x86-64 while using AVX2 where it exists.
 *
 * Why this one (measured 2026-11-23 on this 2-vCPU EPYC, one core, 4 KiB
 * pages, best of interleaved runs; "cached" = a 256 KiB buffer, as the
 * scanner's pread leaves it; "streaming" = 512 MiB, memory bound and
 * noisy on this shared machine):
 *   - this file's AVX2 copy: 62 GB/s cached (66 ns/page), 20-24 GB/s
 *     streaming; pk_page_hash() runs at the same speed.
 *   - libxxhash.so XXH3_64bits (built for SSE2): 17.6 GB/s cached
 *     (233 ns/page), 10-14 GB/s streaming.
 *   - libxxhash.so XXH3_64bits_dispatch: xxh_x86dispatch.c is not
 *     shipped, but Debian compiles the dispatcher into libxxhash0 on
 *     amd64 (not into libxxhash.a); it picks AVX-512 here, 80 GB/s
 *     cached.  A Debian build choice, not an API to count on.
 *   - header-inline AVX-512: ~77-81 GB/s cached, the same streaming.
 *     Not taken: at the scan's rate (hundreds of MiB/s) the hash costs
 *     well under 1% of a core either way, and AVX-512 can lower the
 *     core's clock on some Intel parts.
 *   - header-inline at the baseline target: GCC -O2 keeps XXH3's SSE2
 *     accumulators in memory and runs at ~4 GB/s; with loop unrolling
 *     (the pragma below) 16-24 GB/s, as fast as the .so.
 */
#pragma GCC optimize("unroll-loops")

#include "hashing/page_hash.h"
#include "hashing/page_hash_impl.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

uint64_t pk_page_xxh3_sse2(const void *page)
{
	return XXH3_64bits(page, PK_HASH_PAGE_SIZE);
}

static int cpu_has_avx2(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __builtin_cpu_supports("avx2");
#else
	return 0;
#endif
}

uint64_t pk_page_hash(const void *page)
{
	uint64_t h = cpu_has_avx2() ? pk_page_xxh3_avx2(page) :
				      pk_page_xxh3_sse2(page);

	return h & PK_HASH_MASK;
}

const char *pk_page_hash_impl(void)
{
	return cpu_has_avx2() ? "avx2" : "sse2";
}
