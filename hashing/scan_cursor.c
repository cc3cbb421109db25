/*
 * scan_cursor.c - a resumable walk over the present pages of a RAM file.
 *
 * What: the sharing scanner's way through a guest's RAM file: every page
 * that holds data, in file order, with its hash and a zero flag, a few
 * pages per call, resuming where the last call stopped.
 *
 * How: lseek(SEEK_DATA) finds the next data extent at or after the
 * cursor and lseek(SEEK_HOLE) its end (both rounded out to whole pages);
 * the extent is read with pread in chunks of up to chunk_pages pages into
 * one page-aligned buffer, never more pages than the step may still
 * visit, so nothing read is thrown away and every step reads fresh data.
 * Each page is checked for zeros first (pk_page_is_zero, memory speed)
 * and hashed only if it is not zero.  The extent's end is remembered
 * across steps until the cursor passes it: SEEK_HOLE walks the whole
 * extent in the kernel (mapping_seek_hole_data), so asking again at every
 * step made a pass over one large extent quadratic (77% of the daemon's
 * time on a 256 MiB guest).  The guest changes the file between steps,
 * which is harmless: a page punched meanwhile reads as zeros (pread of a
 * hole allocates nothing), and data written past the remembered end is
 * found by the next SEEK_DATA.
 *
 * Why: pread on tmpfs/memfd copies present pages and returns zeros for
 * holes without allocating anything, and does not fault through the
 * guest's userfaultfd-registered mapping, so scanning can neither inflate
 * a guest's footprint nor block on the daemon's own fault handling.
 * SEEK_DATA/SEEK_HOLE skip the holes (pages never touched, reclaimed or
 * swapped out) at the cost of two syscalls per extent, not one read per
 * page.  Copying costs a memcpy (~7 GB/s) per page; at the scan rates the
 * daemon runs (hundreds of MiB/s) that is a few percent of a core.
 */
#include "hashing/scan_cursor.h"

#include "hashing/page_hash.h"
#include "hashing/page_zero.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE PK_HASH_PAGE_SIZE
#define MAX_CHUNK_PAGES 4096u

struct pk_scan_cursor {
	int fd;
	unsigned chunk_pages;
	unsigned char *buf; /* chunk_pages pages, page-aligned */
	uint64_t data_end;  /* end of the extent st.offset is in; 0: unknown */
	pk_scan_extent_fn extent_fn; /* NULL: lseek */
	void *extent_arg;
	struct pk_scan_stats st;
};

int pk_scan_cursor_create(int fd, unsigned chunk_pages,
			  struct pk_scan_cursor **out)
{
	struct pk_scan_cursor *c;

	if (fd < 0 || chunk_pages > MAX_CHUNK_PAGES)
		return -EINVAL;
	if (!chunk_pages)
		chunk_pages = PK_SCAN_CHUNK_PAGES;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->buf = mmap(NULL, (size_t)chunk_pages * PAGE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c->buf == MAP_FAILED) {
		free(c);
		return -ENOMEM;
	}
	c->fd = fd;
	c->chunk_pages = chunk_pages;
	*out = c;
	return 0;
}

void pk_scan_cursor_destroy(struct pk_scan_cursor *c)
{
	if (!c)
		return;
	munmap(c->buf, (size_t)c->chunk_pages * PAGE);
	free(c);
}

static void end_pass(struct pk_scan_cursor *c)
{
	c->st.passes++;
	c->st.last_pass_pages = c->st.pass_pages;
	c->st.last_pass_zero_pages = c->st.pass_zero_pages;
	c->st.pass_pages = 0;
	c->st.pass_zero_pages = 0;
	c->st.offset = 0;
	c->data_end = 0;
}

/*
 * The next data extent at or after c->st.offset, in whole pages:
 * 1 with [*start, *end), 0 if there is none before the end of the file.
 */
static int next_extent(struct pk_scan_cursor *c, uint64_t *start,
		       uint64_t *end)
{
	off_t d, h;

	if (c->extent_fn)
		return c->extent_fn(c->extent_arg, c->st.offset, start, end);
	d = lseek(c->fd, (off_t)c->st.offset, SEEK_DATA);
	if (d < 0) {
		if (errno == ENXIO)
			return 0;
		if (errno != EINVAL)
			return -errno;
		/* No SEEK_DATA here: read on to the end of the file. */
		*start = c->st.offset;
		*end = UINT64_MAX;
		return 1;
	}
	h = lseek(c->fd, d, SEEK_HOLE);
	if (h < 0)
		return -errno;
	*start = (uint64_t)d & ~(uint64_t)(PAGE - 1);
	if (*start < c->st.offset)
		*start = c->st.offset;
	*end = ((uint64_t)h + PAGE - 1) & ~(uint64_t)(PAGE - 1);
	return 1;
}

/* Whole pages read into c->buf from offset, at most n; 0 at end of file. */
static ssize_t read_pages(struct pk_scan_cursor *c, uint64_t offset, size_t n)
{
	ssize_t r;

	do
		r = pread(c->fd, c->buf, n * PAGE, (off_t)offset);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	c->st.bytes_read += (uint64_t)r;
	return r / PAGE;
}

int pk_scan_step(struct pk_scan_cursor *c, unsigned max_pages, pk_scan_fn cb,
		 void *arg)
{
	unsigned visited = 0;

	if (!max_pages || !cb)
		return -EINVAL;
	if (max_pages > INT_MAX)
		max_pages = INT_MAX;
	while (visited < max_pages) {
		uint64_t start = 0;
		size_t n;
		ssize_t got;
		int rc;

		if (c->st.offset >= c->data_end) {
			rc = next_extent(c, &start, &c->data_end);
			if (rc < 0)
				return rc;
			if (rc == 0)
				break;
			c->st.offset = start;
		}
		n = c->chunk_pages;
		if (n > max_pages - visited)
			n = max_pages - visited;
		if (n > (c->data_end - c->st.offset) / PAGE)
			n = (c->data_end - c->st.offset) / PAGE;
		got = read_pages(c, c->st.offset, n);
		if (got < 0)
			return (int)got;
		if (got == 0)
			break; /* end of file (or a partial last page) */
		for (ssize_t i = 0; i < got; i++) {
			const unsigned char *page = c->buf + (size_t)i * PAGE;
			uint64_t off = c->st.offset;
			bool zero = pk_page_is_zero(page, PAGE);
			uint64_t hash = zero ? 0 : pk_page_hash(page);

			visited++;
			c->st.offset += PAGE;
			c->st.pass_pages++;
			c->st.pass_zero_pages += zero;
			rc = cb(arg, off, page, hash, zero);
			if (rc < 0)
				return rc;
			if (rc > 0)
				return (int)visited;
		}
		if ((size_t)got < n)
			c->data_end = 0; /* the file shrank: look again */
	}
	if (visited)
		return (int)visited;
	end_pass(c);
	return 0;
}

void pk_scan_cursor_set_extents(struct pk_scan_cursor *c, pk_scan_extent_fn fn,
				void *arg)
{
	c->extent_fn = fn;
	c->extent_arg = arg;
	c->data_end = 0;
}

uint64_t pk_scan_passes(const struct pk_scan_cursor *c)
{
	return c->st.passes;
}

void pk_scan_stats(const struct pk_scan_cursor *c, struct pk_scan_stats *st)
{
	*st = c->st;
}
