/*
 * alloc.c - memory targets by shares, reservation (min), limit (max) and
 * the idle memory tax; the active-memory estimate; the balloon step rule.
 * Waldspurger, "Memory Resource Management in VMware ESX Server", OSDI
 * 2002, section 5.  Pure: no I/O, no globals, no allocation (alloc.h).
 *
 * What.  pk_alloc_targets() tells each VM how much memory it should
 * hold when the VMs together may hold available_bytes.
 *
 * How.  ESX reclaims by min-funding revocation: when memory is needed,
 * take a page from the VM with the lowest adjusted shares-per-page ratio
 *     rho = S / (P * (f + k(1-f))),   k = 1 / (1 - tau),
 * where S is its shares, P its pages, f its active fraction and tau the
 * idle memory tax rate (75% by default, ESX's Mem.IdleTax).  An idle page
 * costs k times an active one, so with tau = 0.75 an idle page is
 * charged 4 times over and is reclaimed first.  Repeating that one page at
 * a time until the pages fit ends where no VM above its reservation has
 * a lower rho than a VM below its limit: rho is equal among the VMs not
 * held at a bound.  That fixed point is what we compute directly (the
 * continuous form), instead of simulating page-by-page revocation:
 *     P_i(x) = clamp(x * S_i / c_i, min_i, max_i),   c_i = f_i + k(1-f_i),
 * where x = 1/rho is pages per unit of taxed shares.  sum P_i(x) does not
 * decrease with x, so x is found by bisection on [0, x_all_at_max] until
 * the sum meets the available pages (to double precision).  The pages
 * are then floored and the few pages lost to the floors (at most one per
 * VM) are handed back one each, largest remainder first, never past a
 * VM's max; so targets sum exactly to the available pages whenever that
 * is below sum(max).  Two short cuts first: when even the reservations
 * do not fit, everyone gets min and we return 1 (the caller must swap or
 * stall: the reservations are a promise it cannot keep from the
 * balloon); when every max fits, everyone gets max.
 *
 * Why these choices.
 *  - c_i is in [1, k]: an all-active VM (f = 1) has c = 1 and is taxed
 *    nothing, an all-idle one (f = 0) has c = k; with tau = 0 (k = 1) f
 *    has no effect and the split is pure proportional share.
 *  - shares == 0 means the default, 1000 (ESX's "normal" per-VM share
 *    unit, and Proxmox's default).  It is not an opt-out as in Proxmox:
 *    a VM that must not be reclaimed says so with min = size.
 *  - Targets are page-aligned (4 KiB) because eviction and the balloon
 *    move whole pages; min is rounded up and max down to pages.
 *
 * Active memory (pk_active_*).  ESX samples n random pages per period
 * (by default 100 pages per 30 s of VM time), invalidates them, and counts
 * the t touched again: f = t/n.  It keeps a slow exponentially weighted
 * moving average of f (stable), a fast one (adapts quickly) and a value
 * that includes the current period, and uses the max of the three, so the
 * estimate follows a growing working set within one period and lets go of
 * a shrinking one only slowly (a VM whose idle memory was taken can ramp
 * back up quickly).  The paper gives no weights; ours, per period:
 *     fast: alpha = 1/2   (half-life 1 period: 30 s at ESX's period)
 *     slow: alpha = 1/8   (half-life ln 2 / -ln(7/8) = 5.2 periods, 2.6 min)
 *     last: the latest period's t/n itself
 * Binary fractions so that the values are exact in double (the unit test
 * asserts them exactly).  With n = 100, one period's t/n has a standard
 * error of at most 5%; the max rule lets such noise raise f (taxing
 * less, the safe side) for one period, never lower it faster than the
 * slow average.  The estimate starts at 1.0: a VM nobody has sampled is
 * not taxed.  The first period then replaces that assumption (else an
 * idle new VM would keep f near 1 for ~20 periods, 10 minutes at 30 s,
 * only because it was new).
 *
 * pk_alloc_step() is the rate limit of balloon targets: MoM moves at most
 * 5% of the guest a cycle and skips moves under 0.25%, Proxmox at most
 * 100 MiB a round and skips goals under 10 MiB; one function does both.
 */
