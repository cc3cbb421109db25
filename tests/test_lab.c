/*
 * test_lab.c - `pagekeeper lab [SCENARIO]`, the scenario runner, as a
 * program: the shipped case study at its --short size, end to end, and
 * scenario files it must refuse before anything starts.
 *
 *  - case_study: `pagekeeper lab case-study --short --out DIR` exits 0;
 *    samples.csv has exactly the columns README "Lab scenarios" documents
 *    (no more, no fewer); each guest of each run has samples with
 *    increasing time; under esx the state left high at some sample, and a
 *    balloon target was set no later than the first sample with a
 *    swapped page; guests.csv has the guests' timelines; the table lists
 *    every guest under baseline and esx with a run time in s and a stretch
 *    >= 1.0 in x, "verified: every page" and "guests killed: 0"; its
 *    temporary directory is gone and no process it started is left.
 *  - interrupt: SIGINT during the esx run: exit 130 with "interrupted;
 *    stopping", nothing left behind.
 *  - bad_scenarios: an unknown key, a bad value, a bad [short] key (read
 *    even without --short), an unknown section, a line that is not
 *    KEY = VALUE (the first of two errors is the one named; a last line
 *    without a newline has its number too), a missing file, an unknown
 *    scenario name, a bad --policy and --budget each exit 2 naming
 *    FILE:LINE and the key where there is one, and no daemon starts.
 *
 * How: fork/exec $PK_CLI with stdout/stderr in files and TMPDIR set to a
 * fresh directory, so "left behind" is checkable: that directory must be
 * empty at the end and no process may have it on its command line.
 * Deadlines: the scenario's own per-run limit (--limit, scaled by
 * pk_test_time_scale()) for each of the two runs, plus the stop grace.
 * Why: issue 16: the lab is how users reproduce the case study; its
 * numbers, files and errors are its interface.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"

/* The short case study's limit per run (its [short] limit is 90 s). */
#define RUN_LIMIT_S 90
#define RUNS 2			/* baseline and esx */
#define STOP_MS 8000		/* every guest and the daemon: 2 s grace each */
#define MAX_COLS 64

