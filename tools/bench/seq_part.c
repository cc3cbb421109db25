/*
 * seq_part.c - part C of pk-bench-swap: sequential swap-in, pagekeeperd's
 * readahead off and on, against the kernel and the floor.
 *
 * What: each round, four variants each read one word of every page of a
 * fresh --seq-size region in address order, the whole sweep timed, every
 * page's content checked afterwards: pagekeeperd with --swap-readahead 1
 * (off) and with its default readahead, after a RECLAIM that evicted the
 * whole region (pages_swapped must equal the page count, and mincore must
 * show no page resident); the kernel after MADV_PAGEOUT and a swap-cache
 * drop (kswap.c, its own readahead: page-cluster / VMA readahead); the
 * floor, one O_DIRECT pread per fault (file_floor.c).  For pagekeeperd
 * the VM's swapins and swapins_readahead counters come from STATUS.
 * How: two private pagekeeperds, each in its own temp dir with its own
 * socket and the same --swap-size, run for the whole part (the idle one
 * holds no VM) and are stopped at its end, on every path; the default's
 * effective readahead is read from its log line "swap readahead N pages".
 * The variant order rotates every round; all variants of a round hold
 * the same content, every round new content.  Per variant the median of
 * the rounds' sweep times is kept.
 * Why: readahead can only be judged by a same-run comparison with it
 * switched off, and against the kernel's own sequential swap-in.
 */
#include "bench_mem.h"
#include "swap_parts.h"
#include "timing.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define SEQ_SWAP_MARGIN (256ul << 20)

static uint64_t seq_seed(uint64_t seed, unsigned round)
{
	return seed * 0x100000001b3ull + 200 + round + 1;
}

/* The integer in a /proc or /sys file ("true"/"false" count as 1/0), or -1. */
static int read_setting(const char *path)
{
	FILE *f = fopen(path, "r");
	char buf[32] = "";
	int v = -1;

	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f)) {
		if (!strncmp(buf, "true", 4))
			v = 1;
		else if (!strncmp(buf, "false", 5))
			v = 0;
		else if (sscanf(buf, "%d", &v) != 1)
			v = -1;
	}
	fclose(f);
	return v;
}

/* d[0]: --swap-readahead 1, d[1]: the default.  0 or -errno (reported). */
static int start_daemons(const struct swap_opts *o, const char *exe, struct pk_daemon d[2],
			 struct swap_results *res)
{
	char swap[32], err[1024];

	snprintf(swap, sizeof(swap), "%zuM", (o->seq_bytes + SEQ_SWAP_MARGIN + (1ul << 20) - 1) >> 20);
	const char *const off[] = { "--swap-size", swap, "--swap-readahead", "1", NULL };
	const char *const on[] = { "--swap-size", swap, NULL };
	const char *const *args[2] = { off, on };

	for (int i = 0; i < 2; i++) {
		fprintf(stderr, "bench: starting private pagekeeperd %s (%s) for part C ...\n",
			res->daemon_path, i ? "default readahead" : "--swap-readahead 1");
		int r = daemon_start(&d[i], exe, args[i], err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "pk-bench-swap: %s\n", err);
			if (d[i].log[0])
				daemon_log_tail(&d[i], stderr, 30);
			return r;
		}
		snprintf(res->seq_daemon_args[i], sizeof(res->seq_daemon_args[i]), "%s", d[i].args);
		if (daemon_log_uint(&d[i], "swap readahead ", 2000, &res->seq_readahead[i]) < 0) {
			res->seq_readahead[i] = 0;
			fprintf(stderr, "bench: warning: no \"swap readahead N pages\" line in %s\n",
				d[i].log);
		}
		fprintf(stderr, "bench:   pid %d, state in %s, %s, swap readahead %u pages "
			"(from its log; 0: unknown)\n", (int)d[i].pid, d[i].dir, d[i].args,
			res->seq_readahead[i]);
	}
	if (res->seq_readahead[0] > 1)
		fprintf(stderr, "bench: warning: the daemon started with --swap-readahead 1 "
			"logs a readahead of %u pages\n", res->seq_readahead[0]);
	return 0;
}

static int run_pk(struct swap_env *env, struct pk_daemon *d, size_t pages, uint64_t seed,
		  struct seq_result *x, uint64_t *ns, struct swap_results *res, char *err,
		  size_t err_len)
{
	struct swap_env e = *env;
	struct reclaim_result rr;
	struct vm_swap_counters c;

	e.daemon = d;
	watchdog_set_daemon(env->wd, d);
	int r = pk_seq_round(&e, pages, seed, ns, &rr, &c, err, err_len);
	env->vm_seq = e.vm_seq;
	if (r < 0)
		return r;
	x->swapins[x->rounds] = c.swapins;
	x->swapins_ra[x->rounds] = c.swapins_readahead;
	x->reclaim_mib_s[x->rounds] = rr.elapsed_us ? (double)rr.pages_swapped * BENCH_PAGE /
				      (1 << 20) / ((double)rr.elapsed_us / 1e6) : 0;
	if (c.direct_io >= 0)
		res->seq_direct_io = c.direct_io;
	fprintf(stderr, "bench:   evicted at %.0f MiB/s (daemon's elapsed_us); swapins %llu "
		"pages, of which read ahead %llu pages\n", x->reclaim_mib_s[x->rounds],
		(unsigned long long)c.swapins, (unsigned long long)c.swapins_readahead);
	return 0;
}

