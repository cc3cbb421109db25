/*
 * test_bench_swap.c - smoke test of pk-bench-swap, so the command that
 * prints the README's host-swapping figures cannot rot.
 *
 * What: pk-bench-swap ($PK_BENCH_SWAP) with tiny sizes (--rounds 1 --size
 * 16M --pages 500 --evict-size 32M --seq-size 16M) against this build's
 * pagekeeperd and pk-guestsim, run as a program (root: swapon, a memory
 * cgroup; fio):
 *  - json: exit 0; one JSON object with latency, bandwidth, sequential
 *    and restart.  A: every variant has its 500 samples and p50 <= p90 <=
 *    p99 <= p99.9 <= max; the kernel's pages were out.  B: pagekeeperd and
 *    pk-volatile have MiB/s and CPU s per GiB > 0, fio's medians > 0, each
 *    goal object's verdict agrees with its value and bound, the ratios are
 *    the quotients of the medians.  C: the pagekeeperd variants swapped in
 *    every page of the region (readahead off: none read ahead).  D: every
 *    variant had the whole guest swapped at the stop and a verify, the
 *    restarted ones adopted it whole.  Nothing of the run is left: no
 *    process, no file, no active swap file, no memory cgroup, no daemon
 *    run dir on /dev/shm.
 *  - table: the text has the four part headers, each variant's row with
 *    its units (µs, MiB/s, ms) and part B's CPU lines (s per GiB evicted).
 *  - interrupt: SIGINT while part A's kernel round has its swap file on
 *    and its cgroup made: exit by SIGINT, and the daemons, the guardian,
 *    the swap file (swapoff), the cgroup, the run dirs and the temp dir go.
 *  - bad_args: --only nonsense, --rounds 0, --pages above --size, an
 *    unknown option: exit 2 naming the option, nothing started.
 * Machine speed is never judged: only shape, units and the relations
 * above, which hold on any machine.
 * How: the bench runs as a child (bench_run.c) with stdout and stderr on
 * memfds, with --dir a fresh directory of its own under the build dir,
 * which names every process of the run in its command line (its temp dir,
 * the daemons' state dirs, fio's file are in it); while it runs, the
 * daemons' --run-dir values are collected from their command lines.  The
 * bench's cgroups are "pk-bench-swap-PID-rN" under the parent its stderr
 * names (memcg.c, kswap.c).  Deadlines come from the work (MiB filled,
 * evicted and read at a floor rate, daemon starts) times
 * pk_test_time_scale().
 * Why: every figure in the README is printed by a command in the tree; a
 * command no test runs breaks unseen.
 */
#include "tests/bench_run.h"
#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"

#include <check.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * The tiny run: 1 round; A: 4 variants of 16 MiB filled and evicted, 500
 * reads; B: 4 x 32 MiB written; C: 4 x 16 MiB filled, evicted and read;
 * D: 3 guests of 32 MiB filled, evicted and verified.  Budget: 20 MiB/s
 * for every MiB moved (a slow disk), 2 s per daemon start (2 for A and B,
 * 2 for C, 3 for D) and 5 s for mkswap, fio's and the guardian's starts.
 * It takes about 4 s here (ASan, root).
 */
#define SIZE_MIB 16
#define PAGES 500
#define EVICT_MIB 32
#define SEQ_MIB 16
#define WORK_MIB (4 * 2 * SIZE_MIB + 4 * EVICT_MIB + 4 * 3 * SEQ_MIB + 3 * 3 * EVICT_MIB)
#define MS_PER_MIB 50
#define DAEMON_STARTS 7
#define START_MS 2000
#define RUN_MS (WORK_MIB * MS_PER_MIB + DAEMON_STARTS * START_MS + 5000)
#define STOP_MS 10000 /* SIGTERM, 2 s grace per daemon, swapoff, the guardian's rm */
#define USAGE_MS 3000
/* interrupt: a kernel round long enough to be caught with its swap on */
#define INT_SIZE_MIB 64
#define INT_PAGES 8000
#define MAX_RUN_DIRS 16

static struct bench_prog prog = { .env = "PK_BENCH_SWAP", .name = "pk-bench-swap",
				  .prefix = "bench-swap", .stop_ms = STOP_MS };

#define STR_(x) #x
#define STR(x) STR_(x)
static const char *const tiny[] = { "--rounds", "1", "--size", STR(SIZE_MIB) "M",
				    "--pages", STR(PAGES), "--evict-size", STR(EVICT_MIB) "M",
				    "--seq-size", STR(SEQ_MIB) "M" };
