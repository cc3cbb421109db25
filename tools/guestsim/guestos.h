/*
 * guestos.h - the lab guest's operating system (--balloon).  See guestos.c.
 */
#ifndef GS_GUESTOS_H
#define GS_GUESTOS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "content.h"
#include "opts.h"
#include "ram.h"

/* Frames kept by the "kernel": 2% of RAM, at least 1 MiB. */
static inline uint64_t gs_os_reserve_frames(uint64_t n_frames)
{
	uint64_t r = n_frames / 50;

	return r < 256 ? 256 : r;
}

/* Frames the balloon always leaves to the application's unlocked pages. */
static inline uint64_t gs_os_min_app_frames(uint64_t n_frames)
{
	uint64_t r = n_frames / 64;

	return r < 16 ? 16 : r;
}

/* Counters, cumulative since the start; a snapshot under the lock. */
struct gs_os_counters {
	uint64_t page_ins;	   /* faults served from the page file */
	uint64_t page_outs;	   /* pages evicted to the page file */
	uint64_t pf_reads;	   /* page file reads (page-ins and verify) */
	uint64_t pf_writes;	   /* page file writes (dirty evictions) */
	uint64_t minor_faults;	   /* first touches: a frame, no I/O */
	uint64_t stalls;	   /* faults that had to evict first */
	uint64_t ops;		   /* application accesses */
	uint64_t free_frames, resident, balloon, balloon_target;
	bool stalled;		   /* the balloon stopped short of its target */
	uint64_t locked_resident;  /* locked pages in frames: all of them */
	uint64_t allocs;	   /* --live: objects allocated (page-sized) */
	uint64_t gc_runs;	   /* --live: collections by the runtime */
	uint64_t gc_pages;	   /* --live: garbage pages they released */
	uint64_t committed;	   /* heap pages that hold data (live+garbage) */
};

/* One point of the --json timeline. */
struct gs_os_sample {
	double t_s;		   /* since the guest OS started */
	double page_ins_per_s, page_outs_per_s, ops_per_s;
	double balloon_mib, resident_mib;
	double heap_mib;	   /* heap committed: grown, not yet collected */
};

struct gs_os {
	/* Fixed after gs_os_init(). */
	struct gs_ram *ram;
	const struct gs_content *content;
	uint32_t n_frames, n_vpages;
	uint32_t reserve;	   /* kernel frames: [0, reserve), never used */
	uint32_t locked_n;	   /* vpages [0, locked_n) are never paged out */
	uint32_t max_balloon;	   /* frames the balloon can ever hold */
	uint32_t live_n;	   /* --live: pages the application keeps live */
	int pf_fd;
	char pf_path[4096];
	uint64_t start_ns;

	/* Everything below: under lock. */
	pthread_mutex_t lock;
	uint32_t *frame_of;	   /* vpage -> frame, or GS_OS_NONE */
	uint32_t *owner;	   /* frame -> vpage, or GS_OS_FREE/_BALLOON/... */
	uint32_t *version;	   /* vpage -> its content version */
	unsigned char *flags;	   /* vpage: GS_OS_F_* */
	uint32_t *free_stack, n_free;
	uint32_t *balloon_stack, n_balloon;
	uint32_t balloon_target;   /* frames the balloon should hold */
	bool stalled;		   /* it can't: locked pages (until a new target) */
	uint32_t resident;	   /* application pages in frames */
	uint32_t heap;		   /* vpages [0, heap) grown (first touched) */
	uint32_t committed;	   /* vpages holding data: touched, not freed */
	uint32_t *garbage, n_garbage; /* --live: dead, not yet collected */
	uint32_t alloc_hand;	   /* --live: next vpage the allocator tries */
	uint32_t hand;		   /* clock hand, a frame index */
	struct gs_os_counters c;
	void *bounce;		   /* page file I/O buffer, 4096-aligned */
	void *scratch;		   /* expected content, for checks */
	void *app_bounce;	   /* the application's page-ins */
	uint32_t pin;		   /* frame the application touches, unlocked */
	/* --json timeline */
	struct gs_os_sample *samples;
	size_t n_samples, cap_samples;
	struct gs_os_counters last;
	uint64_t last_sample_ns;
};

/*
 * Set up the OS over mapped guest RAM r: frames, and the page file (the
 * path of o->page_file, else a temp file under $TMPDIR).  0, or -errno
 * with the reason in err.
 */
int gs_os_init(struct gs_os *os, struct gs_ram *r,
	       const struct gs_content *content, const struct gs_opts *o,
	       char *err, size_t err_len);

/* Close and remove the page file, free everything.  Idempotent. */
void gs_os_destroy(struct gs_os *os);

/*
 * The application touches vpage: a write gives it a new version, a read
 * checks it (*bad_off: -1 when right, else the first wrong byte); either
 * faults it in first.  fill: the first touch, writing version 0.
 * 0, or -errno for a page file I/O error or no frame to be found.
 */
int gs_os_access(struct gs_os *os, uint32_t vpage, bool write, bool fill,
		 long *bad_off);

/*
 * Move the balloon up to max_frames toward its target: inflating takes
 * free frames first, then evicts the coldest pages, and discards each
 * ballooned frame; deflating frees them.  Returns frames moved (>= 0) or
 * -errno; *stalled when it cannot inflate further (locked pages).
 */
long gs_os_balloon_step(struct gs_os *os, uint32_t max_frames, bool *stalled);

/*
 * --live: the application allocates a page-sized object: a vpage that
 * holds no data (never touched, or released by a collection) gets fresh
 * content (a new version) and is committed; *vpage is it.  When every
 * vpage is committed (the heap is at its limit) the runtime collects
 * first.  0, -ENOMEM if the heap is full of live data, or -errno (I/O).
 */
int gs_os_alloc(struct gs_os *os, uint32_t *vpage);

/* --live: the object in vpage died: garbage, released at the next
 * collection.  Its data stays (and is verified) until then. */
void gs_os_retire(struct gs_os *os, uint32_t vpage);

/* Set the target: the guest's RAM minus its balloon, in bytes, <= RAM. */
void gs_os_set_target(struct gs_os *os, uint64_t actual_bytes);

/* Expected content of every vpage, in RAM or in the page file.  Returns
 * 0 and sets *verified (pages right) and *bad (first wrong vpage, or -1)
 * with *bad_off and *bad_version, or -errno on an I/O error.  Stops at
 * the first mismatch, or when *stop becomes nonzero. */
int gs_os_verify(struct gs_os *os, const atomic_int *stop, uint64_t *verified,
		 int64_t *bad, long *bad_off, uint32_t *bad_version);

/* Testing aid: flip one byte of vpage, wherever it lives.  0 or -errno. */
int gs_os_corrupt(struct gs_os *os, uint32_t vpage, unsigned byte);

void gs_os_counters(struct gs_os *os, struct gs_os_counters *out);

/* Add a timeline point if interval_ns passed since the last one (or
 * force).  Cheap when it is not time yet. */
void gs_os_sample(struct gs_os *os, uint64_t interval_ns, bool force);

#endif
