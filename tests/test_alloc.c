/*
 * test_alloc.c - unit tests for engine/alloc.c: targets by shares, min,
 * max and the idle memory tax; the active-memory estimate; the balloon
 * step rule.
 *
 * What: hand-computed ESX examples (Waldspurger, OSDI 2002, section 5),
 * each with its arithmetic in a comment: equal and 2:1 shares at tau = 0,
 * one active and one idle VM at tau = 0.75 (k = 4), f without effect at
 * tau = 0, reservations and limits that hold, everything fitting,
 * reservations not fitting; then properties over random VMs (page
 * alignment, bounds, the sum meeting the available pages, the
 * min-funding fixed point: no VM above its min has a lower rho than a VM
 * below its max, to one page); bad input; the moving averages with their
 * exact values for alpha 1/2 and 1/8; MoM's and Proxmox's step rules.
 *
 * How: the functions are pure; the test calls them and compares bytes.
 * Sizes are powers of two and the examples are chosen so that every
 * expected target is a whole number of pages, so the asserts are exact.
 *
 * Why: every balloon and eviction decision of the policy is one of these
 * targets; a tax applied the wrong way round or a lost clamp would take
 * memory from the wrong guest with nothing else in the tree noticing.
 */
#include "engine/alloc.h"

#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1ull << 20)
#define GIB (1ull << 30)
#define PG ((uint64_t)PK_ALLOC_PAGE)

static struct pk_alloc_vm vm(uint64_t size, uint32_t shares, double f)
{
	struct pk_alloc_vm v;

	memset(&v, 0, sizeof(v));
	v.size_bytes = size;
	v.shares = shares;
	v.active_frac = f;
	return v;
}

#define ASSERT_TARGET(v, i, bytes)                                             \
	ck_assert_msg((v)[i].target_bytes == (uint64_t)(bytes),                \
		      "vm %d: target %llu bytes (%.4f MiB), expected %llu bytes " \
		      "(%.4f MiB)", (int)(i),                                  \
		      (unsigned long long)(v)[i].target_bytes,                 \
		      (double)(v)[i].target_bytes / MIB,                       \
		      (unsigned long long)(bytes), (double)(bytes) / MIB)

#define ASSERT_REL(a, b, tol)                                                  \
	ck_assert_msg(fabs((a) - (b)) <= (tol) * fabs(b),                      \
		      "%s = %.12g, expected %s = %.12g", #a, (double)(a), #b,  \
		      (double)(b))

static uint64_t sum_targets(const struct pk_alloc_vm *v, unsigned n)
{
	uint64_t s = 0;

	for (unsigned i = 0; i < n; i++)
		s += v[i].target_bytes;
	return s;
}

/* ---- targets: hand-computed examples -------------------------------- */

START_TEST(test_equal_shares)
{
	/* tau = 0, S = 1000 each, 1 GiB available, sizes 1 GiB:
	 * P = S / rho each, equal S -> equal P = 1 GiB / 2 = 512 MiB. */
	struct pk_alloc_vm v[2] = { vm(GIB, 1000, 0.5), vm(GIB, 1000, 0.5) };

	ck_assert_int_eq(pk_alloc_targets(v, 2, GIB, 0.0), 0);
	ASSERT_TARGET(v, 0, 512 * MIB);
	ASSERT_TARGET(v, 1, 512 * MIB);
	/* rho = 1000 shares / 131072 pages = 0.00762939453125 each. */
	ASSERT_REL(v[0].rho, 1000.0 / 131072, 1e-12);
	ASSERT_REL(v[1].rho, 1000.0 / 131072, 1e-12);
}
END_TEST

START_TEST(test_shares_2_to_1)
{
	/* tau = 0, S = 2000 and 1000, 768 MiB available:
	 * P_a = 2000/rho, P_b = 1000/rho, P_a + P_b = 3000/rho = 768 MiB
	 * -> rho = 3000 / 196608 pages, P_a = 512 MiB, P_b = 256 MiB. */
	struct pk_alloc_vm v[2] = { vm(GIB, 2000, 1.0), vm(GIB, 1000, 1.0) };

	ck_assert_int_eq(pk_alloc_targets(v, 2, 768 * MIB, 0.0), 0);
	ASSERT_TARGET(v, 0, 512 * MIB);
	ASSERT_TARGET(v, 1, 256 * MIB);
	ASSERT_REL(v[0].rho, v[1].rho, 1e-12);

	/* shares = 0 is the default 1000: the same split as S = 1000. */
	v[1].shares = 0;
	ck_assert_int_eq(pk_alloc_targets(v, 2, 768 * MIB, 0.0), 0);
	ASSERT_TARGET(v, 0, 512 * MIB);
	ASSERT_TARGET(v, 1, 256 * MIB);
	ASSERT_REL(v[1].rho, 1000.0 / 65536, 1e-12);
}
END_TEST

