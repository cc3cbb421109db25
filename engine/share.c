/*
 * share.c - sharing domains, duplicate detection and the merge queue.
 *
 * What: decides which stable pages are merged into canonical copies, and
 * keeps each domain's store and candidate index (share.h has the
 * contract).
 *
 * How: for a stable page the scanner read, pk_share_consider() first asks
 * the domain's canonical store whether a copy with those bytes exists
 * (hash lookup, then memcmp).  If not, it looks the page's hash up in the
 * domain's candidate index; each candidate is checked against its VM's
 * page table (still resident, still flagged as a candidate, same hash),
 * then read with pread and compared in full.  A match queues both pages
 * for merging and takes the candidate out of the index; no match makes
 * the page a candidate: it enters the index and its page-table entry
 * gets the candidate bit.  Later passes over a candidate only ask the
 * store, and not even that when the store has made no copy since the
 * page's last read: a partner that shows up finds the candidate itself.
 * Queues (zero pages too, scan.c) are reclaimed in batches of
 * PK_SHARE_QUEUE through the eviction protocol, which verifies again
 * after write-protection: the scanner's reads are only hints, so a page
 * written meanwhile is simply not merged.
 *
 * A candidate reference packs the VM id (24 bits) and the page index (40
 * bits); the index is keyed by the 43-bit hash the page table keeps for
 * the page (scan.h).  An entry goes stale when its page is written,
 * evicted, merged or dropped; lookups remove the stale entries they meet,
 * and pk_share_sweep() walks the index a little per scan step to remove
 * the rest.
 *
 * Why candidates and not a canonical copy per page: a copy costs a page
 * of daemon memory, and most pages are unique; like KSM's unstable tree,
 * a page only costs an index entry (~24 bytes) until a second page with
 * the same bytes shows up.  Why one index and a bit, not an index rebuilt
 * each pass: re-inserting every unique page each pass was a fifth of the
 * scanner's CPU, and a third of its steady-state cost on idle guests.
 */
#include "engine/share.h"
#include "engine/engine.h"
#include "engine/state.h"
#include "engine/vm.h"
#include "hashing/canonical_store.h"
#include "hashing/content_index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REF_IDX_BITS 40
#define REF_IDX_MASK ((UINT64_C(1) << REF_IDX_BITS) - 1)
#define STALE_MAX 16

static uint64_t make_ref(const struct pk_vm *vm, uint64_t idx)
{
	return (uint64_t)vm->id << REF_IDX_BITS | idx;
}

static const char *domain_for(const struct pk_engine *e, const char *vm_name,
			      const char *registered)
{
	for (unsigned i = 0; i < e->cfg.n_share_overrides; i++)
		if (strcmp(e->cfg.share_overrides[i].vm, vm_name) == 0)
			return e->cfg.share_overrides[i].domain;
	return registered;
}

/* The last VM left: its copies go for good, or stay for the next daemon. */
static void domain_free(struct pk_share_domain *d, int keep)
{
	pk_canon_store_destroy(d->store);
	if (!keep && d->store)
		pk_state_canon_remove(d->engine, d->key);
	pk_index_destroy(d->candidates);
	free(d);
}

/* The next id no live domain has (a VM alone gets a domain each). */
static uint32_t domain_id_new(struct pk_engine *e)
{
	for (;;) {
		uint32_t id = e->next_domain_id++ % PK_SHARE_DOMAIN_ID_LIMIT;
		const struct pk_share_domain *d = e->domains;
		while (d && d->id != id)
			d = d->next;
		if (!d)
			return id;
	}
}

/*
 * Join domain name ("": a domain of the VM's own).  Its canonical copies
 * are a file in the run directory named after the domain, or after the
 * VM for a VM alone, so a restarted daemon finds them again.
 */
static int share_join(struct pk_vm *vm, const char *name, int replaying)
{
	struct pk_engine *e = vm->engine;
	struct pk_share_domain *d = NULL;
	int err;

	if (name[0])
		for (d = e->domains; d; d = d->next)
			if (strcmp(d->name, name) == 0)
				break;
	if (!d) {
		d = calloc(1, sizeof(*d));
		if (!d)
			return -ENOMEM;
		snprintf(d->name, sizeof(d->name), "%s", name);
		snprintf(d->key, sizeof(d->key), "%s:%s", name[0] ? "d" : "v",
			 name[0] ? name : vm->name);
		d->id = domain_id_new(e);
		d->engine = e;
		err = pk_state_canon_open(e, d->key, &d->store);
		if (err == 0 && pk_index_create(&d->candidates) < 0)
			err = -ENOMEM;
		if (err) {
			domain_free(d, 1);
			return err;
		}
		/* Copies left in the file are named by the replayed records
		 * (state.c calls restore_done), or by no one. */
		if (!replaying)
			pk_canon_restore_done(d->store);
		d->next = e->domains;
		e->domains = d;
	}
	d->n_vms++;
	vm->domain = d;
	snprintf(vm->share_domain, sizeof(vm->share_domain), "%s", d->name);
	return 0;
}

