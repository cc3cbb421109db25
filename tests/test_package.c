/*
 * test_package.c - the Debian packages (service issue, item "Install"):
 * built from this tree with `dpkg-buildpackage -us -uc -b`, checked by
 * lintian, and holding what each package must hold.  Slow suite
 * 'package' (tools/test --slow; tools/bootstrap --package installs the
 * tools).
 *
 * What (one test, `deb`, so the build runs once):
 *  - the tools are there: dpkg-buildpackage, dpkg-checkbuilddeps,
 *    dpkg-deb (dpkg-dev), dh (debhelper), lintian, git, tar; a missing
 *    one FAILS the test, naming it and its Debian package (never a skip);
 *    so do unmet Build-Depends (dpkg-checkbuilddeps' own words);
 *  - dpkg-buildpackage -us -uc -b exits 0 (else the log's last lines
 *    are printed);
 *  - lintian on the .changes reports no E: tag (each one is named); the
 *    W: tags are counted and listed, and do not fail the test;
 *  - dpkg-deb -c of pagekeeper, libpagekeeper-client0 and
 *    libpagekeeper-client-dev lists every file below (non-empty), the
 *    manual pages gzipped; /etc/pagekeeper/pagekeeper.conf is a conffile.
 *  Every problem of the last two steps is collected and the test fails
 *  once, naming them all.  It prints the build's and lintian's run time.
 *
 * How: the files of `git ls-files --cached --others --exclude-standard`
 * in $PK_SOURCE_ROOT (the working tree: committed files with their local
 * changes, and new files not ignored; ones deleted locally are left out)
 * are copied by tar into TOP/src of a fresh /tmp/pk-package-XXXXXX, and
 * dpkg-buildpackage runs there, so the .debs, .changes and the logs all
 * land in TOP, which main() removes.  Children get this environment
 * without PK_* and sanitizer variables (the build's own unit tests must
 * not write into this run's logs).  The meson install itself (DESTDIR
 * file list) is tests/test_service.c's `install`, not repeated here.
 *
 * Why: the debian/ install lists, rules and control drift from meson.build
 * silently (new man pages, a moved unit); only building the packages
 * shows it, and a lintian error is what the archive would refuse.
 */
#include "tests/daemon_fixture.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* A backstop only: the build took 134 s (one job, shared 2-core
 * machine), lintian 17 s; meson's timeout for the test is the same. */
#define PACKAGE_TIMEOUT_S 1800

/* Everything the test makes is under this directory (main() removes it). */
static char top_dir[64];

/* Problems found after the build: all named in one failure at the end. */
static char problems[16384];
static int n_problems;

static void problem(const char *fmt, ...)
{
	size_t used = strlen(problems);
	va_list ap;

	n_problems++;
	if (used + 2 >= sizeof(problems))
		return;
	va_start(ap, fmt);
	vsnprintf(problems + used, sizeof(problems) - used - 1, fmt, ap);
	va_end(ap);
	strcat(problems, "\n");
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Is an executable NAME on $PATH? */
static int on_path(const char *name)
{
	const char *path = getenv("PATH");
	char buf[4352], dir[4096];

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
	while (*path) {
		size_t n = strcspn(path, ":");

		snprintf(dir, sizeof(dir), "%.*s", (int)n, path);
		snprintf(buf, sizeof(buf), "%s/%s", n ? dir : ".", name);
		if (access(buf, X_OK) == 0)
			return 1;
		path += n;
		if (*path == ':')
			path++;
	}
	return 0;
}

/* This environment without PK_* and the sanitizer/preload variables. */
static char **child_env(void)
{
	static const char *drop[] = { "PK_", "ASAN_OPTIONS=", "UBSAN_OPTIONS=",
				      "LSAN_OPTIONS=", "TSAN_OPTIONS=",
				      "LD_PRELOAD=", "MALLOC_PERTURB_=" };
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 1, sizeof(*env));
	ck_assert_ptr_nonnull(env);
	for (size_t i = 0; i < n; i++) {
		int keep = 1;

		for (size_t d = 0; d < sizeof(drop) / sizeof(drop[0]); d++)
			if (!strncmp(environ[i], drop[d], strlen(drop[d])))
				keep = 0;
		if (keep)
			env[k++] = environ[i];
	}
	return env;
}

