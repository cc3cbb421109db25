/*
 * bench_fault.c - pk-bench-fault: first-touch fault cost, three ways.
 *
 * What: in one run, side by side, the cost of a first-touch page fault
 * served by (1) the kernel without userfaultfd, (2) a minimal
 * cross-process uffd handler (the floor), (3) a private pagekeeperd via
 * the client library; first as random single-page touches (p50/p99 per
 * touch, goal: pagekeeperd p50 <= 1.3x floor), then as a sequential sweep
 * (time, MiB/s, µs per page; goal: pagekeeperd no slower than the kernel).
 * How: the variants alternate in rounds with a rotating order, so a noisy
 * neighbour hits all three alike; each variant touches fresh memory, and
 * every touched page is checked afterwards (untimed).  Helpers are torn
 * down at exit and on signals (cleanup.c); a watchdog turns a dead or
 * stalled fault server into an error, and a pagekeeperd that dies while
 * another variant runs fails the run too (exit status 1).
 * Why: absolute times on this host are noisy (FACTS.md); only a same-run
 * comparison says whether pagekeeperd's fault path is good enough.
 */
#include "tools/common/size_parse.h"
#include "bench_mem.h"
#include "cleanup.h"
#include "daemon_proc.h"
#include "floor_handler.h"
#include "results.h"
#include "timing.h"
#include "touch.h"
#include "variants.h"
#include "watchdog.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define STALL_TIMEOUT_S 30

struct options {
	size_t pages;
	size_t seq_bytes;
	unsigned rounds;
	unsigned seq_rounds;
	bool anon, json, skip_daemon, skip_seq;
	uint64_t seed;
	const char *daemon;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: pk-bench-fault [options]\n"
		"  --pages N        random-touch samples per variant (default 20000)\n"
		"  --rounds N       interleaved rounds for the random part (default 5)\n"
		"  --seq-size SIZE  sequential region per variant, K/M/G suffix (default 1G)\n"
		"  --seq-rounds N   interleaved rounds for the sequential part (default 3)\n"
		"  --no-seq         skip the sequential part\n"
		"  --anon           private anonymous memory instead of memfd MAP_SHARED\n"
		"  --daemon PATH    pagekeeperd binary (default: ../pagekeeperd next to\n"
		"                   this binary's directory)\n"
		"  --skip-daemon    measure only kernel and floor\n"
		"  --seed N         seed of the random touch order (default 1)\n"
		"  --json           print one JSON object instead of text\n"
		"Every touched page is checked after the timed touches (one written byte,\n"
		"zeros elsewhere).  Exit status: 0 done; 1 an error, a wrong page, or\n"
		"pagekeeperd died during the run; 2 bad options; 3 a fault server died or\n"
		"stalled during its own touches (the watchdog).\n");
}

/* Benchmark sizes round up to whole pages. */
static int parse_size(const char *s, size_t *out)
{
	uint64_t v;

	if (pk_size_parse(s, &v) || v == 0 || v > (1ull << 50))
		return -EINVAL;
	*out = (size_t)((v + BENCH_PAGE - 1) & ~(uint64_t)(BENCH_PAGE - 1));
	return 0;
}

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end || v == 0 || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	enum { O_PAGES = 1000, O_ROUNDS, O_SEQ_SIZE, O_SEQ_ROUNDS, O_NO_SEQ, O_ANON,
	       O_DAEMON, O_SKIP_DAEMON, O_SEED, O_JSON, O_HELP };
	static const struct option longopts[] = {
		{ "pages", required_argument, NULL, O_PAGES },
		{ "rounds", required_argument, NULL, O_ROUNDS },
		{ "seq-size", required_argument, NULL, O_SEQ_SIZE },
		{ "seq-rounds", required_argument, NULL, O_SEQ_ROUNDS },
		{ "no-seq", no_argument, NULL, O_NO_SEQ },
		{ "anon", no_argument, NULL, O_ANON },
		{ "daemon", required_argument, NULL, O_DAEMON },
		{ "skip-daemon", no_argument, NULL, O_SKIP_DAEMON },
		{ "seed", required_argument, NULL, O_SEED },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long v;
	int c;

	*o = (struct options){ .pages = 20000, .seq_bytes = 1ul << 30, .rounds = 5,
			       .seq_rounds = 3, .seed = 1 };
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_PAGES:
			if (parse_uint(optarg, 1u << 30, &v) < 0)
				goto bad;
			o->pages = (size_t)v;
			break;
		case O_ROUNDS:
			if (parse_uint(optarg, MAX_ROUNDS, &v) < 0)
				goto bad;
			o->rounds = (unsigned)v;
			break;
		case O_SEQ_SIZE:
			if (parse_size(optarg, &o->seq_bytes) < 0)
				goto bad;
			break;
		case O_SEQ_ROUNDS:
			if (parse_uint(optarg, MAX_ROUNDS, &v) < 0)
				goto bad;
			o->seq_rounds = (unsigned)v;
			break;
		case O_NO_SEQ: o->skip_seq = true; break;
		case O_ANON: o->anon = true; break;
		case O_DAEMON: o->daemon = optarg; break;
		case O_SKIP_DAEMON: o->skip_daemon = true; break;
		case O_SEED:
			if (parse_uint(optarg, UINT64_MAX, &v) < 0)
				goto bad;
			o->seed = v;
			break;
		case O_JSON: o->json = true; break;
		case O_HELP: case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pk-bench-fault: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (o->rounds > o->pages)
		o->rounds = (unsigned)o->pages;
	return 0;
bad:
	fprintf(stderr, "pk-bench-fault: bad value '%s' for --%s\n", optarg,
		longopts[c - O_PAGES].name);
	return -EINVAL;
}

