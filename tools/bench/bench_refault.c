/*
 * bench_refault.c - pk-bench-refault: refault latency of pages the
 * daemon's sharing scanner took away, pagekeeperd against a bare
 * userfaultfd round trip, in one run.
 *
 * What: for two kinds of page, the latency of single-page random
 * refaults, one-word reads and one-word writes alternating (p50, p90,
 * p99, p99.9, max):
 *   zero   - pages populated but left all zeros, reclaimed by a private
 *            pagekeeperd's scanner (state ZERO, refault UFFDIO_ZEROPAGE),
 *            against the floor answering each fault with UFFDIO_ZEROPAGE;
 *   shared - pages whose content occurs twice in the region, merged by
 *            the scanner into canonical copies (state SHARED, refault
 *            UFFDIO_COPY from the copy), against the floor answering each
 *            fault with UFFDIO_COPY from a prepared source buffer.
 * Goal (the issue): pagekeeperd p50 and p99 <= 1.2x the floor's, per kind.
 * How: a private pagekeeperd (--scan-rate, default 4G, and no swap file)
 * and the minimal cross-process floor handler (floor_handler.c, zero and
 * copy modes) serve fresh memfd regions filled the same way; the daemon's
 * rounds wait (polling STATUS, progress on stderr, timeout) until its VM
 * reports the region reclaimed; the floor's region is emptied by a hole
 * punch.  Variants alternate in rounds with a rotating order; every
 * touched page is checked.  A kind that cannot be measured (shared pages
 * on a daemon that does not merge yet) is reported as such, the other is
 * still measured, and the exit status is 1.  Helpers die at exit and on
 * signals (cleanup.c); the daemon's temp dir goes with it.
 * Why: absolute times on this host are noisy (FACTS.md); only a same-run
 * comparison says whether a refault through pagekeeperd costs more than
 * the userfaultfd round trip every refault has to pay anyway.
 */
#include "tools/common/size_parse.h"
#include "bench_mem.h"
#include "cleanup.h"
#include "daemon_proc.h"
#include "floor_handler.h"
#include "refault_parts.h"
#include "timing.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STALL_TIMEOUT_S 30
#define MAX_REGION (16ull << 30)

