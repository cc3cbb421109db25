/*
 * bench_run.h - run one pk-bench-* command as a child for its smoke test.
 *
 * What: the harness the benchmark smoke tests (test_bench_balloon.c,
 * test_bench_swap.c) share: start the bench binary named by an environment
 * variable with --dir (a fresh scratch dir of the case), --daemon and
 * --guestsim of this build plus the case's options; wait for it with a
 * deadline, killing it on timeout with its stderr in the failure; the
 * processes whose command line names the scratch dir and the files in it
 * (nothing of a run may be left); small JSON getters that fail clearly;
 * the line of a text that starts with a prefix.
 * How: stdout and stderr go to memfds (no pipe can fill, stderr readable
 * while the child runs); the scratch dir is made under $PK_TEST_SCRATCH
 * (the build dir, a disk file system); deadlines are work_ms times
 * pk_test_time_scale() (daemon_fixture.h).  Failures are Check asserts.
 * What differs per bench is in struct bench_prog.
 * Why: one copy of the harness for every bench smoke test.
 */
#ifndef PK_TESTS_BENCH_RUN_H
#define PK_TESTS_BENCH_RUN_H

#include <check.h>
#include <json-c/json.h>
#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

struct bench_prog {
	const char *env;	/* environment variable naming the binary */
	const char *name;	/* the binary's name in messages */
	const char *prefix;	/* the scratch dir's name prefix */
	long stop_ms;		/* unscaled: SIGTERM -> SIGKILL, teardown */
	char scratch[PATH_MAX];	/* this case's --dir (bench_scratch_make) */
};

struct bench_run {
	pid_t pid;
	int out_fd, err_fd;
	int status;	/* exit status, or 128 + signal */
	char *out, *err;
};

/* A fresh p->scratch under $PK_TEST_SCRATCH (or .). */
void bench_scratch_make(struct bench_prog *p);

/* The executable named by $var, or fail. */
const char *bench_env_path(const char *var);

/*
 * Start $p->env --dir SCRATCH --daemon $PK_DAEMON --guestsim $PK_GUESTSIM
 * extra... (extra NULL-terminated, at most 20).
 */
void bench_run_start(const struct bench_prog *p, struct bench_run *r,
		     const char *const *extra);

/*
 * Wait until it exits, at most work_ms scaled; on timeout SIGTERM, the
 * stop time, SIGKILL, and fail with its stderr.  poll (may be NULL) is
 * called with arg every 10 ms while it runs.  Fills status, out, err.
 */
void bench_run_poll(const struct bench_prog *p, struct bench_run *r, long work_ms,
		    void (*poll)(void *), void *arg);
void bench_run_wait(const struct bench_prog *p, struct bench_run *r, long work_ms);
void bench_run_free(struct bench_run *r);

/* 1 when the child's stderr so far has a line containing text. */
int bench_err_has(const struct bench_run *r, const char *text);

/* The child's stderr so far (malloc'd), while it runs. */
char *bench_err_now(const struct bench_run *r);

/* Pids whose command line names p->scratch (the run's processes). */
size_t bench_scratch_pids(const struct bench_prog *p, pid_t *out, size_t max);

/* Entries in p->scratch besides . and .. */
int bench_scratch_entries(const struct bench_prog *p);

/* Wait (stop time) until no process and no file of the run is left; rmdir. */
void bench_expect_nothing_left(const struct bench_prog *p);

/* o's member key, or fail. */
json_object *bench_get(json_object *o, const char *key);

/* o's member key as a number, or fail. */
double bench_num(json_object *o, const char *key);

/* The line of text starting with prefix (after spaces), from from, or fail. */
const char *bench_line_of(const char *text, const char *prefix, const char *from);

/* A bad command line: up to 4 arguments (NULL-terminated) and the text
 * stderr must name. */
struct bench_bad_args {
	const char *args[5];
	const char *names;
};

/*
 * Each bad command line exits 2 within usage_ms, its stderr naming what
 * is wrong and nothing on stdout; then nothing of the runs is left.
 */
void bench_expect_usage_errors(struct bench_prog *p, const struct bench_bad_args *bad,
			       size_t n, long usage_ms);

/* A case of its own with a backstop timeout of work_ms, scaled. */
void bench_add_case(Suite *s, const char *name, const TTest *t, long work_ms);

/* Run the suite; the process's exit status: 1 if any case failed. */
int bench_run_suite(Suite *s);

#endif
