/*
 * test_integration.c - a real daemon serving real lab guests.
 *
 * Everything is real: pagekeeperd and pk-guestsim run as processes, RAM is
 * memfd (or anonymous) memory, faults go through the kernel's userfaultfd.
 *
 *  - four_guests_touch_all: 4 guests of 256 MiB fill every page, run
 *    writers and readers, and verify every page; while they hold, the
 *    daemon's status must match exactly what they did (every page zero
 *    filled once, all resident, none untouched).  Afterwards the daemon
 *    holds no VM and no extra fd.
 *  - anon_guests: the same on private anonymous RAM.
 *  - sigkill_mid_run: guests killed with SIGKILL while faults are in
 *    flight leave no VM and no fd behind, and the daemon keeps serving.
 *  - daemon_restart: the daemon is killed while a guest is filling its
 *    RAM; the guest's faulting threads block in the kernel (never read
 *    zeros), a new daemon on the same socket takes the guest back and
 *    the guest finishes and verifies.
 *  - removes_shared, removes_anon: pages the guest discards are tracked
 *    through UFFD_EVENT_REMOVE and come back as zeros.
 */
#include "engine/client/pagekeeper-client.h"
#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GUEST_MIB 256

static json_object *status_vm(json_object *root, const char *name)
{
	json_object *vms;
	ck_assert(json_object_object_get_ex(root, "vms", &vms));
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		json_object *vm = json_object_array_get_idx(vms, i), *v;
		if (json_object_object_get_ex(vm, "name", &v) &&
		    strcmp(json_object_get_string(v), name) == 0)
			return vm;
	}
	ck_abort_msg("VM %s missing from status", name);
	return NULL;
}

/*
 * n guests of GUEST_MIB fill all RAM, run writers, verify, and hold; the
 * status must then match exactly what they did.
 */
static void run_guests_and_check(int n, int anon)
{
	struct pk_test_daemon d;
	struct guest g[4];
	json_object *result[4], *root;
	int baseline_fds;

	/* The sharing scanner off: this test counts every zero fill, and
	 * the scanner would take back zero pages (test_sharing.c covers it). */
	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 0") == 0, "%s",
		      d.error);
	baseline_fds = pk_test_daemon_settled_fd_count(&d);
	ck_assert_int_gt(baseline_fds, 0);

	for (int i = 0; i < n; i++) {
		char name[16];
		const char *extra[] = { "--size", "256M", "--seed", "7",
					"--workload", "random", "--writers", "2",
					"--readers", "1", "--duration", "1",
					"--verify", "--hold", "--json",
					anon ? "--anon" : NULL, NULL };
		snprintf(name, sizeof(name), "g%d", i);
		guest_start(&g[i], d.sock, name, extra);
	}
	for (int i = 0; i < n; i++)
		guest_wait_holding(&g[i], &result[i]);

	root = status_root(&d);
	ck_assert_int_eq(json_object_array_length(
				 json_object_object_get(root, "vms")), n);
	for (int i = 0; i < n; i++) {
		json_object *vm = status_vm(root, g[i].name);
		ck_assert_msg(result[i], "guest %s printed no JSON result",
			      g[i].name);
		ck_assert_double_eq(jnum(result[i], "mismatches"), 0);
		ck_assert_double_eq(jnum(result[i], "pages_verified"),
				    GUEST_MIB * 256);
		ck_assert_double_gt(jnum(result[i], "write_ops"), 0);
		ck_assert_double_eq(jnum(vm, "pid"), g[i].pid);
		ck_assert_double_eq(jnum(vm, "configured_mib"), GUEST_MIB);
		/* The guest touched every page, so every page was zero
		 * filled exactly once and is resident now. */
		ck_assert_double_eq(jnum(vm, "resident_mib"), GUEST_MIB);
		ck_assert_double_eq(jnum(vm, "untouched_mib"), 0);
		ck_assert_double_eq(jnum(vm, "pages_zero_filled"),
				    GUEST_MIB * 256);
		ck_assert_double_eq(jnum(vm, "zero_mib"), 0);
		ck_assert_double_eq(jnum(vm, "swapped_mib"), 0);
		/* At least one fault per fault-around window (1 MiB),
		 * at most one per page. */
		ck_assert_double_ge(jnum(vm, "faults_total"), GUEST_MIB);
		ck_assert_double_le(jnum(vm, "faults_total"), GUEST_MIB * 256);
		json_object_put(result[i]);
	}
	json_object_put(root);

	for (int i = 0; i < n; i++)
		ck_assert_msg(guest_finish(&g[i]) == 0,
			      "guest %s failed verification", g[i].name);
	ck_assert_int_eq(pk_test_wait_vm_count(d.sock, 0, 5000), 0);
	ck_assert_int_eq(pk_test_daemon_wait_fd_count(&d, baseline_fds, 5000),
			 baseline_fds);
	ck_assert(pk_test_daemon_alive(&d));
	pk_test_daemon_stop(&d);
}