/*
 * Run argv in dir (NULL: here) with stdout and stderr into the file log
 * (truncated) and stdin from /dev/null; its exit status, -1 on a signal.
 */
static int run_logged(char *const argv[], const char *dir, const char *log)
{
	char **env = child_env();
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			      0644);
		int in = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (fd < 0 || in < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 ||
		    dup2(in, 0) < 0 || (dir && chdir(dir) < 0))
			_exit(126);
		execvpe(argv[0], argv, env);
		fprintf(stderr, "cannot run %s: %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	free(env);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The whole of a file into a malloc'd NUL-terminated buffer (*len bytes). */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	ck_assert_msg(f, "cannot read %s: %s", path, strerror(errno));
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t)n;
	return buf;
}

/* Print the last lines of a log to stdout (meson shows it on failure). */
static void print_tail(const char *path, int lines)
{
	char *buf = slurp(path, NULL);
	char *p = buf + strlen(buf);
	int seen = 0;

	while (p > buf && seen <= lines)
		if (*--p == '\n')
			seen++;
	printf("---- last %d lines of %s ----\n%s\n---- end of %s ----\n",
	       lines, path, p == buf ? p : p + 1, path);
	fflush(stdout);
	free(buf);
}

/* Run argv, TOP/NAME.log its log; fail with the log's tail unless 0. */
static void run_or_fail(char *const argv[], const char *dir,
			const char *name)
{
	char log[128];
	int rc;

	snprintf(log, sizeof(log), "%s/%s.log", top_dir, name);
	rc = run_logged(argv, dir, log);
	if (rc != 0)
		print_tail(log, 60);
	ck_assert_msg(rc == 0, "%s exited %d (the end of %s is above)",
		      argv[0], rc, log);
}

/* The tools the build needs, each with the Debian package that has it. */
static void require_tools(void)
{
	static const char *const tools[][2] = {
		{ "dpkg-buildpackage", "dpkg-dev" },
		{ "dpkg-checkbuilddeps", "dpkg-dev" },
		{ "dpkg-deb", "dpkg" },
		{ "dh", "debhelper" },
		{ "lintian", "lintian" },
		{ "git", "git" },
		{ "tar", "tar" },
	};
	char missing[512] = "";

	for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
		if (!on_path(tools[i][0]))
			snprintf(missing + strlen(missing),
				 sizeof(missing) - strlen(missing), " %s (%s)",
				 tools[i][0], tools[i][1]);
	ck_assert_msg(!missing[0],
		      "missing:%s; install them with tools/bootstrap --package "
		      "(tools/test --slow does)", missing);
}

/*
 * Copy the working tree's files (see the top comment) from root into
 * dst: the list is filtered to paths that exist, then tar copies them
 * (modes, symlinks as they are).
 */
static void copy_tree(const char *root, const char *dst)
{
	char list[128], keep[128], tarball[128];
	char *ls[] = { "git", "-C", (char *)root, "ls-files", "-z", "--cached",
		       "--others", "--exclude-standard", NULL };
	char *pack[] = { "tar", "-C", (char *)root, "--null", "--no-recursion",
			 "-T", keep, "-cf", tarball, NULL };
	char *unpack[] = { "tar", "-C", (char *)dst, "-xf", tarball, NULL };
	size_t len, n = 0;
	char *names;
	FILE *out;
	int rc;

	snprintf(list, sizeof(list), "%s/ls-files", top_dir);
	snprintf(keep, sizeof(keep), "%s/ls-files.kept", top_dir);
	snprintf(tarball, sizeof(tarball), "%s/tree.tar", top_dir);
	rc = run_logged(ls, NULL, list);
	if (rc != 0)
		print_tail(list, 20);
	ck_assert_msg(rc == 0, "git ls-files in %s exited %d (a git checkout "
		      "is needed; its words are above)", root, rc);
	names = slurp(list, &len);
	out = fopen(keep, "w");
	ck_assert_ptr_nonnull(out);
	for (size_t off = 0; off < len; off += strlen(names + off) + 1) {
		char path[4096];
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", root, names + off);
		if (lstat(path, &st) < 0) /* deleted in the working tree */
			continue;
		fwrite(names + off, 1, strlen(names + off) + 1, out);
		n++;
	}
	fclose(out);
	free(names);
	ck_assert_msg(n > 0, "git ls-files listed no file in %s", root);
	ck_assert_int_eq(mkdir(dst, 0755), 0);
	run_or_fail(pack, NULL, "tar-create");
	run_or_fail(unpack, NULL, "tar-extract");
	unlink(tarball);
	printf("package: copied %zu files of %s\n", n, root);
}

