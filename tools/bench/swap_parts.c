/*
 * swap_parts.c - parts A and B of pk-bench-swap, interleaved in rounds.
 *
 * What/how/why: see swap_parts.h.
 */
#include "swap_parts.h"
#include "bench_mem.h"
#include "fio_run.h"
#include "timing.h"
#include "touch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t round_seed(uint64_t seed, unsigned round)
{
	return seed * 0x100000001b3ull + round + 1;
}

/* env with the daemon of a pagekeeperd variant: the default or the volatile one. */
static struct swap_env *env_of(struct swap_env *env, bool vol, struct swap_env *tmp)
{
	if (!vol) {
		watchdog_set_daemon(env->wd, env->daemon);
		return env;
	}
	*tmp = *env;
	tmp->daemon = env->volatile_daemon;
	watchdog_set_daemon(env->wd, tmp->daemon);
	return tmp;
}

static double reclaim_mib_s(const struct reclaim_result *rr)
{
	return rr->elapsed_us ? (double)rr->pages_swapped * BENCH_PAGE / (1 << 20) /
				((double)rr->elapsed_us / 1e6) : 0;
}

static int run_latency(const struct swap_opts *o, struct swap_env *env,
		       struct kswap *ks, struct swap_results *res, int v,
		       unsigned r, const uint32_t *perm, size_t n, uint64_t *lat,
		       size_t *resident, char *err, size_t err_len)
{
	size_t pages = res->region_pages;
	uint64_t seed = round_seed(o->seed, r);
	struct reclaim_result rr;
	struct kswap_round_info ki;
	int ret;

	switch (v) {
	case LV_DAEMON:
	case LV_VOLATILE: {
		struct swap_env tmp, *e = env_of(env, v == LV_VOLATILE, &tmp);
		ret = pk_swapin_round(e, pages, perm, n, seed, lat, resident, &rr, err,
				      err_len);
		env->vm_seq = e->vm_seq;
		if (ret == 0)
			(v == LV_VOLATILE ? res->volatile_reclaim_mib_s :
					    res->daemon_reclaim_mib_s)[r] = reclaim_mib_s(&rr);
		return ret;
	}
	case LV_FLOOR:
		return floor_swapin_round(env, pages, perm, n, seed, lat, resident, err,
					  err_len);
	default:
		ret = kswap_round(ks, r, pages, perm, n, seed, o->min_out_pct, lat, &ki,
				  err, err_len);
		if (ret < 0)
			return ret;
		*resident = ki.resident_before;
		fprintf(stderr, "bench:   kernel: %zu of %zu pages out after the drop, "
			"VmSwap %ld KiB, cgroup swap cache %lld KiB, pageout %.0f ms, "
			"drop %.0f ms\n", ki.out_after_drop, pages, ki.vmswap_kib,
			ki.st.swapcached_bytes < 0 ? -1 : ki.st.swapcached_bytes >> 10,
			ki.pageout_ms, ki.drop_ms);
		if (r == 0 || ki.out_after_drop < res->kernel_out_min)
			res->kernel_out_min = ki.out_after_drop;
		if (r == 0 || ki.vmswap_kib < res->kernel_vmswap_kib_min)
			res->kernel_vmswap_kib_min = ki.vmswap_kib;
		if (ki.st.swapcached_bytes > res->kernel_swapcached_max)
			res->kernel_swapcached_max = ki.st.swapcached_bytes;
		if (ki.pageout_ms > res->kernel_pageout_ms_max)
			res->kernel_pageout_ms_max = ki.pageout_ms;
		if (ki.drop_ms > res->kernel_drop_ms_max)
			res->kernel_drop_ms_max = ki.drop_ms;
		return 0;
	}
}

int latency_part(const struct swap_opts *o, struct swap_env *env, struct kswap *ks,
		 struct swap_results *res)
{
	size_t pages = o->size_bytes / BENCH_PAGE, n = o->pages;
	uint32_t *perm = malloc(pages * sizeof(*perm));
	uint64_t *lat[LV_COUNT] = { 0 };
	size_t filled[LV_COUNT] = { 0 };
	char err[1024];
	int ret = -ENOMEM;