static void usage(FILE *out)
{
	fprintf(out,
		"usage: pk-bench-refault [options]\n"
		"  --size SIZE          region per variant per round, K/M/G suffix (default 64M)\n"
		"  --pages N            random reads and as many writes per variant per round\n"
		"                       (default 4000; 2N must not exceed the region's pages)\n"
		"  --rounds N           interleaved rounds per page kind (default 5, at most %d)\n"
		"  --scan-rate RATE     pagekeeperd's --scan-rate, bytes/s, K/M/G (default 4G)\n"
		"  --only KIND          zero or shared (default: both)\n"
		"  --min-reclaimed PCT  touch once PCT %% of the region is reclaimed (default 99)\n"
		"  --wait-timeout SEC   longest wait for the scanner per round (default:\n"
		"                       30 s + 4 passes of the region at the scan rate)\n"
		"  --daemon PATH        pagekeeperd binary (default: ../pagekeeperd next to\n"
		"                       this binary's directory)\n"
		"  --seed N             seed of the touch order and content (default 1)\n"
		"  --json               print one JSON object instead of text\n"
		"Exit status: 0 all measured, 1 a kind could not be measured or a run\n"
		"error, 2 bad options.\n", RF_MAX_ROUNDS);
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

static int parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v;

	if (pk_size_parse(s, &v) || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Checks that need more than one option; 0 or -EINVAL with a message. */
static int check_options(struct refault_opts *o)
{
	size_t npages = o->size_bytes / BENCH_PAGE;

	if (npages < 2 * o->pages) {
		fprintf(stderr, "pk-bench-refault: --pages %zu needs %zu pages out of the "
			"region, but --size has only %zu pages (%zu MiB)\n", o->pages,
			2 * o->pages, npages, o->size_bytes >> 20);
		return -EINVAL;
	}
	if (npages * o->min_pct / 100 < 2.0 * (double)o->pages) {
		fprintf(stderr, "pk-bench-refault: with --min-reclaimed %.0f only %.0f of the "
			"region's %zu pages must be out, fewer than the %zu touches\n",
			o->min_pct, (double)npages * o->min_pct / 100, npages, 2 * o->pages);
		return -EINVAL;
	}
	return 0;
}

static int parse_options(int argc, char **argv, struct refault_opts *o)
{
	enum { O_SIZE = 1000, O_PAGES, O_ROUNDS, O_SCAN_RATE, O_ONLY, O_MIN_RECLAIMED,
	       O_WAIT_TIMEOUT, O_DAEMON, O_SEED, O_JSON, O_HELP };
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, O_SIZE },
		{ "pages", required_argument, NULL, O_PAGES },
		{ "rounds", required_argument, NULL, O_ROUNDS },
		{ "scan-rate", required_argument, NULL, O_SCAN_RATE },
		{ "only", required_argument, NULL, O_ONLY },
		{ "min-reclaimed", required_argument, NULL, O_MIN_RECLAIMED },
		{ "wait-timeout", required_argument, NULL, O_WAIT_TIMEOUT },
		{ "daemon", required_argument, NULL, O_DAEMON },
		{ "seed", required_argument, NULL, O_SEED },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t sz;
	double v;
	int c;

	*o = (struct refault_opts){ .size_bytes = 64ul << 20, .pages = 4000, .rounds = 5,
				    .seed = 1, .scan_rate = "4G", .min_pct = 99 };
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_SIZE:
			if (parse_size(optarg, 4 * BENCH_PAGE, MAX_REGION, &sz) < 0)
				goto bad;
			/* whole pairs of pages, for the shared kind's twins */
			o->size_bytes = (size_t)(sz & ~(uint64_t)(2 * BENCH_PAGE - 1));
			break;
		case O_PAGES:
			if (parse_num(optarg, 1u << 28, &v) < 0 || v != (size_t)v)
				goto bad;
			o->pages = (size_t)v;
			break;
		case O_ROUNDS:
			if (parse_num(optarg, RF_MAX_ROUNDS, &v) < 0 || v != (unsigned)v)
				goto bad;
			o->rounds = (unsigned)v;
			break;
		case O_SCAN_RATE:
			/* 0 would turn the scanner off: nothing would ever be reclaimed */
			if (parse_size(optarg, 1ull << 20, 1ull << 40, &sz) < 0) {
				fprintf(stderr, "pk-bench-refault: bad value '%s' for --scan-rate: "
					"want bytes per second from 1M to 1T, like 4G\n", optarg);
				return -EINVAL;
			}
			o->scan_rate = optarg;
			break;
		case O_ONLY:
			if (strcmp(optarg, "zero") && strcmp(optarg, "shared"))
				goto bad;
			o->only = optarg;
			break;
		case O_MIN_RECLAIMED:
			if (parse_num(optarg, 100, &v) < 0)
				goto bad;
			o->min_pct = v;
			break;
		case O_WAIT_TIMEOUT:
			if (parse_num(optarg, 86400, &v) < 0)
				goto bad;
			o->wait_timeout_s = v;
			break;
		case O_DAEMON: o->daemon = optarg; break;
		case O_SEED:
			if (parse_num(optarg, 1e15, &v) < 0 || v != (uint64_t)v)
				goto bad;
			o->seed = (uint64_t)v;
			break;
		case O_JSON: o->json = true; break;
		case O_HELP: case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pk-bench-refault: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	return check_options(o);
bad:
	fprintf(stderr, "pk-bench-refault: bad value '%s' for --%s (see --help)\n", optarg,
		longopts[c - O_SIZE].name);
	return -EINVAL;
}

/* 30 s plus four passes of the region at the scan rate. */
static double default_wait_s(const struct refault_opts *o)
{
	uint64_t rate = 0;

	pk_size_parse(o->scan_rate, &rate);
	return 30.0 + 4.0 * (double)o->size_bytes / (double)(rate ? rate : 1);
}

static int start_daemon(const struct refault_opts *o, struct pk_daemon *d,
			struct refault_results *res)
{
	const char *const args[] = { "--scan-rate", o->scan_rate, "--swap-size", "0", NULL };
	char exe[PATH_MAX], err[1024];
	int r;

	if (o->daemon)
		snprintf(exe, sizeof(exe), "%s", o->daemon);
	else if ((r = daemon_default_path(exe, sizeof(exe))) < 0) {
		fprintf(stderr, "pk-bench-refault: /proc/self/exe: %s\n", strerror(-r));
		return r;
	}
	fprintf(stderr, "bench: starting private pagekeeperd %s --scan-rate %s "
		"--swap-size 0 ...\n", exe, o->scan_rate);
	if ((r = daemon_start(d, exe, args, err, sizeof(err))) < 0) {
		fprintf(stderr, "pk-bench-refault: %s\n", err);
		if (d->log[0])
			daemon_log_tail(d, stderr, 30);
		return r;
	}
	snprintf(res->daemon_path, sizeof(res->daemon_path), "%s", d->exe);
	snprintf(res->daemon_args, sizeof(res->daemon_args), "%s", d->args);
	return 0;
}

static void fill_config(const struct refault_opts *o, struct refault_results *res)
{
	res->size_bytes = o->size_bytes;
	res->pages = o->pages;
	res->rounds = o->rounds;
	res->seed = o->seed;
	snprintf(res->scan_rate, sizeof(res->scan_rate), "%s", o->scan_rate);
	res->min_pct = o->min_pct;
	res->wait_timeout_s = o->wait_timeout_s;
	res->cpus = sysconf(_SC_NPROCESSORS_ONLN);
	res->timer_overhead_ns = timer_overhead_ns();
	for (int k = 0; k < KIND_COUNT; k++)
		res->kind[k].wanted = !o->only || !strcmp(o->only, kind_name((enum page_kind)k));
}

int main(int argc, char **argv)
{
	static struct refault_results res;
	struct refault_opts o;
	struct floor_handler floor;
	struct pk_daemon daemon = { .pid = -1 };
	struct watchdog wd;
	char err[1024];
	int ret, failed = 0;

	if (parse_options(argc, argv, &o) < 0)
		return 2;
	uint64_t t_start = now_ns();
	if (!o.wait_timeout_s)
		o.wait_timeout_s = default_wait_s(&o);
	fill_config(&o, &res);
	cleanup_install();

	/* The floor first: forked before any guest memory exists. */
	size_t contents = kind_contents(o.size_bytes / BENCH_PAGE);
	if (floor_start_src(&floor, false, res.kind[KIND_SHARED].wanted ? contents : 1, err,
			    sizeof(err)) < 0) {
		fprintf(stderr, "pk-bench-refault: floor handler: %s\n", err);
		return 1;
	}
	res.uffd_via_dev = floor.via_dev;
	if (start_daemon(&o, &daemon, &res) < 0)
		return 1;
	if ((ret = watchdog_start(&wd, STALL_TIMEOUT_S, &daemon)) < 0) {
		fprintf(stderr, "pk-bench-refault: watchdog thread: %s\n", strerror(-ret));
		return 1;
	}
	struct refault_env env = { .daemon = &daemon, .floor = &floor, .wd = &wd,
				   .min_pct = o.min_pct, .wait_timeout_s = o.wait_timeout_s };

	for (int k = 0; k < KIND_COUNT; k++) {
		if (!res.kind[k].wanted)
			continue;
		if (kind_part(&o, &env, (enum page_kind)k, &res) < 0)
			failed = 1;
		if (!daemon_alive(&daemon)) {
			fprintf(stderr, "pk-bench-refault: pagekeeperd exited during the run\n");
			failed = 1;
			break;
		}
	}
	for (int k = 0; k < KIND_COUNT; k++)
		if (res.kind[k].wanted && !res.kind[k].ran && !res.kind[k].why[0])
			snprintf(res.kind[k].why, sizeof(res.kind[k].why),
				 "not run: pagekeeperd exited during the run");
	if (failed) {
		fprintf(stderr, "bench: pagekeeperd log (last lines):\n");
		daemon_log_tail(&daemon, stderr, 20);
	}
	watchdog_stop(&wd);
	daemon_stop(&daemon);
	floor_stop(&floor);
	res.run_s = (double)(now_ns() - t_start) / 1e9;
	if (o.json)
		refault_report_json(&res, stdout);
	else
		refault_report_text(&res, stdout);
	return failed;
}
