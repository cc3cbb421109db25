/*
 * policy.c - the memory-state policy (policy.h): read free memory, move
 * between the ESX states, give every VM a target, act on the targets.
 *
 * How, once a second (pk_policy_tick):
 *
 *   1. Free memory.  mem_source.h: the --budget (used = the guests'
 *      resident pages + the daemon's own: canonical copies, page tables,
 *      swap buffers), a cgroup the admin names, or the host's
 *      MemAvailable; and memory PSI.
 *   2. State.  mem_state.h: thresholds with hysteresis and a dwell time,
 *      so a state never flaps; each change is logged and counted, with
 *      the reaction times of the first balloon target after entering
 *      soft and the first eviction after entering hard.
 *   3. Targets.  alloc.h: what the guests may hold together is what they
 *      hold now plus what is free, less the free memory the soft
 *      threshold keeps (plus the hysteresis, so that meeting the targets
 *      lifts the state).  That is shared out by shares, min, max and the
 *      idle memory tax; a VM's "held" memory is its resident pages (its
 *      zero, removed, swapped and merged pages cost the machine nothing
 *      of its own: merged copies are the daemon's, in used).
 *   4. Actions, per VM, by state and policy (the table in policy.h):
 *      - the balloon's goal (the guest's logical size) is its size now
 *        less what it holds above target, never below its min nor below
 *        35% of its size (the balloon keeps at most 65%); it moves a step
 *        at a time (pk_alloc_step: at most 100 MiB and 5% of the VM per
 *        tick, no move under 4 MiB, as Proxmox and MoM do);
 *      - a balloon that has not come PK_POLICY_DEADBAND_BYTES closer to
 *        its goal in PK_POLICY_SHORT_MS, that has no driver or channel,
 *        or whose guest says it stalled, is short: the excess is evicted
 *        even in soft, and status says why;
 *      - eviction (evict.c; random victims, or cold-first with write
 *        tracking, track.h, while the VM may be a victim) takes at most
 *        PK_POLICY_EVICT_STEP_BYTES per VM per tick, one reclaim per VM
 *        at a time, and none once the swap-write budget of the period is
 *        spent (then the balloon and the stall must do);
 *      - low: a VM above its target is stalled (fault.c parks its faults
 *        that would take a new page) until it is under or the state
 *        lifts; that is what ESX does instead of an OOM kill.
 *   In high, balloons deflate toward the VM's target a step at a time;
 *   only balloons the policy inflated: a target an admin set by hand
 *   (pagekeeper balloon) is left alone until the state leaves high.
 *
 * Baselines (--policy): swap-only evicts the excess from soft on and
 * never balloons; balloon-only follows MoM's published rules (host free
 * below 20%: every guest's balloon grows 5% of its size a cycle, above
 * it shrinks, moves under 0.25% skipped) and never swaps nor stalls (on
 * a --budget its guests still wait at the end of memory, the floor line:
 * the budget stands for a machine that has no more);
 * manual decides nothing (reclaim and balloon by request only).
 *
 * Why the loop never waits here: the memory source reads small procfs
 * files, balloon targets are queued to their bridges (they answer later)
 * and evictions are started, not waited for.
 */
#include "engine/policy.h"
#include "engine/engine.h"
#include "engine/vm.h"
#include "engine/state.h"
#include "engine/victim.h"
#include "engine/vm_balloon.h"
#include "hashing/canonical_store.h"
#include "swapper/swap_store.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1024.0 * 1024.0)
/* MoM's rules for balloon-only. */
#define MOM_PRESSURE_FREE_PCT 20.0
#define MOM_STEP_PCT 5.0
#define MOM_DEADBAND_PCT 0.25

/* --policy names, in enum pk_policy_kind's order. */
static const char *const kind_names[] = { "esx", "swap-only", "balloon-only",
					  "manual" };

int pk_policy_kind_parse(const char *s, enum pk_policy_kind *k)
{
	for (unsigned i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++)
		if (!strcmp(s, kind_names[i])) {
			*k = (enum pk_policy_kind)i;
			return 0;
		}
	return -EINVAL;
}

const char *pk_policy_kind_name(enum pk_policy_kind k)
{
	return (unsigned)k < sizeof(kind_names) / sizeof(kind_names[0])
		       ? kind_names[k] : "?";
}

int pk_victims_parse(const char *s, enum pk_victims *v)
{
	if (!strcmp(s, "random"))
		*v = PK_VICTIMS_RANDOM;
	else if (!strcmp(s, "cold"))
		*v = PK_VICTIMS_COLD;
	else
		return -EINVAL;
	return 0;
}