#define N_TINY (sizeof(tiny) / sizeof(tiny[0]))

/* The daemons' --run-dir values seen while the bench ran (on /dev/shm). */
struct run_dirs {
	char path[MAX_RUN_DIRS][256];
	int n;
};

static void collect_run_dirs(void *arg)
{
	struct run_dirs *rd = arg;
	pid_t pids[64];
	char buf[8192];
	size_t n = bench_scratch_pids(&prog, pids, 64);

	for (size_t i = 0; i < n; i++) {
		size_t len = proc_cmdline(pids[i], buf, sizeof(buf));
		for (size_t k = 0; k + 1 < len; k += strlen(buf + k) + 1) {
			if (strcmp(buf + k, "--run-dir") || k + 10 >= len)
				continue;
			const char *d = buf + k + 10;
			int j = 0;
			while (j < rd->n && strcmp(rd->path[j], d))
				j++;
			if (j == rd->n && rd->n < MAX_RUN_DIRS)
				snprintf(rd->path[rd->n++], sizeof(rd->path[0]), "%s", d);
		}
	}
}

/* The memory cgroup the bench makes its children under, from its stderr. */
static void memcg_parent(const char *err, char *out, size_t len)
{
	const char *p = strstr(err, "child of ");
	ck_assert_msg(p, "stderr does not name the memory cgroup (\"child of\"):\n%s", err);
	p += strlen("child of ");
	size_t n = strcspn(p, " \n");
	ck_assert_uint_lt(n, len);
	memcpy(out, p, n);
	out[n] = '\0';
	ck_assert_msg(access(out, F_OK) == 0, "memory cgroup %s: %s", out, strerror(errno));
}

/* Count of the bench's (pid) cgroups "pk-bench-swap-PID-r*" under parent. */
static int bench_cgroups(const char *parent, pid_t pid)
{
	char prefix[64];
	DIR *d = opendir(parent);
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	snprintf(prefix, sizeof(prefix), "pk-bench-swap-%d-r", (int)pid);
	while ((de = readdir(d)))
		n += !strncmp(de->d_name, prefix, strlen(prefix));
	closedir(d);
	return n;
}

/* 1 when /proc/swaps lists a swap file under the scratch dir. */
static int scratch_swap_on(void)
{
	return file_has("/proc/swaps", prog.scratch);
}

/* Nothing of the run: processes, files, swap, cgroups, run dirs. */
static void expect_all_gone(const struct bench_run *r, const char *cg_parent,
			    const struct run_dirs *rd)
{
	bench_expect_nothing_left(&prog);
	ck_assert_msg(!scratch_swap_on(), "a swap file of the run is still on in /proc/swaps");
	ck_assert_msg(bench_cgroups(cg_parent, r->pid) == 0,
		      "a memory cgroup pk-bench-swap-%d-r* is left in %s", (int)r->pid, cg_parent);
	for (int i = 0; i < rd->n; i++)
		ck_assert_msg(access(rd->path[i], F_OK) < 0 && errno == ENOENT,
			      "pagekeeperd's run dir %s is still there", rd->path[i]);
}

static void start_tiny(struct bench_run *r, const char *const *more)
{
	const char *args[N_TINY + 8];
	size_t n = 0;

	for (; n < N_TINY; n++)
		args[n] = tiny[n];
	for (; *more; more++)
		args[n++] = *more;
	args[n] = NULL;
	bench_run_start(&prog, r, args);
}

/* A goal object: value, its bound under bound_key, and a verdict agreeing. */
static void check_goal(json_object *g, const char *name, const char *bound_key, bool at_least)
{
	double v = bench_num(g, "value"), b = bench_num(g, bound_key);
	const char *verdict = json_object_get_string(bench_get(g, "verdict"));
	bool met = at_least ? v >= b : v <= b;
	ck_assert_msg(!strcmp(verdict, met ? "goal met" : "goal missed"),
		      "%s: value %g, %s %g, verdict \"%s\"", name, v, bound_key, b, verdict);
}

static json_object *array_of(json_object *o, const char *key, size_t len)
{
	json_object *a = bench_get(o, key);
	ck_assert_msg(json_object_is_type(a, json_type_array) &&
			      json_object_array_length(a) == len,
		      "\"%s\" is not an array of %zu: %s", key, len, json_object_to_json_string(a));
	return a;
}

static double elem(json_object *a, size_t i)
{
	return json_object_get_double(json_object_array_get_idx(a, i));
}

