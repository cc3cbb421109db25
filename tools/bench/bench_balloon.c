/*
 * bench_balloon.c - pk-bench-balloon: what the balloon costs a lab guest,
 * with and without pagekeeperd, and where a locked guest's balloon stalls.
 *
 * What: a lab guest with an operating system (pk-guestsim --balloon: its
 * own page file, read and written with O_DIRECT; zipf accesses over its
 * working set; --ops of fixed work) at balloon targets of 0%, 25% and 50%
 * of its RAM: its page-ins per second and its run-time stretch (run time
 * / its run time at 0% in the same round), (1) with no daemon, the balloon
 * set by this process through the balloon bridge's lab driver, (2) with
 * its RAM served by a private pagekeeperd whose lab driver sets the
 * balloon (a BALLOON request, as `pagekeeper balloon VM --target SIZE`
 * sends).  (3) The same guest with --locked F (default 0.8) through
 * pagekeeperd: where its balloon settles, whether it stalled, the shortfall
 * in MiB (the guest's figure and the daemon's balloon_shortfall_mib).
 * How: balloon_part.c runs every variant and target on a fresh guest each
 * round (the order rotates per round), balloon_report.c prints medians.
 * The private pagekeeperd (daemon_proc.c), the guests (guest_proc.c) and
 * the temp dir under --dir (page files, sockets, the daemon's state) are
 * torn down at exit, on ^C/SIGTERM and by the watchdog (cleanup.c); the
 * temp dir is removed by the guardian process even if we are SIGKILLed
 * (sys_guard.c).  Progress goes to stderr, the table to stdout.
 * Why: issue 14's "Done when" asks for the guest's page-in rate and
 * stretch at these targets and the locked guest's shortfall; every figure
 * the README shows must come from a command in the tree.
 */
#include "tools/common/size_parse.h"
#include "balloon_part.h"
#include "balloon_results.h"
#include "cleanup.h"
#include "daemon_proc.h"
#include "guest_proc.h"
#include "sys_guard.h"
#include "timing.h"
#include "watchdog.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STALL_TIMEOUT_S 120	/* the main thread polls far more often */
#define DAEMON_SWAP "64M"	/* nothing is RECLAIMed: the swap file stays empty */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: pk-bench-balloon [options]   (as root)\n"
		"A lab guest with an OS (pk-guestsim --balloon, page file on --dir) at balloon\n"
		"targets of 0%%, 25%% and 50%% of its RAM, in one run:\n"
		"  no daemon:                the guest alone, its balloon set by this program\n"
		"                            through the lab balloon protocol;\n"
		"  pagekeeperd + lab driver: its RAM served by a private pagekeeperd, the\n"
		"                            balloon set by a BALLOON request (as `pagekeeper\n"
		"                            balloon VM --target SIZE`);\n"
		"  locked guest:             the same with --locked F: where its balloon\n"
		"                            stalls, and the shortfall in MiB.\n"
		"Printed: page-ins/s and run-time stretch (run time / the same guest's run\n"
		"time at 0%% in the same round), medians over the rounds.\n"
		"Options:\n"
		"  --ram SIZE          guest RAM, K/M/G suffix (default 64M; at least 4M)\n"
		"  --working-set SIZE  the application's working set (default 48M)\n"
		"  --ops N             accesses per run, the fixed work (default 2000000)\n"
		"  --rounds N          rounds, each variant and target once (default 3, at\n"
		"                      most %d)\n"
		"  --locked F          the locked guest's locked fraction (default 0.8)\n"
		"  --quick             small sizes for a smoke test: --ram 16M --working-set\n"
		"                      12M --ops 100000 --rounds 1 (options given win)\n"
		"  --dir DIR           where the temp dir goes: page files, sockets, the\n"
		"                      daemon's state (default .); a disk file system, as\n"
		"                      on tmpfs the guests' \"disk\" would be memory\n"
		"  --daemon PATH       pagekeeperd (default: ../pagekeeperd from this binary)\n"
		"  --guestsim PATH     pk-guestsim (default: ../guestsim/pk-guestsim)\n"
		"  --seed N            content and access seed (default 1)\n"
		"  --json              one JSON object instead of the table\n"
		"Takes about 3 minutes with the defaults on 2 vCPUs; --quick about 5 s.\n",
		BAL_MAX_ROUNDS);
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v == 0 || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_size(const char *s, size_t *out)
{
	uint64_t v;

	if (pk_size_parse(s, &v) || v < 4096 || v > (1ull << 40) || v % 4096)
		return -EINVAL;
	*out = (size_t)v;
	return 0;
}

