/*
 * guestos.c - the lab guest's operating system (--balloon).
 *
 * What: guest RAM (the memfd pagekeeperd serves) becomes the guest's
 * physical memory, cut in 4 KiB frames, and the application's heap a
 * virtual working set of --working-set bytes that may be larger than what
 * the balloon leaves.  The OS keeps the application's resident set within
 *     RAM - balloon - kernel reserve (2% of RAM, at least 1 MiB)
 * and pages the rest out to its own page file, a real file on disk read
 * and written with O_DIRECT, so a guest page-in costs a real disk read and
 * guests sharing a disk contend for it.  The balloon driver (labballoon.c)
 * moves frames between the OS and the balloon: inflating takes free
 * frames first and then forces the coldest pages out, and hands each
 * ballooned frame back to the host with a discard (MADV_REMOVE: the daemon
 * sees a REMOVE event); deflating puts them back on the free list.
 * --locked F pins the first F of the working set ("Lock Pages in Memory"):
 * never paged out, so the balloon stalls short of a deep target.
 *
 * --live F makes the heap elastic, like the managed heap of the seeds'
 * .NET benchmark (seed 002, Figs. 9, 13 and 18): the application keeps F
 * of the working set live, allocates new page-sized objects that replace
 * dead ones (gs_os_alloc, gs_os_retire) and so leaves garbage behind,
 * committed pages that hold data nobody will read again.  Its runtime
 * collects that garbage, releasing the pages (frames back to the free
 * list, page-file copies dropped: VirtualFree / MADV_DONTNEED), when the
 * heap reaches its limit (--working-set) and when the OS runs out of free
 * frames: the low-memory notification the CLR waits on, which the OS
 * sends before it trims working sets, and which a balloon that inflates
 * sends too.  That is how a balloon shrinks the seed's heap (Fig. 13)
 * without paging out live data, and what the host cannot do by itself: a
 * host that swaps guest frames at random takes live pages as often as
 * garbage, and a frame the guest freed and reuses must come back from the
 * host's swap before the guest can write it.  A collection costs no
 * simulated time (a real one costs CPU for its mark phase); gc_runs and
 * gc_pages in the report count them.
 *
 * How: all state is in the simulator's heap, never in guest RAM (the
 * daemon may lose guest RAM; the truth must survive): vpage -> frame and
 * frame -> owner maps, per-vpage content version and flags, a free-frame
 * stack and a balloon stack.  Replacement is a clock over frames: each
 * access sets the vpage's referenced bit, the hand clears it and takes the
 * first unreferenced, unlocked page.  A page whose page-file copy is still
 * current (read in and not written since: a swap cache) is evicted without
 * a write.  Page file slot = vpage index.  One mutex covers it all; an
 * access holds it while it touches guest RAM, so the balloon can never
 * take a frame under the application's feet.  I/O goes through one
 * aligned bounce buffer, never straight into guest RAM (a direct read
 * into userfaultfd-registered memory would fault inside the kernel).
 *
 * Why: the seeds' balloon effects (squeezed working sets, the guest's own
 * paging, run times stretched, a locked application that stalls the
 * balloon) only appear if the guest chooses what to give up, as a real OS
 * does; the host can't know what the guest touches, the guest can.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "guestos.h"

#define GS_OS_NONE UINT32_MAX	/* vpage not in a frame */
#define OWN_FREE UINT32_MAX	/* frame on the free list */
#define OWN_BALLOON (UINT32_MAX - 1)
#define OWN_KERNEL (UINT32_MAX - 2)

#define F_REF 1u	/* referenced since the hand last passed */
#define F_PAGED 2u	/* the page file holds a copy */
#define F_CLEAN 4u	/* ... and it is current (not written since) */
#define F_LOCKED 8u	/* never paged out */
#define F_TOUCHED 16u	/* has had its first touch */
#define F_GARBAGE 32u	/* --live: dead, released by the next collection */

#define MAX_SAMPLES 100000

static unsigned char *frame_addr(const struct gs_os *os, uint32_t f)
{
	return os->ram->base + (uint64_t)f * GS_PAGE_SIZE;
}

