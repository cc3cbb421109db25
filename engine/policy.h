/*
 * policy.h - the memory-state policy: pagekeeper decides by itself.
 *
 * What: once a second (the engine's tick) the policy reads how much
 * memory is free (mem_source.h), moves the host between the ESX states
 * high, soft, hard and low (mem_state.h), gives every VM a target by
 * shares, reservation, limit and the idle memory tax (alloc.h), and acts:
 *
 *   high   sharing only; balloons deflate toward the VM's target (its
 *          whole size when memory allows), a step at a time;
 *   soft   balloon targets take memory from the lowest-rho VMs first;
 *   hard   keep ballooning, and evict random pages of VMs above target
 *          (--victims cold: pages not written lately first, track.h);
 *   low    also stall: a VM above its target has its faults that would
 *          take a new page wait (fault.c) until it is back under, or the
 *          state lifts, instead of the host OOM-killing anyone.  A guest
 *          can fill a gigabyte between two ticks, so the line is also
 *          kept on the fault path, just above it: once the guests hold
 *          what would bring free memory within half the hysteresis of
 *          the low threshold (the limit the tick computes), a VM above
 *          its target waits at its next fault, in hard, before low.
 *
 * A balloon that does not move toward its target within
 * PK_POLICY_SHORT_MS (no driver, locked pages, a guest that refuses) is
 * marked short; its shortfall is evicted even in soft.
 *
 * Why here: fault.c keeps the whole fault path (the stall is one check
 * there), evict.c the mechanism of eviction; this file only decides.
 * Every figure it decides on is in status (PROTOCOL.md).
 *
 * Everything runs on the engine's loop thread and never blocks: the
 * memory source reads procfs or cgroupfs files, balloon targets are
 * queued to the bridge, evictions are started, not waited for.
 */
#ifndef PK_POLICY_H
#define PK_POLICY_H

#include <stdint.h>

#include "engine/alloc.h"
#include "engine/mem_source.h"
#include "engine/mem_state.h"

struct pk_engine;
struct pk_vm;

enum pk_policy_kind {
	PK_POLICY_ESX = 0,	   /* balloon first, swap in hard, stall in low */
	PK_POLICY_SWAP_ONLY,	   /* a baseline: host swap, no balloon */
	PK_POLICY_BALLOON_ONLY,	   /* a baseline: MoM's rules, no host swap */
	PK_POLICY_MANUAL,	   /* nothing decided: reclaim by request only */
};

/* --victims: random (ESX), or cold: pages the write tracking (track.h)
 * has not seen written for one to two periods first.  Writes only: a
 * page the guest only reads counts as cold. */
enum pk_victims { PK_VICTIMS_RANDOM = 0, PK_VICTIMS_COLD };

/*
 * An admin's settings for the VM named vm ([vm NAME] in pagekeeper.conf,
 * pagekeeperd --vm): applied when it registers, and to a running VM when
 * a reload changes them; pagekeeper set overrides them until then.  -1:
 * not given (shares, min, max, no_balloon keep what the VM has).
 */
struct pk_vm_setting {
	char vm[64];
	int64_t shares;
	int64_t min_bytes, max_bytes;
	int no_balloon;
};
#define PK_VM_SETTINGS_MAX 256

/* The daemon's options for the policy (pagekeeperd --help). */
struct pk_policy_config {
	enum pk_policy_kind kind;
	struct pk_mem_thresholds th;
	const char *cgroup;	    /* the memory source, when no budget */
	double tau;		    /* idle memory tax rate, [0, 1) */
	enum pk_victims victims;
	uint64_t swap_write_budget; /* bytes per period; 0: no cap */
	uint64_t swap_write_period_s;
	const struct pk_vm_setting *vm_settings; /* the admin's, per VM */
	unsigned n_vm_settings;
};

/* Balloon steps: at most this much, and at most this % of the VM. */
#define PK_POLICY_STEP_BYTES (100ull << 20)
#define PK_POLICY_STEP_PCT 5.0
#define PK_POLICY_DEADBAND_BYTES (4ull << 20)
/* No driver may keep more than this % of its guest in the balloon
 * (ESX's Mem.CtlMaxPercent). */
#define PK_POLICY_BALLOON_MAX_PCT 65.0
/* A balloon that has not moved toward its target in this long is short. */
#define PK_POLICY_SHORT_MS 10000u
/* Evicted per VM per tick at most, so the loop never stalls on it. */
#define PK_POLICY_EVICT_STEP_BYTES (64ull << 20)

/* Active-memory sampling (active.c): pages per VM and period. */
#define PK_SAMPLE_PAGES 100u
#define PK_SAMPLE_PERIOD_MS 10000u

