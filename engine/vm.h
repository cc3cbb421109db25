/*
 * vm.h - a registered guest and the VM registry.
 *
 * A VM is created from a validated REGISTER message plus the fds that came
 * with it, or adopted from a previous daemon's record (state.h), and
 * lives until its process exits (pidfd readable) or it detaches (control
 * connection closed).  Whichever comes first frees every fd, mapping and
 * table the VM holds: pk_vm_destroy is the only exit path.
 *
 * Guest pages are numbered across regions: region i's pages occupy
 * [first_page, first_page + length / page size) of the page table.
 */
#ifndef PK_VM_H
#define PK_VM_H

#include <stdint.h>
#include <sys/types.h>

#include "engine/engine.h"
#include "engine/page_table.h"
#include "engine/uffd_compat.h"

/* uffd messages one read() takes (fault.c), and a record's inbox holds. */
#define PK_UFFD_READ_BATCH 64
#include "engine/policy.h"
#include "engine/protocol.h"
#include "engine/scan.h"
#include "engine/share.h"
#include "engine/track.h"

/* A run of sequential first touches, for fault-around. */
struct pk_fault_stream {
	uint64_t next_page; /* page after the last one this stream resolved */
	uint32_t window;    /* pages to resolve at the next sequential fault */
	uint64_t last_used; /* fault counter stamp, for LRU replacement */
};
#define PK_FAULT_STREAMS 4

/*
 * A fault that could not be resolved yet: EAGAIN (a REMOVE in flight),
 * retried as soon as the events are read (backoff_ms 0), or an ioctl
 * error such as ENOMEM under a memory cgroup limit, retried at due_ms
 * with a back-off that doubles from PK_RETRY_BACKOFF_MIN_MS to
 * PK_RETRY_BACKOFF_MAX_MS (fault.c).
 */
struct pk_deferred_fault {
	uint64_t addr;
	uint64_t flags;
	uint64_t due_ms;     /* CLOCK_MONOTONIC; 0: as soon as possible */
	uint32_t backoff_ms; /* 0: EAGAIN, not backing off */
};
#define PK_DEFERRED_MAX 256
#define PK_RETRY_BACKOFF_MIN_MS 1u
#define PK_RETRY_BACKOFF_MAX_MS 1000u
/* Reads of a slot before its page is poisoned: I/O errors, checksums. */
#define PK_SWAPIN_READ_TRIES 3u
#define PK_SWAPIN_CHECKSUM_TRIES 2u

/* A shmem REMOVE range to compare with the file later (see fault.c). */
struct pk_remove_recheck {
	uint64_t start, end;
	uint64_t due_ms; /* CLOCK_MONOTONIC */
};
#define PK_RECHECK_MAX 64
#define PK_RECHECK_DELAY_MS 100

/* An I/O in flight on the swap store; user_data points at one of these. */
enum pk_io_kind {
	PK_IO_EVICT_WRITE = 1,
	PK_IO_SWAPIN_READ = 2,
	PK_IO_EVICT_VERIFY = 3, /* swap dedup: read a candidate slot back */
};
struct pk_io_op {
	enum pk_io_kind kind;
};

/* A swap-in: one slot read for one faulting page (fault.c). */
struct pk_swapin {
	struct pk_io_op op;
	uint32_t vm_id;	 /* by id: the VM may be gone on completion */
	uint64_t idx, addr, slot;
	int result; /* the read's: 0, or -EBADMSG / -errno */
	unsigned buf_idx;
	void *buf;
	struct pk_swapin *next_retry; /* on vm->swapin_retry */
	uint8_t readahead; /* the guest did not fault on it: never poisoned */
	uint8_t reads;	   /* reads completed so far (retries after errors) */
	uint8_t reread;	   /* the retry is a new read, not a UFFDIO_COPY */
	uint8_t waiting;   /* counted in vm->swapins_waiting */
	uint8_t keep_slot; /* given back SWAPPED: the page keeps the slot */
	uint32_t backoff_ms; /* 0: EAGAIN, retried at once */
	uint64_t due_ms;     /* CLOCK_MONOTONIC time of the retry */
	uint64_t fault_ns;   /* a guest's fault: when it was read (metrics.h) */
};

struct pk_evict_batch;
struct pk_scan_cursor;
struct pk_vm_balloon;

struct pk_vm_region {
	uint64_t start; /* guest host-virtual address */
	uint64_t length;
	uint64_t file_offset;
	uint64_t first_page;
};