static int pf_io_buf(struct gs_os *os, bool write, uint32_t vpage, void *buf)
{
	off_t off = (off_t)vpage * GS_PAGE_SIZE;
	ssize_t n;

	do {
		n = write ? pwrite(os->pf_fd, buf, GS_PAGE_SIZE, off)
			  : pread(os->pf_fd, buf, GS_PAGE_SIZE, off);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n != GS_PAGE_SIZE)
		return -EIO;
	if (write)
		os->c.pf_writes++;
	else
		os->c.pf_reads++;
	return 0;
}

static int pf_io(struct gs_os *os, bool write, uint32_t vpage)
{
	return pf_io_buf(os, write, vpage, os->bounce);
}

int gs_os_init(struct gs_os *os, struct gs_ram *r,
	       const struct gs_content *content, const struct gs_opts *o,
	       char *err, size_t err_len)
{
	uint64_t n_frames = r->size / GS_PAGE_SIZE;
	uint64_t avail;
	int rc;

	memset(os, 0, sizeof(*os));
	os->pf_fd = -1;
	os->ram = r;
	os->content = content;
	os->n_frames = (uint32_t)n_frames;
	os->n_vpages = (uint32_t)(o->working_set / GS_PAGE_SIZE);
	os->reserve = (uint32_t)gs_os_reserve_frames(n_frames);
	os->locked_n = (uint32_t)(o->locked * os->n_vpages);
	os->live_n = (uint32_t)(o->live * os->n_vpages);
	if (os->live_n < os->locked_n)	/* opts.c: locked <= live */
		os->live_n = os->locked_n;
	if (os->live_n < 1)
		os->live_n = 1;
	avail = n_frames - os->reserve - gs_os_min_app_frames(n_frames);
	/* opts.c checked that these fit. */
	os->max_balloon = (uint32_t)(avail - os->locked_n);
	os->balloon_target = 0;
	pthread_mutex_init(&os->lock, NULL);
	os->frame_of = malloc(sizeof(*os->frame_of) * os->n_vpages);
	os->version = calloc(os->n_vpages, sizeof(*os->version));
	os->flags = calloc(os->n_vpages, 1);
	os->owner = malloc(sizeof(*os->owner) * n_frames);
	os->free_stack = malloc(sizeof(*os->free_stack) * n_frames);
	os->balloon_stack = malloc(sizeof(*os->balloon_stack) * n_frames);
	os->bounce = aligned_alloc(GS_PAGE_SIZE, GS_PAGE_SIZE);
	os->scratch = aligned_alloc(GS_PAGE_SIZE, GS_PAGE_SIZE);
	os->app_bounce = aligned_alloc(GS_PAGE_SIZE, GS_PAGE_SIZE);
	os->pin = GS_OS_NONE;
	os->garbage = malloc(sizeof(*os->garbage) * os->n_vpages);
	if (!os->frame_of || !os->version || !os->flags || !os->owner ||
	    !os->free_stack || !os->balloon_stack || !os->bounce ||
	    !os->scratch || !os->app_bounce || !os->garbage) {
		snprintf(err, err_len, "allocating the guest OS's page tables");
		gs_os_destroy(os);
		return -ENOMEM;
	}
	for (uint32_t v = 0; v < os->n_vpages; v++) {
		os->frame_of[v] = GS_OS_NONE;
		if (v < os->locked_n)
			os->flags[v] = F_LOCKED;
	}
	for (uint32_t f = 0; f < os->n_frames; f++)
		os->owner[f] = f < os->reserve ? OWN_KERNEL : OWN_FREE;
	/* Lowest frames on top: the application fills RAM from the bottom. */
	for (uint32_t f = os->n_frames; f-- > os->reserve;)
		os->free_stack[os->n_free++] = f;
	os->hand = os->reserve;

	if (o->page_file) {
		snprintf(os->pf_path, sizeof(os->pf_path), "%s", o->page_file);
		os->pf_fd = open(os->pf_path, O_RDWR | O_CREAT | O_TRUNC |
				 O_DIRECT | O_CLOEXEC, 0600);
	} else {
		const char *tmp = getenv("TMPDIR");

		snprintf(os->pf_path, sizeof(os->pf_path),
			 "%s/pk-guestsim-pagefile-XXXXXX",
			 tmp && *tmp ? tmp : "/tmp");
		os->pf_fd = mkostemp(os->pf_path, O_DIRECT | O_CLOEXEC);
	}
	if (os->pf_fd < 0) {
		rc = -errno;
		snprintf(err, err_len, "page file %s: %s%s", os->pf_path,
			 strerror(-rc), rc == -EINVAL ? " (no O_DIRECT on this "
			 "file system? give --page-file on a disk)" : "");
		os->pf_path[0] = '\0';
		gs_os_destroy(os);
		return rc;
	}
	if (ftruncate(os->pf_fd, (off_t)os->n_vpages * GS_PAGE_SIZE) < 0) {
		rc = -errno;
		snprintf(err, err_len, "page file %s: ftruncate to %" PRIu64
			 " MiB: %s", os->pf_path,
			 (uint64_t)os->n_vpages * GS_PAGE_SIZE >> 20,
			 strerror(-rc));
		gs_os_destroy(os);
		return rc;
	}
	os->start_ns = gs_now_ns();
	os->last_sample_ns = os->start_ns;
	return 0;
}