/* Per VM (embedded in struct pk_vm). */
struct pk_vm_policy {
	uint32_t shares;	/* 0: PK_POLICY_DEFAULT_SHARES */
	uint64_t min_bytes, max_bytes; /* 0: none, the VM's size */
	int no_balloon;		/* opted out of ballooning */
	struct pk_active_est active;
	uint64_t samples[PK_SAMPLE_PAGES]; /* this period's (active.c) */
	unsigned n_samples;
	uint64_t sample_start_ms; /* 0: not sampling */
	uint64_t sample_cpu_ns;	  /* the sampler's CPU on this VM, total */
	uint64_t sample_periods;  /* periods judged */
	uint64_t target_bytes;	/* what it should hold (machine memory) */
	double rho;
	uint64_t balloon_goal;	/* logical size the policy asks; 0: none */
	uint64_t balloon_sent;	/* last target sent to the bridge */
	uint64_t short_since_ms; /* when the balloon last made progress */
	uint64_t short_best;	/* the guest's smallest size since */
	int balloon_short;
	char short_why[96];
	int stalled;		/* low: faults taking a new page wait */
	uint64_t stall_start_ms;
	uint64_t stalled_ms;	/* faults parked, total milliseconds */
	uint64_t parked_since_ms; /* first fault parked since the last look */
	uint64_t faults_parked;	/* faults that waited for a stall (fault.c) */
	uint64_t policy_evicted; /* pages the policy asked to evict */
};

#define PK_POLICY_DEFAULT_SHARES 1000u

/* The policy's own state, off the engine (engine.h). */
struct pk_policy {
	struct pk_policy_config cfg;
	/* The admin's per-VM settings, the policy's own copy (cfg points
	 * here): a reload applies only the entries that changed, so a value
	 * set at run time stays until the admin changes the file. */
	struct pk_vm_setting vm_set[PK_VM_SETTINGS_MAX];
	struct pk_mem_source src;
	int src_ok;
	struct pk_mem_states states;
	struct pk_mem_reading last;
	/* Reaction times: from entering soft to the first balloon target,
	 * from entering hard to the first eviction (ms; 0 none yet). */
	uint64_t soft_entered_ms, hard_entered_ms;
	uint64_t soft_reaction_ms, hard_reaction_ms;
	int soft_reacted, hard_reacted;
	/* The swap-write budget's current period. */
	uint64_t period_start_ms;
	uint64_t period_written; /* bytes asked to evict this period */
	int budget_spent_logged;
	uint64_t balloon_cmds;	 /* targets sent */
	/* Guest pages (all VMs) past which a VM above target waits at a
	 * fault; 0: no limit (manual, or the source could not be read). */
	uint64_t fault_limit_pages;
	uint64_t fault_floor_pages; /* past this, every VM waits */
	int overcommitted;	/* the guests' sizes do not all fit: sample */
	int alloc_error_logged;
	/* Pages the policy asked to evict, by the state it was in, and of
	 * those in soft, for a short balloon; when it first ballooned and
	 * first evicted (ms since it started; 0: not yet). */
	uint64_t evicted_in[PK_NSTATES];
	uint64_t evicted_short;
	uint64_t start_ms, first_balloon_ms, first_evict_ms;
};

/* Parse "esx", "swap-only", "balloon-only", "manual" (-EINVAL). */
int pk_policy_kind_parse(const char *s, enum pk_policy_kind *k);
const char *pk_policy_kind_name(enum pk_policy_kind k);
int pk_victims_parse(const char *s, enum pk_victims *v);

/*
 * A reload (SIGHUP): new state thresholds, idle memory tax, victims and
 * swap-write budget, from the next tick on, and the admin's per-VM
 * settings, applied
 * at once to the running VMs they name.  The current state and its
 * history stay; the budget's period starts again when its length changes.
 */
void pk_policy_set_live(struct pk_engine *e, const struct pk_policy_config *c);
/* Open the memory source and start in high; logs what it reads. */
int pk_policy_init(struct pk_engine *e);
void pk_policy_fini(struct pk_engine *e);
/* The 1 s tick (engine.c). */
void pk_policy_tick(struct pk_engine *e, uint64_t now_ms);
/* A VM joins (registered or adopted): its defaults. */
void pk_policy_vm_init(struct pk_vm *vm);
/*
 * Pages a fault of vm may take before a line of the policy (fault.c):
 * 0, the fault waits; UINT64_MAX, no line applies.  A fault-around
 * window is cut to it, so no window takes the guests past the line.
 * On the fault path: the VMs' resident counts are summed, nothing more.
 */
uint64_t pk_policy_room(struct pk_vm *vm);
/*
 * Sample vm's active memory (active.c): judge the last period and start
 * the next one when PK_SAMPLE_PERIOD_MS have passed.  The policy's tick
 * calls it while the host is overcommitted.
 */
void pk_active_sample_tick(struct pk_vm *vm, uint64_t now_ms);
/* Set the VM's settings (-1 keeps a figure): -EINVAL with why on a
 * bad combination. */
int pk_policy_vm_set(struct pk_vm *vm, int64_t shares, int64_t min_bytes,
		     int64_t max_bytes, int no_balloon, char *why,
		     size_t why_len);
/*
 * pagekeeper set: pk_policy_vm_set, and on success the figures given are
 * the VM's run-time settings (vm->run_set), kept in its record so they
 * outlive a restart of the daemon (state.c), until its [vm NAME] section
 * changes.
 */
int pk_policy_vm_set_run(struct pk_vm *vm, int64_t shares, int64_t min_bytes,
			 int64_t max_bytes, int no_balloon, char *why,
			 size_t why_len);
/* A hash of the admin's [vm NAME] section for vm now; 0: it has none. */
uint64_t pk_policy_vm_section_hash(const struct pk_vm *vm);

#endif