static bool variant_enabled(const struct options *o, enum variant v)
{
	return v != V_DAEMON || !o->skip_daemon;
}

/*
 * The daemon must live through the whole run.  The watchdog covers its
 * own rounds; this catches a death during a kernel or floor round (or
 * between rounds), which would otherwise leave a report of a run whose
 * daemon is gone.  0 or -ECHILD.
 */
static int daemon_check(const struct bench_env *env)
{
	if (!env->daemon || daemon_alive(env->daemon))
		return 0;
	fprintf(stderr, "pk-bench-fault: pagekeeperd (pid %d) exited during the run\n",
		(int)env->daemon->pid);
	return -ECHILD;
}

/* When the watchdog has fired it reports and exits: stay silent. */
static void wait_if_watchdog_fired(struct bench_env *env)
{
	if (__atomic_load_n(&env->wd->fired, __ATOMIC_ACQUIRE))
		for (;;)
			pause();
}

static int random_part(const struct options *o, struct bench_env *env,
		       struct bench_results *res)
{
	size_t per_round_max = (o->pages + o->rounds - 1) / o->rounds;
	uint32_t *perm = malloc(per_round_max * sizeof(*perm));
	uint64_t *lat[V_COUNT] = { 0 };
	size_t filled[V_COUNT] = { 0 };
	char err[512];
	int ret = -ENOMEM;

	if (!perm)
		goto out;
	for (int v = 0; v < V_COUNT; v++)
		if (!(lat[v] = malloc(o->pages * sizeof(uint64_t))))
			goto out;
	uint64_t *tmp = NULL;
	for (unsigned r = 0; r < o->rounds; r++) {
		size_t n = o->pages / o->rounds + (r < o->pages % o->rounds);
		perm_init(perm, n, o->seed * 1000003u + r);
		for (int k = 0; k < V_COUNT; k++) {
			enum variant v = (enum variant)((r + (unsigned)k) % V_COUNT);
			size_t present = 0;
			if (!variant_enabled(o, v))
				continue;
			fprintf(stderr, "bench: round %u/%u: %s random touch, %zu pages ...\n",
				r + 1, o->rounds, variant_name(v), n);
			ret = run_random(env, v, perm, n, lat[v] + filled[v], &present,
					 err, sizeof(err));
			if (ret < 0) {
				wait_if_watchdog_fired(env);
				fprintf(stderr, "pk-bench-fault: %s random touch: %s\n",
					variant_name(v), err);
				goto out;
			}
			struct random_result *x = &res->rnd[v];
			/* per-round p50 on a copy; the pooled sort comes later */
			free(tmp);
			tmp = malloc(n * sizeof(*tmp));
			if (!tmp) {
				ret = -ENOMEM;
				goto out;
			}
			memcpy(tmp, lat[v] + filled[v], n * sizeof(*tmp));
			struct lat_stats st;
			lat_summarize(tmp, n, &st);
			x->round_p50_us[x->rounds++] = st.p50_us;
			x->present += present;
			filled[v] += n;
			if ((ret = daemon_check(env)) < 0)
				goto out;
		}
	}
	free(tmp);
	for (int v = 0; v < V_COUNT; v++) {
		if (!variant_enabled(o, v))
			continue;
		res->rnd[v].ran = true;
		lat_summarize(lat[v], filled[v], &res->rnd[v].st);
	}
	ret = 0;
out:
	free(perm);
	for (int v = 0; v < V_COUNT; v++)
		free(lat[v]);
	return ret;
}

static int seq_part(const struct options *o, struct bench_env *env,
		    struct bench_results *res)
{
	size_t npages = o->seq_bytes / BENCH_PAGE;
	char err[512];