struct pk_vm_stats {
	uint64_t faults;	   /* page-fault messages read */
	uint64_t pages_zero_filled;
	uint64_t pages_around;	   /* of those, resolved ahead by fault-around */
	uint64_t faults_spurious;  /* page already present: just woken */
	uint64_t remove_events;
	uint64_t pages_removed;
	uint64_t faults_last_tick; /* faults at the previous 1 s tick */
	double faults_per_s;
	uint64_t evictions;	   /* pages written to swap and punched */
	uint64_t zero_reclaimed;   /* pages found zero and punched */
	uint64_t scan_pages;	   /* pages the sharing scanner visited */
	uint64_t scan_zero_reclaimed; /* of zero_reclaimed, by the scanner */
	uint64_t scan_pages_last_tick;
	uint64_t scan_cpu_ns, scan_cpu_ns_last_tick; /* the scanner's, on us */
	double scan_mib_per_s, scan_cpu_percent;
	uint64_t share_matches;	   /* duplicate pairs the scanner found */
	uint64_t share_merged;	   /* pages merged into canonical copies */
	uint64_t share_refaults;   /* SHARED pages faulted back in */
	uint64_t swap_dedup;	   /* evictions that wrote nothing: they took a
				    * reference on a canonical copy or a slot */
	uint64_t swap_dedup_slots; /* of those, a reference on a swap slot */
	uint64_t swap_dedup_misses; /* slot candidates whose bytes differed */
	uint64_t evict_aborts;	   /* guest wrote during eviction */
	uint64_t wp_deferred;	   /* write-protect faults whose unprotect a
				    * REMOVE in flight refused: retried */
	uint64_t swapins;
	uint64_t swapins_readahead; /* of those, read ahead of the guest */
	uint64_t swapins_last_tick;
	double swapins_per_s;
	uint64_t poisoned;	   /* checksum or I/O failures */
	uint64_t fault_retries;	   /* back-off retries scheduled after an
				    * ioctl or read error (fault.c) */
	uint64_t swapin_read_retries; /* of those, slot reads repeated */
	uint64_t readahead_dropped; /* read-ahead swap-ins given back on an
				     * error, page still SWAPPED */
	uint64_t punch_failures;   /* pages kept: the RAM file refused a punch */
	uint64_t swap_write_errors; /* eviction writes that failed: pages kept */
};

struct pk_vm {
	struct pk_vm *next;
	struct pk_engine *engine;
	uint32_t id;
	char name[PK_PROTO_NAME_MAX];
	char share_domain[PK_PROTO_NAME_MAX];
	uint32_t balloon_kind;
	char balloon_channel[PK_PROTO_CHANNEL_MAX];
	struct pk_vm_balloon *balloon; /* its bridge (vm_balloon.h), or NULL */
	int anon; /* private anonymous RAM (no backing fd) */

	pid_t pid;
	uid_t owner_uid; /* who registered it (SO_PEERCRED): control.c */
	int owner_admin; /* ... root or the admin group: any balloon socket */
	int name_held;	 /* its name is reserved for owner_uid (state.h) */
	int pidfd;
	int uffd;
	int conn_fd;
	int ram_fd;	  /* -1 for anon */
	void *ram_map;	  /* daemon's read-only mapping of ram_fd */
	uint64_t ram_map_len;
	struct pk_watch *uffd_watch, *pidfd_watch, *conn_watch;

	uint32_t n_regions;
	struct pk_vm_region regions[PK_PROTO_MAX_REGIONS];
	uint64_t configured_bytes;
	struct pk_page_table pages;

	struct pk_fault_stream streams[PK_FAULT_STREAMS];
	struct pk_deferred_fault deferred[PK_DEFERRED_MAX];
	unsigned n_deferred;
	struct pk_remove_recheck rechecks[PK_RECHECK_MAX];
	unsigned n_rechecks;
	struct pk_vm_stats stats;
	/* The memory-state policy's view of the VM (policy.h). */
	struct pk_vm_policy policy;
	/* Its allocation settings by origin, applied in this order by
	 * pk_policy_vm_init (policy.c), -1 where not given: the guest's
	 * REGISTER trailer; then the admin's [vm NAME]; then pagekeeper
	 * set's, kept in its record (state.c) with the hash of the [vm NAME]
	 * section they override (pk_policy_vm_section_hash), so a section
	 * that changed since wins again, also across a restart. */
	struct pk_vm_setting reg_set;
	struct pk_vm_setting run_set;
	uint64_t run_set_section;
	uint64_t *rec_settings; /* the record's settings block; NULL: none (v2) */
	/* Write tracking for cold-first victims (track.h). */
	struct pk_vm_track track;