struct lab_run {
	pid_t pid;
	int status;		/* exit status, or 128 + signal */
	char dir[256];		/* the test's directory */
	char tmp[300];		/* TMPDIR of the lab */
	char out[300];		/* --out */
	char so[320], se[320];	/* stdout, stderr files */
	char *stdout_text, *stderr_text;
};

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	ck_assert_msg(f, "open %s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	ck_assert(buf);
	ck_assert_int_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

/* The last n bytes of text: Check's messages are short (a long one is lost). */
static const char *tail_of(const char *text, size_t n)
{
	size_t len = text ? strlen(text) : 0;

	return !text ? "" : len > n ? text + len - n : text;
}

static void lab_dirs(struct lab_run *r)
{
	const char *scratch = getenv("PK_TEST_SCRATCH");

	memset(r, 0, sizeof(*r));
	snprintf(r->dir, sizeof(r->dir), "%s/test-lab-XXXXXX", scratch ? scratch : "/tmp");
	ck_assert_msg(mkdtemp(r->dir), "mkdtemp %s: %s", r->dir, strerror(errno));
	snprintf(r->tmp, sizeof(r->tmp), "%s/tmp", r->dir);
	snprintf(r->out, sizeof(r->out), "%s/out", r->dir);
	snprintf(r->so, sizeof(r->so), "%s/stdout", r->dir);
	snprintf(r->se, sizeof(r->se), "%s/stderr", r->dir);
	ck_assert_int_eq(mkdir(r->tmp, 0755), 0);
}

/* Start $PK_CLI lab args...; SIGTERM reaches it if we die (it cleans up). */
static void lab_start(struct lab_run *r, const char *const *args)
{
	const char *argv[32];
	size_t n = 0;
	const char *cli = getenv("PK_CLI");

	ck_assert_msg(cli && access(cli, X_OK) == 0, "PK_CLI must name pagekeeper");
	argv[n++] = cli;
	argv[n++] = "lab";
	for (; *args; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	r->pid = fork();
	ck_assert_int_ge(r->pid, 0);
	if (r->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		setenv("TMPDIR", r->tmp, 1);
		int o = open(r->so, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(r->se, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (o < 0 || e < 0)
			_exit(127);
		dup2(o, 1);
		dup2(e, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
}

static void lab_wait(struct lab_run *r, long work_ms)
{
	long deadline = pk_test_now_ms() + pk_test_deadline_ms(work_ms);
	int st;

	for (;;) {
		pid_t w = waitpid(r->pid, &st, WNOHANG);
		if (w == r->pid)
			break;
		if (pk_test_now_ms() > deadline) {
			kill(r->pid, SIGTERM);
			waitpid(r->pid, &st, 0);
			r->stderr_text = slurp(r->se);
			ck_abort_msg("pagekeeper lab did not end within %ld ms; stderr "
				     "ends:\n%s", pk_test_deadline_ms(work_ms),
				     tail_of(r->stderr_text, 1500));
		}
		sleep_ms(50);
	}
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	r->stdout_text = slurp(r->so);
	r->stderr_text = slurp(r->se);
}

/* The lab removed its TMPDIR contents and left no process behind. */
static void lab_gone(struct lab_run *r)
{
	DIR *d = opendir(r->tmp);
	struct dirent *e;
	char left[512] = "";

	ck_assert(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			snprintf(left + strlen(left), sizeof(left) - strlen(left), " %s",
				 e->d_name);
	closedir(d);
	ck_assert_msg(!left[0], "the lab left in its TMPDIR:%s", left);
	d = opendir("/proc");
	ck_assert(d);
	while ((e = readdir(d))) {
		char cmd[4096];
		pid_t pid = (pid_t)atoi(e->d_name);
		if (pid <= 0 || pid == getpid())
			continue;
		size_t n = proc_cmdline(pid, cmd, sizeof(cmd));
		for (size_t i = 0; i + 1 < n; i++)
			if (!cmd[i])
				cmd[i] = ' ';
		ck_assert_msg(!n || !strstr(cmd, r->tmp), "process %d left behind: %s",
			      (int)pid, cmd);
	}
	closedir(d);
}

static void lab_free(struct lab_run *r)
{
	char cmd[400];

	free(r->stdout_text);
	free(r->stderr_text);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* ---- the documented columns ---- */

/* Column names of README's "Lab scenarios" tables: lines "| `name` |". */
static int readme_columns(const char *file, char cols[][32], int max)
{
	char path[512], *text, *sec, *end;
	int n = 0;

	snprintf(path, sizeof(path), "%s/README.md", getenv("PK_SOURCE_ROOT"));
	text = slurp(path);
	sec = strstr(text, "\n## Lab scenarios");
	ck_assert_msg(sec, "README.md has no \"## Lab scenarios\" section");
	end = strstr(sec + 1, "\n## ");
	if (end)
		*end = '\0';
	snprintf(path, sizeof(path), "\n### %s\n", file);
	sec = strstr(sec, path);
	ck_assert_msg(sec, "README's Lab scenarios section has no \"### %s\"", file);
	for (char *l = strchr(sec + 1, '\n'); l && n < max; l = strchr(l + 1, '\n')) {
		char name[32];
		if (!strncmp(l + 1, "### ", 4))
			break; /* the next table */
		if (sscanf(l + 1, "| `%31[a-z0-9_]` |", name) == 1)
			snprintf(cols[n++], 32, "%s", name);
	}
	free(text);
	return n;
}

static int header_cols(const char *csv, char cols[][32], int max)
{
	int n = 0;
	const char *p = csv;

	while (*p && *p != '\n' && n < max) {
		size_t k = strcspn(p, ",\n");
		ck_assert_uint_lt(k, 32);
		memcpy(cols[n], p, k);
		cols[n++][k] = '\0';
		p += k + (p[k] == ',');
	}
	return n;
}

static int col_index(char cols[][32], int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(cols[i], name))
			return i;
	return -1;
}

/* Both ways: every documented column in the file, every column documented. */
static void check_columns(const char *file, const char *csv, char hdr[][32], int *nh)
{
	char doc[MAX_COLS][32];
	int nd = readme_columns(file, doc, MAX_COLS);

	*nh = header_cols(csv, hdr, MAX_COLS);
	ck_assert_msg(nd >= 5, "README documents only %d columns of %s", nd, file);
	for (int i = 0; i < nd; i++)
		ck_assert_msg(col_index(hdr, *nh, doc[i]) >= 0, "%s: no column %s (documented "
			      "in README)", file, doc[i]);
	for (int i = 0; i < *nh; i++)
		ck_assert_msg(col_index(doc, nd, hdr[i]) >= 0, "%s: column %s is not "
			      "documented in README's Lab scenarios", file, hdr[i]);
}

/* Split a CSV line into fields (in place). */
static int fields(char *line, char **f, int max)
{
	int n = 0;

	f[n++] = line;
	for (char *p = line; *p && n < max; p++)
		if (*p == ',') {
			*p = '\0';
			f[n++] = p + 1;
		}
	return n;
}

/* ---- the case study ---- */

struct series {
	char run[16], vm[16];
	double last_t;
	int n;
};

static void check_samples(const char *csv_text, unsigned guests)
{
	char hdr[MAX_COLS][32], *text = strdup(csv_text), *save = NULL, *f[MAX_COLS];
	struct series s[32];
	int nh, ns = 0, esx_rows = 0, left_high = 0;
	double first_target = -1, first_swapped = -1, first_b_ms = -1, first_e_ms = -1;

	check_columns("samples.csv", csv_text, hdr, &nh);
	int c_run = col_index(hdr, nh, "run"), c_t = col_index(hdr, nh, "t_s"),
	    c_state = col_index(hdr, nh, "state"), c_vm = col_index(hdr, nh, "vm"),
	    c_target = col_index(hdr, nh, "balloon_target_mib"),
	    c_swapped = col_index(hdr, nh, "swapped_mib"),
	    c_fb = col_index(hdr, nh, "first_balloon_ms"),
	    c_fe = col_index(hdr, nh, "first_evict_ms");
	strtok_r(text, "\n", &save); /* the header */
	for (char *l = strtok_r(NULL, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		ck_assert_int_eq(fields(l, f, MAX_COLS), nh);
		double t = atof(f[c_t]);
		int k;
		for (k = 0; k < ns; k++)
			if (!strcmp(s[k].run, f[c_run]) && !strcmp(s[k].vm, f[c_vm]))
				break;
		if (k == ns) {
			ck_assert_int_lt(ns, 32);
			snprintf(s[k].run, sizeof(s[k].run), "%s", f[c_run]);
			snprintf(s[k].vm, sizeof(s[k].vm), "%s", f[c_vm]);
			s[k].n = 0;
			ns++;
		} else {
			ck_assert_msg(t > s[k].last_t, "samples.csv: %s %s: time %.3f s after "
				      "%.3f s", f[c_run], f[c_vm], t, s[k].last_t);
		}
		s[k].last_t = t;
		s[k].n++;
		if (strcmp(f[c_run], "esx"))
			continue;
		esx_rows++;
		left_high |= strcmp(f[c_state], "high") != 0;
		if (first_target < 0 && f[c_target][0])
			first_target = t;
		if (first_swapped < 0 && atof(f[c_swapped]) > 0)
			first_swapped = t;
		/* The daemon's own clock, finer than a sample. */
		if (f[c_fb][0])
			first_b_ms = atof(f[c_fb]);
		if (f[c_fe][0])
			first_e_ms = atof(f[c_fe]);
	}
	free(text);
	printf("case_study: %d series, %d esx rows; first balloon target at %.1f s, first "
	       "swapped page at %.1f s; daemon: first balloon %.0f ms, first eviction "
	       "%.0f ms (-1: none)\n", ns, esx_rows, first_target, first_swapped,
	       first_b_ms, first_e_ms);
	ck_assert_msg(ns == (int)(RUNS * guests), "samples.csv has %d (run, vm) series, want "
		      "%u", ns, RUNS * guests);
	/* The esx run pages: it lasts several samples per guest. */
	ck_assert_msg(esx_rows >= (int)(3 * guests), "only %d esx rows", esx_rows);
	ck_assert_msg(left_high, "under esx the state never left high in samples.csv");
	ck_assert_msg(first_target >= 0, "under esx no balloon target was ever set");
	ck_assert_msg(first_swapped < 0 || first_target <= first_swapped,
		      "a page was swapped at %.1f s, before the first balloon target at "
		      "%.1f s", first_swapped, first_target);
	ck_assert_msg(first_b_ms >= 0 && (first_e_ms < 0 || first_b_ms <= first_e_ms),
		      "first balloon target at %.0f ms, first eviction at %.0f ms "
		      "(daemon clock; -1: none)", first_b_ms, first_e_ms);
}

static void check_guests_csv(const char *csv_text)
{
	char hdr[MAX_COLS][32];
	int nh, rows = 0;

	check_columns("guests.csv", csv_text, hdr, &nh);
	for (const char *p = strchr(csv_text, '\n'); p && p[1]; p = strchr(p + 1, '\n'))
		rows++;
	ck_assert_msg(rows >= 1, "guests.csv has no timeline row");
}

/* "POLICY labI  RUN s  STRETCHx ..." for every guest. */
static void check_table(const char *out, const char *policy, unsigned guests)
{
	for (unsigned i = 0; i < guests; i++) {
		char want[64];
		const char *p;
		double run_s, stretch;
		snprintf(want, sizeof(want), "\n%-13s lab%-3u", policy, i);
		p = strstr(out, want);
		ck_assert_msg(p, "the table has no row for %s lab%u:\n%s", policy, i,
			      tail_of(out, 1500));
		ck_assert_msg(sscanf(p + strlen(want), " %lf s %lfx", &run_s, &stretch) == 2,
			      "%s lab%u: no run time in s and stretch in x: %.120s", policy, i,
			      p + 1);
		ck_assert_msg(run_s > 0 && stretch >= 1.0, "%s lab%u: run %.2f s, stretch "
			      "%.2fx (want >= 1.0)", policy, i, run_s, stretch);
	}
}

START_TEST(case_study)
{
	struct lab_run r;
	char limit[32], path[400];
	const unsigned guests = 4; /* case-study.ini [guests] count */

	lab_dirs(&r);
	snprintf(limit, sizeof(limit), "%.0f", RUN_LIMIT_S * pk_test_time_scale());
	lab_start(&r, (const char *const[]){ "case-study", "--short", "--out", r.out,
					     "--limit", limit, NULL });
	lab_wait(&r, RUNS * (long)(RUN_LIMIT_S * 1000) + STOP_MS);
	printf("%s", r.stdout_text);
	if (r.status != 0)
		fprintf(stderr, "pagekeeper lab's stderr:\n%s", r.stderr_text);
	ck_assert_msg(r.status == 0, "pagekeeper lab exited %d (its stdout and stderr "
		      "above); stdout ends:\n%s", r.status, tail_of(r.stdout_text, 1200));
	snprintf(path, sizeof(path), "%s/samples.csv", r.out);
	char *csv = slurp(path);
	check_samples(csv, guests);
	free(csv);
	snprintf(path, sizeof(path), "%s/guests.csv", r.out);
	csv = slurp(path);
	check_guests_csv(csv);
	free(csv);
	check_table(r.stdout_text, "baseline", guests);
	check_table(r.stdout_text, "esx", guests);
	ck_assert_msg(strstr(r.stdout_text, "\nverified: every page ("),
		      "not every page verified:\n%s", tail_of(r.stdout_text, 1500));
	ck_assert_msg(strstr(r.stdout_text, "\nguests killed: 0\n"),
		      "guests were killed:\n%s", tail_of(r.stdout_text, 1500));
	lab_gone(&r);
	lab_free(&r);
}
END_TEST

/* A progress line "lab: esx: N s of at most ..." is in the file. */
static int esx_sampled(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[512];
	int seen = 0;

	while (f && !seen && fgets(line, sizeof(line), f))
		seen = !strncmp(line, "lab: esx: ", 10) && line[10] >= '0' && line[10] <= '9';
	if (f)
		fclose(f);
	return seen;
}

START_TEST(interrupt)
{
	struct lab_run r;
	char path[400];

	lab_dirs(&r);
	lab_start(&r, (const char *const[]){ "case-study", "--short", NULL });
	snprintf(path, sizeof(path), "%s", r.se);
	/* Interrupt once the esx run's guests are sampled (its progress line). */
	WAIT_FOR(esx_sampled(path), RUN_LIMIT_S * 1000, 50, "the esx run's first sample");
	ck_assert_int_eq(kill(r.pid, SIGINT), 0);
	lab_wait(&r, STOP_MS);
	ck_assert_msg(r.status == 130, "exit %d on SIGINT, want 130\nstderr ends:\n%s",
		      r.status, tail_of(r.stderr_text, 1500));
	ck_assert_msg(strstr(r.stderr_text, "pagekeeper lab: interrupted; stopping"),
		      "stderr ends:\n%s", tail_of(r.stderr_text, 1500));
	lab_gone(&r);
	lab_free(&r);
}
END_TEST

/* A scenario file with body; the lab must exit 2 with want on stderr. */
static void refused(const char *body, const char *const *extra, const char *want1,
		    const char *want2)
{
	struct lab_run r;
	char ini[400], w[512];
	const char *args[8] = { ini };
	int n = 1;

	lab_dirs(&r);
	snprintf(ini, sizeof(ini), "%s/bad.ini", r.dir);
	if (body) {
		FILE *f = fopen(ini, "w");
		ck_assert(f);
		fputs(body, f);
		fclose(f);
	}
	for (; extra && *extra; extra++)
		args[n++] = *extra;
	args[n] = NULL;
	lab_start(&r, args);
	lab_wait(&r, 5000);
	snprintf(w, sizeof(w), want1, ini);
	ck_assert_msg(r.status == 2, "exit %d, want 2; stderr ends:\n%s", r.status,
		      tail_of(r.stderr_text, 1500));
	ck_assert_msg(strstr(r.stderr_text, w), "stderr lacks \"%s\":\n%s", w,
		      tail_of(r.stderr_text, 1500));
	ck_assert_msg(!want2 || strstr(r.stderr_text, want2), "stderr lacks \"%s\":\n%s",
		      want2, tail_of(r.stderr_text, 1500));
	ck_assert_msg(!strstr(r.stderr_text, "lab: baseline"), "a run started:\n%s",
		      tail_of(r.stderr_text, 1500));
	lab_gone(&r);
	lab_free(&r);
}

START_TEST(bad_scenarios)
{
	static const char head[] = "# a scenario\n[scenario]\nname = bad\n";

	refused("# a scenario\n[scenario]\nname = bad\n\nbogus_key = 1\n", NULL,
		"%s:5: [scenario] bogus_key = '1': unknown key", NULL);
	refused("[guests]\ncount = 2\nsize = 12Q\n", NULL, "%s:3: [guests] size = '12Q'",
		NULL);
	refused("[guests]\ncount = 2\n[short]\nops = 10\nsizzle = 3\n", NULL,
		"%s:5: [short] sizzle = '3': unknown key", NULL);
	refused("[gests]\ncount = 2\n", NULL, "%s:2: unknown section [gests]", NULL);
	refused("[scenario]\nthis is not a key\n", NULL, "%s:2: not KEY = VALUE", NULL);
	/* The first error is the one named, whatever its kind. */
	refused("[scenario]\nname = x\njunk\nbogus = 1\n", NULL, "%s:3: not KEY = VALUE",
		NULL);
	refused("[scenario]\nname = x\nbogus = 1\njunk\n", NULL,
		"%s:3: [scenario] bogus = '1': unknown key", NULL);
	refused("[guests]\ncount = 2\nlocked = 2", NULL, "%s:3: [guests] locked = '2'", NULL);
	refused("[scenario]\npolicies = esx, lru\n", NULL, "%s:2: [scenario] policies = "
		"'esx, lru': unknown policy", NULL);
	refused("[scenario]\nbudget = 150%\n", NULL, "%s:2: [scenario] budget", NULL);
	refused(NULL, NULL, "%s: No such file or directory", NULL);
	refused(head, (const char *const[]){ "--policy", "lru", NULL },
		"pagekeeper lab: bad --policy 'lru'", NULL);
	refused(head, (const char *const[]){ "--budget", "12Q", NULL },
		"pagekeeper lab: bad --budget '12Q'", NULL);
	/* A name, not a file: looked up in the scenario directories. */
	struct lab_run r;
	lab_dirs(&r);
	lab_start(&r, (const char *const[]){ "no-such-scenario", NULL });
	lab_wait(&r, 5000);
	ck_assert_msg(r.status == 2 && strstr(r.stderr_text, "no scenario "
					      "no-such-scenario.ini in "),
		      "exit %d, stderr ends:\n%s", r.status, tail_of(r.stderr_text, 1500));
	lab_gone(&r);
	lab_free(&r);
}
END_TEST

static Suite *lab_suite(void)
{
	Suite *s = suite_create("lab");
	TCase *tc = tcase_create("bad_scenarios");

	tcase_add_test(tc, bad_scenarios);
	tcase_set_timeout(tc, 60 * pk_test_time_scale());
	suite_add_tcase(s, tc);
	tc = tcase_create("interrupt");
	tcase_add_test(tc, interrupt);
	tcase_set_timeout(tc, 120 * pk_test_time_scale());
	suite_add_tcase(s, tc);
	tc = tcase_create("case_study");
	tcase_add_test(tc, case_study);
	tcase_set_timeout(tc, (RUNS * RUN_LIMIT_S + 30) * pk_test_time_scale());
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(lab_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
