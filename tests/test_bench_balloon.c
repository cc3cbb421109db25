/*
 * test_bench_balloon.c - smoke test of pk-bench-balloon, so the command
 * that prints the README's balloon figures cannot rot.
 *
 * What: `pk-bench-balloon --quick` ($PK_BENCH_BALLOON) against this build's
 * pagekeeperd and pk-guestsim, run as a program:
 *  - json: exit 0; one JSON object with the three targets 0%, 25%, 50% of
 *    the guest's RAM, each with the no-daemon, pagekeeperd and locked
 *    figures; stretch at 0% is 1.00 for each; the guest's page-ins/s at 50%
 *    exceed those at 0% with and without the daemon (the balloon made the
 *    guest page); pagekeeperd's STATUS showed the balloon at 25% and 50%
 *    (the target was sent and reached); the locked guest stalled at 50%
 *    with a shortfall > 0 that the guest and the daemon agree on, and not
 *    at 0%.  Nothing of the run is left: no process, no file.
 *  - table: the text has its header, three rows (0%, 25%, 50%) with a
 *    page-ins/s and a stretch per variant (1.00x twice at 0%), and the
 *    locked guest's three rows with their units.
 *  - interrupt: SIGINT while a guest runs through pagekeeperd: exit by
 *    SIGINT, and the daemon, the guests, the cleanup guardian, the temp dir
 *    (page files, sockets, state) and the daemon's run dir all go.
 *  - bad_args: a RAM too small, a bad --locked, an unknown option: exit 2
 *    naming the option, nothing started.
 * Machine speed is never judged: only shape, units and the relations
 * above, which hold on any machine.
 * How: the bench runs as a child (bench_run.c) with stdout and stderr on
 * memfds (no pipe can fill), with --dir a fresh directory of its own under
 * the build dir, which names every process of the run in its command line;
 * deadlines come from the work (pages filled and verified, ops) times
 * pk_test_time_scale().
 * Why: every figure in the README is printed by a command in the tree; a
 * command no test runs breaks unseen.
 */
#include "tests/bench_run.h"
#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"

#include <check.h>
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/*
 * --quick: 9 guest runs of 16 MiB RAM, 12 MiB working set, 100,000 ops.
 * Budget per run: fill and verify of 12 MiB at 25 MiB/s and the ops at
 * 20,000/s (the 50% runs page to disk); 5 s for the daemon's start and
 * the teardown.  A quick run takes about 4 s here.
 */
#define QUICK_RUNS 9
#define QUICK_WS_MIB 12
#define QUICK_OPS 100000
#define SWEEP_MS_PER_MIB 40
#define OPS_PER_MS 20
#define START_STOP_MS 5000
#define RUN_MS (QUICK_RUNS * (2 * QUICK_WS_MIB * SWEEP_MS_PER_MIB + QUICK_OPS / OPS_PER_MS) + \
		START_STOP_MS)
#define STOP_MS 10000 /* SIGTERM, 2 s grace per child, the guardian's rm */
#define USAGE_MS 3000

static struct bench_prog prog = { .env = "PK_BENCH_BALLOON", .name = "pk-bench-balloon",
				  .prefix = "bench-balloon", .stop_ms = STOP_MS };