static void check_latency(json_object *a)
{
	static const char *const v[] = { "pagekeeperd", "pk_volatile", "floor", "kernel" };
	static const char *const q[] = { "p50_us", "p90_us", "p99_us", "p99_9_us", "max_us" };

	for (size_t i = 0; i < 4; i++) {
		json_object *x = bench_get(a, v[i]);
		ck_assert_msg(bench_num(x, "samples") == PAGES, "latency %s: %.0f samples, want %d",
			      v[i], bench_num(x, "samples"), PAGES);
		ck_assert_msg(bench_num(x, "p50_us") > 0, "latency %s: p50 %g µs", v[i],
			      bench_num(x, "p50_us"));
		for (size_t k = 1; k < 5; k++)
			ck_assert_msg(bench_num(x, q[k - 1]) <= bench_num(x, q[k]),
				      "latency %s: %s %g > %s %g", v[i], q[k - 1],
				      bench_num(x, q[k - 1]), q[k], bench_num(x, q[k]));
		array_of(x, "round_p50_us", 1);
	}
	json_object *k = bench_get(a, "kernel_evidence");
	double pages = bench_num(k, "region_pages"), out = bench_num(k, "min_pages_out_after_drop");
	ck_assert_msg(pages == SIZE_MIB * 256 && out > 0 && out <= pages,
		      "kernel evidence: %g of %g pages out", out, pages);
	check_goal(bench_get(a, "p50_diff_pagekeeperd_minus_floor_us"), "p50 difference",
		   "goal_max_us", false);
	check_goal(bench_get(a, "p99_ratio_pagekeeperd_to_kernel"), "p99 ratio", "goal_max",
		   false);
}

static void check_bandwidth(json_object *b)
{
	static const char *const pk[] = { "pagekeeperd", "pk_volatile" };
	static const char *const fio[] = { "fio_4k_qd64", "fio_1m_qd8" };
	static const char *const ratio[] = { "ratio_pagekeeperd_to_fio_4k",
					     "ratio_pagekeeperd_to_fio_1m" };

	ck_assert_msg(json_object_get_string_len(bench_get(b, "fio_version")) > 0,
		      "bandwidth: no fio_version");
	for (int i = 0; i < 2; i++) {
		json_object *x = bench_get(b, pk[i]);
		ck_assert_msg(bench_num(x, "median_mib_per_s") > 0 &&
				      bench_num(x, "median_wall_mib_per_s") > 0 &&
				      bench_num(x, "median_cpu_s_per_gib") > 0,
			      "bandwidth %s: MiB/s, wall MiB/s and CPU s per GiB must be > 0: %s",
			      pk[i], json_object_to_json_string(x));
		array_of(x, "round_cpu_s_per_gib", 1);
		json_object *f = bench_get(b, fio[i]);
		ck_assert_msg(bench_num(f, "median_mib_per_s") > 0, "bandwidth %s: %s", fio[i],
			      json_object_to_json_string(f));
	}
	double d = bench_num(bench_get(b, pk[0]), "median_mib_per_s");
	for (int i = 0; i < 2; i++) {
		json_object *g = bench_get(b, ratio[i]);
		double f = bench_num(bench_get(b, fio[i]), "median_mib_per_s");
		check_goal(g, ratio[i], "goal_min", true);
		ck_assert_msg(fabs(bench_num(g, "value") - d / f) < 1e-6 * d / f,
			      "%s %g is not pagekeeperd %g / fio %g MiB/s", ratio[i],
			      bench_num(g, "value"), d, f);
	}
}

static void check_sequential(json_object *c)
{
	static const char *const pk[] = { "pagekeeperd_readahead_off",
					  "pagekeeperd_readahead_on" };
	static const char *const all[] = { "pagekeeperd_readahead_off",
					   "pagekeeperd_readahead_on", "kernel", "floor" };
	double pages = bench_num(c, "region_pages");

	ck_assert_msg(pages == SEQ_MIB * 256, "sequential: region_pages %g", pages);
	for (int i = 0; i < 4; i++)
		ck_assert_msg(bench_num(bench_get(c, all[i]), "median_ms") > 0,
			      "sequential %s: median_ms not > 0", all[i]);
	for (int i = 0; i < 2; i++) {
		json_object *x = bench_get(c, pk[i]);
		double in = elem(array_of(x, "round_swapins_pages", 1), 0);
		double ra = elem(array_of(x, "round_swapins_readahead_pages", 1), 0);
		ck_assert_msg(in == pages, "sequential %s: swapped in %g of the region's %g pages",
			      pk[i], in, pages);
		ck_assert_msg(i ? ra <= in : ra == 0, "sequential %s: %g of %g pages read ahead",
			      pk[i], ra, in);
	}
	double out = bench_num(bench_get(c, "kernel"), "min_pages_out_after_drop");
	ck_assert_msg(out > 0 && out <= pages, "sequential kernel: %g of %g pages out", out,
		      pages);
}

