/*
 * bench_swap.c - pk-bench-swap: host swapping, pagekeeperd vs the floor
 * vs the kernel, eviction bandwidth vs fio, sequential swap-in with and
 * without pagekeeperd's readahead, and a daemon restart, in one run.
 *
 * What: A. swap-in fault latency (p50, p90, p99, p99.9, max) of random
 * single-page reads of pages that are out, served by (1) a private
 * pagekeeperd after a RECLAIM of the whole memfd region, (2) a minimal
 * cross-process uffd handler that preads each page O_DIRECT from a file
 * (the floor), (3) the kernel's own swap-in from a swap file, in a child
 * memory cgroup whose swap cache was dropped (the anchor).  Goals:
 * pagekeeperd p50 - floor p50 <= 2 µs; pagekeeperd p99 / kernel p99 <= 1.
 * B. eviction bandwidth: a RECLAIM of a fully resident region against
 * fio's sequential O_DIRECT writes of the same size (4 KiB QD64, 1 MiB
 * QD8).  Goals: pagekeeperd >= 0.80x fio 4k and >= 0.80x fio 1M (the
 * disk's large-write bandwidth).  The daemons' CPU time (/proc, all
 * threads) from request to reply is printed per GiB evicted, and as a
 * share of one CPU at the median rate: near 100 % means the eviction is
 * CPU-bound and other load on the CPUs slows it.  In A and B, pk-volatile (a
 * second pagekeeperd with --volatile-state: VM records and canonical
 * copies in its memory) is the anchor of what the durable state costs:
 * durable / volatile ratios, no goal.
 * C. sequential swap-in (seq_part.c): a whole evicted region read in
 * address order, pagekeeperd with --swap-readahead 1 against its default
 * readahead, the kernel and the floor; sweep time, MiB/s, µs per page and
 * pagekeeperd's swapins / swapins_readahead counters.  No goal.
 * D. daemon restart (restart_part.c): a lab guest (pk-guestsim) whose
 * --evict-size RAM is swapped out whole; pagekeeperd SIGKILLed or
 * SIGTERMed and started again on the same dirs: times until it answers,
 * until the guest is adopted, and the guest's swap-ins after it, against
 * the same guest without a restart.  No goal.
 * How: all files (the daemons' state dirs and swap files, the floor's
 * source, the kernel's swap file, fio's file) live in one temp dir under
 * --dir, so every variant uses the same file system.  Parts A and B share
 * two private pagekeeperds, the default and pk-volatile (--swap-size
 * passed as an extra argument, see daemon_proc.h); they are stopped
 * before C and D, which run their own.  Variants alternate in rounds
 * with a rotating order, each on fresh memory with new unique content,
 * and every touched page is checked.  Helpers die at exit and on
 * signals (cleanup.c); the swap file, cgroup and temp dir are undone by
 * a guardian process even if we are killed (sys_guard.c).
 * Why: absolute times on this host are noisy (FACTS.md); only a same-run
 * comparison says whether pagekeeperd's host swapping is good enough, and
 * whether its readahead helps a sequential reader.
 */
#include "tools/common/size_parse.h"
#include "bench_mem.h"
#include "cleanup.h"
#include "daemon_proc.h"
#include "fio_run.h"
#include "guest_proc.h"
#include "kswap.h"
#include "swap_parts.h"
#include "sys_guard.h"
#include "timing.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STALL_TIMEOUT_S 60