/* What the daemon itself holds, for a budget: copies, tables, buffers. */
static uint64_t daemon_bytes(const struct pk_engine *e)
{
	uint64_t b = 0;

	for (const struct pk_share_domain *d = e->domains; d; d = d->next)
		b += pk_share_domain_bytes(d);
	for (const struct pk_vm *vm = e->vms; vm; vm = vm->next)
		b += vm->pages.n_pages * PK_PAGE_TABLE_BYTES_PER_PAGE;
	if (e->swap) {
		struct pk_swap_stats st;
		pk_swap_store_stats(e->swap, &st);
		b += (uint64_t)st.bufs_total * PK_PAGE_SIZE;
	}
	return b;
}

static uint64_t held_bytes(const struct pk_vm *vm)
{
	return vm->pages.count[PK_PAGE_RESIDENT] * (uint64_t)PK_PAGE_SIZE;
}

/* Used, for a budget: the guests' resident pages and the daemon's own. */
static uint64_t engine_used_bytes(const struct pk_engine *e)
{
	uint64_t b = daemon_bytes(e);

	for (const struct pk_vm *vm = e->vms; vm; vm = vm->next)
		b += held_bytes(vm);
	return b;
}

int pk_policy_init(struct pk_engine *e)
{
	struct pk_policy *p = calloc(1, sizeof(*p));
	char desc[PATH_MAX + 128];
	int r;

	if (!p)
		return -ENOMEM;
	if (e->cfg.policy) {
		p->cfg = *e->cfg.policy;
		if (p->cfg.n_vm_settings > PK_VM_SETTINGS_MAX)
			p->cfg.n_vm_settings = PK_VM_SETTINGS_MAX;
		if (p->cfg.n_vm_settings)
			memcpy(p->vm_set, p->cfg.vm_settings,
			       p->cfg.n_vm_settings * sizeof(p->vm_set[0]));
		p->cfg.vm_settings = p->vm_set;
	} else
		pk_mem_thresholds_default(&p->cfg.th), p->cfg.tau = 0.75;
	e->policy = p;
	r = pk_mem_source_open(&p->src, e->cfg.budget_bytes, p->cfg.cgroup);
	if (r < 0) {
		pk_log(&e->log, "memory source: %s", p->src.err);
		return r;
	}
	p->src_ok = 1;
	pk_mem_states_init(&p->states, &p->cfg.th, pk_monotonic_ms());
	p->period_start_ms = p->start_ms = pk_monotonic_ms();
	pk_mem_source_read(&p->src, engine_used_bytes(e), &p->last);
	pk_log(&e->log, "policy %s: free memory from %s: %.1f%% free of %.0f MiB; "
	       "states soft < %.1f%%, hard < %.1f%%, low < %.1f%% "
	       "(hysteresis %.1f%%), idle memory tax %.2f",
	       pk_policy_kind_name(p->cfg.kind),
	       pk_mem_source_describe(&p->src, desc, sizeof(desc)),
	       p->last.free_pct, (double)p->last.total_bytes / MIB,
	       p->cfg.th.soft_pct, p->cfg.th.hard_pct, p->cfg.th.low_pct,
	       p->cfg.th.hyst_pct, p->cfg.tau);
	return 0;
}

static void apply_vm_setting(struct pk_vm *vm);

static const struct pk_vm_setting *
find_setting(const struct pk_vm_setting *set, unsigned n, const char *vm)
{
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(set[i].vm, vm))
			return &set[i];
	return NULL;
}

static int run_set_given(const struct pk_vm_setting *s)
{
	return s->shares >= 0 || s->min_bytes >= 0 || s->max_bytes >= 0 ||
	       s->no_balloon >= 0;
}

/* The run-time settings give way to the admin's (and leave the record). */
static void run_set_clear(struct pk_vm *vm)
{
	if (!run_set_given(&vm->run_set))
		return;
	vm->run_set.shares = vm->run_set.min_bytes = -1;
	vm->run_set.max_bytes = -1;
	vm->run_set.no_balloon = -1;
	vm->run_set_section = 0;
	pk_state_vm_settings(vm);
	pk_log(&vm->engine->log, "vm %s: its [vm %s] section changed: it "
	       "overrides what pagekeeper set gave", vm->name, vm->name);
}

/* A reload's per-VM settings: applied to the running VMs whose entry
 * is new or changed (a removed entry leaves the VM as it is). */
static void set_vm_settings(struct pk_engine *e, const struct pk_policy_config *c)
{
	struct pk_policy *p = e->policy;
	unsigned n = c->n_vm_settings < PK_VM_SETTINGS_MAX ? c->n_vm_settings
							   : PK_VM_SETTINGS_MAX;
	struct pk_vm_setting *old = malloc(sizeof(p->vm_set));
	unsigned n_old = p->cfg.n_vm_settings;

	if (!old) {
		pk_log_prio(&e->log, LOG_WARNING, "reload: out of memory; the "
			    "per-VM settings are not changed");
		return;
	}
	memcpy(old, p->vm_set, sizeof(p->vm_set));
	if (n)
		memcpy(p->vm_set, c->vm_settings, n * sizeof(p->vm_set[0]));
	p->cfg.n_vm_settings = n;
	for (struct pk_vm *vm = e->vms; vm; vm = vm->next) {
		const struct pk_vm_setting *now = find_setting(p->vm_set, n, vm->name);
		const struct pk_vm_setting *was = find_setting(old, n_old, vm->name);

		if (now && (!was || memcmp(now, was, sizeof(*now)))) {
			apply_vm_setting(vm);
			run_set_clear(vm); /* the section changed: it wins */
		}
	}
	free(old);
}

