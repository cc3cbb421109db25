/*
 * test_sharing.c - the sharing scanner against a real daemon and real lab
 * guests (zero-page reclaim; duplicates come with the canonical store).
 *
 *  - zero_pages_idle: an idle guest whose RAM is half zero pages; the
 *    scanner reclaims them (zero_mib reaches the guest's zero fraction
 *    within 2%, resident + zero = configured), and every page verifies
 *    afterwards, the reclaimed ones refaulting as zeros.
 *  - zero_pages_racing_writers: writers keep writing (zipf: a hot set,
 *    and a cold tail that is written now and then) while the scanner
 *    reclaims the cold zero pages at 2 GiB/s; thousands of pages are
 *    reclaimed, many are written again afterwards (refaults), a few
 *    while their reclaim runs (aborts), and every
 *    page verifies: a write racing a reclaim is never lost.
 */
#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static void finish_and_verify(struct guest *g, double pages)
{
	json_object *res;

	kill(g->pid, SIGTERM); /* ends the workload; --verify follows */
	res = guest_read_result(g);
	ck_assert_msg(res, "guest %s printed no result", g->name);
	ck_assert_double_eq(jnum(res, "mismatches"), 0);
	ck_assert_double_eq(jnum(res, "pages_verified"), pages);
	json_object_put(res);
	ck_assert_int_eq(guest_finish(g), 0);
}

START_TEST(zero_pages_idle)
{
	struct pk_test_daemon d;
	struct guest g;
	const char *extra[] = { "--size", "64M", "--content", "zero=0.5,shared=0",
				"--workload", "idle", "--duration", "3600",
				"--verify", "--json", NULL };
	double zero = 0, resident = 0;

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 400M") == 0, "%s",
		      d.error);
	guest_start(&g, d.sock, "idle", extra);
	/* Two passes over 64 MiB at 400 MiB/s take well under a second;
	 * wait until two readings a second apart agree. */
	for (int t = 0; t < 30; t++) {
		sleep_ms(1000);
		double z = vm_field(&d, "idle", "zero_mib");
		if (z > 0 && z == zero)
			break;
		zero = z;
	}
	resident = vm_field(&d, "idle", "resident_mib");
	fprintf(stderr, "zero_pages_idle: %.2f MiB zero, %.2f MiB resident\n",
		zero, resident);
	ck_assert_msg(zero >= 0.48 * 64 && zero <= 0.52 * 64,
		      "zero_mib %.2f, want 32 +- 2%%", zero);
	ck_assert_double_eq_tol(zero + resident, 64, 1e-9);
	ck_assert_double_eq(vm_field(&d, "idle", "scan_zero_reclaimed") * 4096,
			    zero * (1 << 20));
	finish_and_verify(&g, 64 * 256);
	pk_test_daemon_stop(&d);
}
END_TEST

START_TEST(zero_pages_racing_writers)
{
	struct pk_test_daemon d;
	struct guest g;
	const char *extra[] = { "--size", "512M", "--content", "zero=0.6,shared=0",
				"--workload", "zipf", "--writers", "2",
				"--readers", "1", "--duration", "3600",
				"--verify", "--json", NULL };
	double reclaimed = 0;

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 2G") == 0, "%s",
		      d.error);
	guest_start(&g, d.sock, "race", extra);
	/* Until the guest has filled its RAM (its verify needs a full
	 * fill), then 8 s of writers racing the scanner.  512 MiB, so that
	 * zipf's cold pages stay unwritten for the second a page must stay
	 * zero before it is reclaimed, and are then written now and then. */
	for (int t = 0; vm_field(&d, "race", "untouched_mib") > 0; t++) {
		ck_assert_msg(t < 3000, "guest did not fill its RAM in 30 s");
		sleep_ms(10);
	}
	sleep_ms(1000); /* fault-around runs ahead of the fill's writes */
	sleep_ms(8000);
	reclaimed = vm_field(&d, "race", "scan_zero_reclaimed");
	fprintf(stderr, "zero_pages_racing_writers: %.0f pages reclaimed, "
		"%.0f aborted by guest writes, %.0f refaults\n", reclaimed,
		vm_field(&d, "race", "evict_aborts"),
		vm_field(&d, "race", "faults_total"));
	ck_assert_msg(reclaimed >= 2000, "only %.0f zero pages reclaimed",
		      reclaimed);
	finish_and_verify(&g, 512 * 256);
	ck_assert(pk_test_daemon_alive(&d));
	pk_test_daemon_stop(&d);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sharing");
	TCase *tc = tcase_create("zero");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, zero_pages_idle);
	tcase_add_test(tc, zero_pages_racing_writers);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