START_TEST(test_idle_tax)
{
	/* tau = 0.75 -> k = 1/(1 - 0.75) = 4.  Active VM: f = 1,
	 * c = 1 + 4*0 = 1; idle VM: f = 0, c = 0 + 4*1 = 4.  Equal S = 1000,
	 * sizes 1 GiB, 1000 MiB = 256000 pages available:
	 * P_a = S/(rho*1), P_i = S/(rho*4) = P_a/4; P_a + P_a/4 = 256000
	 * -> P_a = 204800 pages = 800 MiB, P_i = 51200 pages = 200 MiB;
	 * rho = 1000/204800 = 1000/(51200*4) = 0.0048828125. */
	struct pk_alloc_vm v[2] = { vm(GIB, 1000, 1.0), vm(GIB, 1000, 0.0) };

	ck_assert_int_eq(pk_alloc_targets(v, 2, 1000 * MIB, 0.75), 0);
	ASSERT_TARGET(v, 0, 800 * MIB);
	ASSERT_TARGET(v, 1, 200 * MIB);
	ck_assert_msg(v[1].target_bytes * 4 == v[0].target_bytes,
		      "the idle VM's target is not 1/4 of the active one's");
	ASSERT_REL(v[0].rho, 0.0048828125, 1e-12);
	ASSERT_REL(v[1].rho, 0.0048828125, 1e-12);
	ck_assert_msg(v[0].rho == pk_alloc_rho(1000, 800 * MIB, 1.0, 0.75),
		      "pk_alloc_rho disagrees with the target's rho");
	ASSERT_REL(pk_alloc_rho(1000, 200 * MIB, 0.0, 0.75), 0.0048828125,
		   1e-12);

	/* Half active: f = 0.5, c = 0.5 + 4*0.5 = 2.5 against f = 1, c = 1:
	 * P_a : P_h = 2.5 : 1, 700 MiB available -> 500 MiB and 200 MiB. */
	v[1].active_frac = 0.5;
	ck_assert_int_eq(pk_alloc_targets(v, 2, 700 * MIB, 0.75), 0);
	ASSERT_TARGET(v, 0, 500 * MIB);
	ASSERT_TARGET(v, 1, 200 * MIB);
}
END_TEST

START_TEST(test_tau0_f_no_effect)
{
	/* tau = 0 -> k = 1, c = f + 1*(1-f) = 1 for every f: the active and
	 * the idle VM split 1 GiB equally, 512 MiB each, as with equal f. */
	struct pk_alloc_vm v[2] = { vm(GIB, 1000, 1.0), vm(GIB, 1000, 0.0) };

	ck_assert_int_eq(pk_alloc_targets(v, 2, GIB, 0.0), 0);
	ASSERT_TARGET(v, 0, 512 * MIB);
	ASSERT_TARGET(v, 1, 512 * MIB);
	ASSERT_REL(v[0].rho, v[1].rho, 1e-12);
	ck_assert_msg(pk_alloc_rho(1000, GIB, 0.0, 0.0) ==
			      pk_alloc_rho(1000, GIB, 1.0, 0.0),
		      "rho depends on f at tau = 0");
}
END_TEST

START_TEST(test_min_held)
{
	/* tau = 0, three VMs of 1 GiB, S = 1000 each, 1200 MiB available:
	 * proportional 400 MiB each, but C has min 600 MiB -> C holds 600,
	 * the other 600 MiB split between A and B: 300 MiB each. */
	struct pk_alloc_vm v[3] = { vm(GIB, 1000, 1.0), vm(GIB, 1000, 1.0),
				    vm(GIB, 1000, 1.0) };

	v[2].min_bytes = 600 * MIB;
	ck_assert_int_eq(pk_alloc_targets(v, 3, 1200 * MIB, 0.0), 0);
	ASSERT_TARGET(v, 0, 300 * MIB);
	ASSERT_TARGET(v, 1, 300 * MIB);
	ASSERT_TARGET(v, 2, 600 * MIB);
	/* C held at its min has the lower rho: 1000/153600 < 1000/76800. */
	ck_assert(v[2].rho < v[0].rho);

	/* With the tax: C idle (c = 4 at tau = 0.75) and min 100 MiB, A and
	 * B active.  Unclamped: P_c = P_a/4, P_a + P_b + P_c = 2.25 P_a =
	 * 900 MiB -> P_a = 400, P_c = 100 MiB: exactly at the min.  Now
	 * min 180 MiB: C held at 180, A = B = (900 - 180)/2 = 360 MiB. */
	v[2].active_frac = 0.0;
	v[2].min_bytes = 180 * MIB;
	ck_assert_int_eq(pk_alloc_targets(v, 3, 900 * MIB, 0.75), 0);
	ASSERT_TARGET(v, 0, 360 * MIB);
	ASSERT_TARGET(v, 1, 360 * MIB);
	ASSERT_TARGET(v, 2, 180 * MIB);
}
END_TEST

