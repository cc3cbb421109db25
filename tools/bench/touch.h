/*
 * touch.h - the access patterns the benchmark times.
 *
 * What: random single-page first touches (each timed) and a sequential
 * sweep (timed as a whole), both by one byte write per page.
 * How: a seeded Fisher-Yates permutation of page indices; before each
 * random touch, mincore() (outside the timed window) tells whether the
 * page is already present, e.g. because a handler faulted it in around an
 * earlier fault, so the report can say how many touches took no fault.
 * Why: writes, not reads, so every variant pays for a writable page
 * (a read could be served by the shared zero page and fault again later).
 */
#ifndef PK_BENCH_TOUCH_H
#define PK_BENCH_TOUCH_H

#include <stddef.h>
#include <stdint.h>

/* Progress counter a watchdog can read (touches done); may be NULL. */
struct touch_progress {
	uint64_t done;	/* updated with __atomic_store_n, relaxed */
};

void perm_init(uint32_t *perm, size_t n, uint64_t seed);

/*
 * Write one byte at base + perm[i] * 4096 for i < n, timing each write
 * into lat_ns[i].  *present counts pages already resident before their
 * touch.  Returns 0 or a negative errno (mincore failure).
 */
int touch_random(char *base, const uint32_t *perm, size_t n, uint64_t *lat_ns,
		 size_t *present, struct touch_progress *prog);

/* Write one byte per page, in order; returns elapsed ns. */
uint64_t touch_sequential(char *base, size_t npages,
			  struct touch_progress *prog);

/*
 * Content check after the timed part, of every touched page: it must
 * read 1 at its first byte and 0 at all the others (a fresh zero page,
 * written once).  perm NULL: pages 0..n-1.  A read may fault again (the
 * daemon's scanner may have merged the identical pages meanwhile), so
 * the check counts on in prog (n + pages checked) for the watchdog; prog
 * may be NULL.  Returns the number of bad pages.
 */
size_t touch_verify(const char *base, const uint32_t *perm, size_t n,
		    struct touch_progress *prog);

#endif