static void check_restart(json_object *d)
{
	static const char *const v[] = { "no_restart", "sigkill_start", "sigterm_start" };

	ck_assert_msg(bench_num(d, "guest_bytes") == (double)EVICT_MIB * (1 << 20),
		      "restart: guest_bytes %g", bench_num(d, "guest_bytes"));
	for (int i = 0; i < 3; i++) {
		json_object *x = bench_get(d, v[i]);
		double sw = elem(array_of(x, "round_swapped_at_stop_mib", 1), 0);
		double ver = elem(array_of(x, "round_verify_ms", 1), 0);
		ck_assert_msg(fabs(sw - EVICT_MIB) < 0.01 && ver > 0, "restart %s: %g MiB swapped "
			      "at the stop (want %d), verify %g ms", v[i], sw, EVICT_MIB, ver);
		if (i == 0)
			continue;
		double ans = elem(array_of(x, "round_status_answer_ms", 1), 0);
		double ad = elem(array_of(x, "round_adopted_ms", 1), 0);
		double am = elem(array_of(x, "round_swapped_once_adopted_mib", 1), 0);
		ck_assert_msg(ans > 0 && ad >= ans && fabs(am - EVICT_MIB) < 0.01,
			      "restart %s: STATUS answered %g ms, adopted %g ms with %g MiB", v[i],
			      ans, ad, am);
	}
}

START_TEST(json)
{
	const char *const more[] = { "--json", NULL };
	struct run_dirs rd = { .n = 0 };
	char cg[4096];
	struct bench_run r;

	bench_scratch_make(&prog);
	start_tiny(&r, more);
	bench_run_poll(&prog, &r, RUN_MS, collect_run_dirs, &rd);
	ck_assert_msg(r.status == 0, "pk-bench-swap --json exited %d; stderr:\n%s", r.status,
		      r.err);
	json_object *j = json_tokener_parse(r.out);
	ck_assert_msg(j, "stdout is not one JSON object:\n%s", r.out);
	ck_assert_str_eq(json_object_get_string(bench_get(j, "benchmark")), "pk-bench-swap");
	check_latency(bench_get(j, "latency"));
	check_bandwidth(bench_get(j, "bandwidth"));
	check_sequential(bench_get(j, "sequential"));
	check_restart(bench_get(j, "restart"));
	json_object_put(j);
	ck_assert_msg(rd.n >= 2, "saw %d daemon run dirs while it ran, want >= 2", rd.n);
	memcg_parent(r.err, cg, sizeof(cg));
	expect_all_gone(&r, cg, &rd);
	bench_run_free(&r);
}
END_TEST

/* Count of " unit" on the line at p, each followed by a non-letter. */
static int units(const char *p, const char *unit)
{
	size_t len = strcspn(p, "\n"), ul = strlen(unit);
	int k = 0;

	for (const char *s = p; (s = memmem(s, len - (size_t)(s - p), unit, ul)); s += ul)
		k += s > p && s[-1] == ' ' && !isalpha((unsigned char)s[ul]);
	return k;
}

/* The line starting with prefix after from, with at least n " unit". */
static const char *row(const char *text, const char *prefix, const char *from,
		       const char *unit, int n)
{
	const char *p = bench_line_of(text, prefix, from);
	ck_assert_msg(units(p, unit) >= n, "row \"%s\": %d \"%s\", want >= %d: %.*s", prefix,
		      units(p, unit), unit, n, (int)strcspn(p, "\n"), p);
	return p;
}