START_TEST(test_max_held)
{
	/* tau = 0, three VMs of 1 GiB, S = 1000 each, 900 MiB available:
	 * proportional 300 MiB each, but A has max 100 MiB -> A holds 100,
	 * B and C split the other 800 MiB: 400 MiB each. */
	struct pk_alloc_vm v[3] = { vm(GIB, 1000, 1.0), vm(GIB, 1000, 1.0),
				    vm(GIB, 1000, 1.0) };

	v[0].max_bytes = 100 * MIB;
	ck_assert_int_eq(pk_alloc_targets(v, 3, 900 * MIB, 0.0), 0);
	ASSERT_TARGET(v, 0, 100 * MIB);
	ASSERT_TARGET(v, 1, 400 * MIB);
	ASSERT_TARGET(v, 2, 400 * MIB);
	ck_assert(v[0].rho > v[1].rho);

	/* The size caps too (max above size counts as size): A is 128 MiB
	 * with max 4 GiB, B 1 GiB: proportional 300 MiB each, A held at
	 * 128 MiB, B gets 600 - 128 = 472 MiB. */
	struct pk_alloc_vm w[2] = { vm(128 * MIB, 1000, 1.0),
				    vm(GIB, 1000, 1.0) };
	w[0].max_bytes = 4 * GIB;
	ck_assert_int_eq(pk_alloc_targets(w, 2, 600 * MIB, 0.0), 0);
	ASSERT_TARGET(w, 0, 128 * MIB);
	ASSERT_TARGET(w, 1, 472 * MIB);
}
END_TEST

START_TEST(test_all_fit)
{
	/* sum(max) = 256 + 512 + 1024 MiB = 1792 MiB <= 2 GiB available:
	 * every VM gets its max (max 0 = its size), whatever its shares/f. */
	struct pk_alloc_vm v[3] = { vm(GIB, 1000, 0.0), vm(GIB, 10, 0.0),
				    vm(GIB, 5000, 1.0) };

	v[0].max_bytes = 256 * MIB;
	v[1].max_bytes = 512 * MIB;
	ck_assert_int_eq(pk_alloc_targets(v, 3, 2 * GIB, 0.75), 0);
	ASSERT_TARGET(v, 0, 256 * MIB);
	ASSERT_TARGET(v, 1, 512 * MIB);
	ASSERT_TARGET(v, 2, GIB);
	/* Exactly sum(max) available: still all at max. */
	ck_assert_int_eq(pk_alloc_targets(v, 3, 1792 * MIB, 0.75), 0);
	ASSERT_TARGET(v, 2, GIB);
}
END_TEST

START_TEST(test_min_not_fit)
{
	/* sum(min) = 300 + 300 MiB = 600 MiB > 500 MiB available: returns 1
	 * and every VM is at its min (the third has none: 0 bytes), rho of
	 * a VM with 0 pages is +inf. */
	struct pk_alloc_vm v[3] = { vm(GIB, 1000, 1.0), vm(GIB, 1000, 0.0),
				    vm(GIB, 1000, 1.0) };

	v[0].min_bytes = 300 * MIB;
	v[1].min_bytes = 300 * MIB;
	ck_assert_int_eq(pk_alloc_targets(v, 3, 500 * MIB, 0.75), 1);
	ASSERT_TARGET(v, 0, 300 * MIB);
	ASSERT_TARGET(v, 1, 300 * MIB);
	ASSERT_TARGET(v, 2, 0);
	ck_assert(isinf(v[2].rho) && v[2].rho > 0);
	/* rho = 1000 / (76800 pages * c), c = 1 and 4. */
	ASSERT_REL(v[0].rho, 1000.0 / 76800, 1e-12);
	ASSERT_REL(v[1].rho, 1000.0 / (76800 * 4), 1e-12);
	/* Exactly sum(min) available fits: returns 0. */
	ck_assert_int_eq(pk_alloc_targets(v, 3, 600 * MIB, 0.75), 0);
	ASSERT_TARGET(v, 0, 300 * MIB);
	ASSERT_TARGET(v, 2, 0);
}
END_TEST