	res->region_pages = pages;
	res->kernel_swapcached_max = -1;
	if (!perm)
		goto out;
	for (int v = 0; v < LV_COUNT; v++)
		if (!(lat[v] = malloc(n * o->rounds * sizeof(uint64_t))))
			goto out;
	for (unsigned r = 0; r < o->rounds; r++) {
		/* a full permutation of the region; its first n pages are touched */
		perm_init(perm, pages, o->seed * 1000003u + r);
		for (int k = 0; k < LV_COUNT; k++) {
			int v = (int)((r + (unsigned)k) % LV_COUNT);
			size_t resident = 0;
			fprintf(stderr, "bench: latency round %u/%u: %s: %zu MiB region, "
				"%zu random page reads ...\n", r + 1, o->rounds,
				lat_variant_name(v), o->size_bytes >> 20, n);
			ret = run_latency(o, env, ks, res, v, r, perm, n, lat[v] + filled[v],
					  &resident, err, sizeof(err));
			if (ret < 0) {
				fprintf(stderr, "pk-bench-swap: %s swap-in, round %u: %s\n",
					lat_variant_name(v), r + 1, err);
				goto out;
			}
			struct lat_result *x = &res->lat[v];
			x->round_p50_us[x->rounds++] = lat_p50_us(lat[v] + filled[v], n);
			x->resident_before += resident;
			filled[v] += n;
			fprintf(stderr, "bench:   %s: p50 %.1f µs, %zu of %zu pages were "
				"resident before their touch\n", lat_variant_name(v),
				x->round_p50_us[x->rounds - 1], resident, n);
		}
	}
	for (int v = 0; v < LV_COUNT; v++)
		lat_result_fill(lat[v], filled[v], &res->lat[v]);
	watchdog_set_daemon(env->wd, env->daemon);
	ret = 0;
out:
	free(perm);
	for (int v = 0; v < LV_COUNT; v++)
		free(lat[v]);
	return ret;
}

static double median(const double *v, unsigned n)
{
	double tmp[SWAP_MAX_ROUNDS];

	memcpy(tmp, v, n * sizeof(double));
	return median_double(tmp, n);
}

int bandwidth_part(const struct swap_opts *o, struct swap_env *env, const char *fio,
		   const char *tmpdir, struct swap_results *res)
{
	size_t pages = o->evict_bytes / BENCH_PAGE;
	char data[4200], json[4200], err[1024];
	double mib = (double)o->evict_bytes / (1 << 20);

	snprintf(data, sizeof(data), "%s/fio.dat", tmpdir);
	snprintf(json, sizeof(json), "%s/fio.json", tmpdir);
	for (unsigned r = 0; r < o->rounds; r++) {
		for (int k = 0; k < BV_COUNT; k++) {
			int v = (int)((r + (unsigned)k) % BV_COUNT);
			struct bw_result *x = &res->bw[v];
			struct reclaim_result rr;
			struct fio_result fr;
			int ret;

			fprintf(stderr, "bench: bandwidth round %u/%u: %s, %.0f MiB ...\n",
				r + 1, o->rounds, bw_variant_name(v), mib);
			if (v == BV_DAEMON || v == BV_VOLATILE) {
				struct swap_env tmp, *e = env_of(env, v == BV_VOLATILE, &tmp);
				double cpu_s = 0;
				ret = pk_evict_round(e, pages, round_seed(o->seed, 100 + r), &rr,
						     &cpu_s, err, sizeof(err));
				env->vm_seq = e->vm_seq;
				if (ret == 0 && (rr.elapsed_us == 0 || rr.wall_ns == 0)) {
					snprintf(err, sizeof(err), "RECLAIM reply has elapsed_us 0");
					ret = -EPROTO;
				}
				if (ret == 0) {
					double w = (double)rr.pages_swapped * BENCH_PAGE / (1 << 20);
					x->mib_s[x->rounds] = w / ((double)rr.elapsed_us / 1e6);
					x->wall_mib_s[x->rounds] = w / ((double)rr.wall_ns / 1e9);
					x->cpu_s_gib[x->rounds] = w > 0 ? cpu_s / (w / 1024) : 0;
				}
			} else {
				int big = v == BV_FIO_1M;
				ret = fio_seqwrite(fio, data, json, o->evict_bytes, big ? "1M" : "4k",
						   big ? 8 : 64, &fr, err, sizeof(err));
				if (ret == 0) {
					x->mib_s[x->rounds] = fr.bw_kib_s / 1024.0;
					snprintf(res->fio_version, sizeof(res->fio_version), "%s",
						 fr.version);
				}
			}
			if (ret < 0) {
				fprintf(stderr, "pk-bench-swap: %s, round %u: %s\n",
					bw_variant_name(v), r + 1, err);
				return ret;
			}
			fprintf(stderr, "bench:   %s: %.1f MiB/s\n", bw_variant_name(v),
				x->mib_s[x->rounds]);
			x->rounds++;
		}
	}
	for (int v = 0; v < BV_COUNT; v++) {
		struct bw_result *x = &res->bw[v];
		x->ran = true;
		x->median_mib_s = median(x->mib_s, x->rounds);
		if (v == BV_DAEMON || v == BV_VOLATILE) {
			x->median_wall_mib_s = median(x->wall_mib_s, x->rounds);
			x->median_cpu_s_gib = median(x->cpu_s_gib, x->rounds);
		}
	}
	watchdog_set_daemon(env->wd, env->daemon);
	return 0;
}
