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
 * How: the bench runs as a child with stdout and stderr on memfds (no pipe
 * can fill), with --dir a fresh directory of its own under the build dir,
 * which names every process of the run in its command line; deadlines come
 * from the work (pages filled and verified, ops) times pk_test_time_scale().
 * Why: every figure in the README is printed by a command in the tree; a
 * command no test runs breaks unseen.
 */
#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

struct run {
	pid_t pid;
	int out_fd, err_fd;
	int status;	/* exit status, or 128 + signal */
	char *out, *err;
};

static char scratch[PATH_MAX];

static const char *env_path(const char *var)
{
	const char *p = getenv(var);
	ck_assert_msg(p && access(p, X_OK) == 0, "%s must name an executable", var);
	return p;
}

/* A fresh --dir for this case, under the build dir (a disk file system). */
static void make_scratch(void)
{
	const char *base = getenv("PK_TEST_SCRATCH");
	snprintf(scratch, sizeof(scratch), "%s/bench-balloon-XXXXXX", base ? base : ".");
	ck_assert_msg(mkdtemp(scratch), "mkdtemp %s: %s", scratch, strerror(errno));
}

static void run_start(struct run *r, const char *const *extra)
{
	const char *argv[32];
	size_t n = 0;

	memset(r, 0, sizeof(*r));
	argv[n++] = env_path("PK_BENCH_BALLOON");
	argv[n++] = "--dir";
	argv[n++] = scratch;
	argv[n++] = "--daemon";
	argv[n++] = env_path("PK_DAEMON");
	argv[n++] = "--guestsim";
	argv[n++] = env_path("PK_GUESTSIM");
	for (; *extra; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	r->out_fd = memfd_create("bench-out", MFD_CLOEXEC);
	r->err_fd = memfd_create("bench-err", MFD_CLOEXEC);
	ck_assert(r->out_fd >= 0 && r->err_fd >= 0);
	r->pid = fork();
	ck_assert_int_ge(r->pid, 0);
	if (r->pid == 0) {
		/* SIGTERM: the bench stops what it started if we die. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(r->out_fd, 1);
		dup2(r->err_fd, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
}

static char *memfd_text(int fd)
{
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	char *t = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(t);
	ssize_t n = pread(fd, t, (size_t)st.st_size, 0);
	ck_assert_int_ge(n, 0);
	t[n] = '\0';
	return t;
}

static void run_wait(struct run *r, long work_ms)
{
	long deadline = pk_test_deadline_ms(work_ms);
	int st;

	while (waitpid(r->pid, &st, WNOHANG) == 0) {
		if (pk_test_now_ms() > deadline) {
			kill(r->pid, SIGTERM);
			sleep_ms(scaled_ms(STOP_MS));
			kill(r->pid, SIGKILL);
			waitpid(r->pid, &st, 0);
			char *e = memfd_text(r->err_fd);
			ck_abort_msg("pk-bench-balloon did not finish within %.1f s; its "
				     "stderr:\n%s", work_ms * pk_test_time_scale() / 1e3, e);
		}
		sleep_ms(10);
	}
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	r->out = memfd_text(r->out_fd);
	r->err = memfd_text(r->err_fd);
	close(r->out_fd);
	close(r->err_fd);
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

/* 1 when the child's stderr so far has a line containing text. */
static int err_has(const struct run *r, const char *text)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", r->err_fd);
	return file_has(path, text);
}

/* Pids whose command line names our scratch dir (the run's processes). */
static size_t scratch_pids(pid_t *out, size_t max)
{
	char buf[8192];
	size_t n = 0;
	DIR *d = opendir("/proc");
	struct dirent *de;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) && n < max) {
		pid_t pid = (pid_t)atoi(de->d_name);
		if (pid <= 0 || pid == getpid())
			continue;
		size_t len = proc_cmdline(pid, buf, sizeof(buf));
		if (len && memmem(buf, len, scratch, strlen(scratch)) && proc_state(pid) != 'Z')
			out[n++] = pid;
	}
	closedir(d);
	return n;
}