static void usage(FILE *out)
{
	fprintf(out,
		"usage: pk-bench-swap [options]   (as root)\n"
		"Parts, in one run, each side by side with its anchor, ratios printed:\n"
		"  A. random swap-in latency: pagekeeperd, pk-volatile (the same daemon with\n"
		"     --volatile-state: the anchor of the durable state's cost), an O_DIRECT\n"
		"     userfaultfd floor, kernel swap;\n"
		"  B. eviction bandwidth: pagekeeperd, pk-volatile, fio;\n"
		"  C. sequential swap-in: pagekeeperd readahead off / on, kernel, floor;\n"
		"  D. restart: a pk-guestsim guest of --evict-size RAM swapped out whole,\n"
		"     pagekeeperd SIGKILLed or SIGTERMed and started again on the same\n"
		"     --state-dir and --run-dir: ms until it answers STATUS and until the guest\n"
		"     is adopted, then the guest's first swap-in and full verify, against the\n"
		"     same guest without a restart and the daemon's cold start.\n"
		"Options:\n"
		"  --size SIZE        latency region per variant, K/M/G suffix (default 256M)\n"
		"  --pages N          random page reads per variant per round (default 20000)\n"
		"  --rounds N         interleaved rounds of parts A, B and C (default 3)\n"
		"  --evict-size SIZE  bandwidth region and fio size, part D's guest RAM\n"
		"                     (default 1G)\n"
		"  --seq-size SIZE    sequential swap-in region per variant (default 256M)\n"
		"  --restart-rounds N interleaved rounds of part D (default 1)\n"
		"  --dir DIR          file system to test: the temp dir goes there (default .)\n"
		"  --only PART        latency (A), bandwidth (B), seq (C) or restart (D)\n"
		"                     (default: all four)\n"
		"  --min-out PCT      kernel variants: fail when fewer than PCT %% of its pages\n"
		"                     are out of RAM and swap cache after the drop (default 95)\n"
		"  --daemon PATH      pagekeeperd binary (default: ../pagekeeperd next to\n"
		"                     this binary's directory)\n"
		"  --guestsim PATH    part D's lab guest (default: ../guestsim/pk-guestsim)\n"
		"  --seed N           seed of the touch order and content (default 1)\n"
		"  --json             print one JSON object instead of text\n"
		"Needs: root, mkswap and swapon (util-linux), a memory cgroup, fio (package fio);\n"
		"part D needs pk-guestsim only.\n");
}

static int parse_size(const char *s, size_t *out)
{
	uint64_t v;

	if (pk_size_parse(s, &v) || v < BENCH_PAGE || v > (1ull << 40))
		return -EINVAL;
	*out = (size_t)(v & ~(uint64_t)(BENCH_PAGE - 1));
	return 0;
}

static int parse_num(const char *s, double max, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_options(int argc, char **argv, struct swap_opts *o)
{
	enum { O_SIZE = 1000, O_PAGES, O_ROUNDS, O_EVICT, O_SEQ, O_DIR, O_ONLY, O_MIN_OUT,
	       O_DAEMON, O_SEED, O_JSON, O_HELP, O_RESTART_ROUNDS, O_GUESTSIM };
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, O_SIZE },
		{ "pages", required_argument, NULL, O_PAGES },
		{ "rounds", required_argument, NULL, O_ROUNDS },
		{ "evict-size", required_argument, NULL, O_EVICT },
		{ "seq-size", required_argument, NULL, O_SEQ },
		{ "dir", required_argument, NULL, O_DIR },
		{ "only", required_argument, NULL, O_ONLY },
		{ "min-out", required_argument, NULL, O_MIN_OUT },
		{ "daemon", required_argument, NULL, O_DAEMON },
		{ "seed", required_argument, NULL, O_SEED },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, O_HELP },
		{ "restart-rounds", required_argument, NULL, O_RESTART_ROUNDS },
		{ "guestsim", required_argument, NULL, O_GUESTSIM },
		{ NULL, 0, NULL, 0 },
	};
	double v;
	int c;

	*o = (struct swap_opts){ .size_bytes = 256ul << 20, .pages = 20000,
				 .evict_bytes = 1ul << 30, .seq_bytes = 256ul << 20,
				 .rounds = 3, .restart_rounds = 1, .seed = 1,
				 .min_out_pct = 95, .dir = "." };
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_SIZE:
			if (parse_size(optarg, &o->size_bytes) < 0)
				goto bad;
			break;
		case O_PAGES:
			if (parse_num(optarg, 1u << 28, &v) < 0 || v != (size_t)v)
				goto bad;
			o->pages = (size_t)v;
			break;
		case O_ROUNDS:
			if (parse_num(optarg, SWAP_MAX_ROUNDS, &v) < 0 || v != (unsigned)v)
				goto bad;
			o->rounds = (unsigned)v;
			break;
		case O_EVICT:
			if (parse_size(optarg, &o->evict_bytes) < 0)
				goto bad;
			break;
		case O_SEQ:
			if (parse_size(optarg, &o->seq_bytes) < 0)
				goto bad;
			break;
		case O_DIR: o->dir = optarg; break;
		case O_ONLY:
			if (strcmp(optarg, "latency") && strcmp(optarg, "bandwidth") &&
			    strcmp(optarg, "seq") && strcmp(optarg, "restart"))
				goto bad;
			o->only = optarg;
			break;
		case O_MIN_OUT:
			if (parse_num(optarg, 100, &v) < 0)
				goto bad;
			o->min_out_pct = v;
			break;
		case O_DAEMON: o->daemon = optarg; break;
		case O_SEED:
			if (parse_num(optarg, 1e15, &v) < 0 || v != (uint64_t)v)
				goto bad;
			o->seed = (uint64_t)v;
			break;
		case O_JSON: o->json = true; break;
		case O_RESTART_ROUNDS:
			if (parse_num(optarg, SWAP_MAX_ROUNDS, &v) < 0 || v != (unsigned)v)
				goto bad;
			o->restart_rounds = (unsigned)v;
			break;
		case O_GUESTSIM: o->guestsim = optarg; break;
		case O_HELP: case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pk-bench-swap: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (o->pages > o->size_bytes / BENCH_PAGE) {
		fprintf(stderr, "pk-bench-swap: --pages %zu exceeds the %zu pages of --size\n",
			o->pages, o->size_bytes / BENCH_PAGE);
		return -EINVAL;
	}
	return 0;