void pk_policy_set_live(struct pk_engine *e, const struct pk_policy_config *c)
{
	struct pk_policy *p = e->policy;

	if (!p)
		return;
	set_vm_settings(e, c);
	if (p->cfg.victims != c->victims) {
		/* From the next eviction on; write tracking follows at the
		 * next tick (track_wanted). */
		p->cfg.victims = c->victims;
		e->victim_policy = c->victims == PK_VICTIMS_COLD
					   ? pk_victim_cold : pk_victim_random;
		pk_log(&e->log, "policy: victims are now %s",
		       c->victims == PK_VICTIMS_COLD ? "cold" : "random");
	}
	p->cfg.th = c->th;
	p->states.th = c->th;
	p->cfg.tau = c->tau;
	if (p->cfg.swap_write_period_s != c->swap_write_period_s) {
		p->period_start_ms = pk_monotonic_ms();
		p->period_written = 0;
	}
	p->cfg.swap_write_budget = c->swap_write_budget;
	p->cfg.swap_write_period_s = c->swap_write_period_s;
	p->budget_spent_logged = 0;
	pk_log(&e->log, "policy: states soft < %.1f%%, hard < %.1f%%, low < %.1f%% "
	       "(hysteresis %.1f%%), idle memory tax %.2f, swap-write budget "
	       "%.0f MiB per %llu s", p->cfg.th.soft_pct, p->cfg.th.hard_pct,
	       p->cfg.th.low_pct, p->cfg.th.hyst_pct, p->cfg.tau,
	       (double)p->cfg.swap_write_budget / MIB,
	       (unsigned long long)p->cfg.swap_write_period_s);
}

void pk_policy_fini(struct pk_engine *e)
{
	free(e->policy);
	e->policy = NULL;
}

static void compute_targets(struct pk_engine *e);
static void fault_limits(struct pk_engine *e);

/*
 * The admin's settings for vm, if the configuration names it.  A setting
 * the VM cannot take (a min above its size) is logged and left out: the
 * VM runs with what it had, never refused for the admin's typo.
 */
static void apply_vm_setting(struct pk_vm *vm)
{
	struct pk_policy *p = vm->engine->policy;
	char why[160];

	const struct pk_vm_setting *s;

	if (!p || !(s = find_setting(p->vm_set, p->cfg.n_vm_settings, vm->name)))
		return;
	if (pk_policy_vm_set(vm, s->shares, s->min_bytes, s->max_bytes,
			     s->no_balloon, why, sizeof(why)) < 0)
		pk_log_prio(&vm->engine->log, LOG_WARNING, "vm %s: the "
			    "configuration's [vm %s] is not applied: %s",
			    vm->name, s->vm, why);
}

uint64_t pk_policy_vm_section_hash(const struct pk_vm *vm)
{
	struct pk_policy *p = vm->engine->policy;
	const struct pk_vm_setting *s;
	int64_t v[4];
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, 64 bits */

	if (!p || !(s = find_setting(p->vm_set, p->cfg.n_vm_settings, vm->name)))
		return 0;
	v[0] = s->shares, v[1] = s->min_bytes, v[2] = s->max_bytes;
	v[3] = s->no_balloon;
	for (size_t i = 0; i < sizeof(v); i++) {
		h ^= ((const unsigned char *)v)[i];
		h *= 0x100000001b3ull;
	}
	return h | 1; /* never 0, which means no section */
}

/* One origin's settings (vm.h: reg_set, run_set); why it failed logged. */
static void apply_origin(struct pk_vm *vm, const struct pk_vm_setting *s,
			 const char *origin)
{
	char why[160];

	if (run_set_given(s) &&
	    pk_policy_vm_set(vm, s->shares, s->min_bytes, s->max_bytes,
			     s->no_balloon, why, sizeof(why)) < 0)
		pk_log_prio(&vm->engine->log, LOG_WARNING, "vm %s: %s not "
			    "applied: %s", vm->name, origin, why);
}