static int parse_options(int argc, char **argv, struct bal_opts *o)
{
	enum { O_RAM = 1000, O_WS, O_OPS, O_ROUNDS, O_LOCKED, O_QUICK, O_DIR, O_DAEMON,
	       O_GUESTSIM, O_SEED, O_JSON, O_HELP };
	static const struct option longopts[] = {
		{ "ram", required_argument, NULL, O_RAM },
		{ "working-set", required_argument, NULL, O_WS },
		{ "ops", required_argument, NULL, O_OPS },
		{ "rounds", required_argument, NULL, O_ROUNDS },
		{ "locked", required_argument, NULL, O_LOCKED },
		{ "quick", no_argument, NULL, O_QUICK },
		{ "dir", required_argument, NULL, O_DIR },
		{ "daemon", required_argument, NULL, O_DAEMON },
		{ "guestsim", required_argument, NULL, O_GUESTSIM },
		{ "seed", required_argument, NULL, O_SEED },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	bool set_ram = false, set_ws = false, set_ops = false, set_rounds = false;
	uint64_t v;
	char *end;
	int c;

	*o = (struct bal_opts){ .ram_bytes = 64u << 20, .ws_bytes = 48u << 20, .ops = 2000000,
				.rounds = 3, .locked = 0.8, .seed = 1, .dir = "." };
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_RAM:
			if (parse_size(optarg, &o->ram_bytes) < 0 || o->ram_bytes < (4u << 20))
				goto bad;
			set_ram = true;
			break;
		case O_WS:
			if (parse_size(optarg, &o->ws_bytes) < 0)
				goto bad;
			set_ws = true;
			break;
		case O_OPS:
			if (parse_u64(optarg, 1ull << 40, &o->ops) < 0)
				goto bad;
			set_ops = true;
			break;
		case O_ROUNDS:
			if (parse_u64(optarg, BAL_MAX_ROUNDS, &v) < 0)
				goto bad;
			o->rounds = (unsigned)v;
			set_rounds = true;
			break;
		case O_LOCKED:
			errno = 0;
			o->locked = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(o->locked > 0) || o->locked > 1)
				goto bad;
			break;
		case O_QUICK: o->quick = true; break;
		case O_DIR: o->dir = optarg; break;
		case O_DAEMON: o->daemon = optarg; break;
		case O_GUESTSIM: o->guestsim = optarg; break;
		case O_SEED:
			if (parse_u64(optarg, 1ull << 50, &o->seed) < 0)
				goto bad;
			break;
		case O_JSON: o->json = true; break;
		case O_HELP: case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pk-bench-balloon: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (o->quick) {
		if (!set_ram)
			o->ram_bytes = 16u << 20;
		if (!set_ws)
			o->ws_bytes = 12u << 20;
		if (!set_ops)
			o->ops = 100000;
		if (!set_rounds)
			o->rounds = 1;
	}
	if (o->ram_bytes % (1u << 20) || (o->ram_bytes >> 20) % 4) {
		fprintf(stderr, "pk-bench-balloon: --ram: %zu bytes is not a multiple of 4 "
			"MiB (25%% and 50%% of it must be whole MiB)\n", o->ram_bytes);
		return -EINVAL;
	}
	return 0;
bad:
	fprintf(stderr, "pk-bench-balloon: bad value '%s' for --%s (see --help)\n", optarg,
		longopts[c - O_RAM].name);
	return -EINVAL;
}

/* Every tool and right the run needs, before anything starts. */
static int preflight(const struct bal_opts *o, const char *exe, const char *guestsim,
		     char *err, size_t err_len)
{
	if (access(exe, X_OK) < 0) {
		snprintf(err, err_len, "daemon %.600s: %s (build it, or pass --daemon PATH)", exe,
			 strerror(errno));
		return -ENOENT;
	}
	if (access(guestsim, X_OK) < 0) {
		snprintf(err, err_len, "pk-guestsim %.600s: %s (build it, or pass --guestsim "
			 "PATH)", guestsim, strerror(errno));
		return -ENOENT;
	}
	if (access(o->dir, W_OK) < 0) {
		snprintf(err, err_len, "--dir %s: %s", o->dir, strerror(errno));
		return -EACCES;
	}
	return 0;
}

/* The guests' page files are O_DIRECT: the file system must allow it. */
static int check_direct(const char *tmpdir, char *err, size_t err_len)
{
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/direct.probe", tmpdir);
	int fd = open(path, O_CREAT | O_RDWR | O_DIRECT | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, err_len, "--dir: O_DIRECT files in %.600s: %s (the guests' page "
			 "files are O_DIRECT: use a disk file system)", tmpdir, strerror(errno));
		return -EINVAL;
	}
	close(fd);
	unlink(path);
	return 0;
}

