/*
 * bench_run.c - run one pk-bench-* command as a child for its smoke test.
 *
 * What/how/why: see bench_run.h.
 */
#include "tests/bench_run.h"
#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_EXTRA 20

const char *bench_env_path(const char *var)
{
	const char *p = getenv(var);
	ck_assert_msg(p && access(p, X_OK) == 0, "%s must name an executable", var);
	return p;
}

void bench_scratch_make(struct bench_prog *p)
{
	const char *base = getenv("PK_TEST_SCRATCH");
	snprintf(p->scratch, sizeof(p->scratch), "%s/%s-XXXXXX", base ? base : ".", p->prefix);
	ck_assert_msg(mkdtemp(p->scratch), "mkdtemp %s: %s", p->scratch, strerror(errno));
}

void bench_run_start(const struct bench_prog *p, struct bench_run *r,
		     const char *const *extra)
{
	const char *argv[8 + MAX_EXTRA];
	size_t n = 0;

	memset(r, 0, sizeof(*r));
	argv[n++] = bench_env_path(p->env);
	argv[n++] = "--dir";
	argv[n++] = p->scratch;
	argv[n++] = "--daemon";
	argv[n++] = bench_env_path("PK_DAEMON");
	argv[n++] = "--guestsim";
	argv[n++] = bench_env_path("PK_GUESTSIM");
	for (; *extra; extra++) {
		ck_assert_uint_lt(n, 7 + MAX_EXTRA);
		argv[n++] = *extra;
	}
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

void bench_run_poll(const struct bench_prog *p, struct bench_run *r, long work_ms,
		    void (*poll)(void *), void *arg)
{
	long deadline = pk_test_deadline_ms(work_ms);
	int st;

	while (waitpid(r->pid, &st, WNOHANG) == 0) {
		if (pk_test_now_ms() > deadline) {
			kill(r->pid, SIGTERM);
			sleep_ms(scaled_ms(p->stop_ms));
			kill(r->pid, SIGKILL);
			waitpid(r->pid, &st, 0);
			char *e = memfd_text(r->err_fd);
			ck_abort_msg("%s did not finish within %.1f s; its stderr:\n%s", p->name,
				     work_ms * pk_test_time_scale() / 1e3, e);
		}
		if (poll)
			poll(arg);
		sleep_ms(10);
	}
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	r->out = memfd_text(r->out_fd);
	r->err = memfd_text(r->err_fd);
	close(r->out_fd);
	close(r->err_fd);
}

void bench_run_wait(const struct bench_prog *p, struct bench_run *r, long work_ms)
{
	bench_run_poll(p, r, work_ms, NULL, NULL);
}

void bench_run_free(struct bench_run *r)
{
	free(r->out);
	free(r->err);
}

int bench_err_has(const struct bench_run *r, const char *text)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", r->err_fd);
	return file_has(path, text);
}

char *bench_err_now(const struct bench_run *r)
{
	return memfd_text(r->err_fd);
}

size_t bench_scratch_pids(const struct bench_prog *p, pid_t *out, size_t max)
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
		if (len && memmem(buf, len, p->scratch, strlen(p->scratch)) &&
		    proc_state(pid) != 'Z')
			out[n++] = pid;
	}
	closedir(d);
	return n;
}

int bench_scratch_entries(const struct bench_prog *p)
{
	DIR *d = opendir(p->scratch);
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

/* Processes (the guardian ends last) and files. */
void bench_expect_nothing_left(const struct bench_prog *p)
{
	pid_t pids[64];
	size_t n = 0;

	WAIT_FOR((n = bench_scratch_pids(p, pids, 64)) == 0 && bench_scratch_entries(p) == 0,
		 p->stop_ms, 20, "the run's processes (%zu left, first pid %d) and files (%d "
		 "entries in %.300s) to go", n, n ? (int)pids[0] : 0, bench_scratch_entries(p),
		 p->scratch);
	ck_assert_int_eq(rmdir(p->scratch), 0);
}

json_object *bench_get(json_object *o, const char *key)
{
	json_object *v = NULL;
	/* %.1000s: Check cannot pass a message of a few KiB to its parent */
	ck_assert_msg(json_object_object_get_ex(o, key, &v) && v, "JSON lacks \"%s\": %.1000s",
		      key, json_object_to_json_string(o));
	return v;
}

double bench_num(json_object *o, const char *key)
{
	json_object *v = bench_get(o, key);
	ck_assert_msg(json_object_is_type(v, json_type_double) ||
			      json_object_is_type(v, json_type_int),
		      "\"%s\" is not a number", key);
	return json_object_get_double(v);
}

const char *bench_line_of(const char *text, const char *prefix, const char *from)
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

void bench_expect_usage_errors(struct bench_prog *p, const struct bench_bad_args *bad,
			       size_t n, long usage_ms)
{
	bench_scratch_make(p);
	for (size_t i = 0; i < n; i++) {
		struct bench_run r;
		bench_run_start(p, &r, bad[i].args);
		bench_run_wait(p, &r, usage_ms);
		ck_assert_msg(r.status == 2 && strstr(r.err, bad[i].names) && !r.out[0],
			      "%s %s: exit %d (want 2), stderr naming %s:\n%s", bad[i].args[0],
			      bad[i].args[1] ? bad[i].args[1] : "", r.status, bad[i].names, r.err);
		bench_run_free(&r);
	}
	bench_expect_nothing_left(p);
}

void bench_add_case(Suite *s, const char *name, const TTest *t, long work_ms)
{
	TCase *tc = tcase_create(name);

	tcase_set_timeout(tc, (double)work_ms / 1e3 * pk_test_time_scale());
	tcase_add_test(tc, t);
	suite_add_tcase(s, tc);
}

int bench_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
