/*
 * touch.c - the access patterns the benchmark times.
 *
 * What/how/why: see touch.h.  The stores go through a volatile pointer
 * between two opaque clock calls, so the compiler can neither drop nor
 * move them out of the timed window.
 */
#include "touch.h"
#include "bench_mem.h"
#include "timing.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

void perm_init(uint32_t *perm, size_t n, uint64_t seed)
{
	uint64_t s = seed ? seed : 0x9e3779b97f4a7c15ull;

	for (size_t i = 0; i < n; i++)
		perm[i] = (uint32_t)i;
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(xorshift64(&s) % i);
		uint32_t t = perm[i - 1];
		perm[i - 1] = perm[j];
		perm[j] = t;
	}
}

static void progress(struct touch_progress *prog, uint64_t v)
{
	if (prog)
		__atomic_store_n(&prog->done, v, __ATOMIC_RELAXED);
}

int touch_random(char *base, const uint32_t *perm, size_t n, uint64_t *lat_ns,
		 size_t *present, struct touch_progress *prog)
{
	size_t pres = 0;

	for (size_t i = 0; i < n; i++) {
		volatile char *p = base + (size_t)perm[i] * BENCH_PAGE;
		unsigned char vec = 0;

		if (mincore((void *)p, BENCH_PAGE, &vec) < 0)
			return -errno;
		pres += vec & 1;
		uint64_t t0 = now_ns();
		*p = 1;
		uint64_t t1 = now_ns();
		lat_ns[i] = t1 - t0;
		progress(prog, i + 1);
	}
	*present = pres;
	return 0;
}

uint64_t touch_sequential(char *base, size_t npages,
			  struct touch_progress *prog)
{
	uint64_t t0 = now_ns();

	for (size_t i = 0; i < npages; i++) {
		((volatile char *)base)[i * BENCH_PAGE] = 1;
		if ((i & 1023) == 0)
			progress(prog, i + 1);
	}
	uint64_t t1 = now_ns();
	progress(prog, npages);
	return t1 - t0;
}

size_t touch_verify(const char *base, const uint32_t *perm, size_t n,
		    struct touch_progress *prog)
{
	static const char zeros[BENCH_PAGE];
	size_t bad = 0;

	for (size_t i = 0; i < n; i++) {
		const char *p = base + (size_t)(perm ? perm[i] : i) * BENCH_PAGE;
		if (p[0] != 1 || memcmp(p + 1, zeros, BENCH_PAGE - 1))
			bad++;
		if ((i & 255) == 0)
			progress(prog, n + i + 1);
	}
	return bad;
}