START_TEST(test_alignment)
{
	/* Unaligned min, max and available: min 5000 bytes rounds up to
	 * 2 pages, max 1 GiB + 100 down to 1 GiB, and 3 VMs splitting
	 * 100 MiB + 4095 bytes (25600 pages + 4095: 25600 usable pages,
	 * 8533.33 each): two get 8533 pages and one 8534, in all 25600. */
	struct pk_alloc_vm v[3] = { vm(GIB + 100, 1000, 1.0),
				    vm(GIB, 1000, 1.0), vm(GIB, 1000, 1.0) };
	uint64_t avail = 100 * MIB + 4095;

	v[0].min_bytes = 5000;
	v[0].max_bytes = GIB + 100;
	ck_assert_int_eq(pk_alloc_targets(v, 3, avail, 0.0), 0);
	for (int i = 0; i < 3; i++) {
		ck_assert_msg(v[i].target_bytes % PG == 0,
			      "vm %d: target %llu bytes is not page-aligned", i,
			      (unsigned long long)v[i].target_bytes);
		ck_assert_msg(v[i].target_bytes / PG == 8533 ||
				      v[i].target_bytes / PG == 8534,
			      "vm %d: %llu pages, expected 8533 or 8534", i,
			      (unsigned long long)(v[i].target_bytes / PG));
	}
	ck_assert_uint_eq(sum_targets(v, 3), 25600 * PG);

	/* Tiny: 1 page available and min 5000 bytes (2 pages) -> short. */
	ck_assert_int_eq(pk_alloc_targets(v, 3, PG, 0.0), 1);
	ASSERT_TARGET(v, 0, 2 * PG);
	/* All at max: the max is floored to whole pages, 1 GiB. */
	ck_assert_int_eq(pk_alloc_targets(v, 3, 4 * GIB, 0.0), 0);
	ASSERT_TARGET(v, 0, GIB);
}
END_TEST

