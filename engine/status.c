/*
 * status.c - the engine's state as JSON, for `pagekeeper status`.
 *
 * Every figure is derived from the page-state table's counters or the
 * VM's fault statistics at the moment of the request; nothing is cached.
 * Sizes are MiB (as floating point, so small guests are not rounded to
 * zero), rates are per second.  PROTOCOL.md documents the keys.
 */
#include "engine/engine.h"
#include "engine/vm.h"
#include "engine/vm_balloon.h"
#include "engine/share.h"
#include "hashing/canonical_store.h"
#include "hashing/content_index.h"
#include "engine/swap_dedup.h"
#include "swapper/swap_store.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

static double pages_mib(uint64_t pages)
{
	return (double)pages * PK_PAGE_SIZE / (1024.0 * 1024.0);
}

static void put_mib(json_object *o, const char *key, uint64_t pages)
{
	json_object_object_add(o, key, json_object_new_double(pages_mib(pages)));
}

static void put_int(json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_int64((int64_t)v));
}

static const char *balloon_kind_name(uint32_t k)
{
	switch (k) {
	case PK_BALLOON_LAB: return "lab";
	case PK_BALLOON_QMP: return "qmp";
	case PK_BALLOON_LIBVIRT: return "libvirt";
	default: return "none";
	}
}

static double bytes_mib(uint64_t bytes)
{
	return (double)bytes / (1024.0 * 1024.0);
}

/* SHARED pages of the domain's VMs: the references its copies hold. */
static uint64_t domain_shared_pages(const struct pk_engine *e,
				    const struct pk_share_domain *d,
				    uint64_t *zero_pages, unsigned *n_vms)
{
	uint64_t shared = 0;

	*zero_pages = 0;
	*n_vms = 0;
	for (const struct pk_vm *vm = e->vms; vm; vm = vm->next)
		if (vm->domain == d) {
			shared += vm->pages.count[PK_PAGE_SHARED];
			*zero_pages += vm->pages.count[PK_PAGE_ZERO];
			(*n_vms)++;
		}
	return shared;
}

/*
 * Memory a VM's sharing gives back, net of the store: its zero and
 * shared pages, minus its part of the domain's store (canonical pages,
 * their metadata and the candidate index), in proportion to the
 * references it holds; *frames is its part of the canonical copies,
 * the same way.  A VM with no shared pages pays nothing for its
 * domain's candidates: sharing has cost it nothing yet that it could
 * attribute.
 */
static double vm_saved_mib(const struct pk_vm *vm, double *frames)
{
	uint64_t zero, shared_d, shared = vm->pages.count[PK_PAGE_SHARED];
	unsigned n;
	double cost = 0;

	*frames = 0;
	if (vm->domain && shared) {
		double part;
		shared_d = domain_shared_pages(vm->engine, vm->domain, &zero, &n);
		part = (double)shared / (double)shared_d;
		cost = bytes_mib(pk_share_domain_bytes(vm->domain)) * part;
		*frames = (double)pk_share_domain_frames(vm->domain) * part;
	}
	return pages_mib(vm->pages.count[PK_PAGE_ZERO] + shared) - cost;
}

/* A figure in MiB, or null when absent (negative or, if zero_absent, 0). */
static json_object *mib_or_null(int64_t bytes, int zero_absent)
{
	if (bytes < 0 || (zero_absent && bytes == 0))
		return NULL;
	return json_object_new_double(bytes_mib((uint64_t)bytes));
}

/*
 * The balloon (vm_balloon.h): the link, the target and the guest's own
 * figures as its balloon driver reports them.  Every key is there for
 * every VM; a figure nobody reported is null (json-c writes NULL so).
 */
