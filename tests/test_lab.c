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
 *  - issue 16, on the same case study run (an unchecked fixture runs it
 *    once): report_charts (OUT/report.html is self-contained and has a
 *    chart element per figure, each with an inline SVG whose first series
 *    has a point for at least half of its rows in the CSV), report_rendered
 *    (headless Chromium renders it to PNG, decoded with libpng: the page
 *    has ink, every chart's box is not blank and its plot area has
 *    coloured data; Chromium missing is a failure), advise_run (`pagekeeper
 *    advise --run OUT` against the rule applied here, and a doctored copy);
 *    advise_live (a live overcommitted daemon: an idle guest is named, a
 *    busy one not); identical_guests (`identical-guests --short`: shared %
 *    and saved % against 1..3 guests, sharing.csv, the report's chart).
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
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <png.h>

#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"

/* The short case study's limit per run (its [short] limit is 90 s). */
#define RUN_LIMIT_S 90
#define RUNS 2			/* baseline and esx */
#define STOP_MS 8000		/* every guest and the daemon: 2 s grace each */
#define MAX_COLS 64
#define LAB_GUESTS_MAX 16

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
	long deadline = pk_test_deadline_ms(work_ms); /* now + work, scaled */
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
		/* The short runs are bounded by the heap's 0.5 s growth, so an
		 * esx run can end a few ms before its baseline: 0.95, not 1. */
		ck_assert_msg(run_s > 0 && stretch >= 0.95, "%s lab%u: run %.2f s, stretch "
			      "%.2fx (want >= 0.95)", policy, i, run_s, stretch);
	}
}

/*
 * The short case study runs once per process, in an unchecked fixture
 * (the parent), and the tests of its tcase read what it left: the exit
 * status, stdout, and OUT (the CSV files and the report).
 */
static struct lab_run cs;
static bool cs_ran;

static void case_study_setup(void)
{
	char limit[32];

	lab_dirs(&cs);
	snprintf(limit, sizeof(limit), "%.0f", RUN_LIMIT_S * pk_test_time_scale());
	lab_start(&cs, (const char *const[]){ "case-study", "--short", "--out", cs.out,
					      "--limit", limit, NULL });
	lab_wait(&cs, RUNS * (long)(RUN_LIMIT_S * 1000) + STOP_MS);
	cs_ran = true;
}

static void case_study_teardown(void)
{
	if (cs_ran)
		lab_free(&cs);
	cs_ran = false;
}

START_TEST(case_study)
{
	struct lab_run *r = &cs;
	char path[1024];
	const unsigned guests = 4; /* case-study.ini [guests] count */

	ck_assert_msg(cs_ran, "the case study did not run");
	printf("%s", r->stdout_text);
	if (r->status != 0)
		fprintf(stderr, "pagekeeper lab's stderr:\n%s", r->stderr_text);
	ck_assert_msg(r->status == 0, "pagekeeper lab exited %d (its stdout and stderr "
		      "above); stdout ends:\n%s", r->status, tail_of(r->stdout_text, 1200));
	snprintf(path, sizeof(path), "%s/samples.csv", r->out);
	char *csv = slurp(path);
	check_samples(csv, guests);
	free(csv);
	snprintf(path, sizeof(path), "%s/guests.csv", r->out);
	csv = slurp(path);
	check_guests_csv(csv);
	free(csv);
	check_table(r->stdout_text, "baseline", guests);
	check_table(r->stdout_text, "esx", guests);
	ck_assert_msg(strstr(r->stdout_text, "\nverified: every page ("),
		      "not every page verified:\n%s", tail_of(r->stdout_text, 1500));
	ck_assert_msg(strstr(r->stdout_text, "\nguests killed: 0\n"),
		      "guests were killed:\n%s", tail_of(r->stdout_text, 1500));
	lab_gone(r);
}
END_TEST

/* ---- the report (issue 16) ---- */

struct chart_want {
	const char *id;		/* <div class="chart" id="chart-ID"> */
	/*
	 * Its series come from file (in OUT): the rows of run (and of one
	 * guest, when guests > 0: series k + 1 is guest labk; the one with
	 * the most rows is checked, as a guest may finish before the first
	 * sample) with column filled; the series' path has a point for at
	 * least half of them, plus one (gnuplot drops a point that lands on
	 * the previous one).  file NULL: the first series has min_points.
	 */
	const char *file, *run;
	int guests;
	const char *column;
	int min_points;
};

/* The case study's charts: the seed's figures 7, 11, 12-13, 15-16 and the stretch. */
static const struct chart_want cs_charts[] = {
	{ "fig7", "samples.csv", "esx", 4, "granted_mib", 0 },
	{ "fig11", "samples.csv", "esx", 4, "ballooned_mib", 0 },
	{ "fig12", "guests.csv", "esx", 4, "resident_mib", 0 },
	{ "fig15", "guests.csv", "esx", 4, "page_ins_per_s", 0 },
	{ "stretch", NULL, NULL, 0, NULL, 3 },	/* a box: 4 sides */
};