/* xorshift64*: a fixed sequence, no global state. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1Dull;
}

static double rnd01(uint64_t *s)
{
	return (double)(rnd(s) >> 11) / 9007199254740992.0;
}

static double c_of(double f, double tau)
{
	return f + (1.0 - f) / (1.0 - tau);
}

START_TEST(test_random_properties)
{
	uint64_t seed = 0x5eed15a110cull;
	unsigned runs = 0, short_runs = 0;

	for (int iter = 0; iter < 3000; iter++) {
		struct pk_alloc_vm v[8];
		unsigned n = 1 + rnd(&seed) % 8;
		double tau = (rnd(&seed) % 2) ? 0.75 : rnd01(&seed) * 0.99;
		uint64_t sum_hi = 0, sum_lo = 0, avail, sum;
		int rc;

		for (unsigned i = 0; i < n; i++) {
			uint64_t size = (1 + rnd(&seed) % 4096) * MIB +
					rnd(&seed) % PG;

			v[i] = vm(size, (uint32_t)(rnd(&seed) % 4000),
				  rnd(&seed) % 4 ? rnd01(&seed)
						 : (double)(rnd(&seed) % 2));
			if (rnd(&seed) % 3 == 0)
				v[i].min_bytes = rnd(&seed) % (size / 2);
			if (rnd(&seed) % 3 == 0)
				v[i].max_bytes = v[i].min_bytes +
						 rnd(&seed) % size + PG;
			{
				uint64_t mx = v[i].max_bytes &&
						      v[i].max_bytes < size
						      ? v[i].max_bytes : size;
				sum_hi += mx / PG;
				sum_lo += (v[i].min_bytes + PG - 1) / PG;
			}
		}
		avail = (uint64_t)(rnd01(&seed) * 1.2 * (double)sum_hi * PG);
		rc = pk_alloc_targets(v, n, avail, tau);
		ck_assert_msg(rc == 0 || rc == 1, "iteration %d: rc %d", iter,
			      rc);
		ck_assert_int_eq(rc, sum_lo > avail / PG);
		sum = sum_targets(v, n);
		for (unsigned i = 0; i < n; i++) {
			uint64_t size = v[i].size_bytes;
			uint64_t mx = v[i].max_bytes && v[i].max_bytes < size
					      ? v[i].max_bytes : size;

			ck_assert_msg(v[i].target_bytes % PG == 0,
				      "iteration %d vm %u: unaligned target",
				      iter, i);
			ck_assert_msg(v[i].target_bytes >= v[i].min_bytes &&
					      v[i].target_bytes <= mx,
				      "iteration %d vm %u: target %llu outside "
				      "[min %llu, max %llu]", iter, i,
				      (unsigned long long)v[i].target_bytes,
				      (unsigned long long)v[i].min_bytes,
				      (unsigned long long)mx);
		}
		if (rc == 1) {
			short_runs++;
			continue;
		}
		runs++;
		ck_assert_msg(sum <= avail, "iteration %d: sum %llu > available "
			      "%llu bytes", iter, (unsigned long long)sum,
			      (unsigned long long)avail);
		if (sum_hi > avail / PG)
			ck_assert_msg(sum / PG + n >= avail / PG,
				      "iteration %d: sum %llu pages, available "
				      "%llu pages, more than %u pages apart",
				      iter, (unsigned long long)(sum / PG),
				      (unsigned long long)(avail / PG), n);
		/* The fixed point of min-funding revocation, to one page:
		 * a VM that could give (above min) has, one page lighter,
		 * at least the rho of a VM that could take (below max) one
		 * page heavier. */
		for (unsigned i = 0; i < n; i++) {
			uint64_t pi = v[i].target_bytes / PG;
			uint64_t loi = (v[i].min_bytes + PG - 1) / PG;
			double si = v[i].shares ? v[i].shares : 1000;

			if (pi <= loi || pi < 2)
				continue;
			for (unsigned j = 0; j < n; j++) {
				uint64_t size = v[j].size_bytes;
				uint64_t mx = v[j].max_bytes &&
						      v[j].max_bytes < size
						      ? v[j].max_bytes : size;
				uint64_t pj = v[j].target_bytes / PG;
				double sj = v[j].shares ? v[j].shares : 1000;
				double ri, rj;

				if (j == i || pj >= mx / PG)
					continue;
				ri = si / ((double)(pi - 1) *
					   c_of(v[i].active_frac, tau));
				rj = sj / ((double)(pj + 1) *
					   c_of(v[j].active_frac, tau));
				ck_assert_msg(ri >= rj * (1 - 1e-9),
					      "iteration %d: vm %u (rho %.9g at "
					      "%llu pages) gives before vm %u "
					      "(rho %.9g at %llu pages) is full",
					      iter, i, v[i].rho,
					      (unsigned long long)pi, j, v[j].rho,
					      (unsigned long long)pj);
			}
		}
	}
	/* The generator must have exercised both outcomes. */
	ck_assert_uint_gt(runs, 1000);
	ck_assert_uint_gt(short_runs, 10);
}
END_TEST

START_TEST(test_bad_input)
{
	struct pk_alloc_vm v[2] = { vm(GIB, 1000, 1.0), vm(GIB, 1000, 0.0) };
	const uint64_t poison = 12345;

#define REJECT(tau)                                                            \
	do {                                                                   \
		v[0].target_bytes = v[1].target_bytes = poison;                \
		ck_assert_int_eq(pk_alloc_targets(v, 2, GIB, (tau)), -EINVAL); \
		ck_assert_msg(v[0].target_bytes == poison &&                   \
				      v[1].target_bytes == poison,             \
			      "a rejected call wrote targets");                \
	} while (0)

	REJECT(1.0);
	REJECT(-0.01);
	REJECT(NAN);
	REJECT(INFINITY);
	v[1].min_bytes = 200 * MIB; /* min > max */
	v[1].max_bytes = 100 * MIB;
	REJECT(0.75);
	v[1].max_bytes = 0; /* min > size (max 0 = size) */
	v[1].min_bytes = 2 * GIB;
	REJECT(0.75);
	v[1].min_bytes = 5000; /* min <= max, but no whole page between */
	v[1].max_bytes = 6000;
	REJECT(0.75);
	v[1].min_bytes = v[1].max_bytes = 0;
	v[1].active_frac = 1.5;
	REJECT(0.75);
	v[1].active_frac = -0.1;
	REJECT(0.75);
	v[1].active_frac = NAN;
	REJECT(0.75);
	v[1].active_frac = 0.5;
	v[1].size_bytes = 0;
	REJECT(0.75);
	v[1].size_bytes = GIB;
	ck_assert_int_eq(pk_alloc_targets(NULL, 2, GIB, 0.75), -EINVAL);
	/* Valid edge cases: no VMs; min == max == size. */
	ck_assert_int_eq(pk_alloc_targets(NULL, 0, GIB, 0.75), 0);
	v[1].min_bytes = v[1].max_bytes = GIB;
	ck_assert_int_eq(pk_alloc_targets(v, 2, GIB + 512 * MIB, 0.75), 0);
	ASSERT_TARGET(v, 1, GIB);
	ASSERT_TARGET(v, 0, 512 * MIB);
	ck_assert(isnan(pk_alloc_rho(1000, GIB, 2.0, 0.75)));
	ck_assert(isnan(pk_alloc_rho(1000, GIB, 1.0, 1.0)));
#undef REJECT
}
END_TEST