void pk_policy_vm_init(struct pk_vm *vm)
{
	struct pk_vm_policy *vp = &vm->policy;

	memset(vp, 0, sizeof(*vp));
	vp->shares = PK_POLICY_DEFAULT_SHARES;
	pk_active_init(&vp->active);
	vp->target_bytes = vm->configured_bytes;
	/* Precedence, lowest first: the guest's registration, the admin's
	 * [vm NAME], pagekeeper set's (kept in the record across a restart)
	 * unless that section changed since. */
	apply_origin(vm, &vm->reg_set, "its registration's settings are");
	apply_vm_setting(vm);
	if (run_set_given(&vm->run_set)) {
		if (vm->run_set_section == pk_policy_vm_section_hash(vm))
			apply_origin(vm, &vm->run_set,
				     "the settings pagekeeper set gave are");
		else
			run_set_clear(vm);
	}
	/* Its share at once, from a fresh reading: a guest can fill
	 * gigabytes before the next tick. */
	struct pk_engine *e = vm->engine;
	struct pk_policy *p = e->policy;
	if (!p || !p->src_ok || p->cfg.kind == PK_POLICY_MANUAL ||
	    pk_mem_source_read(&p->src, engine_used_bytes(e), &p->last) < 0)
		return;
	compute_targets(e);
	fault_limits(e);
}

int pk_policy_vm_set(struct pk_vm *vm, int64_t shares, int64_t min_bytes,
		     int64_t max_bytes, int no_balloon, char *why,
		     size_t why_len)
{
	struct pk_vm_policy *vp = &vm->policy;
	uint64_t size = vm->configured_bytes;
	uint64_t mn = min_bytes >= 0 ? (uint64_t)min_bytes : vp->min_bytes;
	uint64_t mx = max_bytes >= 0 ? (uint64_t)max_bytes : vp->max_bytes;

	if (shares == 0 || shares > PK_PROTO_SHARES_MAX) {
		snprintf(why, why_len, "shares must be 1 to %u, not %lld",
			 PK_PROTO_SHARES_MAX, (long long)shares);
		return -EINVAL;
	}
	if (mn > size || mx > size) {
		snprintf(why, why_len, "min and max must be at most the VM's "
			 "size (%.0f MiB)", (double)size / MIB);
		return -EINVAL;
	}
	if (mn && mx && mn > mx) {
		snprintf(why, why_len, "min (%.0f MiB) is above max (%.0f MiB)",
			 (double)mn / MIB, (double)mx / MIB);
		return -EINVAL;
	}
	if (mn % PK_PAGE_SIZE || mx % PK_PAGE_SIZE) {
		snprintf(why, why_len, "min and max must be multiples of %u "
			 "bytes", PK_PAGE_SIZE);
		return -EINVAL;
	}
	if (shares > 0)
		vp->shares = (uint32_t)shares;
	vp->min_bytes = mn;
	vp->max_bytes = mx;
	if (no_balloon >= 0)
		vp->no_balloon = no_balloon;
	pk_log(&vm->engine->log, "vm %s: shares %u, min %.0f MiB, max %.0f MiB%s",
	       vm->name, vp->shares, (double)vp->min_bytes / MIB,
	       (double)(vp->max_bytes ? vp->max_bytes : size) / MIB,
	       vp->no_balloon ? ", no balloon" : "");
	return 0;
}

int pk_policy_vm_set_run(struct pk_vm *vm, int64_t shares, int64_t min_bytes,
			 int64_t max_bytes, int no_balloon, char *why,
			 size_t why_len)
{
	struct pk_vm_setting *r = &vm->run_set;
	int err = pk_policy_vm_set(vm, shares, min_bytes, max_bytes, no_balloon,
				   why, why_len);

	if (err)
		return err;
	if (shares > 0)
		r->shares = shares;
	if (min_bytes >= 0)
		r->min_bytes = min_bytes;
	if (max_bytes >= 0)
		r->max_bytes = max_bytes;
	if (no_balloon >= 0)
		r->no_balloon = no_balloon;
	vm->run_set_section = pk_policy_vm_section_hash(vm);
	pk_state_vm_settings(vm);
	return 0;
}

/* The guest's logical size the balloon reports, or its size. */
static uint64_t balloon_actual(const struct pk_vm *vm, int *ready,
			       int *stalled)
{
	struct pk_vm_balloon_view v;

	*ready = *stalled = 0;
	if (pk_vm_balloon_view(vm, &v) < 0 || !v.info)
		return vm->configured_bytes;
	*ready = v.info->link == PK_BLN_READY;
	*stalled = v.info->stalled;
	return v.info->actual_bytes ? v.info->actual_bytes
				    : vm->configured_bytes;
}