/* Entries in the scratch dir besides . and .. */
static int scratch_entries(void)
{
	DIR *d = opendir(scratch);
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

/* Nothing of the run left: processes (the guardian ends last) and files. */
static void expect_nothing_left(void)
{
	pid_t pids[64];
	size_t n = 0;

	WAIT_FOR((n = scratch_pids(pids, 64)) == 0 && scratch_entries() == 0, STOP_MS, 20,
		 "the run's processes (%zu left, first pid %d) and files (%d entries in %.300s) "
		 "to go", n, n ? (int)pids[0] : 0, scratch_entries(), scratch);
	ck_assert_int_eq(rmdir(scratch), 0);
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;
	ck_assert_msg(json_object_object_get_ex(o, key, &v) && v, "JSON lacks \"%s\": %s", key,
		      json_object_to_json_string(o));
	return v;
}

static double num(json_object *o, const char *key)
{
	json_object *v = get(o, key);
	ck_assert_msg(json_object_is_type(v, json_type_double) ||
			      json_object_is_type(v, json_type_int),
		      "\"%s\" is not a number", key);
	return json_object_get_double(v);
}

START_TEST(json)
{
	const char *const args[] = { "--quick", "--json", NULL };
	static const char *const variant[] = { "no_daemon", "pagekeeperd", "locked" };
	struct run r;

	make_scratch();
	run_start(&r, args);
	run_wait(&r, RUN_MS);
	ck_assert_msg(r.status == 0, "pk-bench-balloon --quick --json exited %d; stderr:\n%s",
		      r.status, r.err);
	json_object *j = json_tokener_parse(r.out);
	ck_assert_msg(j, "stdout is not one JSON object:\n%s", r.out);
	double ram = num(j, "ram_mib");
	ck_assert_double_eq_tol(ram, 16, 1e-9);
	ck_assert_double_eq_tol(num(j, "working_set_mib"), QUICK_WS_MIB, 1e-9);
	ck_assert_double_eq_tol(num(j, "ops"), QUICK_OPS, 0.5);
	json_object *ts = get(j, "targets");
	ck_assert_msg(json_object_is_type(ts, json_type_array) &&
			      json_object_array_length(ts) == 3,
		      "targets: not an array of 3");
	static const int pct[3] = { 0, 25, 50 };
	for (int t = 0; t < 3; t++) {
		json_object *e = json_object_array_get_idx(ts, (size_t)t);
		ck_assert_int_eq((int)num(e, "target_pct"), pct[t]);
		ck_assert_double_eq_tol(num(e, "target_mib"), ram * (100 - pct[t]) / 100, 1e-9);
		for (int v = 0; v < 3; v++) {
			json_object *c = get(e, variant[v]);
			ck_assert_msg(num(c, "run_s") > 0 && num(c, "page_ins_per_s") >= 0 &&
					      num(c, "stretch") > 0,
				      "%d%% %s: run_s, page_ins_per_s, stretch: %s", pct[t],
				      variant[v], json_object_to_json_string(c));
			if (t == 0)
				ck_assert_msg(fabs(num(c, "stretch") - 1.0) < 0.005,
					      "%s: stretch at 0%% is %.3f, not 1.00", variant[v],
					      num(c, "stretch"));
		}
	}
	json_object *t0 = json_object_array_get_idx(ts, 0);
	json_object *t25 = json_object_array_get_idx(ts, 1);
	json_object *t50 = json_object_array_get_idx(ts, 2);
	for (int v = 0; v < 2; v++) {
		double p0 = num(get(t0, variant[v]), "page_ins_per_s");
		double p50 = num(get(t50, variant[v]), "page_ins_per_s");
		ck_assert_msg(p50 > p0, "%s: page-ins at 50%% (%.0f/s) not above those at 0%% "
			      "(%.0f/s): the balloon did not make the guest page", variant[v],
			      p50, p0);
	}
	/* pagekeeperd's own view: the target went through its lab driver. */
	for (int t = 1; t < 3; t++) {
		json_object *e = json_object_array_get_idx(ts, (size_t)t);
		double want = num(e, "target_mib");
		double got = num(get(e, "pagekeeperd"), "daemon_actual_mib");
		ck_assert_msg(fabs(got - want) < 0.01, "STATUS balloon_actual_mib %.2f at the "
			      "%d%% target %.2f MiB", got, pct[t], want);
	}
	json_object *l0 = get(t0, "locked"), *l50 = get(t50, "locked");
	ck_assert_int_eq((int)num(l0, "stalled_rounds"), 0);
	ck_assert_int_eq((int)num(l50, "stalled_rounds"), 1);
	ck_assert_int_eq((int)num(l50, "daemon_stalled_rounds"), 1);
	double sf = num(l50, "shortfall_mib"), dsf = num(l50, "daemon_shortfall_mib");
	ck_assert_msg(sf > 0 && fabs(sf - dsf) < 0.01, "locked guest at 50%%: shortfall %.2f "
		      "MiB (guest) vs %.2f MiB (pagekeeperd)", sf, dsf);
	ck_assert_msg(fabs(num(l50, "actual_mib") - sf - num(t50, "target_mib")) < 0.01,
		      "locked guest at 50%%: keeps %.2f - short %.2f != target %.2f MiB",
		      num(l50, "actual_mib"), sf, num(t50, "target_mib"));
	(void)t25;
	json_object_put(j);
	run_free(&r);
	expect_nothing_left();
}
END_TEST

/* The line of text starting with prefix (after spaces), or fail. */
static const char *line_of(const char *text, const char *prefix, const char *from)
{
	for (const char *p = from ? from : text; p && *p;) {
		const char *s = p;
		while (*s == ' ')
			s++;
		if (!strncmp(s, prefix, strlen(prefix)))
			return p;
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	ck_abort_msg("no line starting \"%s\" in:\n%s", prefix, text);
	return NULL;
}

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
	struct run r;

	make_scratch();
	run_start(&r, args);
	run_wait(&r, RUN_MS);
	ck_assert_msg(r.status == 0, "pk-bench-balloon --quick exited %d; stderr:\n%s",
		      r.status, r.err);
	const char *h = line_of(r.out, "balloon target", NULL);
	ck_assert_msg(strstr(h, "no daemon") && strstr(h, "pagekeeperd + lab driver"),
		      "header: %.*s", (int)strcspn(h, "\n"), h);
	const char *u = line_of(r.out, "(the guest keeps)", h);
	ck_assert_int_eq(tokens_ending(u, "page-ins/s", NULL), 2);
	ck_assert_int_eq(tokens_ending(u, "stretch", NULL), 2);
	static const char *const rows[3] = { "0% (16.0 MiB)", "25% (12.0 MiB)",
					     "50% (8.0 MiB)" };
	const char *p = u;
	for (int t = 0; t < 3; t++) {
		p = line_of(r.out, rows[t], p);
		ck_assert_msg(tokens_ending(p, "x", NULL) == 2 && tokens_ending(p, "s", "s") == 2,
			      "row %s: two stretches (x) and two run times (s): %.*s", rows[t],
			      (int)strcspn(p, "\n"), p);
		if (t == 0)
			ck_assert_msg(tokens_ending(p, "x", "1.00x") == 2,
				      "0%% row: stretch is not 1.00x twice: %.*s",
				      (int)strcspn(p, "\n"), p);
	}
	const char *l = line_of(r.out, "locked guest (--locked 0.8", p);
	for (int t = 0; t < 3; t++) {
		l = line_of(r.out, rows[t], l);
		ck_assert_msg(tokens_ending(l, "MiB", "MiB") == 3 &&
				      tokens_ending(l, "x", NULL) == 1,
			      "locked row %s: keeps, shortfall, daemon's shortfall in MiB and a "
			      "stretch: %.*s", rows[t], (int)strcspn(l, "\n"), l);
		ck_assert_msg(strstr(l, t == 2 ? " yes " : " no "),
			      "locked row %s: stalled should be %s: %.*s", rows[t],
			      t == 2 ? "yes" : "no", (int)strcspn(l, "\n"), l);
	}
	run_free(&r);
	expect_nothing_left();
}
END_TEST

START_TEST(interrupt)
{
	const char *const args[] = { "--quick", NULL };
	pid_t pids[64];
	char buf[8192], run_dir[256] = "";
	struct run r;
	size_t n = 0;

	make_scratch();
	run_start(&r, args);
	/* The first guest through pagekeeperd: the daemon and a guest run. */
	WAIT_FOR(err_has(&r, "pagekeeperd + lab driver, balloon"), RUN_MS, 5,
		 "a guest through pagekeeperd to start");
	n = scratch_pids(pids, 64);
	for (size_t i = 0; i < n; i++) {
		size_t len = proc_cmdline(pids[i], buf, sizeof(buf));
		for (size_t k = 0; k + 1 < len; k += strlen(buf + k) + 1)
			if (!strcmp(buf + k, "--run-dir"))
				snprintf(run_dir, sizeof(run_dir), "%s", buf + k + strlen(buf + k) + 1);
	}
	ck_assert_msg(n >= 3 && run_dir[0], "the bench, its guardian, pagekeeperd (with a "
		      "--run-dir) and a guest should run: %zu processes", n);
	ck_assert_int_eq(kill(r.pid, SIGINT), 0);
	run_wait(&r, STOP_MS);
	ck_assert_msg(r.status == 128 + SIGINT, "exit %d after SIGINT, want %d; stderr:\n%s",
		      r.status, 128 + SIGINT, r.err);
	expect_nothing_left();
	ck_assert_msg(access(run_dir, F_OK) < 0 && errno == ENOENT,
		      "pagekeeperd's run dir %s is still there", run_dir);
	run_free(&r);
}
END_TEST

START_TEST(bad_args)
{
	static const char *const bad[][3] = {
		{ "--ram", "2M", "--ram" },
		{ "--locked", "1.5", "--locked" },
		{ "--rounds", "0", "--rounds" },
		{ "--no-such", NULL, "no-such" },
	};
	make_scratch();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *args[3] = { bad[i][0], bad[i][1], NULL };
		struct run r;
		run_start(&r, args);
		run_wait(&r, USAGE_MS);
		ck_assert_msg(r.status == 2 && strstr(r.err, bad[i][2]) && !r.out[0],
			      "%s %s: exit %d (want 2), stderr naming %s:\n%s", bad[i][0],
			      bad[i][1] ? bad[i][1] : "", r.status, bad[i][2], r.err);
		run_free(&r);
	}
	expect_nothing_left();
}
END_TEST

static void add(Suite *s, const char *name, const TTest *t)
{
	TCase *tc = tcase_create(name);

	/* Backstop above the case's own deadlines (RUN_MS + STOP_MS, scaled). */
	tcase_set_timeout(tc, (double)(RUN_MS + 2 * STOP_MS) / 1e3 * pk_test_time_scale());
	tcase_add_test(tc, t);
	suite_add_tcase(s, tc);
}

int main(void)
{
	Suite *s = suite_create("bench_balloon");
	SRunner *sr;
	int failed;

	add(s, "json", json);
	add(s, "table", table);
	add(s, "interrupt", interrupt);
	add(s, "bad_args", bad_args);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