void gs_os_destroy(struct gs_os *os)
{
	if (os->pf_fd >= 0)
		close(os->pf_fd);
	os->pf_fd = -1;
	if (os->pf_path[0])
		unlink(os->pf_path);
	os->pf_path[0] = '\0';
	free(os->frame_of);
	free(os->version);
	free(os->flags);
	free(os->owner);
	free(os->free_stack);
	free(os->balloon_stack);
	free(os->bounce);
	free(os->scratch);
	free(os->app_bounce);
	os->app_bounce = NULL;
	free(os->samples);
	free(os->garbage);
	os->garbage = NULL;
	os->frame_of = os->version = os->owner = NULL;
	os->free_stack = os->balloon_stack = NULL;
	os->flags = NULL;
	os->bounce = os->scratch = NULL;
	os->samples = NULL;
}

/* Clock: the coldest unlocked page's frame, or OWN_FREE if every
 * resident page is locked. */
static uint32_t clock_victim(struct gs_os *os)
{
	uint64_t span = (uint64_t)os->n_frames - os->reserve;

	for (uint64_t i = 0; i < 2 * span + 1; i++) {
		uint32_t f = os->hand, v = os->owner[f];

		if (++os->hand == os->n_frames)
			os->hand = os->reserve;
		if (v >= os->n_vpages || (os->flags[v] & F_LOCKED) ||
		    f == os->pin)
			continue;
		if (os->flags[v] & F_REF) {
			os->flags[v] &= (unsigned char)~F_REF;
			continue;
		}
		return f;
	}
	return OWN_FREE;
}

/* Page the application page in frame f out; f becomes the caller's. */
static int evict(struct gs_os *os, uint32_t f)
{
	uint32_t v = os->owner[f];
	int rc;

	if (!(os->flags[v] & F_CLEAN)) {
		memcpy(os->bounce, frame_addr(os, f), GS_PAGE_SIZE);
		rc = pf_io(os, true, v);
		if (rc)
			return rc;
		os->flags[v] |= F_PAGED | F_CLEAN;
	}
	os->frame_of[v] = GS_OS_NONE;
	os->owner[f] = OWN_FREE;
	os->resident--;
	os->c.page_outs++;
	return 0;
}

/*
 * --live: the runtime's collection.  Every garbage page is released: its
 * frame (if any) goes back to the free list without a write, its page
 * file copy is forgotten, and its vpage can be allocated again (with a
 * new version, so stale bytes can never pass for the next object's).
 */
static void collect(struct gs_os *os)
{
	for (uint32_t i = 0; i < os->n_garbage; i++) {
		uint32_t v = os->garbage[i], f = os->frame_of[v];

		if (f != GS_OS_NONE) {
			os->owner[f] = OWN_FREE;
			os->free_stack[os->n_free++] = f;
			os->frame_of[v] = GS_OS_NONE;
			os->resident--;
		}
		os->flags[v] = 0;
		os->version[v]++;
		os->committed--;
	}
	os->c.gc_pages += os->n_garbage;
	os->c.gc_runs++;
	os->n_garbage = 0;
}