static void send_balloon(struct pk_engine *e, struct pk_vm *vm,
			 uint64_t target, uint64_t now_ms)
{
	struct pk_policy *p = e->policy;
	struct pk_vm_policy *vp = &vm->policy;
	uint64_t actual;
	char why[160];

	if (target == vp->balloon_sent)
		return;
	if (pk_vm_balloon_set_target(vm, target, &actual, why,
				     sizeof(why)) < 0)
		return; /* short: the shortfall check below says why */
	vp->balloon_sent = target;
	p->balloon_cmds++;
	if (!p->first_balloon_ms)
		p->first_balloon_ms = now_ms - p->start_ms + 1;
	if (!p->soft_reacted && p->states.state >= PK_STATE_SOFT) {
		p->soft_reacted = 1;
		p->soft_reaction_ms = now_ms - p->soft_entered_ms;
	}
}

/*
 * Is the balloon short of its goal?  Sets vp->balloon_short and why.  A VM
 * that cannot balloon at all is short of whatever it holds above target.
 */
static void shortfall_check(struct pk_vm *vm, uint64_t actual, int ready,
			    int guest_stalled, uint64_t excess, uint64_t now_ms)
{
	struct pk_vm_policy *vp = &vm->policy;
	const char *why = NULL;

	if (excess && (vp->no_balloon || !vm->balloon_kind)) {
		why = vp->no_balloon ? "ballooning is off for this VM"
				     : "no balloon channel";
		if (!vp->balloon_short)
			pk_log(&vm->engine->log, "vm %s: %.1f MiB above its target "
			       "and %s: the excess is swapped", vm->name,
			       (double)excess / MIB, why);
		vp->balloon_short = 1;
		snprintf(vp->short_why, sizeof(vp->short_why), "%s", why);
		return;
	}
	if (!vp->balloon_goal || actual <= vp->balloon_goal +
						   PK_POLICY_DEADBAND_BYTES) {
		vp->balloon_short = 0;
		vp->short_since_ms = now_ms;
		vp->short_best = actual;
		vp->short_why[0] = '\0';
		return;
	}
	if (guest_stalled)
		why = "the guest's balloon stalled (locked pages)";
	if (actual + PK_POLICY_DEADBAND_BYTES <= vp->short_best) {
		vp->short_best = actual; /* it moves */
		vp->short_since_ms = now_ms;
	}
	if (!why && now_ms - vp->short_since_ms >= PK_POLICY_SHORT_MS)
		why = ready ? "the balloon has not moved for 10 s"
			    : "the guest's balloon driver does not answer";
	if (why && !vp->balloon_short)
		pk_log(&vm->engine->log, "vm %s: balloon short by %.1f MiB: %s; the "
		       "shortfall is swapped", vm->name,
		       (double)(actual - vp->balloon_goal) / MIB, why);
	vp->balloon_short = why != NULL;
	snprintf(vp->short_why, sizeof(vp->short_why), "%s", why ? why : "");
}

static int reclaim_busy(const struct pk_vm *vm)
{
	return vm->reclaim_left || vm->n_evicting || vm->reclaim_fd >= 0;
}

static void evict_excess(struct pk_engine *e, struct pk_vm *vm,
			 uint64_t excess, uint64_t now_ms)
{
	struct pk_policy *p = e->policy;
	uint64_t pages;
	char why[128];

	if (!e->swap || vm->anon || vm->drained || reclaim_busy(vm))
		return;
	if (excess > PK_POLICY_EVICT_STEP_BYTES)
		excess = PK_POLICY_EVICT_STEP_BYTES;
	if (p->cfg.swap_write_budget) {
		if (p->period_written >= p->cfg.swap_write_budget) {
			if (!p->budget_spent_logged)
				pk_log(&e->log, "swap-write budget spent: %.0f MiB in "
				       "this period of %llu s; until it ends the "
				       "balloon and the stall must do",
				       (double)p->period_written / MIB,
				       (unsigned long long)p->cfg.swap_write_period_s);
			p->budget_spent_logged = 1;
			return;
		}
		if (excess > p->cfg.swap_write_budget - p->period_written)
			excess = p->cfg.swap_write_budget - p->period_written;
	}
	pages = excess / PK_PAGE_SIZE;
	if (!pages)
		return;
	if (pk_reclaim_start(vm, pages, -1, why, sizeof(why)) < 0)
		return;
	/* Counted when asked, so requests in flight never pass the budget
	 * (an upper bound: zero pages and aborts write nothing). */
	p->period_written += pages * PK_PAGE_SIZE;
	vm->policy.policy_evicted += pages;
	p->evicted_in[p->states.state] += pages;
	if (p->states.state == PK_STATE_SOFT && vm->policy.balloon_short)
		p->evicted_short += pages;
	if (!p->first_evict_ms)
		p->first_evict_ms = now_ms - p->start_ms + 1;
	if (!p->hard_reacted && p->states.state >= PK_STATE_HARD) {
		p->hard_reacted = 1;
		p->hard_reaction_ms = now_ms - p->hard_entered_ms;
	}
}

