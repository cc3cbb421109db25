/*
 * refault_touch.c - page kinds, their content, and timed refault touches.
 *
 * What/how/why: see refault_touch.h.  The read and the write go through
 * volatile pointers between two clock calls, so neither can leave the
 * timed window; the expected page is rebuilt in a buffer and compared
 * with memcmp.
 */
#include "refault_touch.h"
#include "bench_mem.h"
#include "swap_touch.h"
#include "timing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

const char *kind_name(enum page_kind k)
{
	static const char *const n[KIND_COUNT] = { "zero", "shared" };

	return (unsigned)k < KIND_COUNT ? n[k] : "?";
}

const char *access_name(enum access a)
{
	static const char *const n[ACC_COUNT] = { "read", "write" };

	return (unsigned)a < ACC_COUNT ? n[a] : "?";
}

size_t kind_contents(size_t npages)
{
	return npages / 2 ? npages / 2 : 1;
}

int kind_fill(char *base, size_t npages, enum page_kind k, uint64_t seed)
{
	if (k == KIND_ZERO)
		return madvise(base, npages * BENCH_PAGE, MADV_POPULATE_WRITE) < 0 ? -errno : 0;
	size_t half = kind_contents(npages);
	for (size_t i = 0; i < npages; i++)
		content_fill(base + i * BENCH_PAGE, i % half, 1, seed);
	return 0;
}

long touch_list_out(const char *base, const uint32_t *perm, size_t npages,
		    uint32_t *list, size_t n)
{
	unsigned char vec[256];
	size_t got = 0;

	for (size_t i = 0; i < npages && got < n; i++) {
		/* one page at a time: perm is random, and this is untimed */
		if (mincore((void *)(uintptr_t)(base + (size_t)perm[i] * BENCH_PAGE),
			    BENCH_PAGE, vec) < 0)
			return -errno;
		if (!(vec[0] & 1))
			list[got++] = perm[i];
	}
	return (long)got;
}

long touch_list_seconds(const uint32_t *list, size_t n, size_t npages)
{
	size_t half = kind_contents(npages);
	unsigned char *seen = calloc(half, 1);
	long second = 0;

	if (!seen)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		size_t c = list[i] % half;
		second += seen[c];
		seen[c] = 1;
	}
	free(seen);
	return second;
}

int refault_touch(char *base, const uint32_t *list, size_t n, uint64_t *lat[ACC_COUNT],
		  size_t resident[ACC_COUNT], struct touch_progress *prog)
{
	uint64_t sink = 0;

	resident[ACC_READ] = resident[ACC_WRITE] = 0;
	for (size_t i = 0; i < n; i++) {
		volatile uint64_t *p = (volatile uint64_t *)(void *)(base +
								     (size_t)list[i] * BENCH_PAGE);
		enum access a = i % 2 ? ACC_WRITE : ACC_READ;
		unsigned char vec = 0;

		if (mincore((void *)(uintptr_t)p, BENCH_PAGE, &vec) < 0)
			return -errno;
		resident[a] += vec & 1;
		uint64_t t0 = now_ns();
		if (a == ACC_READ)
			sink += *p;
		else
			*p = REFAULT_WRITE_MARK;
		uint64_t t1 = now_ns();
		lat[a][i / 2] = t1 - t0;
		if (prog)
			__atomic_store_n(&prog->done, i + 1, __ATOMIC_RELAXED);
	}
	__asm__ volatile("" : : "r"(sink));
	return 0;
}

/* What page idx of a region of npages must hold. */
static void expected(uint64_t *want, size_t idx, size_t npages, enum page_kind k,
		     uint64_t seed, bool written)
{
	if (k == KIND_ZERO)
		memset(want, 0, BENCH_PAGE);
	else
		content_fill((char *)want, idx % kind_contents(npages), 1, seed);
	if (written)
		want[0] = REFAULT_WRITE_MARK;
}

size_t refault_verify(const char *base, const uint32_t *list, size_t n, size_t npages,
		      enum page_kind k, uint64_t seed, char *err, size_t err_len)
{
	uint64_t want[BENCH_PAGE / sizeof(uint64_t)];
	size_t bad = 0;

	for (size_t i = 0; i < n; i++) {
		const uint64_t *p = (const uint64_t *)(const void *)(base +
								     (size_t)list[i] * BENCH_PAGE);
		expected(want, list[i], npages, k, seed, i % 2);
		if (!memcmp(p, want, BENCH_PAGE))
			continue;
		if (!bad++) {
			size_t w = 0;
			while (w < BENCH_PAGE / sizeof(uint64_t) && p[w] == want[w])
				w++;
			snprintf(err, err_len, "%s page %u (%s-touched): word %zu is 0x%llx, "
				 "expected 0x%llx", kind_name(k), list[i],
				 access_name(i % 2 ? ACC_WRITE : ACC_READ), w,
				 (unsigned long long)p[w], (unsigned long long)want[w]);
		}
	}
	return bad;
}