int main(int argc, char **argv)
{
	static struct bal_results res;
	static struct pk_daemon daemon = { .pid = -1 };
	struct watchdog wd;
	char exe[PATH_MAX], guestsim[PATH_MAX], tmpl[PATH_MAX], tmpdir[PATH_MAX], err[1024];
	int ret;

	if (parse_options(argc, argv, &res.o) < 0)
		return 2;
	const struct bal_opts *o = &res.o;
	uint64_t t_start = now_ns();
	if (o->daemon)
		snprintf(exe, sizeof(exe), "%s", o->daemon);
	else if ((ret = daemon_default_path(exe, sizeof(exe))) < 0) {
		fprintf(stderr, "pk-bench-balloon: /proc/self/exe: %s\n", strerror(-ret));
		return 1;
	}
	if (o->guestsim)
		snprintf(guestsim, sizeof(guestsim), "%s", o->guestsim);
	else if ((ret = guest_default_path(guestsim, sizeof(guestsim))) < 0) {
		fprintf(stderr, "pk-bench-balloon: /proc/self/exe: %s\n", strerror(-ret));
		return 1;
	}
	if (preflight(o, exe, guestsim, err, sizeof(err)) < 0) {
		fprintf(stderr, "pk-bench-balloon: %s\n", err);
		return 1;
	}
	cleanup_install();
	if (guard_start(err, sizeof(err)) < 0) {
		fprintf(stderr, "pk-bench-balloon: cleanup guardian: %s\n", err);
		return 1;
	}
	guard_prog("pk-bench-balloon");
	snprintf(tmpl, sizeof(tmpl), "%s/pk-bench-balloon-XXXXXX", o->dir);
	if (!mkdtemp(tmpl) || !realpath(tmpl, tmpdir)) {
		fprintf(stderr, "pk-bench-balloon: mkdtemp in %s: %s\n", o->dir, strerror(errno));
		return 1;
	}
	guard_tmpdir(tmpdir);
	setenv("TMPDIR", tmpdir, 1); /* the daemon's state, the guests' page files */
	if (check_direct(tmpdir, err, sizeof(err)) < 0) {
		fprintf(stderr, "pk-bench-balloon: %s\n", err);
		guard_finish();
		return 1;
	}

	static const unsigned pct[BAL_NT] = { 0, 25, 50 };
	for (int t = 0; t < BAL_NT; t++) {
		res.pct[t] = pct[t];
		res.target_bytes[t] = (uint64_t)o->ram_bytes * (100 - pct[t]) / 100;
	}
	res.locked_mib = (double)(uint64_t)(o->locked * (double)(o->ws_bytes / 4096)) / 256.0;
	res.cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (!realpath(o->dir, res.dir))
		snprintf(res.dir, sizeof(res.dir), "%s", o->dir);
	if (!realpath(exe, res.daemon_path))
		snprintf(res.daemon_path, sizeof(res.daemon_path), "%s", exe);
	if (!realpath(guestsim, res.guestsim_path))
		snprintf(res.guestsim_path, sizeof(res.guestsim_path), "%s", guestsim);

	const char *const args[] = { "--swap-size", DAEMON_SWAP, NULL };
	fprintf(stderr, "bench: starting private pagekeeperd %s (state in %s) ...\n",
		res.daemon_path, tmpdir);
	if ((ret = daemon_start(&daemon, exe, args, err, sizeof(err))) < 0) {
		fprintf(stderr, "pk-bench-balloon: %s\n", err);
		if (daemon.log[0])
			daemon_log_tail(&daemon, stderr, 30);
		guard_finish();
		return 1;
	}
	snprintf(res.daemon_args, sizeof(res.daemon_args), "%s", daemon.args);
	if ((ret = watchdog_start(&wd, STALL_TIMEOUT_S, &daemon)) < 0) {
		fprintf(stderr, "pk-bench-balloon: watchdog thread: %s\n", strerror(-ret));
		daemon_stop(&daemon);
		guard_finish();
		return 1;
	}
	ret = balloon_part(&res, &daemon, &wd, guestsim, tmpdir);
	if (ret == 0 && !daemon_alive(&daemon)) {
		fprintf(stderr, "pk-bench-balloon: pagekeeperd exited during the run\n");
		daemon_log_tail(&daemon, stderr, 30);
		ret = -ECHILD;
	}
	watchdog_stop(&wd);
	daemon_stop(&daemon);
	int r3 = guard_finish();
	if (ret < 0)
		return 1;
	if (r3 < 0) {
		fprintf(stderr, "pk-bench-balloon: cleanup failed: %s\n", strerror(-r3));
		return 1;
	}
	res.run_s = (double)(now_ns() - t_start) / 1e9;
	if (o->json)
		balloon_report_json(&res, stdout);
	else
		balloon_report_text(&res, stdout);
	return 0;
}