/* A frame for the application: a free one; else, if there is garbage,
 * the free frames the runtime's collection gives back (the low-memory
 * notification); else the clock's victim. */
static int get_frame(struct gs_os *os, uint32_t *out)
{
	uint32_t f;
	int rc;

	if (!os->n_free && os->n_garbage)
		collect(os);
	if (os->n_free) {
		*out = os->free_stack[--os->n_free];
		return 0;
	}
	f = clock_victim(os);
	if (f == OWN_FREE)
		return -ENOMEM;
	rc = evict(os, f);
	if (rc)
		return rc;
	os->c.stalls++;
	*out = f;
	return 0;
}

/* A frame for v; *page_in: its page-file copy is in app_bounce, for the
 * caller to copy into the frame (outside the lock, the frame pinned). */
static int fault_in(struct gs_os *os, uint32_t v, bool fill, bool *page_in)
{
	uint32_t f;
	int rc = get_frame(os, &f);

	*page_in = false;
	if (rc)
		return rc;
	if (os->flags[v] & F_PAGED) {
		rc = pf_io_buf(os, false, v, os->app_bounce);
		if (rc) {
			os->free_stack[os->n_free++] = f;
			return rc;
		}
		*page_in = true;
		os->c.page_ins++;
	} else if (!fill) {
		/* Only fill touches a page first (the caller checks). */
		os->free_stack[os->n_free++] = f;
		return -EFAULT;
	} else {
		os->c.minor_faults++;
	}
	os->owner[f] = v;
	os->frame_of[v] = f;
	os->resident++;
	return 0;
}

/*
 * The application's access, called and returning with the lock held.  The
 * bytes are touched with the lock dropped and the frame pinned (the clock
 * and the balloon pass it by): a touch may wait on the host (a page the
 * host swapped out, or a new page while the host stalls the guest), and
 * the balloon driver, another vCPU in a real guest, must not wait with
 * it.  Only this thread touches, allocates or retires vpages, so v's
 * flags and version are its own while the lock is dropped.
 */
static int access_locked(struct gs_os *os, uint32_t v, bool write, bool fill,
			 long *bad_off)
{
	bool first = fill && !(os->flags[v] & F_TOUCHED), page_in = false;
	unsigned char *addr;
	uint32_t version = os->version[v];
	int rc;

	*bad_off = -1;
	if (os->frame_of[v] == GS_OS_NONE) {
		rc = fault_in(os, v, first, &page_in);
		if (rc)
			return rc;
	}
	os->pin = os->frame_of[v];
	addr = frame_addr(os, os->pin);
	pthread_mutex_unlock(&os->lock);
	if (page_in)
		memcpy(addr, os->app_bounce, GS_PAGE_SIZE);
	/* First fill: version 0, or the version a collection moved on to. */
	if (first || write)
		gs_content_generate(os->content, v, version + !first, addr);
	else
		*bad_off = gs_content_check(os->content, v, version, addr,
					    os->scratch);
	pthread_mutex_lock(&os->lock);
	os->pin = GS_OS_NONE;
	if (first) {
		if (v >= os->heap && v < os->live_n)	/* the growth */
			os->heap = v + 1;
		os->flags[v] |= F_TOUCHED;
		os->committed++;
	} else if (write) {
		os->version[v] = version + 1;
		os->flags[v] &= (unsigned char)~F_CLEAN;
	}
	os->flags[v] |= F_REF;
	os->c.ops += !fill;
	return 0;
}

int gs_os_access(struct gs_os *os, uint32_t v, bool write, bool fill,
		 long *bad_off)
{
	int rc;

	pthread_mutex_lock(&os->lock);
	rc = access_locked(os, v, write, fill, bad_off);
	pthread_mutex_unlock(&os->lock);
	return rc;
}

/* The next vpage that holds no data, from the allocation hand on; never
 * one of [heap, live_n): those are the growth's, still to come. */
