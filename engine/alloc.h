/*
 * alloc.h - memory targets by shares, reservation, limit and the idle
 * memory tax (Waldspurger, OSDI 2002, section 5), the active-memory
 * estimate that feeds the tax, and the step rule for balloon targets.
 *
 * Pure functions: no I/O, no globals, no allocation.  The policy
 * (policy.c) calls them once a tick; see alloc.c for how and why.
 */
#ifndef PK_ALLOC_H
#define PK_ALLOC_H

#include <stdint.h>

#define PK_ALLOC_PAGE		 4096u	/* targets are multiples of this, bytes */
#define PK_ALLOC_DEFAULT_SHARES	 1000u	/* what shares == 0 means */
#define PK_ALLOC_DEFAULT_TAU	 0.75	/* ESX's Mem.IdleTax, 75% */

struct pk_alloc_vm {
	/* in */
	uint64_t size_bytes;	/* the guest's configured RAM; > 0 */
	uint64_t min_bytes;	/* reservation; 0 = none */
	uint64_t max_bytes;	/* limit; 0 = size_bytes; above size = size */
	uint32_t shares;	/* 0 = PK_ALLOC_DEFAULT_SHARES (NOT an opt-out;
				 * opting out of reclaim is min = size) */
	double active_frac;	/* f in [0,1], e.g. pk_active_frac() */
	/* out */
	uint64_t target_bytes;	/* what the VM should hold, page-aligned */
	double rho;		/* shares per page (4 KiB) at the target, with
				 * the tax: S / (P * (f + k(1-f)));
				 * +INFINITY when the target is 0 pages */
};

/*
 * Targets for n VMs that together fit available_bytes; tau is the idle
 * memory tax rate in [0,1) (PK_ALLOC_DEFAULT_TAU = 0.75).
 *
 * Targets equalise rho = S / (P * c), c = f + k(1-f), k = 1/(1-tau),
 * among the VMs not held at a bound:
 *     P_i = clamp(S_i / (rho * c_i), min_i, max_i),
 * with rho found by bisection so that sum(P_i) = available_bytes (down
 * to whole pages).  Each target is page-aligned, at least min (rounded
 * up to a page) and at most min(max, size) (rounded down to a page).
 *
 * Returns 0 on success (sum(targets) <= available_bytes; when memory is
 * short of sum(max) the sum is exactly available_bytes rounded down to a
 * page); 1 when even the reservations do not fit (every target = its
 * min; the caller is short by sum(min) - available_bytes); -EINVAL on
 * bad input: v == NULL with n > 0, size_bytes == 0, min > max or min >
 * size (no page-aligned target between them), shares / f / tau not
 * finite or out of range (f in [0,1], tau in [0,1)).  On -EINVAL no
 * target is written.  n == 0 is valid and returns 0.
 */
int pk_alloc_targets(struct pk_alloc_vm *v, unsigned n,
		     uint64_t available_bytes, double tau);

/* rho of one VM holding bytes (rounded down to pages): S / (P * c), the
 * shares per page with the tax; +INFINITY for 0 pages, NAN on bad f or
 * tau.  The VM with the lowest rho is the one ESX reclaims from first. */
double pk_alloc_rho(uint32_t shares, uint64_t bytes, double active_frac,
		    double tau);

/*
 * Active-memory estimate.  ESX samples a few random pages per period,
 * f = touched / sampled, and keeps a slow and a fast exponentially
 * weighted moving average of f plus the latest period's value; the
 * estimate is the max of the three, so it rises within one period and
 * falls at the slow average's pace.  Weights: PK_ACTIVE_ALPHA_*.
 */
#define PK_ACTIVE_ALPHA_FAST 0.5	/* half-life 1 period */
#define PK_ACTIVE_ALPHA_SLOW 0.125	/* half-life ~5.2 periods */

struct pk_active_est {
	double slow, fast, last;	/* fractions in [0,1] */
	unsigned periods;		/* periods added so far */
};

/* Start at 1.0: a VM is assumed fully active until sampled, so the tax
 * takes nothing from a VM nobody has measured yet. */
void pk_active_init(struct pk_active_est *a);
/* One sampling period's result.  The first period replaces the initial
 * 1.0 (it was an assumption, not a sample); sampled == 0 adds nothing;
 * touched > sampled counts as sampled. */
void pk_active_add(struct pk_active_est *a, unsigned touched,
		   unsigned sampled);
/* max(slow, fast, last), in [0,1]. */
double pk_active_frac(const struct pk_active_est *a);

/*
 * Next balloon (or other) target from cur toward goal: move at most
 * max_step_bytes (0 = no byte limit) and at most step_pct PERCENT of
 * size_bytes (5.0 = 5%; <= 0 or NaN = no percentage limit); a limited
 * step is rounded down to whole pages but is at least one page.  When
 * |goal - cur| < deadband_bytes, returns cur.  Never passes goal.
 *   MoM:     pk_alloc_step(cur, goal, size, 0, 5.0, size / 400)
 *   Proxmox: pk_alloc_step(cur, goal, size, 100 << 20, 0, 10 << 20)
 */
uint64_t pk_alloc_step(uint64_t cur, uint64_t goal, uint64_t size_bytes,
		       uint64_t max_step_bytes, double step_pct,
		       uint64_t deadband_bytes);

#endif /* PK_ALLOC_H */
