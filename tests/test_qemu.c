/*
 * test_qemu.c - real QEMU guests (TCG) booted from the test image of
 * tools/guest-image/build-image, with pk-guestcheck checking every page of
 * its memory inside the guest.  Suite 'qemu' (slow; not run by default).
 *
 * For now without pagekeeper: these tests prove the harness and the
 * checker, which the managed tests will rely on.
 *  - boots_and_checks: a 256 MiB guest boots (the time to the ready line
 *    is logged) and its checker completes 3 rounds over 128 MiB with 0
 *    errors; QEMU still runs.
 *  - checker_detects_corruption: the checker's hidden
 *    --inject-error-after-round flips one bit behind its back; it reports
 *    exactly that one error.  A checker that cannot fail proves nothing.
 *  - balloon_qmp_unmanaged: QMP `balloon` inflates the guest from 256 to
 *    176 MiB; `query-balloon` follows, the guest's MemTotal drops by about
 *    as much, and the checker still finds 0 errors; then it deflates back.
 *
 * Needs qemu-system-x86_64 and the image: main() first runs
 * $PK_BUILD_IMAGE --checker $PK_GUESTCHECK $PK_GUEST_IMAGE (meson sets
 * them; the script does nothing when the image is up to date).  Without
 * PK_BUILD_IMAGE, the image in $PK_GUEST_IMAGE is used as it is.  A
 * missing QEMU or image is a failure with the reason, never a skip.
 * Every wait has a deadline derived from its work (qemu_guest.h's
 * budgets: boot, checker MiB per round, balloon MiB), times
 * pk_test_time_scale().
 */
#include "tests/daemon_fixture.h"
#include "tests/qemu_guest.h"
#include "tests/qmp_client.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024LL * 1024)
/* Deadlines: qemu_guest.h's budgets, derived from each wait's work. */
#define QMP_TIMEOUT_MS qemu_guest_qmp_budget_ms()

/* Why the image could not be built ("" when it was). */
static char image_error[1024];


static void start_guest(struct qemu_guest *g, const char *name,
			unsigned mib, const char *append)
{
	struct qemu_guest_opts o = { .name = name, .mem_mib = mib,
				     .append = append };
	char line[512];

	ck_assert_msg(!image_error[0], "%s", image_error);
	ck_assert_msg(qemu_guest_start(g, &o) == 0, "%s", g->error);
	ck_assert_msg(qemu_guest_wait_line(g, "pkguest: ready",
					   qemu_guest_boot_budget_ms(1), line,
					   sizeof(line)) == 0,
		      "%s: %s", name, g->error);
	fprintf(stderr, "%s: boot to ready line %ld ms: %s\n", name,
		qemu_guest_elapsed_ms(g), strstr(line, "pkguest:"));
}

static void wait_rounds(struct qemu_guest *g, long rounds,
			struct pkcheck_status *st)
{
	ck_assert_msg(qemu_guest_wait_rounds(g, rounds,
					     qemu_guest_rounds_budget_ms(g, rounds),
					     st) == 0, "%s: %s", g->name, g->error);
}

START_TEST(boots_and_checks)
{
	struct qemu_guest g;
	struct pkcheck_status st;

	start_guest(&g, "pk-boot", 256, "pkcheck.mib=128 pkcheck.rewrite=0.1");
	wait_rounds(&g, 3, &st);
	fprintf(stderr, "boots_and_checks: %ld rounds over %.0f MiB, %lld "
		"errors, verify rate %.1f MiB/s, guest MemTotal %ld MiB, "
		"%ld ms since spawn\n", st.round, st.verified_mib, st.errors,
		st.rate_mib_s, st.mem_total_mib, qemu_guest_elapsed_ms(&g));
	ck_assert_int_eq(st.errors, 0);
	ck_assert_double_eq(st.verified_mib, 128);
	ck_assert_msg(qemu_guest_alive(&g), "%s", g.error);
	qemu_guest_stop(&g);
}
END_TEST

START_TEST(checker_detects_corruption)
{
	struct qemu_guest g;
	struct pkcheck_status st;
	char line[512];

	start_guest(&g, "pk-corrupt", 256,
		    "pkcheck.mib=32 pkcheck.inject-error-after-round=2");
	ck_assert_msg(qemu_guest_wait_line(&g, "pkcheck: injected corruption",
					   qemu_guest_rounds_budget_ms(&g, 3),
					   line, sizeof(line)) == 0, "%s",
		      g.error);
	ck_assert_msg(qemu_guest_wait_line(&g, "pkcheck: error round 3",
					   qemu_guest_rounds_budget_ms(&g, 3),
					   line, sizeof(line)) == 0, "%s",
		      g.error);
	fprintf(stderr, "checker_detects_corruption: %s\n",
		strstr(line, "pkcheck:"));
	wait_rounds(&g, 4, &st);
	/* Exactly the one flipped bit: no more, and never none. */
	ck_assert_int_eq(st.errors, 1);
	ck_assert_msg(qemu_guest_alive(&g), "%s", g.error);
	qemu_guest_stop(&g);
}
END_TEST