START_TEST(four_guests_touch_all)
{
	run_guests_and_check(4, 0);
}
END_TEST

START_TEST(anon_guests)
{
	run_guests_and_check(2, 1);
}
END_TEST

static double vm_faults(struct pk_test_daemon *d, const char *name)
{
	return vm_field(d, name, "faults_total");
}

START_TEST(sigkill_mid_run)
{
	static const char *const kinds[] = { "random", "seq", "zipf" };
	struct pk_test_daemon d;
	int baseline_fds;

	/* The sharing scanner off: this test counts every zero fill, and
	 * the scanner would take back zero pages (test_sharing.c covers it). */
	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 0") == 0, "%s",
		      d.error);
	baseline_fds = pk_test_daemon_settled_fd_count(&d);
	for (int round = 0; round < 3; round++) {
		struct guest g;
		char name[16];
		const char *extra[] = { "--size", "1G", "--workload",
					kinds[round], "--writers", "2",
					"--duration", "30", NULL };
		double faults = -1;

		snprintf(name, sizeof(name), "victim%d", round);
		guest_start(&g, d.sock, name, extra);
		/* Kill once faults are flowing: some are in flight. */
		for (int t = 0; t < 500 && faults < 50 * (round + 1); t++) {
			sleep_ms(10);
			faults = vm_faults(&d, name);
		}
		ck_assert_msg(faults >= 50, "guest %s never faulted", name);
		ck_assert_int_eq(kill(g.pid, SIGKILL), 0);
		ck_assert_int_eq(guest_finish(&g), -SIGKILL);
		ck_assert_int_eq(pk_test_wait_vm_count(d.sock, 0, 5000), 0);
		ck_assert_int_eq(pk_test_daemon_wait_fd_count(&d, baseline_fds,
							      5000),
				 baseline_fds);
	}
	ck_assert(pk_test_daemon_alive(&d));
	pk_test_daemon_stop(&d);
}
END_TEST

#define RM_PAGES 1024
#define PAGE 4096
#define MIB_OF(pages) ((double)(pages) * PAGE / (1024.0 * 1024.0))

/*
 * The guest discards pages: the daemon sees UFFD_EVENT_REMOVE, counts the
 * pages as ballooned and serves zeros on the next touch.  On memfd RAM,
 * MADV_DONTNEED keeps the data in the file: the daemon's re-check must
 * put those pages back to resident, with their data untouched.  This
 * process is the guest, attached through the client library.
 */
static void run_removes(int anon)
{
	struct pk_test_daemon d;
	struct pk_client *c;
	char err[256];
	int fd = anon ? -1 : memfd_create("pk-test-remove", MFD_CLOEXEC);
	unsigned char *ram;

	/* No scanner: 1024 pages of 128 distinct contents would be merged
	 * while this test counts resident pages. */
	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 0") == 0, "%s",
		      d.error);
	if (!anon)
		ck_assert_int_eq(ftruncate(fd, RM_PAGES * PAGE), 0);
	ram = mmap(NULL, RM_PAGES * PAGE, PROT_READ | PROT_WRITE,
		   anon ? MAP_PRIVATE | MAP_ANONYMOUS : MAP_SHARED, fd, 0);
	ck_assert(ram != MAP_FAILED);
	struct pk_client_region r = { ram, RM_PAGES * PAGE, 0 };
	struct pk_client_opts o = { .socket_path = d.sock, .vm_name = "rm",
				    .ram_fd = fd, .regions = &r, .n_regions = 1 };
	ck_assert_msg(pk_client_attach(&o, &c, err, sizeof(err)) == 0, "%s", err);

	for (int i = 0; i < RM_PAGES; i++)
		ram[i * PAGE] = (unsigned char)(i | 1);
	ck_assert_double_eq(vm_field(&d, "rm", "resident_mib"), MIB_OF(RM_PAGES));
	ck_assert_double_eq(vm_field(&d, "rm", "ballooned_mib"), 0);

	/* Discard 64 pages for good (the balloon's way). */
	ck_assert_int_eq(madvise(ram, 64 * PAGE,
				 anon ? MADV_DONTNEED : MADV_REMOVE), 0);
	ck_assert_double_eq(vm_field(&d, "rm", "ballooned_mib"), MIB_OF(64));
	ck_assert_double_eq(vm_field(&d, "rm", "remove_events"), 1);
	if (!anon) {
		/* Unmap 32 more without freeing them: data stays in the file. */
		ck_assert_int_eq(madvise(ram + 512 * PAGE, 32 * PAGE,
					 MADV_DONTNEED), 0);
		ck_assert_double_eq(vm_field(&d, "rm", "ballooned_mib"),
				    MIB_OF(64 + 32));
	}
	sleep_ms(1500); /* past the re-check delay and a statistics tick */
	ck_assert_double_eq(vm_field(&d, "rm", "ballooned_mib"), MIB_OF(64));
	for (int i = 512; i < 512 + 32; i++)
		ck_assert_int_eq(ram[i * PAGE], (unsigned char)(i | 1));

	/* The discarded pages come back as zeros, filled by the daemon. */
	for (int i = 0; i < 64; i++)
		for (int b = 0; b < PAGE; b += 512)
			ck_assert_int_eq(ram[i * PAGE + b], 0);
	ck_assert_double_eq(vm_field(&d, "rm", "pages_zero_filled"),
			    RM_PAGES + 64);
	ck_assert_double_eq(vm_field(&d, "rm", "ballooned_mib"), 0);
	ck_assert_double_eq(vm_field(&d, "rm", "resident_mib"), MIB_OF(RM_PAGES));

	pk_client_detach(c);
	munmap(ram, RM_PAGES * PAGE);
	if (fd >= 0)
		close(fd);
	ck_assert_int_eq(pk_test_wait_vm_count(d.sock, 0, 5000), 0);
	pk_test_daemon_stop(&d);
}