START_TEST(json)
{
	const char *const args[] = { "--quick", "--json", NULL };
	static const char *const variant[] = { "no_daemon", "pagekeeperd", "locked" };
	struct bench_run r;

	bench_scratch_make(&prog);
	bench_run_start(&prog, &r, args);
	bench_run_wait(&prog, &r, RUN_MS);
	ck_assert_msg(r.status == 0, "pk-bench-balloon --quick --json exited %d; stderr:\n%s",
		      r.status, r.err);
	json_object *j = json_tokener_parse(r.out);
	ck_assert_msg(j, "stdout is not one JSON object:\n%s", r.out);
	double ram = bench_num(j, "ram_mib");
	ck_assert_double_eq_tol(ram, 16, 1e-9);
	ck_assert_double_eq_tol(bench_num(j, "working_set_mib"), QUICK_WS_MIB, 1e-9);
	ck_assert_double_eq_tol(bench_num(j, "ops"), QUICK_OPS, 0.5);
	json_object *ts = bench_get(j, "targets");
	ck_assert_msg(json_object_is_type(ts, json_type_array) &&
			      json_object_array_length(ts) == 3,
		      "targets: not an array of 3");
	static const int pct[3] = { 0, 25, 50 };
	for (int t = 0; t < 3; t++) {
		json_object *e = json_object_array_get_idx(ts, (size_t)t);
		ck_assert_int_eq((int)bench_num(e, "target_pct"), pct[t]);
		ck_assert_double_eq_tol(bench_num(e, "target_mib"), ram * (100 - pct[t]) / 100,
					1e-9);
		for (int v = 0; v < 3; v++) {
			json_object *c = bench_get(e, variant[v]);
			ck_assert_msg(bench_num(c, "run_s") > 0 &&
					      bench_num(c, "page_ins_per_s") >= 0 &&
					      bench_num(c, "stretch") > 0,
				      "%d%% %s: run_s, page_ins_per_s, stretch: %s", pct[t],
				      variant[v], json_object_to_json_string(c));
			if (t == 0)
				ck_assert_msg(fabs(bench_num(c, "stretch") - 1.0) < 0.005,
					      "%s: stretch at 0%% is %.3f, not 1.00", variant[v],
					      bench_num(c, "stretch"));
		}
	}
	json_object *t0 = json_object_array_get_idx(ts, 0);
	json_object *t25 = json_object_array_get_idx(ts, 1);
	json_object *t50 = json_object_array_get_idx(ts, 2);
	for (int v = 0; v < 2; v++) {
		double p0 = bench_num(bench_get(t0, variant[v]), "page_ins_per_s");
		double p50 = bench_num(bench_get(t50, variant[v]), "page_ins_per_s");
		ck_assert_msg(p50 > p0, "%s: page-ins at 50%% (%.0f/s) not above those at 0%% "
			      "(%.0f/s): the balloon did not make the guest page", variant[v],
			      p50, p0);
	}
	/* pagekeeperd's own view: the target went through its lab driver. */
	for (int t = 1; t < 3; t++) {
		json_object *e = json_object_array_get_idx(ts, (size_t)t);
		double want = bench_num(e, "target_mib");
		double got = bench_num(bench_get(e, "pagekeeperd"), "daemon_actual_mib");
		ck_assert_msg(fabs(got - want) < 0.01, "STATUS balloon_actual_mib %.2f at the "
			      "%d%% target %.2f MiB", got, pct[t], want);
	}
	json_object *l0 = bench_get(t0, "locked"), *l50 = bench_get(t50, "locked");
	ck_assert_int_eq((int)bench_num(l0, "stalled_rounds"), 0);
	ck_assert_int_eq((int)bench_num(l50, "stalled_rounds"), 1);
	ck_assert_int_eq((int)bench_num(l50, "daemon_stalled_rounds"), 1);
	double sf = bench_num(l50, "shortfall_mib"), dsf = bench_num(l50, "daemon_shortfall_mib");
	ck_assert_msg(sf > 0 && fabs(sf - dsf) < 0.01, "locked guest at 50%%: shortfall %.2f "
		      "MiB (guest) vs %.2f MiB (pagekeeperd)", sf, dsf);
	ck_assert_msg(fabs(bench_num(l50, "actual_mib") - sf - bench_num(t50, "target_mib")) < 0.01,
		      "locked guest at 50%%: keeps %.2f - short %.2f != target %.2f MiB",
		      bench_num(l50, "actual_mib"), sf, bench_num(t50, "target_mib"));
	(void)t25;
	json_object_put(j);
	bench_run_free(&r);
	bench_expect_nothing_left(&prog);
}
END_TEST

/* Count of " WORD" tokens on the line at p that end in suffix. */
static int tokens_ending(const char *p, const char *suffix, const char *exact)
{
	char line[512], *save = NULL;
	int n = 0;
	size_t len = strcspn(p, "\n"), sl = strlen(suffix);

	ck_assert_uint_lt(len, sizeof(line));
	memcpy(line, p, len);
	line[len] = '\0';
	for (char *tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		size_t tl = strlen(tok);
		if (tl >= sl && !strcmp(tok + tl - sl, suffix) && (!exact || !strcmp(tok, exact)))
			n++;
	}
	return n;
}