/* ---- the active-memory estimate ------------------------------------- */

#define ASSERT_FRAC(a, want)                                                   \
	ck_assert_msg(pk_active_frac(a) == (want),                             \
		      "active fraction %.17g, expected %.17g (slow %.17g, "    \
		      "fast %.17g, last %.17g)", pk_active_frac(a),            \
		      (double)(want), (a)->slow, (a)->fast, (a)->last)

START_TEST(test_active_init_constant)
{
	struct pk_active_est a;
	double prev;

	/* Unsampled: 1.0, no periods. */
	pk_active_init(&a);
	ASSERT_FRAC(&a, 1.0);
	ck_assert_uint_eq(a.periods, 0);
	/* sampled == 0 is no information: nothing changes. */
	pk_active_add(&a, 0, 0);
	ASSERT_FRAC(&a, 1.0);
	ck_assert_uint_eq(a.periods, 0);

	/* The first period replaces the assumption: 30/100 -> 0.3, and a
	 * constant 0.3 stays exactly 0.3 (x += alpha * (0.3 - 0.3)). */
	pk_active_add(&a, 30, 100);
	ASSERT_FRAC(&a, 0.3);
	for (int i = 0; i < 50; i++)
		pk_active_add(&a, 30, 100);
	ASSERT_FRAC(&a, 0.3);
	ck_assert_uint_eq(a.periods, 51);

	/* From 1.0 (100/100) to a constant 25/100: the estimate is the slow
	 * average, 0.25 + 0.75 * (7/8)^n, falling every period, never below
	 * 0.25, and within 1e-5 of it after 100 periods (0.75 * (7/8)^100
	 * = 1.2e-6). */
	pk_active_init(&a);
	pk_active_add(&a, 100, 100);
	prev = pk_active_frac(&a);
	ck_assert(prev == 1.0);
	for (int i = 1; i <= 100; i++) {
		double f;

		pk_active_add(&a, 25, 100);
		f = pk_active_frac(&a);
		ck_assert_msg(f < prev && f >= 0.25,
			      "period %d: %.17g after %.17g", i, f, prev);
		prev = f;
	}
	ck_assert_msg(fabs(prev - 0.25) < 1e-5, "after 100 periods: %.17g",
		      prev);
	/* touched > sampled counts as all touched. */
	pk_active_add(&a, 200, 100);
	ASSERT_FRAC(&a, 1.0);
}
END_TEST

START_TEST(test_active_rise_fall)
{
	struct pk_active_est a;

	/* Steady at 0.125 (exact in binary). */
	pk_active_init(&a);
	for (int i = 0; i < 20; i++)
		pk_active_add(&a, 1, 8);
	ASSERT_FRAC(&a, 0.125);

	/* Rise to 7/8 = 0.875: followed within one period (max rule: the
	 * period's own value), though fast = 0.125 + (0.875-0.125)/2 = 0.5
	 * and slow = 0.125 + (0.875-0.125)/8 = 0.21875. */
	pk_active_add(&a, 7, 8);
	ASSERT_FRAC(&a, 0.875);
	ck_assert(a.fast == 0.5 && a.slow == 0.21875);
	/* Next period at 0.875 again: last 0.875 still the max; fast is
	 * 0.5 + (0.875-0.5)/2 = 0.6875, slow 0.21875 + (0.875-0.21875)/8
	 * = 0.21875 + 0.08203125 = 0.30078125. */
	pk_active_add(&a, 7, 8);
	ASSERT_FRAC(&a, 0.875);
	ck_assert(a.fast == 0.6875 && a.slow == 0.30078125);

	/* Fall: from steady 1.0 to 0 touched.  last = 0, fast halves
	 * (0.5, 0.25, 0.125), slow loses 1/8 a period: the estimate is
	 * slow = (7/8)^n: 0.875, 0.765625, 0.669921875, 0.586181640625. */
	pk_active_init(&a);
	for (int i = 0; i < 5; i++)
		pk_active_add(&a, 100, 100);
	ASSERT_FRAC(&a, 1.0);
	pk_active_add(&a, 0, 100);
	ASSERT_FRAC(&a, 0.875);
	ck_assert(a.fast == 0.5 && a.last == 0.0);
	pk_active_add(&a, 0, 100);
	ASSERT_FRAC(&a, 0.765625);
	pk_active_add(&a, 0, 100);
	ASSERT_FRAC(&a, 0.669921875);
	pk_active_add(&a, 0, 100);
	ASSERT_FRAC(&a, 0.586181640625);
	/* A rise in the middle of the fall is followed at once. */
	pk_active_add(&a, 100, 100);
	ASSERT_FRAC(&a, 1.0);
}
END_TEST