bad:
	fprintf(stderr, "pk-bench-swap: bad value '%s' for --%s\n", optarg,
		longopts[c - O_SIZE].name);
	return -EINVAL;
}

/* Fail before spending minutes: every tool and right the run needs. */
static int preflight(const struct swap_opts *o, bool kernel, bool bw, const char *exe,
		     const char *guestsim, struct kswap *ks, char *fio, size_t fio_len,
		     char *err, size_t err_len)
{
	int r;

	if (access(exe, X_OK) < 0) {
		r = -errno;
		snprintf(err, err_len, "daemon %.600s: %s (build it, or pass --daemon PATH)", exe,
			 strerror(errno));
		return r;
	}
	if (guestsim && access(guestsim, X_OK) < 0) {
		r = -errno;
		snprintf(err, err_len, "pk-guestsim %.600s: %s (build it, or pass --guestsim "
			 "PATH)", guestsim, strerror(errno));
		return r;
	}
	if (kernel && (r = kswap_check(ks, err, err_len)) < 0)
		return r;
	if (bw && (r = fio_find(fio, fio_len, err, err_len)) < 0)
		return r;
	if (access(o->dir, W_OK) < 0) {
		r = -errno;
		snprintf(err, err_len, "--dir %s: %s", o->dir, strerror(errno));
		return r;
	}
	return 0;
}

/*
 * The daemons of parts A and B, with --swap-size for the larger of them:
 * d[0] the default, d[1] pk-volatile (--volatile-state).
 */
static int start_main_daemons(const struct swap_opts *o, bool lat, bool bw, const char *exe,
			      const char *tmpdir, struct pk_daemon d[2],
			      struct swap_results *res)
{
	size_t need = lat && (!bw || o->size_bytes > o->evict_bytes) ? o->size_bytes :
								       o->evict_bytes;
	char swap[32], err[1024];

