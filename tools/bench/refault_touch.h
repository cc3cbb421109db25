/*
 * refault_touch.h - page kinds, their content, and timed refault touches.
 *
 * What: the two kinds of reclaimed page pk-bench-refault measures:
 *   zero   - pages the guest populated but left all zeros;
 *   shared - pages whose content occurs twice in the region: page i
 *            holds content number i % (npages / 2) (swap_touch.c's unique,
 *            never-zero content of that number), so the two halves of the
 *            region are copies of each other and every page has a twin.
 * Then one timed access per page, alternating a one-word read and a
 * one-word write (word 0 := REFAULT_WRITE_MARK) along the touch list,
 * and afterwards (untimed) a full comparison of every touched page with
 * what it must hold: its kind's content, with the mark in word 0 when it
 * was written.
 * How: reads and writes alternate touch by touch, so both see the same
 * neighbours, scanner passes and noise.  mincore() before each touch,
 * outside the timed window, counts pages already resident (a server's
 * fault-around).  The same functions serve pagekeeperd and the floor.
 * Why: a refault that maps the wrong bytes must fail the run, and read
 * and write refaults may take different paths (a write may need a
 * writable copy where a read could map a shared page).
 */
#ifndef PK_BENCH_REFAULT_TOUCH_H
#define PK_BENCH_REFAULT_TOUCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "touch.h"

enum page_kind { KIND_ZERO, KIND_SHARED, KIND_COUNT };
enum access { ACC_READ, ACC_WRITE, ACC_COUNT };

#define REFAULT_WRITE_MARK 0x7772697465746f75ull

const char *kind_name(enum page_kind k);	/* "zero", "shared" */
const char *access_name(enum access a);		/* "read", "write" */

/* Distinct contents of a shared region of npages (its twins' count). */
size_t kind_contents(size_t npages);

/*
 * Give every page of [base, base + npages * 4096) its kind's content and
 * make it resident: zero pages with MADV_POPULATE_WRITE, shared pages by
 * writing them.  0 or -errno.
 */
int kind_fill(char *base, size_t npages, enum page_kind k, uint64_t seed);

/*
 * The touch list: the first n pages of perm[0..npages) that are not
 * resident now (mincore), in perm's order, into list.  Returns how many
 * were found (< n when too few pages are out), or -errno.
 */
long touch_list_out(const char *base, const uint32_t *perm, size_t npages,
		    uint32_t *list, size_t n);

/*
 * Shared kind: how many of list[0..n) come after their twin (the page
 * npages / 2 away) in the list, i.e. drop the last reference to a merged
 * copy.  -ENOMEM or the count.
 */
long touch_list_seconds(const uint32_t *list, size_t n, size_t npages);

/*
 * Touch list[0..n): even i a timed one-word read, odd i a timed one-word
 * write; the read latencies go to lat[ACC_READ][i / 2], the writes' to
 * lat[ACC_WRITE][i / 2]; resident[a] counts pages resident before their
 * touch.  0 or -errno (mincore).  prog may be NULL.
 */
int refault_touch(char *base, const uint32_t *list, size_t n, uint64_t *lat[ACC_COUNT],
		  size_t resident[ACC_COUNT], struct touch_progress *prog);

/*
 * Compare every touched page with what it must hold.  Returns the number
 * of wrong pages and, when there are any, describes the first in err.
 */
size_t refault_verify(const char *base, const uint32_t *list, size_t n, size_t npages,
		      enum page_kind k, uint64_t seed, char *err, size_t err_len);

#endif