/* ---- the step rule -------------------------------------------------- */

/* Walk from cur to goal: every step moves toward goal, never past it,
 * by at most max_step; ends within the deadband (a step returning cur).
 * Returns the number of steps. */
static int walk(uint64_t cur, uint64_t goal, uint64_t size, uint64_t max_step,
		double pct, uint64_t deadband, uint64_t max_move)
{
	int steps = 0;

	for (;;) {
		uint64_t next = pk_alloc_step(cur, goal, size, max_step, pct,
					      deadband);
		uint64_t lo = cur < goal ? cur : goal;
		uint64_t hi = cur < goal ? goal : cur;
		uint64_t moved = next > cur ? next - cur : cur - next;

		ck_assert_msg(next >= lo && next <= hi,
			      "step from %llu toward %llu went to %llu: "
			      "overshoot", (unsigned long long)cur,
			      (unsigned long long)goal,
			      (unsigned long long)next);
		ck_assert_msg(moved <= max_move,
			      "step of %llu bytes, limit %llu",
			      (unsigned long long)moved,
			      (unsigned long long)max_move);
		if (next == cur)
			break;
		cur = next;
		ck_assert_int_lt(++steps, 100000);
	}
	ck_assert_msg((goal > cur ? goal - cur : cur - goal) < deadband ||
			      cur == goal,
		      "stopped %llu bytes from goal, deadband %llu",
		      (unsigned long long)(goal > cur ? goal - cur : cur - goal),
		      (unsigned long long)deadband);
	return steps;
}

START_TEST(test_step_mom)
{
	/* MoM: 5% of the guest a cycle, skip moves under 0.25%.  1 GiB:
	 * 5% = 53687091.2 bytes -> 13107 whole pages = 53686272 bytes;
	 * deadband 1 GiB / 400 = 2684354 bytes (2.56 MiB). */
	const uint64_t size = GIB, step = 13107 * PG, db = GIB / 400;

	/* Down (inflate the balloon) and up (deflate), one full step. */
	ck_assert_uint_eq(pk_alloc_step(GIB, 512 * MIB, size, 0, 5.0, db),
			  GIB - step);
	ck_assert_uint_eq(pk_alloc_step(512 * MIB, GIB, size, 0, 5.0, db),
			  512 * MIB + step);
	/* Closer than a step: straight to the goal, no overshoot. */
	ck_assert_uint_eq(pk_alloc_step(GIB, GIB - 40 * MIB, size, 0, 5.0, db),
			  GIB - 40 * MIB);
	ck_assert_uint_eq(pk_alloc_step(GIB - 40 * MIB, GIB, size, 0, 5.0, db),
			  GIB);
	/* Inside the deadband (2 MiB < 2.56 MiB): no move; 3 MiB: moves. */
	ck_assert_uint_eq(pk_alloc_step(GIB, GIB - 2 * MIB, size, 0, 5.0, db),
			  GIB);
	ck_assert_uint_eq(pk_alloc_step(GIB - 2 * MIB, GIB, size, 0, 5.0, db),
			  GIB - 2 * MIB);
	ck_assert_uint_eq(pk_alloc_step(GIB, GIB - 3 * MIB, size, 0, 5.0, db),
			  GIB - 3 * MIB);
	ck_assert_uint_eq(pk_alloc_step(GIB, GIB, size, 0, 5.0, db), GIB);
	/* 1 GiB -> 512 MiB: 536870912 / 53686272 = 10.0002: ten steps,
	 * the last 8192 bytes are inside the deadband. */
	ck_assert_int_eq(walk(GIB, 512 * MIB, size, 0, 5.0, db, step), 10);
	ck_assert_int_eq(walk(512 * MIB, GIB, size, 0, 5.0, db, step), 10);
}
END_TEST