	res->daemon_swap_bytes = (need + (256ul << 20) + (1ul << 20) - 1) & ~((1ul << 20) - 1);
	snprintf(swap, sizeof(swap), "%zuM", res->daemon_swap_bytes >> 20);
	const char *const args[] = { "--swap-size", swap, "--volatile-state", NULL };
	for (int i = 0; i < 2; i++) {
		fprintf(stderr, "bench: starting private pagekeeperd %s (--swap-size %zu MiB%s, "
			"state in %s) ...\n", res->daemon_path, res->daemon_swap_bytes >> 20,
			i ? ", --volatile-state" : "", tmpdir);
		char *const a[] = { (char *)args[0], (char *)args[1], i ? (char *)args[2] : NULL,
				    NULL };
		int r = daemon_start(&d[i], exe, (const char *const *)a, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "pk-bench-swap: %s\n", err);
			if (d[i].log[0])
				daemon_log_tail(&d[i], stderr, 30);
			return r;
		}
	}
	return 0;
}

/* Parts A and B on the two main daemons, which are stopped afterwards. */
static int parts_ab(const struct swap_opts *o, bool lat, bool bw, struct swap_env *env,
		    struct kswap *ks, const char *fio, const char *tmpdir,
		    struct swap_results *res)
{
	struct pk_daemon *d[2] = { env->daemon, env->volatile_daemon };
	int ret = 0;

	if (lat)
		ret = latency_part(o, env, ks, res);
	if (ret == 0 && bw)
		ret = bandwidth_part(o, env, fio, tmpdir, res);
	for (int i = 0; i < 2; i++) {
		const char *name = i ? "pk-volatile" : "pagekeeperd";
		if (ret < 0) {
			fprintf(stderr, "bench: %s log (last lines):\n", name);
			daemon_log_tail(d[i], stderr, 30);
		} else if (!daemon_alive(d[i])) {
			fprintf(stderr, "pk-bench-swap: %s exited during the run\n", name);
			daemon_log_tail(d[i], stderr, 30);
			ret = -ECHILD;
		}
	}
	watchdog_set_daemon(env->wd, NULL);
	daemon_stop(d[0]);
	daemon_stop(d[1]);
	env->daemon = env->volatile_daemon = NULL;
	return ret;
}