START_TEST(removes_shared)
{
	run_removes(0);
}
END_TEST

START_TEST(removes_anon)
{
	run_removes(1);
}
END_TEST

/* Threads of pid sleeping in the kernel's userfaultfd wait. */
static int threads_in_userfault(pid_t pid)
{
	char path[64], wchan[64];
	struct dirent *de;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir)
		return 0;
	while ((de = readdir(dir))) {
		char p[384];
		FILE *f;
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s/wchan", path, de->d_name);
		f = fopen(p, "r");
		if (f && fgets(wchan, sizeof(wchan), f) &&
		    strcmp(wchan, "handle_userfault") == 0)
			n++;
		if (f)
			fclose(f);
	}
	closedir(dir);
	return n;
}

START_TEST(daemon_restart)
{
	struct pk_test_daemon a, b;
	struct guest g;
	json_object *result;
	char args[512];
	const char *extra[] = { "--size", "1G", "--workload", "random",
				"--writers", "2", "--duration", "1",
				"--verify", "--hold", "--json", NULL };
	double faults = -1;
	int blocked = 0, st;

	ck_assert_msg(pk_test_daemon_start(&a, NULL) == 0, "%s", a.error);
	guest_start(&g, a.sock, "survivor", extra);
	for (int t = 0; t < 500 && faults < 20; t++) {
		sleep_ms(10);
		faults = vm_faults(&a, "survivor");
	}
	ck_assert_msg(faults >= 20, "guest never faulted");

	/* The daemon dies mid-fill. */
	ck_assert_int_eq(kill(a.pid, SIGKILL), 0);
	ck_assert_int_eq(waitpid(a.pid, &st, 0), a.pid);
	a.pid = 0;
	/* With no handler the guest's faults must block, not read zeros. */
	for (int t = 0; t < 200 && !blocked; t++) {
		sleep_ms(10);
		blocked = threads_in_userfault(g.pid);
	}
	ck_assert_msg(blocked > 0,
		      "no guest thread waits in handle_userfault without a daemon");
	sleep_ms(300);
	ck_assert_int_gt(threads_in_userfault(g.pid), 0);

	/* A new daemon on the same socket takes the guest back. */
	snprintf(args, sizeof(args), "--socket %s --state-dir %s", a.sock,
		 a.state_dir);
	ck_assert_msg(pk_test_daemon_start(&b, args) == 0, "%s", b.error);
	guest_wait_holding(&g, &result);
	ck_assert_msg(result, "guest printed no result");
	ck_assert_double_eq(jnum(result, "mismatches"), 0);
	ck_assert_double_eq(jnum(result, "pages_verified"), 1024 * 256);
	json_object_put(result);
	ck_assert_int_eq(pk_test_vm_count(a.sock), 1);
	ck_assert_int_eq(guest_finish(&g), 0);
	ck_assert_int_eq(pk_test_wait_vm_count(a.sock, 0, 5000), 0);
	pk_test_daemon_stop(&b);
	pk_test_daemon_stop(&a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("integration");
	TCase *tc = tcase_create("guests");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, four_guests_touch_all);
	tcase_add_test(tc, anon_guests);
	tcase_add_test(tc, sigkill_mid_run);
	tcase_add_test(tc, daemon_restart);
	tcase_add_test(tc, removes_shared);
	tcase_add_test(tc, removes_anon);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
