/*
 * slow.c - the slow suite 'fuzz' (issue 17, item 4): every fuzz target
 * (fuzz.h) under libFuzzer for PK_FUZZ_RUNS executions (default 10^7),
 * one Check test a target, each running tools/fuzz for that target in a
 * child.  tools/fuzz configures and builds its own clang build (its
 * --build directory: PK_FUZZ_BUILD, else build-fuzz/ in the source tree),
 * starts from the checked-in corpus and fails on any crash, leak or
 * sanitizer report, leaving the input in its output directory.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PK_FUZZ_SCRIPT
#error "PK_FUZZ_SCRIPT: tools/fuzz (tests/fuzz/meson.build)"
#endif
#ifndef PK_FUZZ_NAMES
#error "PK_FUZZ_NAMES: the targets (tests/fuzz/meson.build)"
#endif

#define MAX_TARGETS 16

static char names[] = PK_FUZZ_NAMES;
static char *targets[MAX_TARGETS];
static int n_targets;

START_TEST(fuzz_target)
{
	const char *runs = getenv("PK_FUZZ_RUNS");
	const char *build = getenv("PK_FUZZ_BUILD");
	char *argv[8];
	int argc = 0, st;
	pid_t pid;

	argv[argc++] = (char *)PK_FUZZ_SCRIPT;
	argv[argc++] = (char *)"--runs";
	argv[argc++] = (char *)(runs && *runs ? runs : "10000000");
	if (build && *build) {
		argv[argc++] = (char *)"--build";
		argv[argc++] = (char *)build;
	}
	argv[argc++] = targets[_i];
	argv[argc] = NULL;
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		execv(argv[0], argv);
		perror(argv[0]);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "tools/fuzz %s failed (status 0x%x): see its output above",
		      targets[_i], st);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fuzz");
	TCase *tc = tcase_create("libfuzzer");
	SRunner *sr;
	int failed;

	for (char *t = strtok(names, " "); t && n_targets < MAX_TARGETS;
	     t = strtok(NULL, " "))
		targets[n_targets++] = t;
	/* 10^7 executions of the slowest target take hours on a loaded
	 * machine: no Check timeout; meson's is off too (timeout 0). */
	tcase_set_timeout(tc, 0);
	tcase_add_loop_test(tc, fuzz_target, 0, n_targets);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
