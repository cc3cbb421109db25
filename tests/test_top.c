/*
 * test_top.c - `pagekeeper top`, `pagekeeper vm` and the CLI's exit codes
 * (issue 18, item 4).
 *
 * What:
 *  - tmux: top runs in a real terminal (a tmux pane, 120x40); the screen
 *    shows the header and "(no VMs registered)", then, once a lab guest
 *    has faulted its RAM in, that guest's row with its granted MiB and a
 *    faults/s figure: live numbers from later frames; no line is wider
 *    than the pane; 'q' ends it with exit code 0.
 *  - plain: with stdout a pipe, -n 3 prints exactly three frames with no
 *    terminal escapes and exits 0.
 *  - vm: every key of the VM's status object is printed, MiB figures
 *    with their unit; an unknown VM is exit code 1.
 *  - exit codes: no socket and a stale socket (ECONNREFUSED) are 3, a
 *    socket the user may not open (EACCES, run as nobody) is 6, for
 *    status, top and vm alike, each with its message.
 *
 * How: real processes: pagekeeperd (daemon_fixture.h), pk-guestsim
 * (guest_proc.h), tmux on a server socket of the test's own (-S in a
 * temp directory) that a cleaner process kills however the test ends.  Waits poll the pane with a
 * deadline, never a fixed sleep.
 *
 * Why: a `top` that only works when piped, or that an admin cannot quit,
 * and exit codes a script cannot tell apart are what this catches.
 */
#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *cli(void)
{
	const char *p = getenv("PK_CLI");

	ck_assert_msg(p && access(p, X_OK) == 0, "PK_CLI must name pagekeeper");
	return p;
}

/* Run argv (as uid if >= 0); stdout+stderr into out; the exit status. */
static int run_as(char *const argv[], char *out, size_t len, long uid)
{
	return pk_test_run_capture(argv, out, len, 1, uid);
}

static int run(char *const argv[], char *out, size_t len)
{
	return run_as(argv, out, len, -1);
}

/*
 * Run the shell command cmd when this test's process ends, however it
 * ends (a failed assertion _exits: no teardown): a cleaner process, in
 * a process group of its own, waits for EOF on a pipe whose write end
 * only this process holds (CLOEXEC: nothing it starts inherits it).
 */
static void on_exit_run(const char *cmd)
{
	int p[2];

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	pid_t c = fork();
	ck_assert_int_ge(c, 0);
	if (c == 0) {
		char b;
		close(p[1]);
		setpgid(0, 0); /* outside Check's process group kill */
		while (read(p[0], &b, 1) > 0)
			;
		execlp("sh", "sh", "-c", cmd, NULL);
		_exit(127);
	}
	close(p[0]); /* p[1] stays open until this process ends */
}

/* ---- tmux ------------------------------------------------------------- */

struct tmux {
	char dir[64];  /* its socket's directory */
	char sock[96]; /* -S: this test's own server socket */
};

/* A tmux server of this test's own, killed (and its socket removed)
 * however the test ends. */