/* Rows of OUT/file for w's run and vm (NULL: any) with its column filled. */
static int series_rows(const char *out, const struct chart_want *w, const char *vm)
{
	char path[1024], hdr[MAX_COLS][32], *text, *save = NULL, *f[MAX_COLS];
	int nh, rows = 0;

	snprintf(path, sizeof(path), "%s/%s", out, w->file);
	text = slurp(path);
	nh = header_cols(text, hdr, MAX_COLS);
	int c_run = col_index(hdr, nh, "run"), c_vm = col_index(hdr, nh, "vm"),
	    c = col_index(hdr, nh, w->column);
	ck_assert_msg(c >= 0, "%s has no column %s", w->file, w->column);
	strtok_r(text, "\n", &save);
	for (char *l = strtok_r(NULL, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		if (fields(l, f, MAX_COLS) == nh && (!w->run || !strcmp(f[c_run], w->run)) &&
		    (!vm || !strcmp(f[c_vm], vm)) && f[c][0])
			rows++;
	free(text);
	return rows;
}

/*
 * The part of html that is chart id's element (up to the next chart or
 * the tables), copied; NULL when there is no such chart.
 */
static char *chart_part(const char *html, const char *id)
{
	char want[96];
	const char *p, *end;

	snprintf(want, sizeof(want), "<div class=\"chart\" id=\"chart-%s\"", id);
	if (!(p = strstr(html, want)))
		return NULL;
	end = strstr(p + 1, "<div class=\"chart\"");
	if (!end)
		end = strstr(p, "<div id=\"tables\"");
	if (!end)
		end = p + strlen(p);
	return strndup(p, (size_t)(end - p));
}

/*
 * The most points (L commands) of one <path> of the chart's series k
 * (from 1): gnuplot wraps each plotted series in <g
 * id="...gnuplot_plot_K">; the data series come first (later ones may be
 * constants, such as a budget or a published figure).
 */
static int chart_points(const char *part, int k)
{
	int best = 0;
	char a[32], b[32];
	const char *plot, *end;

	snprintf(a, sizeof(a), "gnuplot_plot_%d\"", k);
	snprintf(b, sizeof(b), "gnuplot_plot_%d\"", k + 1);
	if (!(plot = strstr(part, a)))
		return 0;
	end = strstr(plot, b);
	for (const char *p = strstr(plot, "<path"); p && (!end || p < end);
	     p = strstr(p + 1, "<path")) {
		const char *d = strstr(p, " d='"), *e;
		int n = 0;
		if (!d || !(e = strchr(d + 4, '\'')))
			continue;
		for (const char *q = d + 4; q < e; q++)
			n += *q == 'L';
		best = n > best ? n : best;
	}
	return best;
}

/* "X,Y,W,H" of attribute attr="..." after p. */
static int box_of(const char *p, const char *attr, int box[4])
{
	char want[64];
	const char *a;

	snprintf(want, sizeof(want), "%s=\"", attr);
	a = strstr(p, want);
	return a && sscanf(a + strlen(want), "%d,%d,%d,%d", &box[0], &box[1], &box[2],
			   &box[3]) == 4 ? 0 : -1;
}

static void check_report_charts(const char *out, const struct chart_want *w, size_t n)
{
	char path[400];
	char *html;

	snprintf(path, sizeof(path), "%s/report.html", out);
	ck_assert_msg(access(path, R_OK) == 0, "no report: %s: %s", path, strerror(errno));
	html = slurp(path);
	/* Self-contained: nothing to fetch, nothing to run. */
	ck_assert_msg(!strstr(html, "<script") && !strstr(html, "src=\"http") &&
		      !strstr(html, "href=\"http") && !strstr(html, "href='http") &&
		      !strstr(html, "<link"), "report.html loads or runs something");
	for (size_t i = 0; i < n; i++) {
		char *part = chart_part(html, w[i].id);
		int box[4];
		ck_assert_msg(part, "report.html has no chart \"chart-%s\"; its notes: %.300s",
			      w[i].id, strstr(html, "class=\"note\"") ?
			      strstr(html, "class=\"note\"") : "none");
		ck_assert_msg(box_of(part, "data-box", box) == 0 && box[2] > 100 &&
			      box[3] > 100, "chart %s has no data-box", w[i].id);
		ck_assert_msg(strstr(part, "<svg"), "chart %s has no inline SVG", w[i].id);
		int series = 1, want = w[i].min_points, rows = 0;
		char vm[16] = "";
		if (w[i].file) {
			/* The guest with the most rows (series k + 1 is labk). */
			for (int k = 0; k < (w[i].guests ? w[i].guests : 1); k++) {
				char name[16];
				snprintf(name, sizeof(name), "lab%d", k);
				int n = series_rows(out, &w[i], w[i].guests ? name : NULL);
				if (n > rows) {
					rows = n;
					series = k + 1;
					snprintf(vm, sizeof(vm), "%s", w[i].guests ? name : "");
				}
			}
			ck_assert_msg(rows >= 2, "chart %s: %s has at most %d rows of %s with %s "
				      "for a series: nothing to draw", w[i].id, w[i].file, rows,
				      w[i].run ? w[i].run : "any run", w[i].column);
			want = rows / 2 + 1;
		}
		int pts = chart_points(part, series);
		printf("report: chart %s: series %d (%s): %d points in its fullest path (its "
		       "rows: %d)\n", w[i].id, series, vm, pts, rows);
		ck_assert_msg(pts >= want, "chart %s: series %d (%s)'s fullest path has %d "
			      "points, want at least %d (for %d rows in %s)", w[i].id, series, vm,
			      pts, want, rows, w[i].file ? w[i].file : "the run");
		free(part);
	}
	free(html);
}

START_TEST(report_charts)
{
	/* The report is written at the end of every run, even one where a guest failed. */
	ck_assert_msg(cs_ran && (cs.status == 0 || cs.status == 1), "the case study did not "
		      "end (exit %d): stderr ends:\n%s", cs.status, tail_of(cs.stderr_text, 1200));
	ck_assert_msg(strstr(cs.stdout_text, "\nreport: ") &&
		      strstr(cs.stdout_text, "/report.html"), "the lab did not print the "
		      "report's path:\n%s", tail_of(cs.stdout_text, 600));
	check_report_charts(cs.out, cs_charts, sizeof(cs_charts) / sizeof(cs_charts[0]));
}
END_TEST

/* Is chromium on PATH?  Its full path into out. */
static bool find_chromium(char *out, size_t len)
{
	const char *path = getenv("PATH");
	char buf[4096], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", path ? path : "/usr/bin:/bin");
	for (char *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(out, len, "%s/chromium", d);
		if (access(out, X_OK) == 0)
			return true;
	}
	return false;
}

/* A process (not us) with dir on its command line, or 0. */
static pid_t procs_with(const char *dir)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = 0;

	ck_assert(d);
	while (!found && (e = readdir(d))) {
		char cmd[8192];
		pid_t pid = (pid_t)atoi(e->d_name);
		if (pid <= 0 || pid == getpid())
			continue;
		size_t n = proc_cmdline(pid, cmd, sizeof(cmd) - 1);
		for (size_t i = 0; i + 1 < n; i++)
			if (!cmd[i])
				cmd[i] = ' ';
		cmd[n] = '\0';
		if (n && strstr(cmd, dir))
			found = pid;
	}
	closedir(d);
	return found;
}

/*
 * Render file html with headless Chromium, window w x h, into png: in
 * a process group of its own (Chromium forks helpers), with a profile
 * directory under dir; the whole group is killed and the profile removed
 * whatever happens.
 */
static void render(const char *dir, const char *html, int w, int h, const char *png)
{
	char chromium[512], profile[400], shot[450], size[64], url[512], log[420], cmd[900];
	int st = -1;

	ck_assert_msg(find_chromium(chromium, sizeof(chromium)), "chromium is not installed: "
		      "the report's rendering test needs it (Debian package chromium; "
		      "tools/bootstrap installs it)");
	snprintf(profile, sizeof(profile), "%s/chromium-profile-XXXXXX", dir);
	ck_assert_msg(mkdtemp(profile), "mkdtemp %s: %s", profile, strerror(errno));
	snprintf(shot, sizeof(shot), "--screenshot=%s", png);
	snprintf(size, sizeof(size), "--window-size=%d,%d", w, h);
	snprintf(url, sizeof(url), "file://%s", html);
	snprintf(log, sizeof(log), "%s/chromium.log", dir);
	char udd[450];
	snprintf(udd, sizeof(udd), "--user-data-dir=%s", profile);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			_exit(126);
		dup2(fd, 1);
		dup2(fd, 2);
		execl(chromium, "chromium", "--headless", "--no-sandbox", "--disable-gpu",
		      "--hide-scrollbars", "--force-device-scale-factor=1",
		      "--no-first-run", "--disable-extensions", udd, shot, size, url,
		      (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	/* A page of a few MB: seconds; the deadline is generous for a loaded machine. */
	long deadline = pk_test_deadline_ms(60000);
	bool done = false;
	while (!done && pk_test_now_ms() < deadline) {
		done = waitpid(pid, &st, WNOHANG) == pid;
		if (!done)
			sleep_ms(50);
	}
	kill(-pid, SIGKILL); /* the helpers Chromium started, and Chromium if it hangs */
	if (!done)
		waitpid(pid, &st, 0);
	/* The group is gone once no process has the profile on its command line. */
	WAIT_FOR(!procs_with(profile), 5000, 20, "Chromium's processes to end");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", profile);
	ck_assert_int_eq(system(cmd), 0);
	char *text = slurp(log);
	ck_assert_msg(done, "chromium did not finish within %.0f s; its log ends:\n%s",
		      60 * pk_test_time_scale(), tail_of(text, 1200));
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0 && access(png, R_OK) == 0,
		      "chromium failed (status %d) or wrote no %s; its log ends:\n%s", st, png,
		      tail_of(text, 1200));
	free(text);
}

/* Pixels of box (x, y, w, h) not the white background; *colour: clearly coloured ones. */
static long non_background(const png_bytep px, int width, const int box[4], long *colour)
{
	long n = 0;

	*colour = 0;
	for (int y = box[1]; y < box[1] + box[3]; y++)
		for (int x = box[0]; x < box[0] + box[2]; x++) {
			const png_byte *p = px + 3 * ((size_t)y * (size_t)width + (size_t)x);
			int mx = p[0] > p[1] ? (p[0] > p[2] ? p[0] : p[2]) : (p[1] > p[2] ? p[1] : p[2]);
			int mn = p[0] < p[1] ? (p[0] < p[2] ? p[0] : p[2]) : (p[1] < p[2] ? p[1] : p[2]);
			if (p[0] != 255 || p[1] != 255 || p[2] != 255)
				n++;
			if (mx - mn > 60)
				(*colour)++;
		}
	return n;
}

/*
 * The report rendered by Chromium: the page is drawn (its head has text)
 * and every chart's box (data-box) has pixels other than the white
 * background, some of them coloured (the data series; axes are grey).
 */
static void check_rendered(const char *dir, const char *out, const struct chart_want *w,
			   size_t n, const char *keep_as)
{
	char path[400], png[420];
	char *html;
	int size[4] = { 0 }, head[4];
	png_image img;

	snprintf(path, sizeof(path), "%s/report.html", out);
	html = slurp(path);
	const char *body = strstr(html, "<body");
	ck_assert_msg(body && sscanf(strstr(body, "data-size=\"") ? strstr(body, "data-size=\"")
				     + 11 : "", "%d,%d", &size[0], &size[1]) == 2,
		      "report.html's body has no data-size");
	snprintf(png, sizeof(png), "%s/report.png", dir);
	render(dir, path, size[0], size[1], png);
	memset(&img, 0, sizeof(img));
	img.version = PNG_IMAGE_VERSION;
	ck_assert_msg(png_image_begin_read_from_file(&img, png), "libpng: %s: %s", png,
		      img.message);
	img.format = PNG_FORMAT_RGB;
	png_bytep px = malloc(PNG_IMAGE_SIZE(img));
	ck_assert(px);
	ck_assert_msg(png_image_finish_read(&img, NULL, px, 0, NULL), "libpng: %s: %s", png,
		      img.message);
	ck_assert_msg((int)img.width == size[0] && (int)img.height == size[1], "screenshot "
		      "%ux%u, want %dx%d", img.width, img.height, size[0], size[1]);
	/* The page rendered: its head (title, scenario) has text. */
	head[0] = 0;
	head[1] = 0;
	head[2] = size[0];
	head[3] = 100;
	long colour, ink = non_background(px, size[0], head, &colour);
	printf("report rendered %dx%d: head %ld pixels of ink\n", size[0], size[1], ink);
	ck_assert_msg(ink > 1000, "the page did not render: %ld pixels in its head are not "
		      "the background", ink);
	for (size_t i = 0; i < n; i++) {
		char *part = chart_part(html, w[i].id);
		int box[4], plot[4];
		ck_assert_msg(part && box_of(part, "data-box", box) == 0 &&
			      box_of(part, "data-plot", plot) == 0, "no chart %s with a "
			      "data-box and a data-plot", w[i].id);
		ck_assert_msg(box[0] + box[2] <= size[0] && box[1] + box[3] <= size[1],
			      "chart %s's box is outside the page", w[i].id);
		long area = (long)box[2] * box[3];
		long key_colour;
		ink = non_background(px, size[0], box, &key_colour);
		/* Inside the plot area (no key there): axes and grid are grey, data coloured. */
		non_background(px, size[0], plot, &colour);
		printf("report rendered: chart %s: %ld of %ld pixels drawn, %ld coloured in "
		       "its plot area\n", w[i].id, ink, area, colour);
		ck_assert_msg(ink > area / 100, "chart %s is blank: %ld of %ld pixels in its "
			      "box are not the background", w[i].id, ink, area);
		ck_assert_msg(colour > 300, "chart %s has no data drawn: %ld coloured pixels "
			      "in its plot area", w[i].id, colour);
		free(part);
	}
	if (keep_as && getenv(keep_as)) { /* a copy for people to look at */
		char cmd[1000];
		snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", png, getenv(keep_as));
		ck_assert_int_eq(system(cmd), 0);
	}
	png_image_free(&img);
	free(px);
	free(html);
}

START_TEST(report_rendered)
{
	/* The report is written at the end of every run, even one where a guest failed. */
	ck_assert_msg(cs_ran && (cs.status == 0 || cs.status == 1), "the case study did not "
		      "end (exit %d): stderr ends:\n%s", cs.status, tail_of(cs.stderr_text, 1200));
	check_rendered(cs.dir, cs.out, cs_charts, sizeof(cs_charts) / sizeof(cs_charts[0]),
		       "PK_LAB_SCREENSHOT");
}
END_TEST

/* ---- pagekeeper advise --run (issue 16) ---- */

/* $PK_CLI args... with stdout into out_file; its exit status. */
static int cli_run(const char *const *args, const char *out_file)
{
	const char *argv[16];
	size_t n = 0;
	int st;
	pid_t pid;

	argv[n++] = getenv("PK_CLI");
	for (; *args && n < 15; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(out_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			_exit(127);
		dup2(fd, 1);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

struct peak {
	char vm[16];
	double configured, granted, active;
};

/*
 * The rule of `pagekeeper advise --help`, computed here from samples.csv:
 * the esx run's peaks, active after its first 11 s.
 */
static int peaks(const char *csv_text, struct peak *pk, int max)
{
	char hdr[MAX_COLS][32], *text = strdup(csv_text), *save = NULL, *f[MAX_COLS];
	int nh = header_cols(csv_text, hdr, MAX_COLS), n = 0;
	int c_run = col_index(hdr, nh, "run"), c_t = col_index(hdr, nh, "t_s"),
	    c_vm = col_index(hdr, nh, "vm"), c_cf = col_index(hdr, nh, "configured_mib"),
	    c_gr = col_index(hdr, nh, "granted_mib"), c_ac = col_index(hdr, nh, "active_mib");

	strtok_r(text, "\n", &save);
	for (char *l = strtok_r(NULL, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		int k;
		if (fields(l, f, MAX_COLS) != nh || strcmp(f[c_run], "esx"))
			continue;
		for (k = 0; k < n && strcmp(pk[k].vm, f[c_vm]); k++)
			;
		if (k == n) {
			ck_assert_int_lt(n, max);
			snprintf(pk[n].vm, sizeof(pk[n].vm), "%s", f[c_vm]);
			pk[n].configured = pk[n].granted = 0;
			pk[n++].active = -1;
		}
		pk[k].configured = fmax(pk[k].configured, atof(f[c_cf]));
		pk[k].granted = fmax(pk[k].granted, atof(f[c_gr]));
		if (atof(f[c_t]) >= 11 && f[c_ac][0])
			pk[k].active = fmax(pk[k].active, atof(f[c_ac]));
	}
	free(text);
	return n;
}

/* advise's output names vm as the rule says, with the suggested size. */
static void check_advice(const char *out, const struct peak *p)
{
	char want[64];
	const char *l;
	double cf, gr, ac, sug;

	snprintf(want, sizeof(want), "\n%s ", p->vm);
	l = strstr(out, want);
	ck_assert_msg(l, "advise has no line for %s:\n%s", p->vm, tail_of(out, 1200));
	if (p->active < 0) {
		ck_assert_msg(strstr(l, "no active-memory sample"), "%s: %.200s", p->vm, l + 1);
		return;
	}
	ck_assert_msg(sscanf(l + strlen(want), " %lf MiB %lf MiB %lf MiB %lf MiB", &cf, &gr,
			     &ac, &sug) == 4, "advise's line for %s has no sizes in MiB: "
		      "%.200s", p->vm, l + 1);
	double unit = p->configured >= 1024 ? 64 : 4;
	double s = fmax(unit, fmin(ceil(p->active * 1.25 / unit - 1e-9) * unit, p->configured));
	bool far = p->granted - s >= fmax(unit, 0.2 * p->granted);
	ck_assert_msg(fabs(ac - p->active) < 0.06 && fabs(gr - p->granted) < 0.06 &&
		      fabs(sug - s) < 0.5, "%s: advise says granted %.1f, active %.1f, "
		      "suggested %.0f MiB; samples.csv says %.1f, %.1f, so %.0f MiB", p->vm, gr,
		      ac, sug, p->granted, p->active, s);
	const char *eol = strchr(l + 1, '\n');
	const char *give = strstr(l + 1, "give it ");
	bool named = give && (!eol || give < eol);
	ck_assert_msg(named == far, "%s (granted %.1f MiB, suggested %.0f MiB) %s named:\n"
		      "%.200s", p->vm, p->granted, s, far ? "should be" : "should not be",
		      l + 1);
}

START_TEST(advise_run)
{
	char path[1024], out[1024], doctored[600], cmd[4096];
	struct peak pk[LAB_GUESTS_MAX];

	ck_assert_msg(cs_ran && (cs.status == 0 || cs.status == 1), "the case study did not "
		      "end (exit %d)", cs.status);
	snprintf(path, sizeof(path), "%s/samples.csv", cs.out);
	snprintf(out, sizeof(out), "%s/advise.out", cs.dir);
	char *csv = slurp(path);
	int n = peaks(csv, pk, LAB_GUESTS_MAX);
	ck_assert_msg(n == 4, "samples.csv has %d esx guests, want 4", n);
	int st = cli_run((const char *const[]){ "advise", "--run", cs.out, NULL }, out);
	char *text = slurp(out);
	printf("%s", text);
	ck_assert_msg(st == 0, "pagekeeper advise --run exited %d:\n%s", st, text);
	/*
	 * A run shorter than the first sampling period (10 s) has no active
	 * figure: each VM must then say so (check_advice); advise_live
	 * checks the rule on a daemon that has sampled.
	 */
	int sampled = 0;
	for (int i = 0; i < n; i++) {
		check_advice(text, &pk[i]);
		sampled += pk[i].active >= 0;
	}
	printf("advise_run: %d of %d guests with an active-memory sample\n", sampled, n);
	free(text);
	/*
	 * The same run, but lab2 granted all its RAM throughout (a guest that
	 * touched everything once and uses little of it): it must be named.
	 */
	snprintf(doctored, sizeof(doctored), "%s/doctored", cs.dir);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && awk -F, -v OFS=, 'NR == 1 { for (i = 1; "
		 "i <= NF; i++) c[$i] = i } NR > 1 && $c[\"vm\"] == \"lab2\" { "
		 "$c[\"granted_mib\"] = $c[\"configured_mib\"] } { print }' '%s' > "
		 "'%s/samples.csv'", doctored, path, doctored);
	ck_assert_int_eq(system(cmd), 0);
	free(csv);
	snprintf(path, sizeof(path), "%s/samples.csv", doctored);
	csv = slurp(path);
	n = peaks(csv, pk, LAB_GUESTS_MAX);
	st = cli_run((const char *const[]){ "advise", "--run", doctored, NULL }, out);
	text = slurp(out);
	printf("%s", text);
	ck_assert_msg(st == 0, "pagekeeper advise --run (doctored) exited %d:\n%s", st, text);
	bool lab2 = false;
	for (int i = 0; i < n; i++) {
		check_advice(text, &pk[i]);
		lab2 |= !strcmp(pk[i].vm, "lab2") && pk[i].active >= 0 &&
			pk[i].active * 1.25 < 0.8 * pk[i].configured - 4;
	}
	if (lab2)
		ck_assert_msg(strstr(text, "\nlab2 ") && strstr(strstr(text, "\nlab2 "),
								  "give it "),
			      "lab2 granted all its RAM and is not named:\n%s", text);
	free(text);
	free(csv);
	/* Bad input: a clear error, no crash. */
	st = cli_run((const char *const[]){ "advise", "--run", cs.dir, NULL }, out);
	ck_assert_msg(st == 1, "advise --run on a directory without samples.csv: exit %d", st);
	st = cli_run((const char *const[]){ "advise", "--headroom", "x", NULL }, out);
	ck_assert_msg(st == 2, "advise --headroom x: exit %d", st);
}
END_TEST

/* One line of advise's table: its figures, and whether it names the VM. */
static void advice_line(const char *out, const char *vm, double f[4], bool *named)
{
	char want[64];
	const char *l, *eol, *give;

	snprintf(want, sizeof(want), "\n%s ", vm);
	l = strstr(out, want);
	ck_assert_msg(l && sscanf(l + strlen(want), " %lf MiB %lf MiB %lf MiB %lf MiB", &f[0],
				  &f[1], &f[2], &f[3]) == 4,
		      "advise has no line with sizes in MiB for %s:\n%s", vm, tail_of(out, 1200));
	eol = strchr(l + 1, '\n');
	give = strstr(l + 1, "give it ");
	*named = give && (!eol || give < eol);
}

/*
 * `pagekeeper advise` on a live daemon: a guest that filled 32 MiB and
 * holds it untouched (granted far above active) is named with the rule's
 * size; one that touches all of its 16 MiB at random is not.  The daemon
 * samples active memory only when overcommitted (a budget below the
 * guests' 48 MiB) and judges it every 10 s, so the test waits for the
 * idle guest's first judgement (active below its size).
 */
START_TEST(advise_live)
{
	struct pk_test_daemon d;
	struct guest idle, busy;
	char out[1024], dir[300];
	double f[4];
	bool named;

	snprintf(dir, sizeof(dir), "%s/test-advise-XXXXXX",
		 getenv("PK_TEST_SCRATCH") ? getenv("PK_TEST_SCRATCH") : "/tmp");
	ck_assert_msg(mkdtemp(dir), "mkdtemp %s: %s", dir, strerror(errno));
	snprintf(out, sizeof(out), "%s/advise.out", dir);
	/* Overcommitted (48 MiB of guests), or the daemon samples nothing. */
	ck_assert_msg(pk_test_daemon_start(&d, "--budget 44M --swap-size 256M") == 0,
		      "daemon: %s", d.error);
	guest_start(&idle, d.sock, "idle", (const char *const[]){ "--size", "32M",
		    "--workload", "idle", "--hold", NULL });
	guest_start(&busy, d.sock, "busy", (const char *const[]){ "--size", "16M",
		    "--workload", "random", "--duration", "60", "--hold", NULL });
	/* 32 MiB filled on a budget the two guests overrun: the fill waits
	 * for the policy's evictions as the state swings between soft and
	 * hard (2 MiB a tick, seen in a fresh-clone CI run that took over
	 * 10 s); only a hang should reach this. */
	guest_expect(&idle, "HOLDING", NULL, pk_test_deadline_ms(30000), "idle's fill");
	/* The first sampling period (10 s) and a second of slack. */
	WAIT_FOR(vm_field(&d, "idle", "active_mib") < 31, 11000, 200,
		 "the daemon's first active-memory judgement of idle");
	int st = cli_run((const char *const[]){ "--socket", d.sock, "advise", NULL }, out);
	char *text = slurp(out);
	printf("%s", text);
	ck_assert_msg(st == 0, "pagekeeper advise exited %d:\n%s", st, text);
	const char *who[2] = { "idle", "busy" };
	for (int i = 0; i < 2; i++) {
		advice_line(text, who[i], f, &named);
		double unit = f[0] >= 1024 ? 64 : 4;
		double s = fmax(unit, fmin(ceil(f[2] * 1.25 / unit - 1e-9) * unit, f[0]));
		bool far = f[1] - s >= fmax(unit, 0.2 * f[1]);
		ck_assert_msg(fabs(f[3] - s) < 0.5 && named == far, "%s: configured %.0f, "
			      "granted %.1f, active %.1f MiB: advise suggests %.0f MiB (%s), the "
			      "rule %.0f MiB (%s)", who[i], f[0], f[1], f[2], f[3],
			      named ? "named" : "not named", s, far ? "named" : "not named");
		ck_assert_msg(named == (i == 0), "%s should %sbe named:\n%s", who[i],
			      i == 0 ? "" : "not ", text);
	}
	free(text);
	guest_finish(&idle, 5000);
	kill(busy.pid, SIGTERM);	/* still in its 60 s of work: ends it, detached */
	guest_finish(&busy, 5000);
	pk_test_daemon_stop_ok(&d);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* ---- identical-guests (issue 16) ---- */

#define SWEEP_LIMIT_S 30	/* identical-guests.ini [short] limit, per step */
#define SWEEP_STEPS 3		/* its [short] sweep = 1-3 */

/*
 * `pagekeeper lab identical-guests --short`: 1, 2 and 3 guests with the
 * same content in one sharing domain.  Alone, a guest has nothing to
 * share (each of its pages differs from the others); with N >= 2 every
 * page is in every guest, so nearly all their RAM is shared and about
 * (N-1)/N of it saved.  The table, sharing.csv and the report's chart.
 */
START_TEST(identical_guests)
{
	struct lab_run r;
	char path[1024];
	const char *p;

	lab_dirs(&r);
	lab_start(&r, (const char *const[]){ "identical-guests", "--short", "--out", r.out,
					     NULL });
	/* Each step: the guests' fill and the settling, each within the limit. */
	lab_wait(&r, SWEEP_STEPS * (2 * SWEEP_LIMIT_S * 1000L + STOP_MS));
	printf("%s", r.stdout_text);
	ck_assert_msg(r.status == 0, "pagekeeper lab identical-guests exited %d; stderr "
		      "ends:\n%s", r.status, tail_of(r.stderr_text, 1500));
	p = strstr(r.stdout_text, "\nguests ");
	ck_assert_msg(p, "no sharing table:\n%s", tail_of(r.stdout_text, 1500));
	p = strchr(p + 1, '\n');
	for (unsigned n = 1; n <= SWEEP_STEPS; n++) {
		unsigned guests;
		double ram, shared, zero, shared_pct, saved_pct;
		ck_assert_msg(p && sscanf(p + 1, "%u %lf MiB %lf MiB %lf MiB %lf%% %lf%%",
					  &guests, &ram, &shared, &zero, &shared_pct,
					  &saved_pct) == 6 && guests == n,
			      "no table row for %u guests (in MiB and %%):\n%s", n,
			      tail_of(r.stdout_text, 1200));
		double want_saved = 100.0 * (n - 1) / n;
		if (n == 1)
			ck_assert_msg(shared == 0, "a guest alone shared %.1f MiB", shared);
		else
			ck_assert_msg(shared_pct >= 95 && saved_pct > want_saved - 5 &&
				      saved_pct <= want_saved + 1, "%u identical guests: shared "
				      "%.1f%% (want >= 95%%), saved %.1f%% (want about %.1f%%)", n,
				      shared_pct, saved_pct, want_saved);
		p = strchr(p + 1, '\n');
	}
	snprintf(path, sizeof(path), "%s/sharing.csv", r.out);
	char *csv = slurp(path);
	int rows = 0;
	for (const char *q = strchr(csv, '\n'); q && q[1]; q = strchr(q + 1, '\n'))
		rows++;
	ck_assert_msg(rows == SWEEP_STEPS, "sharing.csv has %d rows, want %d", rows,
		      SWEEP_STEPS);
	free(csv);
	static const struct chart_want sharing[] = {
		{ "sharing", "sharing.csv", NULL, 0, "shared_pct", 0 },
	};
	check_report_charts(r.out, sharing, 1);
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
	/* --out in the test's directory: by default the lab makes one here. */
	lab_start(&r, (const char *const[]){ "case-study", "--short", "--out", r.out, NULL });
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
/* ---- the kernel anchor's OOM kills ---- */

/*
 * kernel_oom: the kernel anchor (no daemon: the guests in a memory cgroup
 * limited to the budget, with a kernel swap file) meets its own failure
 * mode, the memory cgroup's OOM killer: two guests of 32 MiB on a budget
 * of 16 MiB with 4 MiB of swap cannot fit.  Their deaths are the anchor's
 * result, what the lab compares pagekeeper with: the table says "killed",
 * a line names the OOM killer, and the lab exits 0 (a guest killed under
 * a pagekeeper policy still fails it).  Needs root and the memory
 * cgroup, as the anchor does.
 */
START_TEST(kernel_oom)
{
	struct lab_run r;
	char ini[400];
	FILE *f;

	lab_dirs(&r);
	snprintf(ini, sizeof(ini), "%s/anchor-oom.ini", r.dir);
	f = fopen(ini, "w");
	ck_assert(f);
	fputs("[scenario]\nname = anchor-oom\nbudget = 16M\npolicies = kernel\n"
	      "swap_size = 4M\nlimit = 60\nseed = 1\n[guests]\ncount = 2\nsize = 32M\n"
	      "os = balloon\nworking_set = 90%\ngrow = 0.5\nops = 200000\nlive = 0.4\n"
	      "workload = random\n", f);
	fclose(f);
	lab_start(&r, (const char *const[]){ ini, "--out", r.out, NULL });
	lab_wait(&r, 2 * 60000L + STOP_MS);
	printf("%s", r.stdout_text);
	ck_assert_msg(r.status == 0, "pagekeeper lab exited %d with the kernel anchor's "
		      "guests OOM-killed; stdout ends:\n%s\nstderr ends:\n%s", r.status,
		      tail_of(r.stdout_text, 800), tail_of(r.stderr_text, 800));
	ck_assert_msg(strstr(r.stdout_text, "killed by the kernel's OOM killer"),
		      "no line about the anchor's OOM kills:\n%s", tail_of(r.stdout_text, 800));
	ck_assert_msg(strstr(r.stdout_text, "kernel        lab0       killed") ||
		      strstr(r.stdout_text, "kernel        lab1       killed"),
		      "no guest of the kernel run shows as killed:\n%s",
		      tail_of(r.stdout_text, 800));
	ck_assert_msg(strstr(r.stdout_text, "guests killed: 0\n"),
		      "the anchor's deaths counted as the lab's:\n%s",
		      tail_of(r.stdout_text, 800));
	lab_gone(&r);
	lab_free(&r);
}
END_TEST

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
	tc = tcase_create("advise_live");
	tcase_add_test(tc, advise_live);
	tcase_set_timeout(tc, 60 * pk_test_time_scale());
	suite_add_tcase(s, tc);
	tc = tcase_create("kernel_oom");
	tcase_add_test(tc, kernel_oom);
	tcase_set_timeout(tc, 150 * pk_test_time_scale());
	suite_add_tcase(s, tc);
	tc = tcase_create("identical_guests");
	tcase_add_test(tc, identical_guests);
	tcase_set_timeout(tc, (SWEEP_STEPS * (2 * SWEEP_LIMIT_S + 10) + 30) * pk_test_time_scale());
	suite_add_tcase(s, tc);
	/* The case study runs once (an unchecked fixture); its tests read its output. */
	tc = tcase_create("case_study");
	tcase_add_unchecked_fixture(tc, case_study_setup, case_study_teardown);
	tcase_add_test(tc, case_study);
	tcase_add_test(tc, report_charts);	/* issue 16: the report */
	tcase_add_test(tc, report_rendered);
	tcase_add_test(tc, advise_run);		/* issue 16: pagekeeper advise */
	tcase_set_timeout(tc, 120 * pk_test_time_scale());
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	const char *scratch = getenv("PK_TEST_SCRATCH");
	char root[512], cmd[600];
	SRunner *sr;
	int failed;

	/*
	 * Every test's directory goes under one root that this process
	 * removes at the end: a test that fails leaves its own behind
	 * (Check ends it with _exit), the root goes all the same.
	 */
	snprintf(root, sizeof(root), "%s/tl-XXXXXX", scratch ? scratch : "/tmp"); /* short: socket paths */
	if (!mkdtemp(root)) {
		perror(root);
		return 1;
	}
	setenv("PK_TEST_SCRATCH", root, 1);
	sr = srunner_create(lab_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "test_lab: could not remove %s\n", root);
	return failed ? 1 : 0;
}