static void balloon_json(const struct pk_vm *vm, json_object *o)
{
	struct pk_vm_balloon_view v;
	const struct pk_balloon_info *in;
	int has = pk_vm_balloon_view(vm, &v) == 0;

	in = has ? v.info : NULL;
	json_object_object_add(o, "balloon_link",
			       has ? json_object_new_string(v.link) : NULL);
	json_object_object_add(o, "balloon_why",
			       has ? json_object_new_string(v.why) : NULL);
	json_object_object_add(o, "balloon_target_mib",
			       in ? mib_or_null((int64_t)in->target_bytes, 1)
				  : NULL);
	json_object_object_add(o, "balloon_actual_mib",
			       in ? mib_or_null((int64_t)in->actual_bytes, 1)
				  : NULL);
	json_object_object_add(o, "guest_total_mib",
			       in ? mib_or_null(in->total_bytes, 0) : NULL);
	json_object_object_add(o, "guest_free_mib",
			       in ? mib_or_null(in->free_bytes, 0) : NULL);
	json_object_object_add(o, "guest_available_mib",
			       in ? mib_or_null(in->available_bytes, 0) : NULL);
	json_object_object_add(o, "guest_pageins_per_s",
			       in && v.have_rates
				       ? json_object_new_double(v.pageins_per_s)
				       : NULL);
	json_object_object_add(o, "guest_pageouts_per_s",
			       in && v.have_rates
				       ? json_object_new_double(v.pageouts_per_s)
				       : NULL);
	/* Only the lab guest says when its balloon stops short. */
	int lab = in && vm->balloon_kind == PK_BALLOON_LAB;
	json_object_object_add(o, "balloon_stalled",
			       lab ? json_object_new_boolean(in->stalled) : NULL);
	json_object_object_add(o, "balloon_shortfall_mib",
			       lab ? json_object_new_double(bytes_mib(
					     in->stalled ? in->shortfall_bytes
							 : 0))
				   : NULL);
}

/*
 * The policy's view of a VM (policy.h): granted is what it holds of the
 * machine plus its merged pages (ESX's Granted), active the sampled
 * active fraction of its size, target what the allocation gives it.
 */
static void policy_vm_json(const struct pk_vm *vm, json_object *o)
{
	const struct pk_vm_policy *vp = &vm->policy;
	const uint64_t *c = vm->pages.count;
	uint64_t stalled = vp->stalled_ms;

	if (vp->parked_since_ms)
		stalled += pk_monotonic_ms() - vp->parked_since_ms;
	put_mib(o, "granted_mib", c[PK_PAGE_RESIDENT] + c[PK_PAGE_SHARED]);
	json_object_object_add(o, "active_mib", json_object_new_double(
		pk_active_frac(&vp->active) * bytes_mib(vm->configured_bytes)));
	json_object_object_add(o, "target_mib", json_object_new_double(
		bytes_mib(vp->target_bytes)));
	put_int(o, "shares", vp->shares);
	json_object_object_add(o, "min_mib", json_object_new_double(
		bytes_mib(vp->min_bytes)));
	json_object_object_add(o, "max_mib", json_object_new_double(bytes_mib(
		vp->max_bytes ? vp->max_bytes : vm->configured_bytes)));
	json_object_object_add(o, "balloon_opt_out",
			       json_object_new_boolean(vp->no_balloon));
	json_object_object_add(o, "balloon_short",
			       json_object_new_boolean(vp->balloon_short));
	json_object_object_add(o, "balloon_short_why",
			       json_object_new_string(vp->short_why));
	json_object_object_add(o, "stalled", json_object_new_boolean(
		vp->stalled || vp->parked_since_ms));
	put_int(o, "stalled_ms", stalled);
	put_int(o, "faults_parked", vp->faults_parked);
	put_mib(o, "policy_evicted_mib", vp->policy_evicted);
	put_int(o, "sample_periods", vp->sample_periods);
	put_int(o, "sample_cpu_us", vp->sample_cpu_ns / 1000);
	/* Write tracking for --victims cold (track.h). */
	json_object_object_add(o, "track_on",
			       json_object_new_boolean(vm->track.on));
	put_int(o, "track_periods", vm->track.periods);
	put_int(o, "track_write_faults", vm->track.write_faults);
	put_int(o, "track_wp_again", vm->track.wp_again);
}