START_TEST(test_step_proxmox)
{
	/* Proxmox: at most 100 MiB a round, goals under 10 MiB ignored.
	 * An 8 GiB guest. */
	const uint64_t size = 8 * GIB, st = 100 * MIB, db = 10 * MIB;

	ck_assert_uint_eq(pk_alloc_step(8 * GIB, 4 * GIB, size, st, 0, db),
			  8 * GIB - 100 * MIB);
	ck_assert_uint_eq(pk_alloc_step(4 * GIB, 8 * GIB, size, st, 0, db),
			  4 * GIB + 100 * MIB);
	/* 50 MiB away: there in one step, both directions. */
	ck_assert_uint_eq(pk_alloc_step(4 * GIB, 4 * GIB - 50 * MIB, size, st,
					0, db), 4 * GIB - 50 * MIB);
	ck_assert_uint_eq(pk_alloc_step(4 * GIB, 4 * GIB + 50 * MIB, size, st,
					0, db), 4 * GIB + 50 * MIB);
	/* 9 MiB: skipped; exactly 10 MiB: made. */
	ck_assert_uint_eq(pk_alloc_step(4 * GIB, 4 * GIB + 9 * MIB, size, st,
					0, db), 4 * GIB);
	ck_assert_uint_eq(pk_alloc_step(4 * GIB, 4 * GIB - 9 * MIB, size, st,
					0, db), 4 * GIB);
	ck_assert_uint_eq(pk_alloc_step(4 * GIB, 4 * GIB + 10 * MIB, size, st,
					0, db), 4 * GIB + 10 * MIB);
	/* 4 GiB = 40.96 steps of 100 MiB: 41 steps, both directions. */
	ck_assert_int_eq(walk(8 * GIB, 4 * GIB, size, st, 0, db, st), 41);
	ck_assert_int_eq(walk(4 * GIB, 8 * GIB, size, st, 0, db, st), 41);
	/* Both limits (the policy's 100 MiB and 5%): on 1 GiB, 5% wins. */
	ck_assert_uint_eq(pk_alloc_step(GIB, 0, GIB, st, 5.0, db),
			  GIB - 13107 * PG);
	/* No limits: straight to the goal. */
	ck_assert_uint_eq(pk_alloc_step(GIB, 0, GIB, 0, 0, 0), 0);
	ck_assert_uint_eq(pk_alloc_step(GIB, 0, GIB, 0, NAN, 0), 0);
}
END_TEST

START_TEST(test_step_random)
{
	uint64_t seed = 0xba11007ull;

	for (int i = 0; i < 300; i++) {
		uint64_t size = (1 + rnd(&seed) % 16384) * MIB;
		uint64_t cur = rnd(&seed) % (size + 1);
		uint64_t goal = rnd(&seed) % (size + 1);
		uint64_t st = (rnd(&seed) % 2) ? (1 + rnd(&seed) % 200) * MIB : 0;
		double pct = (rnd(&seed) % 2) ? 0.5 + rnd01(&seed) * 20 : 0;
		uint64_t db = rnd(&seed) % (20 * MIB);
		uint64_t lim = st ? st : UINT64_MAX;

		if (pct > 0 && (double)size * pct / 100 < (double)lim)
			lim = (uint64_t)((double)size * pct / 100);
		if (lim < PG)
			lim = PG;
		walk(cur, goal, size, st, pct, db, lim);
	}
}
END_TEST

static Suite *alloc_suite(void)
{
	Suite *s = suite_create("alloc");
	TCase *tc = tcase_create("targets");

	tcase_add_test(tc, test_equal_shares);
	tcase_add_test(tc, test_shares_2_to_1);
	tcase_add_test(tc, test_idle_tax);
	tcase_add_test(tc, test_tau0_f_no_effect);
	tcase_add_test(tc, test_min_held);
	tcase_add_test(tc, test_max_held);
	tcase_add_test(tc, test_all_fit);
	tcase_add_test(tc, test_min_not_fit);
	tcase_add_test(tc, test_alignment);
	tcase_add_test(tc, test_random_properties);
	tcase_add_test(tc, test_bad_input);
	suite_add_tcase(s, tc);

	tc = tcase_create("active");
	tcase_add_test(tc, test_active_init_constant);
	tcase_add_test(tc, test_active_rise_fall);
	suite_add_tcase(s, tc);

	tc = tcase_create("step");
	tcase_add_test(tc, test_step_mom);
	tcase_add_test(tc, test_step_proxmox);
	tcase_add_test(tc, test_step_random);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(alloc_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