static void tmux_start(struct tmux *t, const char *cmd)
{
	char out[1024], clean[256];

	snprintf(t->dir, sizeof(t->dir), "/tmp/pk-tmux-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(t->dir));
	snprintf(t->sock, sizeof(t->sock), "%s/tmux.sock", t->dir);
	snprintf(clean, sizeof(clean), "tmux -S %s kill-server 2>/dev/null; "
		 "rm -rf %s", t->sock, t->dir);
	on_exit_run(clean);
	char *argv[] = { "tmux", "-S", t->sock, "-f", "/dev/null",
			 "new-session", "-d", "-x", "120", "-y", "40",
			 (char *)cmd, NULL };
	int rc = run(argv, out, sizeof(out));
	ck_assert_msg(rc == 0, "tmux new-session: exit %d: %s (tmux missing? "
		      "tools/bootstrap installs it)", rc, out);
}

static void tmux_capture(struct tmux *t, char *out, size_t len)
{
	char *argv[] = { "tmux", "-S", t->sock, "capture-pane", "-p", NULL };
	int rc = run(argv, out, len);

	ck_assert_msg(rc == 0, "tmux capture-pane: exit %d: %s", rc, out);
}

static void tmux_stop(struct tmux *t)
{
	char out[256];
	char *argv[] = { "tmux", "-S", t->sock, "kill-server", NULL };

	run(argv, out, sizeof(out));
	unlink(t->sock);
	rmdir(t->dir);
}

/* The pane until it holds want (and not unwanted); fails at deadline. */
static void wait_screen(struct tmux *t, char *screen, size_t len,
			const char *want, long deadline, const char *what)
{
	for (;;) {
		tmux_capture(t, screen, len);
		if (strstr(screen, want))
			return;
		ck_assert_msg(pk_test_now_ms() < deadline,
			      "timed out waiting for %s ('%s'); the screen:\n%s",
			      what, want, screen);
		usleep(50 * 1000); /* poll period, not a wait for a result */
	}
}

/* The numbers of a VM's row: granted MiB and the faults/s text. */
static int vm_row(const char *screen, const char *vm, double *granted,
		  char *faults, size_t flen)
{
	const char *p = strstr(screen, vm);
	double f[6];
	char last[32];

	if (!p || sscanf(p + strlen(vm), "%lf %lf %lf %lf %lf %lf %31s", &f[0],
			 &f[1], &f[2], &f[3], &f[4], &f[5], last) != 7)
		return 0;
	*granted = f[0];
	snprintf(faults, flen, "%s", last);
	return 1;
}

START_TEST(test_top_tmux)
{
	struct pk_test_daemon d;
	struct tmux t;
	struct guest g;
	char cmd[512], screen[16384], done[128], faults[32];
	static const char *const gargs[] = { "--size", "64M", "--workload",
					     "seq", "--duration", "1",
					     "--hold", NULL };
	double granted = 0;

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 0 --budget 1G") == 0,
		      "%s", d.error);
	snprintf(done, sizeof(done), "%s/top.exit", d.dir);
	snprintf(cmd, sizeof(cmd), "TERM=xterm %s --socket %s top -d 0.5; "
		 "echo $? > %s; sleep 1000", cli(), d.sock, done);
	tmux_start(&t, cmd);
	wait_screen(&t, screen, sizeof(screen), "(no VMs registered)",
		    pk_test_deadline_ms(5000), "top's first frame");
	ck_assert_msg(strncmp(screen, "pagekeeper top - ", 17) == 0,
		      "the frame does not start at the top left:\n%s", screen);
	ck_assert_msg(strstr(screen, "state ") && strstr(screen, "free ") &&
			      strstr(screen, "budget 1024.0 MiB") &&
			      strstr(screen, "GRANTED") && strstr(screen, "MiB"),
		      "header or units missing:\n%s", screen);

	guest_start(&g, d.sock, "mtop", gargs);
	guest_expect(&g, "HOLDING", NULL, pk_test_deadline_ms(20000),
		     "the guest's run");
	/* Live: later frames show the guest, with its RAM granted, and a
	 * measured faults/s (not the first frame's "-"). */
	long deadline = pk_test_deadline_ms(5000);
	for (;;) {
		tmux_capture(&t, screen, sizeof(screen));
		if (vm_row(screen, "mtop", &granted, faults, sizeof(faults)) &&
		    granted == 64.0 && strcmp(faults, "-"))
			break;
		ck_assert_msg(pk_test_now_ms() < deadline, "top never showed "
			      "mtop with 64.0 MiB granted and a rate:\n%s",
			      screen);
		usleep(50 * 1000);
	}
	fprintf(stderr, "top in a 120x40 tmux pane:\n%s\n", screen);
	/* Cut to the pane: 120 columns, 40 rows. */
	int rows = 0;
	for (char *s = screen, *nl; *s; s = nl + 1, rows++) {
		nl = strchr(s, '\n');
		if (!nl)
			break;
		ck_assert_msg(nl - s <= 120, "a line of %d columns:\n%s",
			      (int)(nl - s), screen);
	}
	ck_assert_int_le(rows, 40);

	char *keys[] = { "tmux", "-S", t.sock, "send-keys", "q", NULL };
	char out[256];
	ck_assert_int_eq(run(keys, out, sizeof(out)), 0);
	deadline = pk_test_deadline_ms(3000);
	FILE *f;
	while (!(f = fopen(done, "r"))) {
		ck_assert_msg(pk_test_now_ms() < deadline, "q did not end top");
		usleep(20 * 1000);
	}
	int rc = -1;
	ck_assert_int_eq(fscanf(f, "%d", &rc), 1);
	fclose(f);
	ck_assert_msg(rc == 0, "top exited %d after q", rc);
	tmux_stop(&t);
	ck_assert_int_eq(guest_finish(&g, 2000), 0);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

START_TEST(test_top_plain)
{
	struct pk_test_daemon d;
	char out[16384];

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 0") == 0, "%s",
		      d.error);
	char *argv[] = { (char *)cli(), "--socket", d.sock, "top", "-d", "0.2",
			 "-n", "3", NULL };
	int rc = run(argv, out, sizeof(out));
	ck_assert_msg(rc == 0, "top -n 3: exit %d: %s", rc, out);
	int frames = 0;
	for (char *p = out; (p = strstr(p, "pagekeeper top - ")); p++)
		frames++;
	ck_assert_msg(frames == 3, "%d frames, want 3:\n%s", frames, out);
	ck_assert_msg(!strchr(out, '\033'), "escapes on a pipe:\n%s", out);
	char *bad[] = { (char *)cli(), "--socket", d.sock, "top", "-d", "0",
			NULL };
	rc = run(bad, out, sizeof(out));
	ck_assert_msg(rc == 2 && strstr(out, "-d SECONDS"), "top -d 0: exit %d: "
		      "%s", rc, out);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

START_TEST(test_vm_detail)
{
	struct pk_test_daemon d;
	struct guest g;
	char out[16384];
	static const char *const gargs[] = { "--size", "16M", "--workload",
					     "seq", "--duration", "0.2",
					     "--hold", NULL };

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 0") == 0, "%s",
		      d.error);
	guest_start(&g, d.sock, "mvm", gargs);
	guest_expect(&g, "HOLDING", NULL, pk_test_deadline_ms(20000),
		     "the guest's run");
	char *argv[] = { (char *)cli(), "--socket", d.sock, "vm", "mvm", NULL };
	int rc = run(argv, out, sizeof(out));
	ck_assert_msg(rc == 0, "vm mvm: exit %d: %s", rc, out);
	/* Every key of the VM's status object, with units on MiB. */
	json_object *root = status_root(&d), *vms, *vm = NULL;
	ck_assert(json_object_object_get_ex(root, "vms", &vms));
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		json_object *v = json_object_array_get_idx(vms, i), *n;
		if (json_object_object_get_ex(v, "name", &n) &&
		    !strcmp(json_object_get_string(n), "mvm"))
			vm = v;
	}
	ck_assert_ptr_nonnull(vm);
	json_object_object_foreach(vm, key, val) {
		char want[96];
		(void)val;
		if (!strcmp(key, "name"))
			continue;
		snprintf(want, sizeof(want), "  %s ", key);
		ck_assert_msg(strstr(out, want), "vm mvm lacks %s:\n%s", key, out);
	}
	json_object_put(root);
	ck_assert_msg(strstr(out, "configured_mib") &&
			      strstr(strstr(out, "configured_mib"), "16.00 MiB"),
		      "configured_mib without 16.00 MiB:\n%s", out);
	char *none[] = { (char *)cli(), "--socket", d.sock, "vm", "nope", NULL };
	rc = run(none, out, sizeof(out));
	ck_assert_msg(rc == 1 && strstr(out, "no VM 'nope'"), "vm nope: exit "
		      "%d: %s", rc, out);
	ck_assert_int_eq(guest_finish(&g, 2000), 0);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