static json_object *vm_json(const struct pk_vm *vm)
{
	json_object *o = json_object_new_object();
	const uint64_t *c = vm->pages.count;
	double frames, saved = vm_saved_mib(vm, &frames);

	json_object_object_add(o, "name", json_object_new_string(vm->name));
	json_object_object_add(o, "id", json_object_new_int64(vm->id));
	json_object_object_add(o, "pid", json_object_new_int64(vm->pid));
	json_object_object_add(o, "ram", json_object_new_string(
					      vm->anon ? "anonymous" : "shared"));
	json_object_object_add(o, "share_domain",
			       json_object_new_string(vm->share_domain));
	json_object_object_add(o, "balloon",
			       json_object_new_string(
				       balloon_kind_name(vm->balloon_kind)));
	balloon_json(vm, o);
	put_mib(o, "configured_mib", vm->pages.n_pages);
	put_mib(o, "resident_mib", c[PK_PAGE_RESIDENT]);
	put_mib(o, "zero_mib", c[PK_PAGE_ZERO]);
	put_mib(o, "shared_mib", c[PK_PAGE_SHARED]);
	put_mib(o, "swapped_mib", c[PK_PAGE_SWAPPED]);
	put_mib(o, "ballooned_mib", c[PK_PAGE_REMOVED]);
	put_mib(o, "untouched_mib", c[PK_PAGE_UNTOUCHED]);
	put_int(o, "faults_total", vm->stats.faults);
	json_object_object_add(o, "faults_per_s",
			       json_object_new_double(vm->stats.faults_per_s));
	put_int(o, "pages_zero_filled", vm->stats.pages_zero_filled);
	put_int(o, "pages_fault_around", vm->stats.pages_around);
	put_int(o, "remove_events", vm->stats.remove_events);
	put_mib(o, "poisoned_mib", c[PK_PAGE_POISONED]);
	put_int(o, "evictions", vm->stats.evictions);
	put_int(o, "zero_reclaimed", vm->stats.zero_reclaimed);
	put_int(o, "scan_pages", vm->stats.scan_pages);
	put_int(o, "scan_passes", vm->scan_pass);
	put_int(o, "scan_zero_reclaimed", vm->stats.scan_zero_reclaimed);
	json_object_object_add(o, "scan_mib_per_s",
			       json_object_new_double(vm->stats.scan_mib_per_s));
	json_object_object_add(o, "scan_cpu_percent",
			       json_object_new_double(vm->stats.scan_cpu_percent));
	put_int(o, "share_matches", vm->stats.share_matches);
	put_int(o, "share_merged", vm->stats.share_merged);
	put_int(o, "share_refaults", vm->stats.share_refaults);
	put_int(o, "swap_dedup", vm->stats.swap_dedup);
	put_int(o, "swap_dedup_slots", vm->stats.swap_dedup_slots);
	put_int(o, "swap_dedup_misses", vm->stats.swap_dedup_misses);
	json_object_object_add(o, "saved_mib", json_object_new_double(saved));
	json_object_object_add(o, "canonical_frames",
			       json_object_new_double(frames));
	put_int(o, "evict_aborts", vm->stats.evict_aborts);
	put_int(o, "wp_faults_deferred", vm->stats.wp_deferred);
	put_int(o, "swapins", vm->stats.swapins);
	put_int(o, "swapins_readahead", vm->stats.swapins_readahead);
	json_object_object_add(o, "swapins_per_s",
			       json_object_new_double(vm->stats.swapins_per_s));
	put_int(o, "pages_poisoned", vm->stats.poisoned);
	put_int(o, "fault_retries", vm->stats.fault_retries);
	put_int(o, "faults_waiting", vm->faults_waiting);
	put_int(o, "swapin_read_retries", vm->stats.swapin_read_retries);
	put_int(o, "readahead_dropped", vm->stats.readahead_dropped);
	put_int(o, "punch_failures", vm->stats.punch_failures);
	put_int(o, "swap_write_errors", vm->stats.swap_write_errors);
	json_object_object_add(o, "drained", json_object_new_boolean(vm->drained));
	json_object_object_add(o, "draining",
			       json_object_new_boolean(vm->drain_fd >= 0));
	put_int(o, "page_table_bytes", (vm->pages.n_pages *
						 PK_PAGE_TABLE_BYTES_PER_PAGE));
	policy_vm_json(vm, o);
	return o;
}

/*
 * Sharing in total and per domain.  saved_mib is what sharing gives back
 * to the machine: zero and shared pages, minus every byte the stores and
 * candidate indexes hold.
 */