int pk_share_attach(struct pk_vm *vm, const char *registered_domain)
{
	return share_join(vm, domain_for(vm->engine, vm->name,
					  registered_domain), 0);
}

int pk_share_rejoin(struct pk_vm *vm, const char *domain)
{
	return share_join(vm, domain, 1);
}

void pk_share_detach(struct pk_vm *vm)
{
	struct pk_share_domain *d = vm->domain;
	struct pk_page_table *pt = &vm->pages;
	int keep = vm->engine->keep_state;

	if (!d)
		return;
	for (uint64_t i = 0; !keep && pt->entries && pt->count[PK_PAGE_SHARED] &&
			     i < pt->n_pages; i++)
		if (pk_page_state(pt, i) == PK_PAGE_SHARED)
			pk_canon_put(d->store, pk_page_payload(pt, i));
	vm->n_share_queue = 0;
	vm->domain = NULL;
	if (--d->n_vms)
		return;
	for (struct pk_share_domain **p = &vm->engine->domains; *p;
	     p = &(*p)->next)
		if (*p == d) {
			*p = d->next;
			break;
		}
	domain_free(d, keep);
}

static void queue_flush(struct pk_vm *vm)
{
	uint64_t zero_before = vm->stats.zero_reclaimed;
	int r;

	if (!vm->n_share_queue)
		return;
	r = pk_evict_scan_pages(vm, vm->share_queue, vm->n_share_queue,
				vm->engine->scan_scratch);
	(void)r; /* -EAGAIN: a REMOVE is in flight; the next pass retries */
	vm->stats.scan_zero_reclaimed += vm->stats.zero_reclaimed - zero_before;
	vm->n_share_queue = 0;
}

static void queue_entry(struct pk_vm *vm, uint64_t entry)
{
	vm->share_queue[vm->n_share_queue++] = entry;
	if (vm->n_share_queue == PK_SHARE_QUEUE)
		queue_flush(vm);
}

static void queue_page(struct pk_vm *vm, uint64_t idx)
{
	queue_entry(vm, PK_SCAN_ENTRY(idx, 1));
}

void pk_share_queue_zero(struct pk_vm *vm, uint64_t idx)
{
	queue_entry(vm, PK_SCAN_ENTRY(idx, 0));
}

void pk_share_flush_all(struct pk_engine *e)
{
	for (struct pk_vm *vm = e->vms; vm; vm = vm->next)
		queue_flush(vm);
}

/*
 * The VM and page a candidate reference names, if that page is still
 * the candidate the entry says: resident, flagged as a candidate, with
 * the key for its hash.  NULL otherwise.
 */
static struct pk_vm *candidate_page(const struct pk_share_domain *d,
				    uint64_t ref, uint64_t key, uint64_t *idx)
{
	struct pk_vm *vm = pk_vm_find_by_id(d->engine,
					    (uint32_t)(ref >> REF_IDX_BITS));
	const struct pk_page_table *pt;
	uint64_t payload;

	if (!vm || vm->domain != d)
		return NULL;
	pt = &vm->pages;
	*idx = ref & REF_IDX_MASK;
	if (*idx >= pt->n_pages || pk_page_state(pt, *idx) != PK_PAGE_RESIDENT)
		return NULL;
	payload = pk_page_payload(pt, *idx);
	if (!pk_scan_payload_candidate(payload) ||
	    pk_scan_payload_hash(payload) != key)
		return NULL;
	return vm;
}

/* Page idx of vm is no candidate any more (its entry is gone). */
static void candidate_flag_clear(struct pk_vm *vm, uint64_t idx)
{
	struct pk_page_table *pt = &vm->pages;

	pk_page_set(pt, idx, PK_PAGE_RESIDENT,
		    pk_page_payload(pt, idx) & ~PK_SCAN_CANDIDATE);
}

/* Does page idx of vm hold exactly the bytes of page? */
static int same_bytes(struct pk_vm *vm, uint64_t idx, const void *page)
{
	void *tmp = vm->engine->share_tmp;
	uint64_t off = pk_vm_page_offset(vm, idx);
	ssize_t got;

	do
		got = pread(vm->ram_fd, tmp, PK_PAGE_SIZE, (off_t)off);
	while (got < 0 && errno == EINTR);
	return got == PK_PAGE_SIZE && memcmp(tmp, page, PK_PAGE_SIZE) == 0;
}