int main(int argc, char **argv)
{
	static struct swap_results res;
	struct swap_opts o;
	struct kswap ks;
	static struct pk_daemon daemon[2] = { { .pid = -1 }, { .pid = -1 } };
	struct watchdog wd;
	char tmpdir[PATH_MAX], exe[PATH_MAX], fio[PATH_MAX], guestsim[PATH_MAX];
	char err[1024], src[PATH_MAX + 32];
	int ret;

	if (parse_options(argc, argv, &o) < 0)
		return 2;
	uint64_t t_start = now_ns();
	bool lat = !o.only || !strcmp(o.only, "latency");
	bool bw = !o.only || !strcmp(o.only, "bandwidth");
	bool seq = !o.only || !strcmp(o.only, "seq");
	bool rs = !o.only || !strcmp(o.only, "restart");
	if (o.guestsim)
		snprintf(guestsim, sizeof(guestsim), "%s", o.guestsim);
	else if (rs && (ret = guest_default_path(guestsim, sizeof(guestsim))) < 0) {
		fprintf(stderr, "pk-bench-swap: /proc/self/exe: %s\n", strerror(-ret));
		return 1;
	}
	if (o.daemon)
		snprintf(exe, sizeof(exe), "%s", o.daemon);
	else if ((ret = daemon_default_path(exe, sizeof(exe))) < 0) {
		fprintf(stderr, "pk-bench-swap: /proc/self/exe: %s\n", strerror(-ret));
		return 1;
	}
	memset(&ks, 0, sizeof(ks));
	if (preflight(&o, lat || seq, bw, exe, rs ? guestsim : NULL, &ks, fio, sizeof(fio), err,
		      sizeof(err)) < 0) {
		fprintf(stderr, "pk-bench-swap: %s\n", err);
		return 1;
	}
	cleanup_install();
	if (guard_start(err, sizeof(err)) < 0) {
		fprintf(stderr, "pk-bench-swap: cleanup guardian: %s\n", err);
		return 1;
	}
	char tmpl[PATH_MAX];
	snprintf(tmpl, sizeof(tmpl), "%s/pk-bench-swap-XXXXXX", o.dir);
	if (!mkdtemp(tmpl) || !realpath(tmpl, tmpdir)) {
		fprintf(stderr, "pk-bench-swap: mkdtemp in %s: %s\n", o.dir, strerror(errno));
		return 1;
	}
	guard_tmpdir(tmpdir);
	setenv("TMPDIR", tmpdir, 1); /* the daemons' state dirs go there */
	res.latency = lat;
	res.bandwidth = bw;
	res.seq = seq;
	res.restart = rs;
	snprintf(res.guestsim_path, sizeof(res.guestsim_path), "%s", rs ? guestsim : "");
	res.size_bytes = o.size_bytes;
	res.pages = o.pages;
	res.evict_bytes = o.evict_bytes;
	res.rounds = o.rounds;
	res.seed = o.seed;
	res.cpus = sysconf(_SC_NPROCESSORS_ONLN);
	res.timer_overhead_ns = timer_overhead_ns();
	if (!realpath(o.dir, res.dir))
		snprintf(res.dir, sizeof(res.dir), "%s", o.dir);
	if (!realpath(exe, res.daemon_path))
		snprintf(res.daemon_path, sizeof(res.daemon_path), "%s", exe);

	if ((lat || bw) && start_main_daemons(&o, lat, bw, exe, tmpdir, daemon, &res) < 0)
		return 1;
	if ((ret = watchdog_start(&wd, STALL_TIMEOUT_S, lat || bw ? &daemon[0] : NULL)) < 0) {
		fprintf(stderr, "pk-bench-swap: watchdog thread: %s\n", strerror(-ret));
		return 1;
	}
	snprintf(src, sizeof(src), "%s/floor.src", tmpdir);
	struct swap_env env = { .daemon = lat || bw ? &daemon[0] : NULL,
				.volatile_daemon = lat || bw ? &daemon[1] : NULL, .wd = &wd,
				.floor_src = src };

	ret = 0;
	if (lat || seq) {
		char desc[4200];
		size_t big = (lat ? o.size_bytes : 0) > (seq ? o.seq_bytes : 0) ? o.size_bytes :
										 o.seq_bytes;
		size_t swap_bytes = big + (64ul << 20);
		snprintf(res.memcg, sizeof(res.memcg), "%s",
			 memcg_describe(&ks.cg, desc, sizeof(desc)));
		fprintf(stderr, "bench: kernel swap file %s/kswap.swap, %zu MiB, active only "
			"during kernel rounds; memory cgroup: %s\n", tmpdir, swap_bytes >> 20,
			res.memcg);
		ret = kswap_setup(&ks, tmpdir, swap_bytes, err, sizeof(err));
		if (ret < 0)
			fprintf(stderr, "pk-bench-swap: kernel swap file: %s\n", err);
		res.other_swaps = ks.other_swaps;
	}
	if (ret == 0 && (lat || bw))
		ret = parts_ab(&o, lat, bw, &env, &ks, fio, tmpdir, &res);
	else if (lat || bw)
		daemon_stop(&daemon[0]), daemon_stop(&daemon[1]);
	if (ret == 0 && seq)
		ret = seq_part(&o, &env, &ks, exe, &res);
	if (lat || seq) {
		int r2 = kswap_teardown(&ks);
		if (ret == 0 && r2 < 0) {
			fprintf(stderr, "pk-bench-swap: swapoff/remove of the kernel swap file "
				"failed: %s\n", strerror(-r2));
			ret = r2;
		}
	}
	if (ret == 0 && rs)
		ret = restart_part(&o, exe, guestsim, &res);
	watchdog_stop(&wd);
	int r3 = guard_finish();
	if (ret < 0)
		return 1;
	if (r3 < 0) {
		fprintf(stderr, "pk-bench-swap: cleanup failed: %s\n", strerror(-r3));
		return 1;
	}
	res.run_s = (double)(now_ns() - t_start) / 1e9;
	if (o.json)
		swap_report_json(&res, stdout);
	else
		swap_report_text(&res, stdout);
	return 0;
}