uint64_t pk_policy_room(struct pk_vm *vm)
{
	const struct pk_policy *p = vm->engine->policy;
	uint64_t held = 0, line;

	if (vm->policy.stalled)
		return 0;
	if (!p || !p->fault_limit_pages)
		return UINT64_MAX;
	for (const struct pk_vm *v = vm->engine->vms; v; v = v->next)
		held += v->pages.count[PK_PAGE_RESIDENT];
	/* Above its target a VM stops at the limit; any VM at the floor
	 * (nothing left for anyone). */
	line = vm->pages.count[PK_PAGE_RESIDENT] * (uint64_t)PK_PAGE_SIZE >=
			       vm->policy.target_bytes
		       ? p->fault_limit_pages : p->fault_floor_pages;
	return held >= line ? 0 : line - held;
}

static void stall_set(struct pk_vm *vm, int on, uint64_t now_ms)
{
	struct pk_vm_policy *vp = &vm->policy;

	if (vp->stalled == on)
		return;
	vp->stalled = on;
	if (on) {
		vp->stall_start_ms = now_ms;
		pk_log(&vm->engine->log, "vm %s: stalled (low memory, %.0f MiB above "
		       "its target): faults that take a page wait",
		       vm->name, (double)(held_bytes(vm) - vp->target_bytes) / MIB);
	} else {
		pk_log(&vm->engine->log, "vm %s: resumed after %llu ms stalled",
		       vm->name,
		       (unsigned long long)(now_ms - vp->stall_start_ms));
		pk_fault_unpark(vm);
	}
}

/* Targets for every VM (vp->target_bytes). */
static void compute_targets(struct pk_engine *e)
{
	struct pk_policy *p = e->policy;
	struct pk_alloc_vm *a;
	uint64_t held = 0, reserve, avail;
	unsigned n = 0, i = 0;

	for (struct pk_vm *vm = e->vms; vm; vm = vm->next) {
		held += held_bytes(vm);
		n++;
	}
	if (!n)
		return;
	a = calloc(n, sizeof(*a));
	if (!a)
		return; /* the targets of the last tick stand */
	reserve = (uint64_t)((double)p->last.total_bytes *
			     (p->cfg.th.soft_pct + p->cfg.th.hyst_pct) / 100.0);
	avail = held + p->last.free_bytes;
	avail = avail > reserve ? avail - reserve : 0;
	uint64_t sizes = 0;
	for (struct pk_vm *vm = e->vms; vm; vm = vm->next)
		sizes += vm->configured_bytes;
	p->overcommitted = sizes > avail;
	for (struct pk_vm *vm = e->vms; vm; vm = vm->next, i++) {
		a[i].size_bytes = vm->configured_bytes;
		a[i].min_bytes = vm->policy.min_bytes;
		a[i].max_bytes = vm->policy.max_bytes;
		a[i].shares = vm->policy.shares;
		a[i].active_frac = pk_active_frac(&vm->policy.active);
	}
	int r = pk_alloc_targets(a, n, avail, p->cfg.tau);
	if (r < 0) {
		/* A VM's settings no target can meet: the last tick's
		 * targets stand (pk_policy_vm_set refuses such settings, so
		 * this is a bug; said once). */
		if (!p->alloc_error_logged)
			pk_log_prio(&e->log, LOG_WARNING, "allocation: %s; targets kept", strerror(-r));
		p->alloc_error_logged = 1;
		free(a);
		return;
	}
	/* r == 1: even the reservations do not fit; every VM is at its
	 * min, and what is missing shows as pressure (the state). */
	i = 0;
	for (struct pk_vm *vm = e->vms; vm; vm = vm->next, i++) {
		vm->policy.target_bytes = a[i].target_bytes;
		vm->policy.rho = a[i].rho;
	}
	free(a);
}

/*
 * The guest's logical size that fits its target: the target plus what of
 * the guest costs the machine nothing (zero and merged pages), within
 * [35% of its size (the balloon keeps at most 65%), its min] and its size.
 */
static uint64_t balloon_goal_for(const struct pk_vm *vm)
{
	const struct pk_vm_policy *vp = &vm->policy;
	const uint64_t *c = vm->pages.count;
	uint64_t size = vm->configured_bytes;
	uint64_t floor = (uint64_t)((double)size *
				    (100.0 - PK_POLICY_BALLOON_MAX_PCT) / 100.0);
	uint64_t goal = vp->target_bytes +
			(c[PK_PAGE_ZERO] + c[PK_PAGE_SHARED]) * PK_PAGE_SIZE;

	floor &= ~(uint64_t)(PK_PAGE_SIZE - 1);
	if (floor < vp->min_bytes)
		floor = vp->min_bytes;
	if (goal < floor)
		goal = floor;
	return goal > size ? size : goal;
}