static uint32_t free_vpage(struct gs_os *os)
{
	for (uint32_t i = 0; i < os->n_vpages; i++) {
		uint32_t v = os->alloc_hand;

		if (++os->alloc_hand == os->n_vpages)
			os->alloc_hand = 0;
		if (!(os->flags[v] & F_TOUCHED) &&
		    (v < os->heap || v >= os->live_n))
			return v;
	}
	return GS_OS_NONE;
}

int gs_os_alloc(struct gs_os *os, uint32_t *out)
{
	uint32_t v;
	long bad;
	int rc = -ENOMEM;

	pthread_mutex_lock(&os->lock);
	if (os->committed + (os->live_n - os->heap) == os->n_vpages &&
	    os->n_garbage)
		collect(os);		/* the heap is at its limit */
	v = free_vpage(os);
	if (v != GS_OS_NONE) {
		rc = access_locked(os, v, true, true, &bad);
		if (!rc) {
			os->c.allocs++;
			*out = v;
		}
	}
	pthread_mutex_unlock(&os->lock);
	return rc;
}

void gs_os_retire(struct gs_os *os, uint32_t v)
{
	pthread_mutex_lock(&os->lock);
	if ((os->flags[v] & (F_TOUCHED | F_GARBAGE | F_LOCKED)) == F_TOUCHED) {
		os->flags[v] |= F_GARBAGE;
		os->garbage[os->n_garbage++] = v;
	}
	pthread_mutex_unlock(&os->lock);
}

void gs_os_set_target(struct gs_os *os, uint64_t actual_bytes)
{
	uint64_t want = os->n_frames - actual_bytes / GS_PAGE_SIZE;

	pthread_mutex_lock(&os->lock);
	os->balloon_target = (uint32_t)want;
	os->stalled = false;
	pthread_mutex_unlock(&os->lock);
}

/* One frame of balloon movement, under the lock: +1 inflated, -1
 * deflated, 0 at the target or stalled, or -errno. */
static int balloon_one(struct gs_os *os, bool *stalled)
{
	uint32_t f;
	int rc;

	if (os->n_balloon > os->balloon_target) {
		f = os->balloon_stack[--os->n_balloon];
		os->owner[f] = OWN_FREE;
		os->free_stack[os->n_free++] = f;
		return 1;
	}
	if (os->n_balloon == os->balloon_target)
		return 0;
	if (os->n_balloon >= os->max_balloon) {
		*stalled = true;
		return 0;
	}
	if (!os->n_free && os->n_garbage)
		collect(os);	/* the low-memory notification */
	if (os->n_free) {
		f = os->free_stack[--os->n_free];
	} else {
		f = clock_victim(os);
		if (f == OWN_FREE) {
			*stalled = true;
			return 0;
		}
		rc = evict(os, f);
		if (rc)
			return rc;
	}
	rc = gs_ram_discard(os->ram, f, 1);
	if (rc) {
		os->free_stack[os->n_free++] = f;
		return rc;
	}
	os->owner[f] = OWN_BALLOON;
	os->balloon_stack[os->n_balloon++] = f;
	return 1;
}

long gs_os_balloon_step(struct gs_os *os, uint32_t max_frames, bool *stalled)
{
	long moved = 0;
	int rc = 0;

	*stalled = false;
	/* The lock per frame: an eviction costs a disk write, and the
	 * application must not wait for a whole step. */
	while ((uint32_t)moved < max_frames && !*stalled) {
		pthread_mutex_lock(&os->lock);
		rc = balloon_one(os, stalled);
		if (*stalled)
			os->stalled = true;
		pthread_mutex_unlock(&os->lock);
		if (rc <= 0)
			break;
		moved++;
	}
	return rc < 0 ? rc : moved;
}

