/*
 * vm.h - a registered guest and the VM registry.
 *
 * A VM is created from a validated REGISTER message plus the fds that came
 * with it, and lives until its process exits (pidfd readable) or it
 * detaches (control connection closed).  Whichever comes first frees
 * every fd, mapping and table the VM holds: pk_vm_destroy is the only
 * exit path.
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
#include "engine/protocol.h"

/* A run of sequential first touches, for fault-around. */
struct pk_fault_stream {
	uint64_t next_page; /* page after the last one this stream resolved */
	uint32_t window;    /* pages to resolve at the next sequential fault */
	uint64_t last_used; /* fault counter stamp, for LRU replacement */
};
#define PK_FAULT_STREAMS 4

/* A fault that could not be resolved yet (EAGAIN: a REMOVE in flight). */
struct pk_deferred_fault {
	uint64_t addr;
	uint64_t flags;
};
#define PK_DEFERRED_MAX 256

/* A shmem REMOVE range to compare with the file later (see fault.c). */
struct pk_remove_recheck {
	uint64_t start, end;
	uint64_t due_ms; /* CLOCK_MONOTONIC */
};
#define PK_RECHECK_MAX 64
#define PK_RECHECK_DELAY_MS 100

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
};

struct pk_vm {
	struct pk_vm *next;
	struct pk_engine *engine;
	uint32_t id;
	char name[PK_PROTO_NAME_MAX];
	char share_domain[PK_PROTO_NAME_MAX];
	uint32_t balloon_kind;
	char balloon_channel[PK_PROTO_CHANNEL_MAX];
	int anon; /* private anonymous RAM (no backing fd) */

	pid_t pid;
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

void pk_vm_destroy(struct pk_vm *vm);

struct pk_vm *pk_vm_find_by_name(struct pk_engine *e, const char *name);

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

/* Fault path (fault.c): drain and handle the VM's uffd events. */
void pk_fault_handle_events(struct pk_vm *vm);
/* Retry faults deferred by EAGAIN; returns how many are still deferred. */
unsigned pk_fault_retry_deferred(struct pk_vm *vm);

#endif
