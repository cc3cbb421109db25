/*
 * test_swap.c - host swapping against a real daemon, real lab guests,
 * a real io_uring swap file on the build directory's file system.
 *
 *  - adversarial_writers: guests whose writers never stop while the
 *    daemon evicts their RAM as fast as it can, over and over; every
 *    page must verify afterwards (the test the eviction order exists
 *    for).
 *  - round_trip: four guests, sequential and random, evicted whole
 *    twice while they run and fault everything back; all verify.
 *  - corruption: bytes flipped in the swap file; the guest touching the
 *    page dies of SIGBUS (a memory error, never wrong data) and another
 *    guest of the same daemon is unaffected.
 *  - full_swap_file: reclaim beyond the swap file's capacity stops with
 *    ENOSPC and loses no page.
 */
#include "engine/protocol.h"
#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Wait until the guest registered and touched every page, then a bit
 * longer for its fill to finish writing. */
static void wait_filled(struct pk_test_daemon *d, const char *name)
{
	for (int t = 0; t < 3000; t++) {
		if (vm_field(d, name, "untouched_mib") == 0) {
			sleep_ms(500);
			return;
		}
		sleep_ms(10);
	}
	ck_abort_msg("guest %s did not fill its RAM in 30 s", name);
}

static double elapsed_s(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) +
	       (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

START_TEST(adversarial_writers)
{
	struct pk_test_daemon d;
	struct guest g[2];
	json_object *res;
	struct timespec t0;
	uint64_t evicted = 0, aborted = 0, next_report = 100000;
	const uint64_t target = 1000000; /* the issue: >= 10^6 evictions */

	ck_assert_msg(pk_test_daemon_start(&d, "--swap-size 256M") == 0, "%s",
		      d.error);
	for (int i = 0; i < 2; i++) {
		const char *extra[] = { "--size", "64M", "--workload", "random",
					"--writers", "2", "--readers", "1",
					"--duration", "3600", "--verify", "--json",
					NULL };
		char name[8];
		snprintf(name, sizeof(name), "adv%d", i);
		guest_start(&g[i], d.sock, name, extra);
	}
	wait_filled(&d, "adv0");
	wait_filled(&d, "adv1");
	/* Evict whole guests, round after round, while their writers run. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int round = 0; evicted < target; round++) {
		struct pk_reclaim_reply r;
		ck_assert_msg(elapsed_s(&t0) < 480, "only %llu evictions in 480 s",
			      (unsigned long long)evicted);
		int st = pk_test_reclaim(d.sock, g[round % 2].name, 64 << 20, &r);
		ck_assert_msg(st == 0, "reclaim: %s", r.reason);
		evicted += r.pages_swapped;
		aborted += r.pages_aborted;
		if (evicted >= next_report) { /* progress: this takes minutes */
			fprintf(stderr, "adversarial_writers: %llu evictions, "
				"%.0f s\n", (unsigned long long)evicted,
				elapsed_s(&t0));
			next_report += 100000;
		}
	}
	fprintf(stderr, "adversarial_writers: %llu evictions, %llu aborted by "
		"guest writes, %.1f s\n", (unsigned long long)evicted,
		(unsigned long long)aborted, elapsed_s(&t0));
	for (int i = 0; i < 2; i++) {
		kill(g[i].pid, SIGTERM); /* ends the workload; verify follows */
		res = guest_read_result(&g[i]);
		ck_assert_msg(res, "guest %s printed no result", g[i].name);
		ck_assert_double_gt(jnum(res, "write_ops"), 0);
		ck_assert_double_eq(jnum(res, "mismatches"), 0);
		ck_assert_double_eq(jnum(res, "pages_verified"), 64 * 256);
		json_object_put(res);
		ck_assert_int_eq(guest_finish(&g[i]), 0);
	}
	ck_assert(pk_test_daemon_alive(&d));
	pk_test_daemon_stop(&d);
}
END_TEST

START_TEST(round_trip)
{
	static const char *const kinds[] = { "seq", "random", "seq", "random" };
	struct pk_test_daemon d;
	struct guest g[4];
	json_object *res;

	ck_assert_msg(pk_test_daemon_start(&d, "--swap-size 512M") == 0, "%s",
		      d.error);
	for (int i = 0; i < 4; i++) {
		const char *extra[] = { "--size", "64M", "--workload", kinds[i],
					"--writers", "1", "--readers", "1",
					"--duration", "3600", "--verify", "--json",
					NULL };
		char name[8];
		snprintf(name, sizeof(name), "rt%d", i);
		guest_start(&g[i], d.sock, name, extra);
	}
	for (int i = 0; i < 4; i++)
		wait_filled(&d, g[i].name);
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < 4; i++) {
			struct pk_reclaim_reply r;
			int st;
			st = pk_test_reclaim(d.sock, g[i].name, 64 << 20, &r);
			ck_assert_msg(st == 0, "reclaim: %s", r.reason);
			ck_assert_uint_gt(r.pages_swapped, 1000);
			sleep_ms(300); /* let the guests fault pages back */
		}
	ck_assert_double_gt(vm_field(&d, "rt1", "swapins"), 0);
	for (int i = 0; i < 4; i++) {
		kill(g[i].pid, SIGTERM);
		res = guest_read_result(&g[i]);
		ck_assert_msg(res, "guest %s printed no result", g[i].name);
		ck_assert_double_eq(jnum(res, "mismatches"), 0);
		ck_assert_double_eq(jnum(res, "pages_verified"), 64 * 256);
		json_object_put(res);
		ck_assert_int_eq(guest_finish(&g[i]), 0);
	}
	pk_test_daemon_stop(&d);
}
END_TEST