	/* Swapping (evict.c, fault.c). */
	struct pk_evict_batch *evicting; /* batches in flight, a list */
	unsigned n_evicting;
	struct pk_swapin *swapin_retry; /* swap-ins waiting for a retry */
	unsigned swapins_waiting;  /* of those and re-reads: backing off */
	unsigned faults_waiting;   /* faults and swap-ins backing off now */
	uint64_t retry_episode_ms; /* first back-off of this episode, or 0 */
	uint64_t retry_episode_retries;

	/* Sharing scanner (scan.c). */
	struct pk_scan_cursor *scan;
	uint64_t scan_pass;	   /* passes completed over this VM's RAM */
	uint64_t scan_pass_start_ns, scan_next_pass_ns;

	/* Sharing (share.c). */
	struct pk_share_domain *domain;
	/* Stable pages waiting to be reclaimed, zero and duplicate ones
	 * together, in scan order (pk_evict_scan_pages' tagged entries). */
	uint64_t share_queue[PK_SHARE_QUEUE];
	/* The domain's canonical copies made by the start of this pass and
	 * of the one before (share.c: what a candidate need not look up). */
	uint64_t share_added_cur, share_added_prev;
	unsigned n_share_queue;
	uint64_t reclaim_left;		 /* pages a reclaim request still wants */
	int reclaim_fd;			 /* connection awaiting the reply, or -1 */
	int reclaim_status;		 /* 0, or why the reclaim stopped */
	const char *reclaim_reason;	 /* static text for the reply */
	uint64_t reclaim_start_us;
	uint64_t reclaim_swapped, reclaim_zero, reclaim_aborted;
	unsigned punch_error_logged;

	/* Drain (fault.c): every page back in; nothing evicted or merged. */
	int drain_fd;		 /* connection awaiting the reply, or -1 */
	int drained;		 /* drained or draining: no eviction, no merging */
	uint64_t drain_cursor;	 /* next page of this pass */
	uint64_t drain_pass_ms;	 /* when this pass began */
	uint64_t drain_start_us;
	uint64_t drain_swapins0, drain_unshared, drain_poisoned0;

	/* Durable state (state.c). */
	struct pk_sfile *record;    /* identity and page table, in the run dir */
	/* fault.c reads the uffd into this: the record's inbox, so that a
	 * REMOVE event the daemon read is on record before the guest it
	 * released discards anything (state.c), or inbox_mem. */
	struct uffd_msg *inbox;
	struct uffd_msg inbox_mem[PK_UFFD_READ_BATCH];
	uint64_t pid_start;	    /* the process's start time, with pid */
	int waiting;		    /* a previous daemon's, guest not back yet */
	uint64_t grace_deadline_ms; /* while waiting: freed after this */
};

/*
 * Create and register a VM.  Takes ownership of uffd, ram_fd and conn_fd
 * on success only.  Checks what needs the fds and the registry: uffd is a
 * userfaultfd with the needed features, ram fd is a shared-memory file
 * large enough for every region, the regions are mapped in the peer as
 * claimed, and the name is unique.  On failure writes the reason.
 */
int pk_vm_create(struct pk_engine *e, const struct pk_registration *reg,
		 pid_t pid, int uffd, int ram_fd, int conn_fd,
		 struct pk_vm **out, char *reason, size_t reason_len);

/*
 * The VM is gone for good (its process exited, its client detached, or it
 * never came back after a restart): free its slots and copies, delete its
 * record, close everything.  While the engine is stopping
 * (e->keep_state), only close: its record, slots and copies stay for the
 * next daemon.
 */
void pk_vm_destroy(struct pk_vm *vm);

/* Call fn for each page the guest's RAM holds (file data, or pagemap). */
typedef void pk_vm_page_fn(struct pk_vm *vm, uint64_t idx);
void pk_vm_scan_present(struct pk_vm *vm, pk_vm_page_fn *fn);

struct pk_vm *pk_vm_find_by_name(struct pk_engine *e, const char *name);
struct pk_vm *pk_vm_find_by_id(struct pk_engine *e, uint32_t id);