/* Move the balloon a step toward the goal; in high, never inflate. */
static void balloon_step(struct pk_engine *e, struct pk_vm *vm,
			 uint64_t actual, uint64_t now_ms)
{
	struct pk_vm_policy *vp = &vm->policy;
	uint64_t size = vm->configured_bytes, goal = balloon_goal_for(vm);
	uint64_t from = vp->balloon_sent ? vp->balloon_sent : actual;
	int high = e->policy->states.state == PK_STATE_HIGH;

	/* Deflating is for balloons the policy inflated (balloon_goal);
	 * high never inflates. */
	if ((goal >= from && !vp->balloon_goal) || (high && goal < from))
		return;
	if (!vp->balloon_goal) {
		/* A new goal: the shortfall clock starts now. */
		vp->short_since_ms = now_ms;
		vp->short_best = actual;
	}
	vp->balloon_goal = goal >= size ? 0 : goal;
	/* Steps of 5% in soft; in hard and low, as much as
	 * PK_POLICY_STEP_BYTES: the guest must give memory back faster
	 * than it refaults what is swapped. */
	send_balloon(e, vm, pk_alloc_step(from, goal, size,
					  PK_POLICY_STEP_BYTES,
					  e->policy->states.state >= PK_STATE_HARD
						  ? 100.0 : PK_POLICY_STEP_PCT,
					  PK_POLICY_DEADBAND_BYTES), now_ms);
}

static void act_esx(struct pk_engine *e, struct pk_vm *vm, int swap_only,
		    uint64_t now_ms)
{
	struct pk_policy *p = e->policy;
	struct pk_vm_policy *vp = &vm->policy;
	enum pk_mem_state st = p->states.state;
	uint64_t held = held_bytes(vm);
	uint64_t excess = held > vp->target_bytes ? held - vp->target_bytes : 0;
	int ready, gstalled;
	uint64_t actual = balloon_actual(vm, &ready, &gstalled);
	int can_balloon = !swap_only && vm->balloon_kind && !vp->no_balloon;

	if (can_balloon)
		balloon_step(e, vm, actual, now_ms);
	if (st == PK_STATE_HIGH) {
		vp->balloon_short = 0;
		vp->short_why[0] = '\0';
		stall_set(vm, 0, now_ms);
		return;
	}
	if (!swap_only)
		shortfall_check(vm, actual, ready, gstalled, excess, now_ms);
	/* Swap: in hard and low, the excess; in soft, what a short
	 * balloon cannot give; swap-only from soft on. */
	if (excess && (swap_only || st >= PK_STATE_HARD || vp->balloon_short))
		evict_excess(e, vm, excess, now_ms);
	stall_set(vm, !swap_only && st == PK_STATE_LOW && excess > 0, now_ms);
}

/* MoM's balloon rules (balloon-only): no swap, no stall (but the end of
 * a --budget's memory, fault_limits()). */
static void act_mom(struct pk_engine *e, struct pk_vm *vm, uint64_t now_ms)
{
	struct pk_policy *p = e->policy;
	struct pk_vm_policy *vp = &vm->policy;
	uint64_t size = vm->configured_bytes, step, goal, floor;
	int ready, gstalled;
	uint64_t actual = balloon_actual(vm, &ready, &gstalled);

	if (!vm->balloon_kind || vp->no_balloon)
		return;
	step = (uint64_t)((double)size * MOM_STEP_PCT / 100.0);
	floor = (uint64_t)((double)size *
			   (100.0 - PK_POLICY_BALLOON_MAX_PCT) / 100.0);
	if (floor < vp->min_bytes)
		floor = vp->min_bytes;
	if (p->last.free_pct < MOM_PRESSURE_FREE_PCT)
		goal = actual > floor + step ? actual - step : floor;
	else if (vp->balloon_goal)
		goal = actual + step < size ? actual + step : size;
	else
		return;
	goal &= ~(uint64_t)(PK_PAGE_SIZE - 1);
	if ((double)(goal > actual ? goal - actual : actual - goal) <
	    (double)size * MOM_DEADBAND_PCT / 100.0)
		return;
	vp->balloon_goal = goal >= size ? 0 : goal;
	send_balloon(e, vm, goal, now_ms);
	shortfall_check(vm, actual, ready, gstalled, 0, now_ms);
}

/*
 * The guests' pages at which free memory would be pct % of the total.
 * Two lines: at half the hysteresis above the low threshold a VM above
 * its target waits, at its fault, so the host does not enter low when the
 * guests alone press on it (with a budget, they are all there is); at
 * half the low threshold every VM waits, its target or not: there is no
 * memory left to give.  Low is left for memory taken outside the
 * daemon's view, and the tick's stall.
 */
static uint64_t pages_at_free_pct(const struct pk_engine *e, double pct)
{
	const struct pk_policy *p = e->policy;
	uint64_t held = 0;
	double room = (double)p->last.free_bytes -
		      (double)p->last.total_bytes * pct / 100.0;

	for (const struct pk_vm *vm = e->vms; vm; vm = vm->next)
		held += vm->pages.count[PK_PAGE_RESIDENT];
	room = (double)held + room / PK_PAGE_SIZE;
	return room < 1 ? 1 : (uint64_t)room;
}

