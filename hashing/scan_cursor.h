/*
 * scan_cursor.h - a resumable walk over the present pages of a RAM file.
 *
 * The sharing scanner walks each guest's RAM file (a memfd or /dev/shm
 * file shared with the guest) a few pages at a time, under a rate limit.
 * A cursor remembers where it stopped.  pk_scan_step() visits up to
 * max_pages present pages from there, in file order, and calls cb once
 * per page with its file offset, a copy of its content, its hash and
 * whether it is all zeros (zero pages are not hashed: hash 0).
 *
 * It never allocates a page of the file: holes are skipped with
 * lseek(SEEK_DATA / SEEK_HOLE), or with the caller's extent function
 * (pk_scan_cursor_set_extents), and data is copied with pread into the
 * cursor's own buffer, which does not fault in or populate anything and
 * does not go through userfaultfd.  The copy is a snapshot: the guest may
 * write the page a moment later, so the hash is a hint for this pass
 * only, and merging must write-protect and compare again.
 *
 * Passes.  When a step finds no present page left before the end of the
 * file it returns 0: the pass is over, pk_scan_passes() counts it, and
 * the next step starts again at offset 0.  A step never crosses from one
 * pass into the next, so 0 is returned exactly once per pass (also for an
 * empty file).  A partial page at the end of the file is not visited.
 *
 * The cursor does not own fd: the caller keeps it open while the cursor
 * lives.  Not thread-safe.  Errors are negative errno values.
 */
#ifndef PK_SCAN_CURSOR_H
#define PK_SCAN_CURSOR_H

#include <stdbool.h>
#include <stdint.h>

struct pk_scan_cursor;

/* Pages read with one pread, unless the caller asks for another size. */
#define PK_SCAN_CHUNK_PAGES 64u

/*
 * Called once per present page; page is PK_HASH_PAGE_SIZE bytes, valid
 * during the call only.  Return 0 to go on, > 0 to end the step after
 * this page, < 0 (negative errno) to end the step and have pk_scan_step()
 * return that error.  Either way the page counts as visited: the next
 * step resumes after it.
 */
typedef int (*pk_scan_fn)(void *arg, uint64_t offset, const void *page,
			  uint64_t hash, bool is_zero);

struct pk_scan_stats {
	uint64_t offset;	  /* where the next step starts */
	uint64_t passes;	  /* passes completed */
	uint64_t pass_pages;	  /* pages visited in the current pass */
	uint64_t pass_zero_pages; /* of which all zeros */
	uint64_t last_pass_pages; /* pages visited in the last complete pass */
	uint64_t last_pass_zero_pages;
	uint64_t bytes_read;	  /* by pread, over the cursor's life */
};

/*
 * A cursor at offset 0 of fd.  chunk_pages: pages per pread (0 means
 * PK_SCAN_CHUNK_PAGES); the buffer is that many pages.  -EINVAL, -ENOMEM.
 */
int pk_scan_cursor_create(int fd, unsigned chunk_pages,
			  struct pk_scan_cursor **out);
void pk_scan_cursor_destroy(struct pk_scan_cursor *c);

/*
 * Visits up to max_pages (>= 1) present pages from the cursor's offset.
 * Returns the number visited (> 0), 0 when the pass ended (see above), or
 * a negative errno: -EINVAL (max_pages 0), an lseek or pread error, or
 * the callback's.
 */
int pk_scan_step(struct pk_scan_cursor *c, unsigned max_pages, pk_scan_fn cb,
		 void *arg);

/*
 * Where the data is, from the caller's own knowledge: the first run of
 * pages worth reading at or after file offset from, as [*start, *end),
 * page-aligned, *start >= from.  Returns 1 with a run, 0 when there is
 * none before the end of the file, or a negative errno.
 */
typedef int (*pk_scan_extent_fn)(void *arg, uint64_t from, uint64_t *start,
				 uint64_t *end);

/*
 * Use fn instead of lseek(SEEK_DATA / SEEK_HOLE) to find the extents to
 * read (NULL: back to lseek).  The engine knows which pages are resident
 * from its page table; asking it saves two syscalls per extent, which on
 * a guest whose file merging has riddled with holes were a tenth of the
 * scanner's CPU.
 */
void pk_scan_cursor_set_extents(struct pk_scan_cursor *c, pk_scan_extent_fn fn,
				void *arg);

/* Passes completed. */
uint64_t pk_scan_passes(const struct pk_scan_cursor *c);

void pk_scan_stats(const struct pk_scan_cursor *c, struct pk_scan_stats *st);

#endif