/* Guest address and RAM-file offset of page idx. */
void pk_vm_page_where(const struct pk_vm *vm, uint64_t idx, uint64_t *addr,
		      uint64_t *off);
static inline uint64_t pk_vm_page_offset(const struct pk_vm *vm, uint64_t idx)
{
	uint64_t addr, off;
	pk_vm_page_where(vm, idx, &addr, &off);
	return off;
}

/*
 * The pages of region i that [start, end) touches: the first one's index
 * in *first, the count returned (0 when they do not meet).
 */
uint64_t pk_vm_range_in_region(const struct pk_vm *vm, uint32_t i,
			       uint64_t start, uint64_t end, uint64_t *first);

/* Region holding addr, or NULL. */
const struct pk_vm_region *pk_vm_region_of(const struct pk_vm *vm,
					   uint64_t addr);

/* Is fd a userfaultfd with every feature pagekeeper needs?  (0 / -errno) */
int pk_uffd_check(int fd, char *reason, size_t reason_len);

/*
 * Pages in [start, end) marked removed whose data is still in the RAM file
 * become resident again (shmem only).
 */
void pk_vm_recheck_removed(struct pk_vm *vm, uint64_t start, uint64_t end);

/* Run the REMOVE re-checks that are due (fault.c). */
void pk_fault_run_rechecks(struct pk_vm *vm, uint64_t now_ms);

/*
 * Eviction (evict.c).  pk_reclaim_start evicts `pages` pages of vm with
 * the engine's victim policy and answers on reply_fd (taken over) when
 * done.  The hooks let the fault path tell an in-flight batch that the
 * guest wrote or discarded one of its pages.
 */
int pk_reclaim_start(struct pk_vm *vm, uint64_t pages, int reply_fd,
		     char *reason, size_t reason_len);
int pk_evict_on_wp_fault(struct pk_vm *vm, uint64_t idx);
void pk_evict_on_remove(struct pk_vm *vm, uint64_t idx);
void pk_evict_vm_gone(struct pk_vm *vm);
/* The VM is going away: drop its scan cursor (scan.c). */
void pk_scan_vm_gone(struct pk_vm *vm);
/*
 * The scanner's reclaim of the pages in entries[0..n) (n <= 64; scratch:
 * 64 pages).  An entry is PK_SCAN_ENTRY(page index, may_share).  Pages
 * still all zeros become ZERO; the others, where may_share, are merged
 * into canonical copies of the domain (SHARED).  Zero and duplicate
 * pages go in one batch so that its runs, and its syscalls, are fewer.
 * Returns pages reclaimed, or -EAGAIN.
 */
#define PK_SCAN_ENTRY(idx, may_share) ((idx) << 1 | ((may_share) ? 1u : 0u))
int pk_evict_scan_pages(struct pk_vm *vm, const uint64_t *entries,
			unsigned n, void *scratch);
/* Continue a reclaim whose batch was put off by EAGAIN. */
void pk_evict_resume(struct pk_vm *vm);
void pk_evict_io_done(struct pk_engine *e, struct pk_io_op *op, int result);

/* Swap-in completion (fault.c). */
void pk_fault_swapin_done(struct pk_engine *e, struct pk_io_op *op, int result);

/*
 * Drain (fault.c): start bringing every page of vm back (reply_fd, taken
 * over, gets the DRAIN_REPLY when done); the engine loop calls
 * pk_fault_drain_step() while vm->drain_fd >= 0.  pk_fault_drain_end()
 * replies early (the VM is going away).
 */
int pk_fault_drain_start(struct pk_vm *vm, int reply_fd, char *reason,
			 size_t reason_len);
void pk_fault_drain_step(struct pk_vm *vm);
void pk_fault_drain_end(struct pk_vm *vm, int status, const char *reason);

/* Fault path (fault.c): drain and handle the VM's uffd events. */
void pk_fault_handle_events(struct pk_vm *vm);
/*
 * Retry the deferred faults and swap-ins that are due at now_ms
 * (CLOCK_MONOTONIC).  Returns how many EAGAIN ones are still deferred
 * (to be retried as soon as the loop comes round); lowers *next_due_ms
 * to the earliest back-off retry still waiting, if any.
 */
unsigned pk_fault_retry_deferred(struct pk_vm *vm, uint64_t now_ms,
				 uint64_t *next_due_ms);
/* The policy lifted vm's stall: its parked faults are retried at once. */
void pk_fault_unpark(struct pk_vm *vm);

#endif