START_TEST(table)
{
	const char *const args[] = { "--quick", NULL };
	struct bench_run r;

	bench_scratch_make(&prog);
	bench_run_start(&prog, &r, args);
	bench_run_wait(&prog, &r, RUN_MS);
	ck_assert_msg(r.status == 0, "pk-bench-balloon --quick exited %d; stderr:\n%s",
		      r.status, r.err);
	const char *h = bench_line_of(r.out, "balloon target", NULL);
	ck_assert_msg(strstr(h, "no daemon") && strstr(h, "pagekeeperd + lab driver"),
		      "header: %.*s", (int)strcspn(h, "\n"), h);
	const char *u = bench_line_of(r.out, "(the guest keeps)", h);
	ck_assert_int_eq(tokens_ending(u, "page-ins/s", NULL), 2);
	ck_assert_int_eq(tokens_ending(u, "stretch", NULL), 2);
	static const char *const rows[3] = { "0% (16.0 MiB)", "25% (12.0 MiB)",
					     "50% (8.0 MiB)" };
	const char *p = u;
	for (int t = 0; t < 3; t++) {
		p = bench_line_of(r.out, rows[t], p);
		ck_assert_msg(tokens_ending(p, "x", NULL) == 2 && tokens_ending(p, "s", "s") == 2,
			      "row %s: two stretches (x) and two run times (s): %.*s", rows[t],
			      (int)strcspn(p, "\n"), p);
		if (t == 0)
			ck_assert_msg(tokens_ending(p, "x", "1.00x") == 2,
				      "0%% row: stretch is not 1.00x twice: %.*s",
				      (int)strcspn(p, "\n"), p);
	}
	const char *l = bench_line_of(r.out, "locked guest (--locked 0.8", p);
	for (int t = 0; t < 3; t++) {
		l = bench_line_of(r.out, rows[t], l);
		ck_assert_msg(tokens_ending(l, "MiB", "MiB") == 3 &&
				      tokens_ending(l, "x", NULL) == 1,
			      "locked row %s: keeps, shortfall, daemon's shortfall in MiB and a "
			      "stretch: %.*s", rows[t], (int)strcspn(l, "\n"), l);
		ck_assert_msg(strstr(l, t == 2 ? " yes " : " no "),
			      "locked row %s: stalled should be %s: %.*s", rows[t],
			      t == 2 ? "yes" : "no", (int)strcspn(l, "\n"), l);
	}
	bench_run_free(&r);
	bench_expect_nothing_left(&prog);
}
END_TEST

START_TEST(interrupt)
{
	const char *const args[] = { "--quick", NULL };
	pid_t pids[64];
	char buf[8192], run_dir[256] = "";
	struct bench_run r;
	size_t n = 0;

	bench_scratch_make(&prog);
	bench_run_start(&prog, &r, args);
	/* The first guest through pagekeeperd: the daemon and a guest run. */
	WAIT_FOR(bench_err_has(&r, "pagekeeperd + lab driver, balloon"), RUN_MS, 5,
		 "a guest through pagekeeperd to start");
	n = bench_scratch_pids(&prog, pids, 64);
	for (size_t i = 0; i < n; i++) {
		size_t len = proc_cmdline(pids[i], buf, sizeof(buf));
		for (size_t k = 0; k + 1 < len; k += strlen(buf + k) + 1)
			if (!strcmp(buf + k, "--run-dir"))
				snprintf(run_dir, sizeof(run_dir), "%s", buf + k + strlen(buf + k) + 1);
	}
	ck_assert_msg(n >= 3 && run_dir[0], "the bench, its guardian, pagekeeperd (with a "
		      "--run-dir) and a guest should run: %zu processes", n);
	ck_assert_int_eq(kill(r.pid, SIGINT), 0);
	bench_run_wait(&prog, &r, STOP_MS);
	ck_assert_msg(r.status == 128 + SIGINT, "exit %d after SIGINT, want %d; stderr:\n%s",
		      r.status, 128 + SIGINT, r.err);
	bench_expect_nothing_left(&prog);
	ck_assert_msg(access(run_dir, F_OK) < 0 && errno == ENOENT,
		      "pagekeeperd's run dir %s is still there", run_dir);
	bench_run_free(&r);
}
END_TEST

START_TEST(bad_args)
{
	static const struct bench_bad_args bad[] = {
		{ { "--ram", "2M", NULL }, "--ram" },
		{ { "--locked", "1.5", NULL }, "--locked" },
		{ { "--rounds", "0", NULL }, "--rounds" },
		{ { "--no-such", NULL }, "no-such" },
	};
	bench_expect_usage_errors(&prog, bad, sizeof(bad) / sizeof(bad[0]), USAGE_MS);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("bench_balloon");
	/* Backstop above each case's own deadlines. */
	long backstop_ms = RUN_MS + 2 * STOP_MS;

	bench_add_case(s, "json", json, backstop_ms);
	bench_add_case(s, "table", table, backstop_ms);
	bench_add_case(s, "interrupt", interrupt, backstop_ms);
	bench_add_case(s, "bad_args", bad_args, backstop_ms);
	return bench_run_suite(s);
}