#include "engine/alloc.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>

#define PAGE ((uint64_t)PK_ALLOC_PAGE)

static uint64_t pages_down(uint64_t bytes)
{
	return bytes / PAGE;
}

static uint64_t pages_up(uint64_t bytes)
{
	return bytes / PAGE + (bytes % PAGE != 0);
}

static uint32_t eff_shares(uint32_t shares)
{
	return shares ? shares : PK_ALLOC_DEFAULT_SHARES;
}

static int valid_tau(double tau)
{
	return isfinite(tau) && tau >= 0.0 && tau < 1.0;
}

static int valid_frac(double f)
{
	return isfinite(f) && f >= 0.0 && f <= 1.0;
}

/* The taxed cost per page: f + k(1-f), in [1, k]. */
static double tax_c(double f, double tau)
{
	double k = 1.0 / (1.0 - tau);

	return f + k * (1.0 - f);
}

static double rho_of(uint32_t shares, uint64_t pages, double c)
{
	if (!pages)
		return INFINITY;
	return (double)eff_shares(shares) / ((double)pages * c);
}

double pk_alloc_rho(uint32_t shares, uint64_t bytes, double active_frac,
		    double tau)
{
	if (!valid_frac(active_frac) || !valid_tau(tau))
		return NAN;
	return rho_of(shares, pages_down(bytes), tax_c(active_frac, tau));
}

/* A VM's bounds in pages. */
static void bounds(const struct pk_alloc_vm *v, uint64_t *lo, uint64_t *hi)
{
	uint64_t max = v->max_bytes && v->max_bytes < v->size_bytes
			       ? v->max_bytes : v->size_bytes;

	*lo = pages_up(v->min_bytes);
	*hi = pages_down(max);
}

/* Saturating sum: a sum past UINT64_MAX pages is "more than any
 * available", which is all the caller asks of it. */
static uint64_t sat_add(uint64_t a, uint64_t b)
{
	uint64_t s;

	return __builtin_add_overflow(a, b, &s) ? UINT64_MAX : s;
}

/* Unrounded pages of VM i at x = 1/rho, clamped to its bounds. */
static double pages_at(const struct pk_alloc_vm *v, double c, double x)
{
	uint64_t lo, hi;
	double p = x * (double)eff_shares(v->shares) / c;

	bounds(v, &lo, &hi);
	if (p < (double)lo)
		return (double)lo;
	if (p > (double)hi)
		return (double)hi;
	return p;
}

static double sum_at(const struct pk_alloc_vm *v, unsigned n, double tau,
		     double x)
{
	double s = 0;

	for (unsigned i = 0; i < n; i++)
		s += pages_at(&v[i], tax_c(v[i].active_frac, tau), x);
	return s;
}

static void set_all(struct pk_alloc_vm *v, unsigned n, double tau, int at_hi)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t lo, hi, p;

		bounds(&v[i], &lo, &hi);
		p = at_hi ? hi : lo;
		v[i].target_bytes = p * PAGE;
		v[i].rho = rho_of(v[i].shares, p,
				  tax_c(v[i].active_frac, tau));
	}
}

