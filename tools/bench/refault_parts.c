/*
 * refault_parts.c - pk-bench-refault's rounds for one page kind.
 *
 * What/how/why: see refault_parts.h.
 */
#include "refault_parts.h"
#include "bench_mem.h"
#include "timing.h"
#include "touch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t round_seed(uint64_t seed, enum page_kind k, unsigned round)
{
	return seed * 0x100000001b3ull + (uint64_t)k * 1000 + round + 1;
}

/* Pool one round's figures into the kind's results. */
static void account(struct rf_kind *x, enum page_kind k, enum rf_variant v,
		    const struct round_out *ro,
		    uint64_t *const lat[ACC_COUNT], size_t per_access, size_t n)
{
	for (int a = 0; a < ACC_COUNT; a++) {
		struct lat_result *l = &x->lat[v][a];
		l->round_p50_us[l->rounds++] = lat_p50_us(lat[a], per_access);
		l->resident_before += ro->resident[a];
	}
	if (v != RV_DAEMON)
		return;
	x->wait_s[x->rounds] = ro->wait_s;
	x->reclaimed_mib[x->rounds] = k == KIND_ZERO ? ro->reclaimed.zero_mib :
						       ro->reclaimed.shared_mib;
	x->canonical_frames[x->rounds] = ro->reclaimed.canonical_frames;
	x->rounds++;
	x->daemon_faults += ro->faults;
	x->daemon_touches += n;
	x->daemon_seconds += ro->seconds;
}

int kind_part(const struct refault_opts *o, struct refault_env *env, enum page_kind k,
	      struct refault_results *res)
{
	size_t npages = o->size_bytes / BENCH_PAGE, per = o->pages, n = 2 * per;
	struct rf_kind *x = &res->kind[k];
	uint32_t *perm = malloc(npages * sizeof(*perm));
	uint64_t *pool[RV_COUNT][ACC_COUNT] = { { 0 } };
	char err[1024];
	int ret = -ENOMEM;

	if (!perm)
		goto out;
	for (int v = 0; v < RV_COUNT; v++)
		for (int a = 0; a < ACC_COUNT; a++)
			if (!(pool[v][a] = malloc(per * o->rounds * sizeof(uint64_t))))
				goto out;
	for (unsigned r = 0; r < o->rounds; r++) {
		uint64_t seed = round_seed(o->seed, k, r);
		perm_init(perm, npages, seed);
		for (int i = 0; i < RV_COUNT; i++) {
			enum rf_variant v = (enum rf_variant)((r + (unsigned)i) % RV_COUNT);
			uint64_t *lat[ACC_COUNT] = { pool[v][ACC_READ] + r * per,
						     pool[v][ACC_WRITE] + r * per };
			struct round_out ro;
			fprintf(stderr, "bench: %s pages, round %u/%u: %s: %zu MiB region, "
				"%zu reads + %zu writes of random pages ...\n", kind_name(k),
				r + 1, o->rounds, rf_variant_name(v), o->size_bytes >> 20, per,
				per);
			ret = refault_round(env, v, k, npages, perm, n, seed, lat, &ro, err,
					    sizeof(err));
			if (ret < 0) {
				snprintf(x->why, sizeof(x->why), "%s, round %u: %s",
					 rf_variant_name(v), r + 1, err);
				fprintf(stderr, "pk-bench-refault: %s pages: %s\n", kind_name(k),
					x->why);
				goto out;
			}
			account(x, k, v, &ro, lat, per, n);
			struct lat_result *lr = &x->lat[v][ACC_READ], *lw = &x->lat[v][ACC_WRITE];
			fprintf(stderr, "bench:   %s: p50 read %.1f µs, write %.1f µs; "
				"%zu of %zu touches found the page resident", rf_variant_name(v),
				lr->round_p50_us[lr->rounds - 1], lw->round_p50_us[lw->rounds - 1],
				ro.resident[ACC_READ] + ro.resident[ACC_WRITE], n);
			if (v == RV_DAEMON)
				fprintf(stderr, "; reclaimed after %.1f s; %.2f daemon faults "
					"per touch", ro.wait_s, (double)ro.faults / (double)n);
			fputc('\n', stderr);
		}
	}
	for (int v = 0; v < RV_COUNT; v++)
		for (int a = 0; a < ACC_COUNT; a++)
			lat_result_fill(pool[v][a], per * o->rounds, &x->lat[v][a]);
	x->ran = true;
	ret = 0;
out:
	free(perm);
	for (int v = 0; v < RV_COUNT; v++)
		for (int a = 0; a < ACC_COUNT; a++)
			free(pool[v][a]);
	return ret;
}
