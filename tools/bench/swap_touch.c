/*
 * swap_touch.c - unique page content and timed random read touches.
 *
 * What/how/why: see swap_touch.h.  The read goes through a volatile
 * pointer between two clock calls, so it cannot leave the timed window.
 */
#include "swap_touch.h"
#include "bench_mem.h"
#include "timing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define WORDS (BENCH_PAGE / sizeof(uint64_t))
#define STEP 0x9e3779b97f4a7c15ull

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t page_base(size_t idx, uint64_t seed)
{
	return mix64(seed ^ ((uint64_t)idx * 0xd1b54a32d192ed03ull));
}

void content_fill(char *base, size_t first_page, size_t npages, uint64_t seed)
{
	for (size_t i = first_page; i < first_page + npages; i++) {
		uint64_t *w = (uint64_t *)(void *)(base + (i - first_page) * BENCH_PAGE);
		uint64_t x = page_base(i, seed);
		w[0] = (uint64_t)i + 1;
		w[1] = seed | 1;
		for (size_t k = 2; k < WORDS; k++)
			w[k] = (x += STEP);
	}
}

size_t content_check(const char *p, size_t idx, uint64_t seed)
{
	const uint64_t *w = (const uint64_t *)(const void *)p;
	uint64_t x = page_base(idx, seed);

	if (w[0] != (uint64_t)idx + 1)
		return 1;
	if (w[1] != (seed | 1))
		return 2;
	for (size_t k = 2; k < WORDS; k++)
		if (w[k] != (x += STEP))
			return k + 1;
	return 0;
}

int touch_read_random(const char *base, const uint32_t *perm, size_t n,
		      uint64_t *lat_ns, size_t *resident,
		      struct touch_progress *prog)
{
	size_t res = 0;
	uint64_t sink = 0;

	for (size_t i = 0; i < n; i++) {
		const volatile uint64_t *p =
			(const volatile uint64_t *)(const void *)(base + (size_t)perm[i] * BENCH_PAGE);
		unsigned char vec = 0;

		if (mincore((void *)(uintptr_t)p, BENCH_PAGE, &vec) < 0)
			return -errno;
		res += vec & 1;
		uint64_t t0 = now_ns();
		sink += *p;
		uint64_t t1 = now_ns();
		lat_ns[i] = t1 - t0;
		if (prog)
			__atomic_store_n(&prog->done, i + 1, __ATOMIC_RELAXED);
	}
	*resident = res;
	__asm__ volatile("" : : "r"(sink));
	return 0;
}

uint64_t touch_read_seq(const char *base, size_t npages, struct touch_progress *prog)
{
	uint64_t sink = 0, t0 = now_ns();

	for (size_t i = 0; i < npages; i++) {
		sink += *(const volatile uint64_t *)(const void *)(base + i * BENCH_PAGE);
		if (prog)
			__atomic_store_n(&prog->done, i + 1, __ATOMIC_RELAXED);
	}
	uint64_t t1 = now_ns();
	__asm__ volatile("" : : "r"(sink));
	return t1 - t0;
}

size_t content_verify(const char *base, const uint32_t *perm, size_t n,
		      uint64_t seed, char *err, size_t err_len)
{
	size_t bad = 0;

	for (size_t i = 0; i < n; i++) {
		size_t idx = perm ? perm[i] : i;
		const char *p = base + idx * BENCH_PAGE;
		size_t w = content_check(p, idx, seed);
		if (!w)
			continue;
		if (!bad++) {
			const uint64_t *q = (const uint64_t *)(const void *)p;
			snprintf(err, err_len, "page %zu: word %zu differs (word 0 = 0x%llx, "
				 "expected 0x%llx)", idx, w - 1,
				 (unsigned long long)q[0], (unsigned long long)idx + 1);
		}
	}
	return bad;
}

long resident_pages(const char *base, size_t npages)
{
	unsigned char *vec = malloc(npages ? npages : 1);
	long n = 0;

	if (!vec)
		return -ENOMEM;
	if (mincore((void *)(uintptr_t)base, npages * BENCH_PAGE, vec) < 0) {
		int e = -errno;
		free(vec);
		return e;
	}
	for (size_t i = 0; i < npages; i++)
		n += vec[i] & 1;
	free(vec);
	return n;
}
