/*
 * share.h - sharing domains and the merging of duplicate pages.
 *
 * Contract:
 *  - Every VM belongs to exactly one sharing domain for its whole life.
 *    Non-zero pages are merged only between VMs of the same domain: a
 *    domain owns its canonical-copy store and its candidate index, so
 *    no lookup can ever reach another domain's pages.  A VM registered
 *    without a domain (and not given one by the daemon's configuration)
 *    gets a private domain of its own: it shares only with itself.
 *  - The scanner (scan.c) hands pk_share_consider() each page whose hash
 *    stayed the same for the configured number of scans.  A page is
 *    queued for merging when a canonical copy of its content exists, or
 *    when a candidate page of the domain holds the same bytes (full
 *    memcmp; the hash only finds candidates); otherwise it becomes a
 *    candidate itself.
 *  - Queued pages are merged by the eviction protocol (evict.c,
 *    pk_evict_scan_pages): write-protect, copy out, verify, take a
 *    reference on the canonical copy of the verified bytes, punch.  A
 *    SHARED page's page-table payload is its copy's id in the domain's
 *    store, and the page holds one reference until it is faulted back
 *    (fault.c), discarded, or its VM goes away.
 *  - A page enters the candidate index once, when it first turns out
 *    stable and unmatched, and its page-table entry says so (scan.h's
 *    candidate bit); later passes only look for a canonical copy of its
 *    bytes, since a partner that shows up finds the candidate itself.
 *    An entry is valid while its page is resident, flagged and keeps the
 *    hash: writing, evicting, merging or dropping the page makes it
 *    stale.  Lookups drop the stale entries they meet, and the scanner
 *    sweeps the index a little per tick (pk_share_sweep), so stale
 *    entries cost memory for about one sweep of the index.
 *
 * Not thread-safe: the engine's one loop thread.  Errors: negative errno.
 */
#ifndef PK_SHARE_H
#define PK_SHARE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/protocol.h"

struct pk_engine;
struct pk_vm;
struct pk_canon_store;
struct pk_content_index;

struct pk_share_domain {
	struct pk_share_domain *next;
	char name[PK_PROTO_NAME_MAX]; /* "" for a VM alone */
	char key[PK_PROTO_NAME_MAX + 2]; /* "d:name", or "v:vm" for a VM alone:
					    names its copies' file */
	uint32_t id; /* unique among live domains, < PK_SHARE_DOMAIN_ID_LIMIT */
	unsigned n_vms;
	struct pk_engine *engine;
	struct pk_canon_store *store;
	struct pk_content_index *candidates; /* key -> VM id and page */
	size_t sweep_cursor;    /* where pk_share_sweep goes on */
	uint64_t stale_dropped; /* stale candidates the sweeps removed */
};

/* Domain ids fit the 24 bits swap dedup keeps beside a slot. */
#define PK_SHARE_DOMAIN_ID_LIMIT (1u << 24)

/* Pages a VM queues before the queue is reclaimed as one batch. */
#define PK_SHARE_QUEUE 64

/*
 * Join vm to its domain: the configured override for its name, else the
 * name it registered with, else a private domain.  -ENOMEM.
 */
int pk_share_attach(struct pk_vm *vm, const char *registered_domain);
/* A restarted daemon's VM rejoins the domain its record names, exactly. */
int pk_share_rejoin(struct pk_vm *vm, const char *domain);

/*
 * vm is going away: drop the references its SHARED pages hold and leave
 * the domain (freed with its last VM, its copies' file deleted).  While
 * the engine stops (keep_state), references and file stay as they are.
 */
void pk_share_detach(struct pk_vm *vm);

/* vm's scanner starts a pass (pk_share_consider's read_last_pass). */
void pk_share_pass_start(struct pk_vm *vm);

/*
 * A stable, non-zero resident page idx of vm, as the scanner read it;
 * read_last_pass: the scanner read it in vm's previous pass too.
 */
void pk_share_consider(struct pk_vm *vm, uint64_t idx, const void *page,
		       uint64_t hash, bool read_last_pass);

/*
 * Look at up to slots more slots of d's candidate index and drop the
 * stale entries there.  The scanner calls it in proportion to the pages
 * it reads, so the index is swept about as often as RAM is scanned.
 */
void pk_share_sweep(struct pk_share_domain *d, uint64_t slots);

/*
 * A stable zero page of vm: queued with the duplicates, in scan order,
 * and reclaimed only if still all zeros (in every domain).
 */
void pk_share_queue_zero(struct pk_vm *vm, uint64_t idx);

/* Reclaim every VM's queued pages now. */
void pk_share_flush_all(struct pk_engine *e);

/* The 1 s tick: give the pages of freed canonical copies back. */
void pk_share_tick(struct pk_engine *e);

/* The domain's store and candidate memory, in bytes, and its frames. */
uint64_t pk_share_domain_bytes(const struct pk_share_domain *d);
uint64_t pk_share_domain_frames(const struct pk_share_domain *d);

#endif