/* query-balloon's "actual", in bytes (asserts success). */
static long long balloon_actual(struct qmp_client *q)
{
	json_object *ret = qmp_return(q, "query-balloon", NULL, QMP_TIMEOUT_MS);
	json_object *actual;
	long long v;

	ck_assert_msg(ret, "%s", q->error);
	ck_assert_msg(json_object_object_get_ex(ret, "actual", &actual),
		      "query-balloon without 'actual': %s",
		      json_object_to_json_string(ret));
	v = json_object_get_int64(actual);
	json_object_put(ret);
	return v;
}

/* balloon to target MiB and wait until query-balloon reports it. */
static void balloon_to(struct qmp_client *q, long long target_mib)
{
	json_object *args = json_object_new_object(), *ret;
	long long actual = balloon_actual(q), moved;
	long t0 = pk_test_now_ms(), budget;

	json_object_object_add(args, "value",
			       json_object_new_int64(target_mib * MIB));
	ret = qmp_return(q, "balloon", args, QMP_TIMEOUT_MS);
	json_object_put(args);
	ck_assert_msg(ret, "%s", q->error);
	json_object_put(ret);
	moved = llabs(actual / MIB - target_mib);
	budget = qemu_guest_mib_budget_ms((double)moved, QEMU_BALLOON_MIN_MIB_S);
	for (;;) {
		actual = balloon_actual(q);
		if (actual == target_mib * MIB ||
		    pk_test_now_ms() - t0 > budget)
			break;
		usleep(100000);
	}
	fprintf(stderr, "balloon_qmp_unmanaged: balloon to %lld MiB: "
		"query-balloon actual %lld MiB after %ld ms\n", target_mib,
		actual / MIB, pk_test_now_ms() - t0);
	ck_assert_msg(actual == target_mib * MIB,
		      "query-balloon actual %lld MiB, waited %ld ms for the "
		      "balloon to reach %lld MiB (%lld MiB to move)",
		      actual / MIB, budget, target_mib, moved);
}

START_TEST(balloon_qmp_unmanaged)
{
	struct qemu_guest g;
	struct qmp_client q;
	struct pkcheck_status before, inflated, after;
	long drop;

	start_guest(&g, "pk-balloon", 256, "pkcheck.mib=64 pkcheck.rewrite=0.1");
	ck_assert_msg(qmp_connect(&q, g.qmp, QMP_TIMEOUT_MS) == 0, "%s",
		      q.error);
	wait_rounds(&g, 2, &before);
	ck_assert_int_eq(balloon_actual(&q), 256 * MIB);

	balloon_to(&q, 176);
	/* Rounds that began after the inflation finished. */
	wait_rounds(&g, before.round + 2, &inflated);
	wait_rounds(&g, inflated.round + 2, &inflated);
	drop = before.mem_total_mib - inflated.mem_total_mib;
	fprintf(stderr, "balloon_qmp_unmanaged: guest MemTotal %ld -> %ld "
		"MiB, checker round %ld, %lld errors\n", before.mem_total_mib,
		inflated.mem_total_mib, inflated.round, inflated.errors);
	ck_assert_int_eq(inflated.errors, 0);
	/* The virtio balloon (no deflate-on-oom) takes what it holds out
	 * of the guest's MemTotal. */
	ck_assert_msg(drop >= 72 && drop <= 88, "MemTotal %ld -> %ld MiB: "
		      "want about 80 MiB less", before.mem_total_mib,
		      inflated.mem_total_mib);

	balloon_to(&q, 256);
	wait_rounds(&g, inflated.round + 2, &after);
	wait_rounds(&g, after.round + 2, &after);
	ck_assert_int_eq(after.errors, 0);
	ck_assert_int_eq(after.mem_total_mib, before.mem_total_mib);
	ck_assert_msg(qemu_guest_alive(&g), "%s", g.error);
	qmp_close(&q);
	qemu_guest_stop(&g);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("qemu");
	TCase *boot = tcase_create("boot");
	TCase *corrupt = tcase_create("corruption");
	TCase *balloon = tcase_create("balloon");
	SRunner *sr;
	int failed;

	/* One case each, so that CK_RUN_CASE picks one. */
	tcase_add_test(boot, boots_and_checks);
	tcase_add_test(corrupt, checker_detects_corruption);
	tcase_add_test(balloon, balloon_qmp_unmanaged);
	tcase_set_timeout(boot, 300 * pk_test_time_scale());
	tcase_set_timeout(corrupt, 300 * pk_test_time_scale());
	tcase_set_timeout(balloon, 300 * pk_test_time_scale());
	suite_add_tcase(s, boot);
	suite_add_tcase(s, corrupt);
	suite_add_tcase(s, balloon);
	qemu_guest_build_image(image_error, sizeof(image_error));
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