/* The one file TOP/PATTERN names (a glob), into out. */
static void one_file(const char *pattern, char *out, size_t len)
{
	char pat[256];
	glob_t g;

	snprintf(pat, sizeof(pat), "%s/%s", top_dir, pattern);
	ck_assert_msg(glob(pat, 0, NULL, &g) == 0 && g.gl_pathc == 1,
		      "expected one %s after the build, found %zu", pat,
		      (size_t)g.gl_pathc);
	snprintf(out, len, "%s", g.gl_pathv[0]);
	globfree(&g);
}

/* lintian on the .changes: E: tags are problems, W: tags are listed. */
static void check_lintian(const char *changes)
{
	char log[128];
	char *argv[] = { "lintian", (char *)changes, NULL };
	char *out, *line, *save = NULL;
	int rc, errors = 0, warnings = 0;
	double t0 = now_s();

	snprintf(log, sizeof(log), "%s/lintian.log", top_dir);
	rc = run_logged(argv, NULL, log);
	printf("package: lintian took %.0f s (exit %d)\n", now_s() - t0, rc);
	out = slurp(log, NULL);
	for (line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "E: ", 3)) {
			errors++;
			problem("lintian %s", line);
		} else if (!strncmp(line, "W: ", 3)) {
			if (!warnings++)
				printf("package: lintian warnings:\n");
			printf("  %s\n", line);
		}
	}
	printf("package: lintian: %d E:, %d W:\n", errors, warnings);
	/* lintian exits 2 with an E: tag (--fail-on error); any other
	 * non-zero exit is lintian itself failing: its words are above. */
	if (rc != 0 && errors == 0) {
		print_tail(log, 30);
		problem("lintian exited %d without an E: tag", rc);
	}
	free(out);
}

/* What a package must hold: fnmatch patterns on `dpkg-deb -c` paths. */
struct want {
	const char *pkg;
	const char *paths[16];
};

static const struct want wants[] = {
	{ "pagekeeper",
	  { "./usr/sbin/pagekeeperd", "./usr/bin/pagekeeper",
	    "./usr/bin/pk-guestsim", "./usr/lib/*/libpagekeeper-preload.so",
	    "./lib/systemd/system/pagekeeperd.service",
	    "./etc/pagekeeper/pagekeeper.conf",
	    "./usr/lib/sysusers.d/pagekeeper.conf",
	    "./usr/share/man/man8/pagekeeperd.8.gz",
	    "./usr/share/man/man1/pagekeeper.1.gz",
	    "./usr/share/man/man1/pk-guestsim.1.gz",
	    "./usr/share/man/man5/pagekeeper.conf.5.gz", NULL } },
	{ "libpagekeeper-client0",
	  { "./usr/lib/*/libpagekeeper-client.so.0",
	    "./usr/lib/*/libpagekeeper-client.so.0.*", NULL } },
	{ "libpagekeeper-client-dev",
	  { "./usr/include/pagekeeper/pagekeeper-client.h",
	    "./usr/lib/*/pkgconfig/libpagekeeper-client.pc",
	    "./usr/lib/*/libpagekeeper-client.so", NULL } },
};

/*
 * Does the `dpkg-deb -c` listing hold a path matching pat?  Lines are
 * "MODE OWNER SIZE DATE TIME PATH[ -> TARGET]"; a regular file must
 * not be empty.
 */