static json_object *sharing_json(const struct pk_engine *e)
{
	json_object *o = json_object_new_object(), *doms = json_object_new_array();
	uint64_t shared = 0, zero = 0, frames = 0, store = 0;

	for (const struct pk_vm *vm = e->vms; vm; vm = vm->next)
		zero += vm->pages.count[PK_PAGE_ZERO];
	for (const struct pk_share_domain *d = e->domains; d; d = d->next) {
		json_object *dj = json_object_new_object();
		uint64_t dzero, dshared, dframes = pk_share_domain_frames(d);
		uint64_t dbytes = pk_share_domain_bytes(d);
		unsigned n;

		dshared = domain_shared_pages(e, d, &dzero, &n);
		shared += dshared;
		frames += dframes;
		store += dbytes;
		json_object_object_add(dj, "name", json_object_new_string(d->name));
		put_int(dj, "vms", n);
		put_int(dj, "canonical_frames", dframes);
		put_mib(dj, "shared_mib", dshared);
		json_object_object_add(dj, "store_mib",
				       json_object_new_double(bytes_mib(dbytes)));
		json_object_object_add(dj, "saved_mib", json_object_new_double(
			pages_mib(dzero + dshared) - bytes_mib(dbytes)));
		put_int(dj, "candidates", pk_index_entries(d->candidates));
		put_int(dj, "stale_candidates_dropped", d->stale_dropped);
		json_object_array_add(doms, dj);
	}
	put_mib(o, "shared_mib", shared);
	put_mib(o, "zero_mib", zero);
	put_int(o, "canonical_frames", frames);
	json_object_object_add(o, "store_mib",
			       json_object_new_double(bytes_mib(store)));
	json_object_object_add(o, "saved_mib", json_object_new_double(
		pages_mib(zero + shared) - bytes_mib(store)));
	put_int(o, "stable_scans", e->cfg.share_stable_scans);
	json_object_object_add(o, "domains", doms);
	return o;
}

/* The memory state and what it is decided from (policy.h). */
static void policy_json(const struct pk_engine *e, json_object *root)
{
	const struct pk_policy *p = e->policy;
	const struct pk_mem_states *m = &p->states;
	json_object *ent = json_object_new_object();

	json_object_object_add(root, "policy", json_object_new_string(
		pk_policy_kind_name(p->cfg.kind)));
	json_object_object_add(root, "victims", json_object_new_string(
		p->cfg.victims == PK_VICTIMS_COLD ? "cold" : "random"));
	json_object_object_add(root, "state", json_object_new_string(
		pk_mem_state_name(m->state)));
	json_object_object_add(root, "free_pct",
			       json_object_new_double(p->last.free_pct));
	json_object_object_add(root, "budget_mib", json_object_new_double(
		bytes_mib(p->last.total_bytes)));
	json_object_object_add(root, "used_mib", json_object_new_double(
		bytes_mib(p->last.used_bytes)));
	json_object_object_add(root, "psi_some_avg10",
			       p->last.psi_some_avg10 < 0 ? NULL :
			       json_object_new_double(p->last.psi_some_avg10));
	put_int(root, "state_transitions", m->transitions);
	for (int s = 0; s < PK_NSTATES; s++)
		put_int(ent, pk_mem_state_name((enum pk_mem_state)s),
			m->entered[s]);
	json_object_object_add(root, "states_entered", ent);
	json_object_object_add(root, "soft_reaction_ms", p->soft_reacted ?
		json_object_new_int64((int64_t)p->soft_reaction_ms) : NULL);
	json_object_object_add(root, "hard_reaction_ms", p->hard_reacted ?
		json_object_new_int64((int64_t)p->hard_reaction_ms) : NULL);
	put_int(root, "balloon_commands", p->balloon_cmds);
	json_object *ev = json_object_new_object();
	for (int s = 0; s < PK_NSTATES; s++)
		put_mib(ev, pk_mem_state_name((enum pk_mem_state)s),
			p->evicted_in[s]);
	json_object_object_add(root, "policy_evicted_mib", ev);
	put_mib(root, "policy_evicted_short_mib", p->evicted_short);
	json_object_object_add(root, "first_balloon_ms", p->first_balloon_ms ?
		json_object_new_int64((int64_t)p->first_balloon_ms - 1) : NULL);
	json_object_object_add(root, "first_evict_ms", p->first_evict_ms ?
		json_object_new_int64((int64_t)p->first_evict_ms - 1) : NULL);
	json_object_object_add(root, "swap_write_budget_mib",
		p->cfg.swap_write_budget ? json_object_new_double(
			bytes_mib(p->cfg.swap_write_budget)) : NULL);
	json_object_object_add(root, "swap_written_period_mib",
			       json_object_new_double(bytes_mib(p->period_written)));
}