/* Flip one byte in each of the swap file's first `slots` slots. */
static void corrupt_swap_file(const struct pk_test_daemon *d, uint64_t slots)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/swap.pk", d->state_dir);
	fd = open(path, O_RDWR);
	ck_assert_msg(fd >= 0, "open %s", path);
	for (uint64_t s = 0; s < slots; s++) {
		unsigned char b;
		ck_assert_int_eq(pread(fd, &b, 1, (off_t)(s * 4096 + 123)), 1);
		b ^= 0x5a;
		ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)(s * 4096 + 123)), 1);
	}
	ck_assert_int_eq(fdatasync(fd), 0);
	close(fd);
}

START_TEST(corruption)
{
	struct pk_test_daemon d;
	struct guest victim, bystander;
	struct pk_reclaim_reply r;
	json_object *res;
	const char *vx[] = { "--size", "16M", "--content", "zero=0,shared=0",
			     "--workload", "idle", "--duration", "3600",
			     "--verify", NULL };
	const char *bx[] = { "--size", "16M", "--workload", "random",
			     "--duration", "3600", "--verify",
			     "--json", NULL };

	ck_assert_msg(pk_test_daemon_start(&d, "--swap-size 64M") == 0, "%s",
		      d.error);
	/* Under ASan the guest must die of the SIGBUS itself, not have
	 * ASan turn it into an abort. */
	const char *asan = getenv("ASAN_OPTIONS");
	char opts[512];
	snprintf(opts, sizeof(opts), "%s%shandle_sigbus=0", asan ? asan : "",
		 asan ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1);
	guest_start(&victim, d.sock, "victim", vx);
	wait_filled(&d, "victim");
	ck_assert_int_eq(pk_test_reclaim(d.sock, "victim", 16 << 20, &r), 0);
	ck_assert_uint_eq(r.pages_swapped, 4096);
	corrupt_swap_file(&d, 4096);
	/* The bystander's pages are written after the corruption. */
	guest_start(&bystander, d.sock, "bystander", bx);
	sleep_ms(1000);
	kill(victim.pid, SIGTERM); /* verify touches every page */
	ck_assert_int_eq(guest_finish(&victim), -SIGBUS);
	kill(bystander.pid, SIGTERM);
	res = guest_read_result(&bystander);
	ck_assert(res);
	ck_assert_double_eq(jnum(res, "mismatches"), 0);
	json_object_put(res);
	ck_assert_int_eq(guest_finish(&bystander), 0);
	ck_assert(pk_test_daemon_alive(&d));
	pk_test_daemon_stop(&d);
}
END_TEST

START_TEST(full_swap_file)
{
	struct pk_test_daemon d;
	struct guest g;
	struct pk_reclaim_reply r;
	json_object *res;
	int st;
	const char *extra[] = { "--size", "32M", "--content", "zero=0,shared=0",
				"--workload", "random", "--duration", "3600",
				"--verify", "--json", NULL };

	ck_assert_msg(pk_test_daemon_start(&d, "--swap-size 8M") == 0, "%s",
		      d.error);
	guest_start(&g, d.sock, "big", extra);
	wait_filled(&d, "big");
	st = pk_test_reclaim(d.sock, "big", 32 << 20, &r);
	ck_assert_int_eq(st, -ENOSPC);
	ck_assert_msg(strstr(r.reason, "swap file full"), "%s", r.reason);
	/* 2048 slots; the guest's writes fault pages back and free slots
	 * meanwhile, so a few more than 2048 evictions can fit. */
	ck_assert_uint_gt(r.pages_swapped, 1500);
	kill(g.pid, SIGTERM);
	res = guest_read_result(&g);
	ck_assert(res);
	ck_assert_double_eq(jnum(res, "mismatches"), 0);
	ck_assert_double_eq(jnum(res, "pages_verified"), 32 * 256);
	json_object_put(res);
	ck_assert_int_eq(guest_finish(&g), 0);
	pk_test_daemon_stop(&d);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("swap");
	TCase *adv = tcase_create("adversarial");
	TCase *tc = tcase_create("swap");
	SRunner *sr;
	int failed;

	tcase_set_timeout(adv, 600);
	tcase_add_test(adv, adversarial_writers);
	suite_add_tcase(s, adv);
	tcase_set_timeout(tc, 400);
	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, corruption);
	tcase_add_test(tc, full_swap_file);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