	for (unsigned r = 0; r < o->seq_rounds; r++) {
		for (int k = 0; k < V_COUNT; k++) {
			enum variant v = (enum variant)((r + (unsigned)k) % V_COUNT);
			uint64_t ns = 0;
			if (!variant_enabled(o, v))
				continue;
			fprintf(stderr, "bench: round %u/%u: %s sequential touch, %zu MiB ...\n",
				r + 1, o->seq_rounds, variant_name(v), o->seq_bytes >> 20);
			int ret = run_sequential(env, v, npages, &ns, err, sizeof(err));
			if (ret < 0) {
				wait_if_watchdog_fired(env);
				fprintf(stderr, "pk-bench-fault: %s sequential touch: %s\n",
					variant_name(v), err);
				return ret;
			}
			struct seq_result *x = &res->seq[v];
			x->round_ms[x->rounds++] = (double)ns / 1e6;
			if ((ret = daemon_check(env)) < 0)
				return ret;
		}
	}
	for (int v = 0; v < V_COUNT; v++) {
		struct seq_result *x = &res->seq[v];
		if (!variant_enabled(o, v))
			continue;
		double tmp[MAX_ROUNDS];
		memcpy(tmp, x->round_ms, x->rounds * sizeof(double));
		x->ran = true;
		x->ms = median_double(tmp, x->rounds);
		x->mib_s = x->ms > 0 ? (double)o->seq_bytes / (1 << 20) / (x->ms / 1e3) : 0;
		x->us_per_page = x->ms * 1e3 / (double)npages;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct options o;
	struct bench_results res;
	struct floor_handler floor;
	struct pk_daemon daemon;
	struct watchdog wd;
	char daemon_path[PATH_MAX], err[512];
	int ret;

	if (parse_options(argc, argv, &o) < 0)
		return 2;
	uint64_t t_start = now_ns();
	memset(&res, 0, sizeof(res));
	memset(&daemon, 0, sizeof(daemon));
	daemon.pid = -1;
	res.anon = o.anon;
	res.pages = o.pages;
	res.rounds = o.rounds;
	res.seq_bytes = o.seq_bytes;
	res.seq_rounds = o.seq_rounds;
	res.skip_daemon = o.skip_daemon;
	res.skip_seq = o.skip_seq;
	res.seed = o.seed;
	res.cpus = sysconf(_SC_NPROCESSORS_ONLN);

	cleanup_install();

	/* The floor handler first: forked before any guest memory exists. */
	if (floor_start(&floor, o.anon, err, sizeof(err)) < 0) {
		fprintf(stderr, "pk-bench-fault: floor handler: %s\n", err);
		return 1;
	}
	res.uffd_via_dev = floor.via_dev;

	if (!o.skip_daemon) {
		if (o.daemon) {
			snprintf(daemon_path, sizeof(daemon_path), "%s", o.daemon);
		} else if ((ret = daemon_default_path(daemon_path, sizeof(daemon_path))) < 0) {
			fprintf(stderr, "pk-bench-fault: /proc/self/exe: %s\n", strerror(-ret));
			return 1;
		}
		fprintf(stderr, "bench: starting private pagekeeperd %s ...\n", daemon_path);
		if (daemon_start(&daemon, daemon_path, NULL, err, sizeof(err)) < 0) {
			fprintf(stderr, "pk-bench-fault: %s\n", err);
			if (daemon.log[0])
				daemon_log_tail(&daemon, stderr, 30);
			return 1;
		}
		res.daemon_path = daemon.exe;
	}
	if ((ret = watchdog_start(&wd, STALL_TIMEOUT_S, o.skip_daemon ? NULL : &daemon)) < 0) {
		fprintf(stderr, "pk-bench-fault: watchdog thread: %s\n", strerror(-ret));
		return 1;
	}

	struct bench_env env = {
		.anon = o.anon,
		.floor = &floor,
		.daemon = o.skip_daemon ? NULL : &daemon,
		.wd = &wd,
	};
	res.timer_overhead_ns = timer_overhead_ns();
	if (!o.skip_daemon)
		daemon_usage(&daemon, &res.usage0);

	ret = random_part(&o, &env, &res);
	if (ret == 0 && !o.skip_seq)
		ret = seq_part(&o, &env, &res);
	if (ret == 0)
		ret = daemon_check(&env);
	if (ret < 0) {
		if (!o.skip_daemon) {
			fprintf(stderr, "bench: pagekeeperd log (last lines):\n");
			daemon_log_tail(&daemon, stderr, 30);
		}
		return 1;
	}

	if (!o.skip_daemon) {
		daemon_usage(&daemon, &res.usage);
		res.attaches = env.attaches;
		if (env.attaches) {
			res.attach_ms_avg = (double)env.attach_ns_total / env.attaches / 1e6;
			res.detach_ms_avg = (double)env.detach_ns_total / env.attaches / 1e6;
		}
		res.attach_ms_max = (double)env.attach_ns_max / 1e6;
		res.detach_ms_max = (double)env.detach_ns_max / 1e6;
	}
	watchdog_stop(&wd);
	if (!o.skip_daemon)
		daemon_stop(&daemon);
	floor_stop(&floor);

	res.run_s = (double)(now_ns() - t_start) / 1e9;
	if (o.json)
		report_json(&res, stdout);
	else
		report_text(&res, stdout);
	return 0;
}