int pk_alloc_targets(struct pk_alloc_vm *v, unsigned n,
		     uint64_t available_bytes, double tau)
{
	uint64_t avail = pages_down(available_bytes);
	uint64_t sum_lo = 0, sum_hi = 0, sum = 0;
	double x_lo, x_hi;

	if (!valid_tau(tau) || (n && !v))
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		uint64_t lo, hi;

		if (!v[i].size_bytes || !valid_frac(v[i].active_frac))
			return -EINVAL;
		bounds(&v[i], &lo, &hi);
		/* min > max or min > size (then ceil(min) > floor(max)), or
		 * no whole page between min and max */
		if (lo > hi)
			return -EINVAL;
		sum_lo = sat_add(sum_lo, lo);
		sum_hi = sat_add(sum_hi, hi);
	}
	if (sum_lo > avail) {
		set_all(v, n, tau, 0);
		return 1;
	}
	if (sum_hi <= avail) {
		set_all(v, n, tau, 1);
		return 0;
	}

	/* sum_at(0) = sum_lo <= avail < sum_hi = sum_at(x_hi). */
	x_lo = 0;
	x_hi = 0;
	for (unsigned i = 0; i < n; i++) {
		uint64_t lo, hi;
		double x;

		bounds(&v[i], &lo, &hi);
		x = (double)hi * tax_c(v[i].active_frac, tau) /
		    (double)eff_shares(v[i].shares);
		if (x > x_hi)
			x_hi = x;
	}
	for (int it = 0; it < 200; it++) {
		double mid = x_lo + (x_hi - x_lo) / 2;

		if (mid <= x_lo || mid >= x_hi)
			break; /* adjacent doubles: as exact as it gets */
		if (sum_at(v, n, tau, mid) <= (double)avail)
			x_lo = mid;
		else
			x_hi = mid;
	}

	/* Floor at x_lo (sum <= avail), then hand back what the floors and
	 * the bisection's last step left, one page each, largest remainder
	 * first, lowest index on ties. */
	for (unsigned i = 0; i < n; i++) {
		double p = pages_at(&v[i], tax_c(v[i].active_frac, tau), x_lo);
		uint64_t pg = (uint64_t)p;

		v[i].target_bytes = pg * PAGE; /* pages for now, below */
		sum += pg;
	}
	while (sum < avail) {
		unsigned best = n;
		double best_rem = -1;

		for (unsigned i = 0; i < n; i++) {
			uint64_t lo, hi, pg = v[i].target_bytes / PAGE;
			double want, rem;

			bounds(&v[i], &lo, &hi);
			if (pg >= hi)
				continue;
			want = pages_at(&v[i], tax_c(v[i].active_frac, tau),
					x_lo);
			rem = want - (double)pg; /* < 1 unless handed one */
			if (rem > best_rem) {
				best_rem = rem;
				best = i;
			}
		}
		if (best == n)
			break; /* everyone at max: cannot happen, sum_hi > avail */
		v[best].target_bytes += PAGE;
		sum++;
	}
	for (unsigned i = 0; i < n; i++)
		v[i].rho = rho_of(v[i].shares, v[i].target_bytes / PAGE,
				  tax_c(v[i].active_frac, tau));
	return 0;
}

void pk_active_init(struct pk_active_est *a)
{
	a->slow = a->fast = a->last = 1.0;
	a->periods = 0;
}

void pk_active_add(struct pk_active_est *a, unsigned touched,
		   unsigned sampled)
{
	double f;

	if (!sampled)
		return;
	if (touched > sampled)
		touched = sampled;
	f = (double)touched / (double)sampled;
	if (!a->periods) {
		a->slow = a->fast = f;
	} else {
		a->slow += PK_ACTIVE_ALPHA_SLOW * (f - a->slow);
		a->fast += PK_ACTIVE_ALPHA_FAST * (f - a->fast);
	}
	a->last = f;
	if (a->periods < UINT_MAX)
		a->periods++;
}

double pk_active_frac(const struct pk_active_est *a)
{
	double m = a->slow;

	if (a->fast > m)
		m = a->fast;
	if (a->last > m)
		m = a->last;
	return m < 0 ? 0 : m > 1 ? 1 : m;
}

uint64_t pk_alloc_step(uint64_t cur, uint64_t goal, uint64_t size_bytes,
		       uint64_t max_step_bytes, double step_pct,
		       uint64_t deadband_bytes)
{
	uint64_t diff = goal > cur ? goal - cur : cur - goal;
	uint64_t step = diff;

	if (diff < deadband_bytes || !diff)
		return cur;
	if (max_step_bytes && step > max_step_bytes)
		step = max_step_bytes;
	if (step_pct > 0) { /* false for NaN too */
		double lim = (double)size_bytes * step_pct / 100.0;

		if (lim < (double)step)
			step = (uint64_t)lim;
	}
	if (step < diff) {
		step -= step % PAGE;
		if (step < PAGE)
			step = diff < PAGE ? diff : PAGE;
	}
	return goal > cur ? cur + step : cur - step;
}