static int listed(const char *listing, const char *pat, char *why,
		  size_t len)
{
	const char *line = listing;

	while (*line) {
		const char *end = strchr(line, '\n');
		char buf[1024], mode[16], owner[64], path[512];
		unsigned long long size;

		size_t n = end ? (size_t)(end - line) : strlen(line);

		if (n >= sizeof(buf))
			n = sizeof(buf) - 1;
		memcpy(buf, line, n);
		buf[n] = '\0';
		line = end ? end + 1 : line + strlen(line);
		if (sscanf(buf, "%15s %63s %llu %*s %*s %511s", mode, owner,
			   &size, path) != 4 ||
		    fnmatch(pat, path, FNM_PATHNAME) != 0)
			continue;
		if (mode[0] == '-' && size == 0) {
			snprintf(why, len, "is empty (%s)", path);
			return 0;
		}
		return 1;
	}
	snprintf(why, len, "is missing");
	return 0;
}

static void check_contents(void)
{
	for (size_t i = 0; i < sizeof(wants) / sizeof(wants[0]); i++) {
		char pat[128], deb[256], log[128], why[600];
		char *list[] = { "dpkg-deb", "-c", deb, NULL };
		char *listing;

		snprintf(pat, sizeof(pat), "%s_*.deb", wants[i].pkg);
		one_file(pat, deb, sizeof(deb));
		snprintf(log, sizeof(log), "%s/%s.contents", top_dir,
			 wants[i].pkg);
		ck_assert_msg(run_logged(list, NULL, log) == 0,
			      "dpkg-deb -c %s failed", deb);
		listing = slurp(log, NULL);
		for (int p = 0; wants[i].paths[p]; p++)
			if (!listed(listing, wants[i].paths[p], why,
				    sizeof(why)))
				problem("%s: %s %s", wants[i].pkg,
					wants[i].paths[p], why);
		free(listing);
	}
}

/* The sample configuration is a conffile (kept over upgrades). */
static void check_conffile(void)
{
	char deb[256], log[128];
	char *argv[] = { "dpkg-deb", "--info", deb, "conffiles", NULL };
	char *out;

	one_file("pagekeeper_*.deb", deb, sizeof(deb));
	snprintf(log, sizeof(log), "%s/conffiles", top_dir);
	if (run_logged(argv, NULL, log) != 0) {
		problem("pagekeeper: no conffiles (dpkg-deb --info %s "
			"conffiles failed)", deb);
		return;
	}
	out = slurp(log, NULL);
	if (!strstr(out, "/etc/pagekeeper/pagekeeper.conf\n"))
		problem("pagekeeper: /etc/pagekeeper/pagekeeper.conf is not a "
			"conffile (conffiles: %s)", out);
	free(out);
}

START_TEST(test_deb)
{
	const char *root = getenv("PK_SOURCE_ROOT");
	char src[96], changes[256];
	char *build[] = { "dpkg-buildpackage", "-us", "-uc", "-b", NULL };
	char *deps[] = { "dpkg-checkbuilddeps", NULL };
	double t0;

	ck_assert_msg(root && *root, "PK_SOURCE_ROOT is not set (run "
		      "through meson test)");
	require_tools();
	snprintf(src, sizeof(src), "%s/src", top_dir);
	copy_tree(root, src);
	run_or_fail(deps, src, "checkbuilddeps");

	t0 = now_s();
	run_or_fail(build, src, "dpkg-buildpackage");
	printf("package: dpkg-buildpackage -us -uc -b took %.0f s\n",
	       now_s() - t0);

	one_file("pagekeeper_*.changes", changes, sizeof(changes));
	check_lintian(changes);
	check_contents();
	check_conffile();
	fflush(stdout);
	ck_assert_msg(n_problems == 0, "%d problem(s) with the packages:\n%s",
		      n_problems, problems);
}
END_TEST

static Suite *package_suite(void)
{
	Suite *s = suite_create("package");
	TCase *tc = tcase_create("deb");

	tcase_add_test(tc, test_deb);
	tcase_set_timeout(tc, PACKAGE_TIMEOUT_S);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return pk_test_main_in_top_dir(package_suite(), "package", top_dir,
				       sizeof(top_dir));
}
