/*
 * swap_touch.h - unique page content and timed random read touches.
 *
 * What: every page of a test region gets content that is unique, never
 * zero, and different in every round: word 0 is the page index + 1, word
 * 1 the round's seed, the rest a seeded sequence.  The timed part reads
 * one word of each page in a random order (each read timed), or of every
 * page in address order (timed as a whole); afterwards (untimed) each
 * touched page is compared word by word with what it must hold.
 * How: the same functions serve all three variants (the kernel variant
 * calls them in its child), so they differ only in who brings the page
 * back.  mincore() before each touch, outside the timed window, counts
 * pages that were already resident (swap readahead, fault-around).
 * Why: a page that comes back with wrong content must fail the run, and
 * a zero or duplicate page could be "evicted" without any I/O.
 */
#ifndef PK_BENCH_SWAP_TOUCH_H
#define PK_BENCH_SWAP_TOUCH_H

#include <stddef.h>
#include <stdint.h>

#include "touch.h"

void content_fill(char *base, size_t first_page, size_t npages, uint64_t seed);

/* 0 when page idx at p holds its content, else 1 + index of the bad word. */
size_t content_check(const char *p, size_t idx, uint64_t seed);

/*
 * Read one word of base + perm[i] * 4096 for i < n, timing each read into
 * lat_ns[i]; *resident counts pages resident before their touch.
 * 0 or -errno (mincore).  prog may be NULL.
 */
int touch_read_random(const char *base, const uint32_t *perm, size_t n,
		      uint64_t *lat_ns, size_t *resident,
		      struct touch_progress *prog);

/*
 * Read one word of every page of [base, base + npages * 4096) in address
 * order, no mincore; returns the elapsed ns of the whole sweep.
 */
uint64_t touch_read_seq(const char *base, size_t npages, struct touch_progress *prog);

/*
 * Check the pages perm[0..n) (perm NULL: pages 0..n-1).  Returns the
 * number of bad pages and, when there are any, describes the first in err.
 */
size_t content_verify(const char *base, const uint32_t *perm, size_t n,
		      uint64_t seed, char *err, size_t err_len);

/* Pages of [base, base + npages * 4096) resident now, or -errno. */
long resident_pages(const char *base, size_t npages);

#endif