START_TEST(table)
{
	const char *const more[] = { NULL };
	struct bench_run r;

	bench_scratch_make(&prog);
	start_tiny(&r, more);
	bench_run_wait(&prog, &r, RUN_MS);
	ck_assert_msg(r.status == 0, "pk-bench-swap exited %d; stderr:\n%s", r.status, r.err);
	const char *o = r.out, *p;
	p = bench_line_of(o, "A. Swap-in fault latency", NULL);
	static const char *const lat[] = { "pagekeeperd ", "pk-volatile ", "floor ", "kernel " };
	for (int i = 0; i < 4; i++)
		row(o, lat[i], p, "µs", 6);
	p = bench_line_of(o, "B. Eviction bandwidth", p);
	static const char *const bw[] = { "pagekeeperd RECLAIM ", "pk-volatile RECLAIM ",
					  "fio 4k QD64", "fio 1M QD8" };
	for (int i = 0; i < 4; i++)
		row(o, bw[i], p, "MiB/s", 2);
	static const char *const cpu[] = { "pagekeeperd RECLAIM CPU:", "pk-volatile RECLAIM CPU:" };
	for (int i = 0; i < 2; i++) {
		const char *c = bench_line_of(o, cpu[i], p);
		const char *u = strstr(c, " s per GiB evicted");
		ck_assert_msg(u && u < c + strcspn(c, "\n") && units(c, "%") == 1,
			      "CPU line of part B: s per GiB evicted, %% of one CPU: %.*s",
			      (int)strcspn(c, "\n"), c);
	}
	p = bench_line_of(o, "C. Sequential swap-in", p);
	static const char *const sq[] = { "pagekeeperd readahead off", "pagekeeperd readahead on",
					  "kernel ", "floor " };
	for (int i = 0; i < 4; i++) {
		row(o, sq[i], p, "ms", 2);
		row(o, sq[i], p, "MiB/s", 1);
		row(o, sq[i], p, "µs", 1);
	}
	p = bench_line_of(o, "D. Daemon restart", p);
	row(o, "no restart ", p, "ms", 2);
	row(o, "SIGKILL + start ", p, "ms", 5);
	row(o, "SIGTERM + start ", p, "ms", 5);
	bench_run_free(&r);
	bench_expect_nothing_left(&prog);
}
END_TEST

START_TEST(interrupt)
{
	const char *const args[] = { "--rounds", "1", "--size", STR(INT_SIZE_MIB) "M",
				     "--pages", STR(INT_PAGES), "--only", "latency", NULL };
	struct run_dirs rd = { .n = 0 };
	char cg[4096];
	struct bench_run r;

	bench_scratch_make(&prog);
	bench_run_start(&prog, &r, args);
	/* Part A's kernel round: its swap file on, its cgroup made. */
	WAIT_FOR(bench_err_has(&r, "latency round 1/1: kernel:"), RUN_MS, 5,
		 "part A's kernel round to start");
	char *err = bench_err_now(&r);
	memcg_parent(err, cg, sizeof(cg));
	free(err);
	/* the round fills 64 MiB, reads INT_PAGES pages (0.1 ms each here): 1 ms a page */
	WAIT_FOR(scratch_swap_on() && bench_cgroups(cg, r.pid) > 0, INT_PAGES, 2,
		 "the kernel round's swap file on (%d) and its cgroup in %.300s (%d)",
		 scratch_swap_on(), cg, bench_cgroups(cg, r.pid));
	collect_run_dirs(&rd);
	ck_assert_msg(rd.n == 2, "pagekeeperd and pk-volatile should run: %d run dirs", rd.n);
	ck_assert_int_eq(kill(r.pid, SIGINT), 0);
	bench_run_wait(&prog, &r, STOP_MS);
	ck_assert_msg(r.status == 128 + SIGINT, "exit %d after SIGINT, want %d; stderr:\n%s",
		      r.status, 128 + SIGINT, r.err);
	expect_all_gone(&r, cg, &rd);
	bench_run_free(&r);
}
END_TEST

START_TEST(bad_args)
{
	static const struct bench_bad_args bad[] = {
		{ { "--only", "nonsense", NULL }, "--only" },
		{ { "--rounds", "0", NULL }, "--rounds" },
		{ { "--size", "1M", "--pages", "500", NULL }, "--pages" },
		{ { "--no-such", NULL }, "no-such" },
	};
	bench_expect_usage_errors(&prog, bad, sizeof(bad) / sizeof(bad[0]), USAGE_MS);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("bench_swap");
	/* Backstop above each case's own deadlines. */
	long backstop_ms = RUN_MS + 2 * STOP_MS;

	if (geteuid() != 0) {
		fprintf(stderr, "test_bench_swap: pk-bench-swap needs root (swapon, a memory "
			"cgroup): run as root\n");
		return 1;
	}
	bench_add_case(s, "json", json, backstop_ms);
	bench_add_case(s, "table", table, backstop_ms);
	bench_add_case(s, "interrupt", interrupt, backstop_ms);
	bench_add_case(s, "bad_args", bad_args, backstop_ms);
	return bench_run_suite(s);
}