START_TEST(test_exit_codes)
{
	char dir[] = "/tmp/pk-top-XXXXXX", sock[64], stale[64], out[2048];
	static const char *const cmds[][2] = {
		{ "status", NULL }, { "top", NULL }, { "vm", "x" },
	};

	ck_assert_msg(geteuid() == 0, "this test needs root: it runs the CLI "
		      "as nobody to meet a socket it may not open");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char clean[96];
	snprintf(clean, sizeof(clean), "rm -rf %s", dir);
	on_exit_run(clean);
	snprintf(sock, sizeof(sock), "%s/absent.sock", dir);
	snprintf(stale, sizeof(stale), "%s/stale.sock", dir);
	/* A stale socket: bound, nobody listening (ECONNREFUSED). */
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", stale);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	close(fd);
	for (unsigned i = 0; i < 3; i++) {
		char *argv[] = { (char *)cli(), "--socket", sock,
				 (char *)cmds[i][0], (char *)cmds[i][1], NULL };
		int rc = run(argv, out, sizeof(out));
		ck_assert_msg(rc == 3 && strstr(out, "cannot reach pagekeeperd") &&
				      strstr(out, "is pagekeeperd running"),
			      "%s, no socket: exit %d: %s", cmds[i][0], rc, out);
		argv[2] = stale;
		rc = run(argv, out, sizeof(out));
		ck_assert_msg(rc == 3 && strstr(out, "not running"),
			      "%s, stale socket: exit %d: %s", cmds[i][0], rc, out);
		/* dir is 0700 root's: nobody may not reach the socket. */
		rc = run_as(argv, out, sizeof(out), 65534);
		ck_assert_msg(rc == 6 && strstr(out, "no permission"),
			      "%s as nobody: exit %d: %s", cmds[i][0], rc, out);
	}
	unlink(stale);
	rmdir(dir);
}
END_TEST

static Suite *top_suite(void)
{
	Suite *s = suite_create("top");
	TCase *tc = tcase_create("top");

	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_top_tmux);
	tcase_add_test(tc, test_top_plain);
	tcase_add_test(tc, test_vm_detail);
	tcase_add_test(tc, test_exit_codes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(top_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