char *pk_engine_status_json(struct pk_engine *e)
{
	json_object *root = json_object_new_object();
	json_object *vms = json_object_new_array();
	char *out;

	for (const struct pk_vm *vm = e->vms; vm; vm = vm->next)
		json_object_array_add(vms, vm_json(vm));
	json_object_object_add(root, "version",
			       json_object_new_int(PK_PROTO_VERSION));
	policy_json(e, root);
	json_object_object_add(root, "page_table_bytes_per_page",
			       json_object_new_int((int)PK_PAGE_TABLE_BYTES_PER_PAGE));
	if (e->cfg.scan_bytes_per_s) {
		json_object *sc = json_object_new_object();
		put_int(sc, "rate_limit_mib_per_s", e->cfg.scan_bytes_per_s >> 20);
		put_int(sc, "rate_max_mib_per_s",
			(e->cfg.scan_bytes_per_s_max > e->cfg.scan_bytes_per_s
				 ? e->cfg.scan_bytes_per_s_max
				 : e->cfg.scan_bytes_per_s) >> 20);
		put_int(sc, "rate_now_mib_per_s", e->scan_rate_now >> 20);
		put_int(sc, "cpu_limit_percent", e->cfg.scan_cpu_percent);
		json_object_object_add(sc, "cpu_seconds_total", json_object_new_double(
			(double)e->scan_cpu_ns / 1e9));
		json_object_object_add(sc, "mib_per_s",
				       json_object_new_double(e->scan_mib_per_s));
		json_object_object_add(sc, "cpu_percent",
				       json_object_new_double(e->scan_cpu_percent));
		json_object_object_add(root, "scan", sc);
	}
	json_object_object_add(root, "sharing", sharing_json(e));
	if (e->swap) {
		json_object *sw = json_object_new_object();
		struct pk_swap_stats st;
		put_int(sw, "slots_total", pk_swap_slots_total(e->swap));
		put_int(sw, "slots_used", pk_swap_slots_used(e->swap));
		pk_swap_store_stats(e->swap, &st);
		put_int(sw, "slot_extra_refs", st.slot_extra_refs);
		put_int(sw, "write_errors", e->swap_write_errors);
		put_int(sw, "io_errors", st.io_errors);
		put_int(sw, "checksum_errors", st.checksum_errors);
		put_int(sw, "dedup_index_entries", pk_swap_dedup_entries(e));
		json_object_object_add(
			sw, "dedup_index_mib",
			json_object_new_double(pk_swap_dedup_bytes(e) /
					       1048576.0));
		json_object_object_add(sw, "direct_io",
				       json_object_new_boolean(
					       pk_swap_store_is_direct(e->swap)));
		json_object_object_add(root, "swap", sw);
	}
	json_object_object_add(root, "vms", vms);
	/* A previous daemon's VMs whose guests have not reconnected yet. */
	json_object *waiting = json_object_new_array();
	uint64_t now_ms = pk_monotonic_ms();
	for (const struct pk_vm *vm = e->waiting; vm; vm = vm->next) {
		json_object *w = json_object_new_object();
		json_object_object_add(w, "name", json_object_new_string(vm->name));
		json_object_object_add(w, "pid", json_object_new_int64(vm->pid));
		put_mib(w, "configured_mib", vm->pages.n_pages);
		put_mib(w, "swapped_mib", vm->pages.count[PK_PAGE_SWAPPED]);
		put_mib(w, "shared_mib", vm->pages.count[PK_PAGE_SHARED]);
		put_mib(w, "lost_mib", vm->pages.count[PK_PAGE_POISONED]);
		json_object_object_add(w, "expired", json_object_new_boolean(
			vm->grace_deadline_ms == UINT64_MAX));
		put_int(w, "grace_left_s",
			vm->grace_deadline_ms == UINT64_MAX ? 0
			: vm->grace_deadline_ms > now_ms
				? (vm->grace_deadline_ms - now_ms + 999) / 1000
				: 0);
		json_object_array_add(waiting, w);
	}
	json_object_object_add(root, "waiting_vms", waiting);
	json_object_object_add(root, "run_dir",
			       json_object_new_string(e->cfg.run_dir));
	out = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
	json_object_put(root);
	return out;
}