static int run_variant(const struct swap_opts *o, struct swap_env *env, struct pk_daemon d[2],
		       struct kswap *ks, struct swap_results *res, int v, unsigned r, char *err,
		       size_t err_len)
{
	size_t pages = o->seq_bytes / BENCH_PAGE;
	uint64_t seed = seq_seed(o->seed, r), ns = 0;
	struct seq_result *x = &res->sq[v];
	struct kswap_round_info ki;
	int ret;

	switch (v) {
	case SV_RA_OFF:
	case SV_RA_ON:
		ret = run_pk(env, &d[v == SV_RA_ON], pages, seed, x, &ns, res, err, err_len);
		break;
	case SV_KERNEL:
		ret = kswap_round(ks, 200 + r, pages, NULL, 0, seed, o->min_out_pct, NULL, &ki,
				  err, err_len);
		if (ret < 0)
			break;
		ns = ki.seq_ns;
		if (ki.out_after_drop < res->seq_kernel_out_min)
			res->seq_kernel_out_min = ki.out_after_drop;
		fprintf(stderr, "bench:   kernel: %zu of %zu pages out after the drop, VmSwap "
			"%ld KiB, pageout %.0f ms, drop %.0f ms\n", ki.out_after_drop, pages,
			ki.vmswap_kib, ki.pageout_ms, ki.drop_ms);
		break;
	default:
		ret = floor_seq_round(env, pages, seed, &ns, err, err_len);
		break;
	}
	if (ret < 0)
		return ret;
	x->ms[x->rounds++] = (double)ns / 1e6;
	return 0;
}

int seq_part(const struct swap_opts *o, struct swap_env *env, struct kswap *ks,
	     const char *exe, struct swap_results *res)
{
	struct pk_daemon d[2] = { { .pid = -1 }, { .pid = -1 } };
	size_t pages = o->seq_bytes / BENCH_PAGE;
	double mib = (double)o->seq_bytes / (1 << 20);
	char err[1024];
	int ret;

	res->seq_bytes = o->seq_bytes;
	res->seq_direct_io = -1;
	res->seq_kernel_out_min = SIZE_MAX;
	res->page_cluster = read_setting("/proc/sys/vm/page-cluster");
	res->vma_ra = read_setting("/sys/kernel/mm/swap/vma_ra_enabled");
	if ((ret = start_daemons(o, exe, d, res)) < 0)
		goto out;
	for (unsigned r = 0; r < o->rounds; r++) {
		for (int k = 0; k < SV_COUNT; k++) {
			int v = (int)((r + (unsigned)k) % SV_COUNT);
			struct seq_result *x = &res->sq[v];
			fprintf(stderr, "bench: sequential round %u/%u: %s: %.0f MiB region, one "
				"read per page in address order ...\n", r + 1, o->rounds,
				seq_variant_name(v), mib);
			ret = run_variant(o, env, d, ks, res, v, r, err, sizeof(err));
			if (ret < 0) {
				fprintf(stderr, "pk-bench-swap: %s sequential swap-in, round %u: "
					"%s\n", seq_variant_name(v), r + 1, err);
				if (v == SV_RA_OFF || v == SV_RA_ON) {
					fprintf(stderr, "bench: its pagekeeperd's log (last lines):\n");
					daemon_log_tail(&d[v == SV_RA_ON], stderr, 30);
				}
				goto out;
			}
			double ms = x->ms[x->rounds - 1];
			fprintf(stderr, "bench:   %s: %.1f ms, %.1f MiB/s, %.2f µs per page\n",
				seq_variant_name(v), ms, mib / (ms / 1e3), ms * 1e3 / (double)pages);
		}
	}
	for (int i = 0; i < 2; i++) {
		if (!daemon_alive(&d[i])) {
			fprintf(stderr, "pk-bench-swap: pagekeeperd %s exited during part C\n",
				d[i].args);
			daemon_log_tail(&d[i], stderr, 30);
			ret = -ECHILD;
			goto out;
		}
	}
	for (int v = 0; v < SV_COUNT; v++) {
		struct seq_result *x = &res->sq[v];
		double tmp[SWAP_MAX_ROUNDS];
		memcpy(tmp, x->ms, x->rounds * sizeof(double));
		x->median_ms = median_double(tmp, x->rounds);
		x->ran = true;
	}
	ret = 0;
out:
	watchdog_set_daemon(env->wd, NULL);
	daemon_stop(&d[0]);
	daemon_stop(&d[1]);
	return ret;
}
