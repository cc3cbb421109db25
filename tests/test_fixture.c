/*
 * test_fixture.c - the daemon fixture judges how every daemon ended.
 *
 * Every test that starts a pagekeeperd ends with pk_test_daemon_stop_ok():
 * the daemon must exit 0 on SIGTERM within its deadline and leave no
 * ASan, LeakSanitizer or UBSan report in its log (the ASan build runs
 * every daemon with detect_leaks=1).  If that judgement were wrong, every
 * other suite would stay green over a crashing or leaking daemon, so it is
 * tested here against a real daemon:
 *   - a daemon stopped normally passes, and its state directory goes;
 *   - a daemon that died under the test (SIGKILL from outside, as an OOM
 *     kill would) fails the stop, and the log is kept under
 *     $PK_TEST_LOGDIR with its path in the error;
 *   - a sanitizer report in the log fails the stop.  The report line is
 *     appended to the real daemon's log by the test, since a daemon that
 *     leaks on purpose cannot be built into the product: this is the one
 *     stand-in here, and the closing note of the suite issue shows the
 *     real thing (a leaking daemon failing every suite);
 *   - pk_test_daemon_kill() accepts exactly the signal asked for.
 */
#include "tests/daemon_fixture.h"

#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The error names the kept copy of the log: it exists, then it goes. */
static void unlink_kept_log(const char *error)
{
	const char *p = strstr(error, "kept in ");
	char kept[PATH_MAX];
	struct stat st;

	ck_assert_msg(p, "no kept log named in: %s", error);
	snprintf(kept, sizeof(kept), "%.*s", (int)strcspn(p + 8, ")"), p + 8);
	ck_assert_msg(stat(kept, &st) == 0 && st.st_size > 0,
		      "kept log %s missing or empty", kept);
	unlink(kept);
}

START_TEST(clean_stop_passes)
{
	struct pk_test_daemon d;
	struct stat st;
	char dir[sizeof(d.dir)];

	ck_assert_msg(pk_test_daemon_start(&d, NULL) == 0, "%s", d.error);
	memcpy(dir, d.dir, sizeof(dir));
	ck_assert_int_eq(pk_test_daemon_stop(&d), 0);
	ck_assert_msg(stat(dir, &st) < 0, "%s still exists after stop", dir);
	/* Idempotent, and keeps its verdict. */
	ck_assert_int_eq(pk_test_daemon_stop(&d), 0);
}
END_TEST

START_TEST(daemon_killed_under_the_test_fails)
{
	struct pk_test_daemon d;

	ck_assert_msg(pk_test_daemon_start(&d, NULL) == 0, "%s", d.error);
	ck_assert_int_eq(kill(d.pid, SIGKILL), 0);
	/* Wait for it to be a zombie, then let the fixture find out. */
	while (waitid(P_PID, (id_t)d.pid, NULL, WEXITED | WNOWAIT) < 0)
		;
	ck_assert_int_eq(pk_test_daemon_alive(&d), 0);
	ck_assert_int_eq(pk_test_daemon_stop(&d), -1);
	ck_assert_msg(strstr(d.error, "signal 9"), "error: %s", d.error);
	unlink_kept_log(d.error);
}
END_TEST

START_TEST(sanitizer_report_fails)
{
	static const char *const reports[] = {
		"==1==ERROR: LeakSanitizer: detected memory leaks\n",
		"engine/x.c:1:2: runtime error: signed integer overflow\n",
		"==1==ERROR: AddressSanitizer: heap-use-after-free\n",
	};

	for (size_t i = 0; i < sizeof(reports) / sizeof(reports[0]); i++) {
		struct pk_test_daemon d;
		int fd;

		ck_assert_msg(pk_test_daemon_start(&d, NULL) == 0, "%s",
			      d.error);
		fd = open(d.log, O_WRONLY | O_APPEND);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, reports[i], strlen(reports[i])),
				 (ssize_t)strlen(reports[i]));
		close(fd);
		ck_assert_int_eq(pk_test_daemon_stop(&d), -1);
		ck_assert_msg(strstr(d.error, "sanitizer report"), "error: %s",
			      d.error);
		unlink_kept_log(d.error);
	}
}
END_TEST

START_TEST(intended_kill_is_judged)
{
	struct pk_test_daemon d;

	ck_assert_msg(pk_test_daemon_start(&d, NULL) == 0, "%s", d.error);
	ck_assert_msg(pk_test_daemon_kill(&d, SIGKILL) == 0, "%s", d.error);
	ck_assert_int_eq(pk_test_daemon_stop(&d), 0);

	/* SIGTERM through kill() must mean "exited 0", as in stop. */
	ck_assert_msg(pk_test_daemon_start(&d, NULL) == 0, "%s", d.error);
	ck_assert_msg(pk_test_daemon_kill(&d, SIGTERM) == 0, "%s", d.error);
	ck_assert_int_eq(pk_test_daemon_stop(&d), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fixture");
	TCase *tc = tcase_create("fixture");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, clean_stop_passes);
	tcase_add_test(tc, daemon_killed_under_the_test_fails);
	tcase_add_test(tc, sanitizer_report_fails);
	tcase_add_test(tc, intended_kill_is_judged);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