int gs_os_verify(struct gs_os *os, const atomic_int *stop, uint64_t *verified,
		 int64_t *bad, long *bad_off, uint32_t *bad_version)
{
	int rc = 0;

	*verified = 0;
	*bad = -1;
	for (uint32_t v = 0; v < os->n_vpages && !atomic_load(stop); v++) {
		const void *mem;
		long off;

		pthread_mutex_lock(&os->lock);
		if (os->live_n < os->n_vpages &&
		    !(os->flags[v] & F_TOUCHED)) {
			/* --live: a hole the allocator has not filled (or
			 * the runtime released); it holds no data. */
			pthread_mutex_unlock(&os->lock);
			continue;
		}
		if (os->frame_of[v] != GS_OS_NONE) {
			mem = frame_addr(os, os->frame_of[v]);
		} else if (os->flags[v] & F_PAGED) {
			rc = pf_io(os, false, v);
			mem = os->bounce;
		} else {
			rc = -EFAULT;	/* never touched: the fill was cut */
		}
		if (rc) {
			pthread_mutex_unlock(&os->lock);
			return rc == -EFAULT ? 0 : rc;
		}
		off = gs_content_check(os->content, v, os->version[v], mem,
				       os->scratch);
		if (off >= 0) {
			*bad = v;
			*bad_off = off;
			*bad_version = os->version[v];
			pthread_mutex_unlock(&os->lock);
			return 0;
		}
		pthread_mutex_unlock(&os->lock);
		(*verified)++;
	}
	return 0;
}

int gs_os_corrupt(struct gs_os *os, uint32_t v, unsigned byte)
{
	int rc = 0;

	pthread_mutex_lock(&os->lock);
	if (os->frame_of[v] != GS_OS_NONE) {
		frame_addr(os, os->frame_of[v])[byte] ^= 0xff;
	} else if (os->flags[v] & F_PAGED) {
		rc = pf_io(os, false, v);
		if (!rc) {
			((unsigned char *)os->bounce)[byte] ^= 0xff;
			rc = pf_io(os, true, v);
		}
	}
	pthread_mutex_unlock(&os->lock);
	return rc;
}

static void snapshot(const struct gs_os *os, struct gs_os_counters *out)
{
	*out = os->c;
	out->free_frames = os->n_free;
	out->resident = os->resident;
	out->balloon = os->n_balloon;
	out->balloon_target = os->balloon_target;
	out->stalled = os->stalled;
	out->locked_resident = 0;
	out->committed = os->committed;
}

void gs_os_counters(struct gs_os *os, struct gs_os_counters *out)
{
	pthread_mutex_lock(&os->lock);
	snapshot(os, out);
	/* Counted, not assumed: the report shows the locked rule holds. */
	for (uint32_t v = 0; v < os->locked_n; v++)
		out->locked_resident += os->frame_of[v] != GS_OS_NONE;
	pthread_mutex_unlock(&os->lock);
}

void gs_os_sample(struct gs_os *os, uint64_t interval_ns, bool force)
{
	uint64_t now = gs_now_ns();
	struct gs_os_counters c;
	struct gs_os_sample *s;
	double dt;

	pthread_mutex_lock(&os->lock);
	dt = (double)(now - os->last_sample_ns) / 1e9;
	if ((!force && now - os->last_sample_ns < interval_ns) || dt <= 0 ||
	    os->n_samples >= MAX_SAMPLES)
		goto out;
	if (os->n_samples == os->cap_samples) {
		size_t cap = os->cap_samples ? 2 * os->cap_samples : 64;
		void *p = realloc(os->samples, cap * sizeof(*os->samples));

		if (!p)
			goto out;
		os->samples = p;
		os->cap_samples = cap;
	}
	snapshot(os, &c);
	s = &os->samples[os->n_samples++];
	s->t_s = (double)(now - os->start_ns) / 1e9;
	s->page_ins_per_s = (double)(c.page_ins - os->last.page_ins) / dt;
	s->page_outs_per_s = (double)(c.page_outs - os->last.page_outs) / dt;
	s->ops_per_s = (double)(c.ops - os->last.ops) / dt;
	s->balloon_mib = (double)c.balloon * GS_PAGE_SIZE / (1 << 20);
	s->resident_mib = (double)c.resident * GS_PAGE_SIZE / (1 << 20);
	s->heap_mib = (double)os->committed * GS_PAGE_SIZE / (1 << 20);
	os->last = c;
	os->last_sample_ns = now;
out:
	pthread_mutex_unlock(&os->lock);
}
