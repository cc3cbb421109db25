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
 * page table (still resident, not busy, same stable hash), then read with
 * pread and compared in full.  A match queues both pages for merging and
 * takes the candidate out of the index; no match makes the page a
 * candidate.  Queues are merged in batches of PK_SHARE_QUEUE through the
 * eviction protocol, which verifies again after write-protection: the
 * scanner's reads are only hints, so a page written meanwhile is simply
 * not merged.
 *
 * A candidate reference packs the VM id (24 bits) and the page index (40
 * bits); the index is keyed by the 44-bit hash the page table keeps for
 * the page (scan.c), so a candidate is valid exactly when its page's
 * entry still carries that hash and enough stable scans.
 *
 * Why candidates and not a canonical copy per page: a copy costs a page
 * of daemon memory, and most pages are unique; like KSM's unstable tree,
 * a page only costs an index entry (~24 bytes) until a second page with
 * the same bytes shows up.
 */
#include "engine/share.h"
#include "engine/engine.h"
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

static void domain_free(struct pk_share_domain *d)
{
	pk_canon_store_destroy(d->store);
	pk_index_destroy(d->candidates[0]);
	pk_index_destroy(d->candidates[1]);
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

int pk_share_attach(struct pk_vm *vm, const char *registered_domain)
{
	struct pk_engine *e = vm->engine;
	const char *name = domain_for(e, vm->name, registered_domain);
	struct pk_share_domain *d = NULL;

	if (name[0])
		for (d = e->domains; d; d = d->next)
			if (strcmp(d->name, name) == 0)
				break;
	if (!d) {
		d = calloc(1, sizeof(*d));
		if (!d)
			return -ENOMEM;
		snprintf(d->name, sizeof(d->name), "%s", name);
		d->id = domain_id_new(e);
		if (pk_canon_store_create(&d->store) < 0 ||
		    pk_index_create(&d->candidates[0]) < 0 ||
		    pk_index_create(&d->candidates[1]) < 0) {
			domain_free(d);
			return -ENOMEM;
		}
		d->next = e->domains;
		e->domains = d;
	}
	d->n_vms++;
	vm->domain = d;
	snprintf(vm->share_domain, sizeof(vm->share_domain), "%s", d->name);
	return 0;
}

void pk_share_detach(struct pk_vm *vm)
{
	struct pk_share_domain *d = vm->domain;
	struct pk_page_table *pt = &vm->pages;

	if (!d)
		return;
	for (uint64_t i = 0; pt->entries && pt->count[PK_PAGE_SHARED] &&
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
	domain_free(d);
}

static void queue_flush(struct pk_vm *vm)
{
	int r;

	if (!vm->n_share_queue)
		return;
	r = pk_evict_scan_pages(vm, vm->share_queue, vm->n_share_queue,
				vm->engine->scan_scratch, 1);
	(void)r; /* -EAGAIN: a REMOVE is in flight; the next pass retries */
	vm->n_share_queue = 0;
}

static void queue_page(struct pk_vm *vm, uint64_t idx)
{
	vm->share_queue[vm->n_share_queue++] = idx;
	if (vm->n_share_queue == PK_SHARE_QUEUE)
		queue_flush(vm);
}

void pk_share_flush_all(struct pk_engine *e)
{
	for (struct pk_vm *vm = e->vms; vm; vm = vm->next)
		queue_flush(vm);
}

/* The VM and page a candidate reference names, if it is still one. */
static struct pk_vm *candidate_page(struct pk_engine *e,
				    const struct pk_share_domain *d,
				    uint64_t ref, uint64_t key, uint64_t *idx)
{
	struct pk_vm *vm = pk_vm_find_by_id(e, (uint32_t)(ref >> REF_IDX_BITS));
	const struct pk_page_table *pt;

	if (!vm || vm->domain != d)
		return NULL;
	pt = &vm->pages;
	*idx = ref & REF_IDX_MASK;
	if (*idx >= pt->n_pages || pk_page_state(pt, *idx) != PK_PAGE_RESIDENT ||
	    pk_page_busy(pt, *idx) ||
	    pk_scan_payload_hash(pk_page_payload(pt, *idx)) != key ||
	    pk_scan_payload_stable(pk_page_payload(pt, *idx)) <
		    e->cfg.share_stable_scans)
		return NULL;
	return vm;
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

static void index_remove_everywhere(struct pk_share_domain *d, uint64_t key,
				    uint64_t ref)
{
	pk_index_remove(d->candidates[0], key, ref);
	pk_index_remove(d->candidates[1], key, ref);
}

void pk_share_consider(struct pk_vm *vm, uint64_t idx, const void *page,
		       uint64_t hash)
{
	struct pk_engine *e = vm->engine;
	struct pk_share_domain *d = vm->domain;
	uint64_t key = pk_scan_payload_hash(pk_scan_payload(hash, 0, 0));
	uint64_t ref = make_ref(vm, idx), cref, id, stale[STALE_MAX];
	struct pk_vm *partner = NULL;
	uint64_t partner_idx = 0;
	unsigned n_stale = 0;

	if (!d)
		return;
	if (pk_canon_find(d->store, page, hash, &id) == 0) {
		index_remove_everywhere(d, key, ref);
		queue_page(vm, idx);
		return;
	}
	for (unsigned g = 0; g < 2 && !partner; g++) {
		struct pk_content_index *ci = d->candidates[d->cur ^ g];
		struct pk_index_iter it;
		for (bool ok = pk_index_first(ci, key, &it, &cref); ok;
		     ok = pk_index_next(ci, &it, &cref)) {
			struct pk_vm *cvm;
			uint64_t cidx;
			if (cref == ref)
				continue;
			cvm = candidate_page(e, d, cref, key, &cidx);
			if (!cvm) {
				if (n_stale < STALE_MAX)
					stale[n_stale++] = cref;
				continue;
			}
			if (same_bytes(cvm, cidx, page)) {
				partner = cvm;
				partner_idx = cidx;
				break;
			}
			/* Same hash, other bytes: a collision, kept. */
		}
	}
	for (unsigned i = 0; i < n_stale; i++)
		index_remove_everywhere(d, key, stale[i]);
	if (!partner) {
		int r = pk_index_insert(d->candidates[d->cur], key, ref);
		if (r < 0 && r != -EEXIST)
			pk_log(e, "vm %s: candidate index: %s", vm->name,
			       strerror(-r));
		return;
	}
	index_remove_everywhere(d, key, make_ref(partner, partner_idx));
	index_remove_everywhere(d, key, ref);
	vm->stats.share_matches++;
	/* The partner first: its merge makes the copy this page then joins. */
	queue_page(partner, partner_idx);
	queue_page(vm, idx);
}

void pk_share_pass_done(struct pk_vm *vm)
{
	struct pk_share_domain *d = vm->domain;
	struct pk_content_index *fresh;

	if (!d)
		return;
	for (struct pk_vm *v = vm->engine->vms; v; v = v->next)
		if (v->domain == d && !v->anon &&
		    v->scan_pass <= v->share_round_pass)
			return; /* some VM has not finished this round */
	if (pk_index_create(&fresh) < 0)
		return; /* try again at the next pass */
	d->cur ^= 1;
	pk_index_destroy(d->candidates[d->cur]);
	d->candidates[d->cur] = fresh;
	d->rounds++;
	for (struct pk_vm *v = vm->engine->vms; v; v = v->next)
		if (v->domain == d)
			v->share_round_pass = v->scan_pass;
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
	return st.bytes + pk_index_bytes(d->candidates[0]) +
	       pk_index_bytes(d->candidates[1]) + sizeof(*d);
}

uint64_t pk_share_domain_frames(const struct pk_share_domain *d)
{
	struct pk_canon_stats st;

	pk_canon_stats(d->store, &st);
	return st.frames;
}