/* Queue idx of vm for merging: it stops being a candidate. */
static void merge_page(struct pk_share_domain *d, uint64_t key,
		       struct pk_vm *vm, uint64_t idx)
{
	if (pk_scan_payload_candidate(pk_page_payload(&vm->pages, idx))) {
		pk_index_remove(d->candidates, key, make_ref(vm, idx));
		candidate_flag_clear(vm, idx);
	}
	queue_page(vm, idx);
}

static uint64_t copies_added(const struct pk_share_domain *d)
{
	struct pk_canon_stats st;

	pk_canon_stats(d->store, &st);
	return st.added;
}

void pk_share_pass_start(struct pk_vm *vm)
{
	if (!vm->domain)
		return;
	vm->share_added_prev = vm->share_added_cur;
	vm->share_added_cur = copies_added(vm->domain);
}

void pk_share_consider(struct pk_vm *vm, uint64_t idx, const void *page,
		       uint64_t hash, bool read_last_pass)
{
	struct pk_engine *e = vm->engine;
	struct pk_share_domain *d = vm->domain;
	uint64_t key = pk_scan_key(hash), ref = make_ref(vm, idx), cref, id;
	uint64_t stale[STALE_MAX];
	struct pk_vm *partner = NULL;
	uint64_t partner_idx = 0;
	unsigned n_stale = 0;
	struct pk_index_iter it;
	int r;

	if (!d)
		return;
	if (pk_scan_payload_candidate(pk_page_payload(&vm->pages, idx))) {
		/* A candidate already: partners that show up find it.  Only
		 * a canonical copy made since it was last looked at can be
		 * new to it: when the page was read last pass (and so looked
		 * for one then) and the store has made none since that pass
		 * began, there is nothing to look up. */
		if ((!read_last_pass || copies_added(d) != vm->share_added_prev) &&
		    pk_canon_find(d->store, page, hash, &id) == 0)
			merge_page(d, key, vm, idx);
		return;
	}
	if (pk_canon_find(d->store, page, hash, &id) == 0) {
		queue_page(vm, idx);
		return;
	}
	for (bool ok = pk_index_first(d->candidates, key, &it, &cref); ok;
	     ok = pk_index_next(d->candidates, &it, &cref)) {
		struct pk_vm *cvm;
		uint64_t cidx;
		if (cref == ref)
			continue;
		cvm = candidate_page(d, cref, key, &cidx);
		if (!cvm) {
			if (n_stale < STALE_MAX)
				stale[n_stale++] = cref;
			continue;
		}
		if (pk_page_busy(&cvm->pages, cidx))
			continue; /* being reclaimed: not now, maybe later */
		if (same_bytes(cvm, cidx, page)) {
			partner = cvm;
			partner_idx = cidx;
			break;
		}
		/* Same hash, other bytes: a collision, kept. */
	}
	for (unsigned i = 0; i < n_stale; i++)
		pk_index_remove(d->candidates, key, stale[i]);
	if (!partner) {
		r = pk_index_insert(d->candidates, key, ref);
		if (r == 0 || r == -EEXIST)
			pk_page_set(&vm->pages, idx, PK_PAGE_RESIDENT,
				    pk_page_payload(&vm->pages, idx) |
					    PK_SCAN_CANDIDATE);
		else
			pk_log_prio(&e->log, LOG_WARNING, "vm %s: candidate index: %s", vm->name,
			       strerror(-r));
		return;
	}
	vm->stats.share_matches++;
	/* The partner first: its merge makes the copy this page then joins. */
	merge_page(d, key, partner, partner_idx);
	queue_page(vm, idx);
}

static bool candidate_keep(void *arg, uint64_t key, uint64_t ref)
{
	struct pk_share_domain *d = arg;
	uint64_t idx;

	return candidate_page(d, ref, key, &idx) != NULL;
}

void pk_share_sweep(struct pk_share_domain *d, uint64_t slots)
{
	d->stale_dropped += pk_index_sweep(d->candidates, &d->sweep_cursor,
					   (size_t)slots, candidate_keep, d);
}

void pk_share_tick(struct pk_engine *e)
{
	/* Off the fault path: each release is a TLB shootdown. */
	for (struct pk_share_domain *d = e->domains; d; d = d->next)
		pk_canon_release_freed(d->store);
}

uint64_t pk_share_domain_bytes(const struct pk_share_domain *d)
{
	struct pk_canon_stats st;

	pk_canon_stats(d->store, &st);
	return st.bytes + pk_index_bytes(d->candidates) + sizeof(*d);
}

uint64_t pk_share_domain_frames(const struct pk_share_domain *d)
{
	struct pk_canon_stats st;

	pk_canon_stats(d->store, &st);
	return st.frames;
}