/* Both lines of the fault path (pk_policy_room); 0: none. */
static void fault_limits(struct pk_engine *e)
{
	struct pk_policy *p = e->policy;

	if (p->cfg.kind == PK_POLICY_MANUAL ||
	    (p->cfg.kind == PK_POLICY_BALLOON_ONLY && !e->cfg.budget_bytes)) {
		p->fault_limit_pages = p->fault_floor_pages = 0;
		return;
	}
	if (p->cfg.kind == PK_POLICY_BALLOON_ONLY) {
		/* A --budget is the machine's memory, and MoM's rules never
		 * swap nor stall: only the end of memory stops its guests,
		 * where a real host would swap or OOM-kill.  The floor line
		 * is that end: there every VM waits for the balloons. */
		p->fault_limit_pages = p->fault_floor_pages = pages_at_free_pct(
			e, p->cfg.th.low_pct / 2);
		return;
	}
	p->fault_limit_pages = pages_at_free_pct(
		e, p->cfg.th.low_pct + p->cfg.th.hyst_pct / 2);
	p->fault_floor_pages = pages_at_free_pct(e, p->cfg.th.low_pct / 2);
}

static void log_transition(struct pk_engine *e, enum pk_mem_state from,
			   uint64_t now_ms)
{
	struct pk_policy *p = e->policy;
	enum pk_mem_state to = p->states.state;

	pk_log(&e->log, "memory state %s -> %s: %.2f%% free (%.0f of %.0f MiB), "
	       "memory PSI some %.2f%%", pk_mem_state_name(from),
	       pk_mem_state_name(to), p->last.free_pct,
	       (double)p->last.free_bytes / MIB,
	       (double)p->last.total_bytes / MIB, p->last.psi_some_avg10);
	if (to >= PK_STATE_SOFT && from < PK_STATE_SOFT) {
		p->soft_entered_ms = now_ms;
		p->soft_reacted = 0;
	}
	if (to >= PK_STATE_HARD && from < PK_STATE_HARD) {
		p->hard_entered_ms = now_ms;
		p->hard_reacted = 0;
	}
}

/*
 * May vm be a victim of host swapping now (track.h: then --victims cold
 * tracks its writes)?  Manual: always (pagekeeper reclaim); esx: in hard
 * and low, and in soft when its balloon is short; swap-only: from soft on.
 */
static int track_wanted(const struct pk_engine *e, const struct pk_vm *vm)
{
	const struct pk_policy *p = e->policy;
	enum pk_mem_state st = p->states.state;

	if (p->cfg.victims != PK_VICTIMS_COLD || !e->swap)
		return 0;
	switch (p->cfg.kind) {
	case PK_POLICY_MANUAL:
		return 1;
	case PK_POLICY_SWAP_ONLY:
		return st >= PK_STATE_SOFT;
	case PK_POLICY_ESX:
		return st >= PK_STATE_HARD ||
		       (st >= PK_STATE_SOFT && vm->policy.balloon_short);
	default:
		return 0;
	}
}

void pk_policy_tick(struct pk_engine *e, uint64_t now_ms)
{
	struct pk_policy *p = e->policy;
	enum pk_mem_state before;

	if (!p || !p->src_ok)
		return;
	if (now_ms - p->period_start_ms >= p->cfg.swap_write_period_s * 1000) {
		p->period_start_ms = now_ms;
		p->period_written = 0;
		p->budget_spent_logged = 0;
	}
	if (pk_mem_source_read(&p->src, engine_used_bytes(e), &p->last) < 0)
		return; /* logged once by the source; the state stands */
	before = p->states.state;
	if (pk_mem_states_update(&p->states, p->last.free_pct,
				 p->last.psi_some_avg10, now_ms) != before)
		log_transition(e, before, now_ms);
	fault_limits(e);
	for (struct pk_vm *vm = e->vms; vm; vm = vm->next)
		pk_track_tick(vm, now_ms, track_wanted(e, vm));
	if (p->cfg.kind == PK_POLICY_MANUAL)
		return;
	compute_targets(e);
	for (struct pk_vm *vm = e->vms; vm; vm = vm->next) {
		/* Faults parked at the limit are looked at again. */
		pk_fault_unpark(vm);
		if (p->overcommitted || vm->policy.sample_start_ms)
			pk_active_sample_tick(vm, now_ms);
		if (p->cfg.kind == PK_POLICY_BALLOON_ONLY)
			act_mom(e, vm, now_ms);
		else
			act_esx(e, vm, p->cfg.kind == PK_POLICY_SWAP_ONLY,
				now_ms);
	}
}
