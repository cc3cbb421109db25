/*
 * test_cli.c - the `pagekeeper` command line, run as a program.
 *
 * What: every subcommand of build/tools/pagekeeper ($PK_CLI) - status,
 * status --json, reclaim, drain, lab, --help - against a live pagekeeperd, with
 * no daemon at all, and with bad arguments.
 *  - live_status: this process registers three VMs (two memfd, one
 *    anonymous); the table and the JSON name each with its pid and the
 *    daemon's figures, in MiB with the units in the header.
 *  - live_reclaim: `reclaim` evicts exactly what it says from the VM it
 *    names (the others keep theirs), the status table then shows it, every
 *    byte reads back; a refused reclaim (unknown VM, anonymous RAM) is
 *    exit 1 with the daemon's reason.
 *  - live_drain: two lab guests of one sharing domain with merged pages,
 *    one of them also swapped; `drain` brings back exactly what status
 *    said it had swapped and merged (MiB, and the time in ms), leaves it
 *    none (drained true), and from then on the scanner merges none of it
 *    and `reclaim` is refused (exit 1: drained); the other guest keeps
 *    its merged pages; both verify every page.  An unknown VM is exit 1
 *    with the daemon's reason.
 *  - live_balloon: a lab guest with a guest OS and 80 % locked pages:
 *    `status` shows its balloon with units; `balloon` stalls short (exit
 *    4), deflates (exit 0, the actual follows), refuses a target above
 *    RAM, an unknown VM and a VM without channel (exit 1), bad sizes
 *    (exit 2), returns at once with --no-wait, and times out on a
 *    stopped guest (exit 5).
 *  - no_daemon: no socket, a socket nobody listens on, and a listener that
 *    hangs up without replying: every command says which socket and exits
 *    3, the status --help documents for "no pagekeeperd answers".
 *  - bad_args: each malformed command line is exit 2 with a message that
 *    names what was wrong, prints nothing on stdout, and reaches no daemon
 *    (the VM's figures do not move, it is not drained).
 *  - help: --help, -h and lab --help print usage and the exit statuses.
 *  - lab_run: `pagekeeper lab` starts its daemon and guests, shows them
 *    live, every guest verifies every page, and nothing it started is left.
 *  - lab_interrupt: SIGINT stops the lab: exit 130, its daemon and guests
 *    gone, its directory removed.
 *
 * How: the program runs as a child with stdout and stderr on memfds, so
 * nothing can block on a full pipe; every run has a deadline derived from
 * its work and pk_test_time_scale(), and a timeout names the command.
 *
 * Why: scripts and people drive the daemon through this program; its
 * output and exit statuses are an interface.
 */
#include "engine/client/pagekeeper-client.h"
#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096
#define MIB_PAGES 256

/* The exit statuses `pagekeeper --help` documents. */
#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3

/*
 * Deadlines (scaled by pk_test_time_scale()): a status or a refused
 * request is one round trip (< 10 ms); a process starts in < 50 ms;
 * eviction runs at > 100 MiB/s here.  The budgets are far above that.
 */
#define CLI_MS 3000	      /* one command that needs no big work */
#define EVICT_MS_PER_MIB 100  /* reclaim: 10 MiB/s */
#define SWEEP_MS_PER_MIB 40   /* a lab guest's fill or verify: 25 MiB/s */
#define DETACH_MS 2000	      /* the daemon frees a VM that is gone */
#define LAB_STOP_MS 5000      /* lab: SIGTERM, 2 s grace per child */

/* ---- running the program ---- */

struct run {
	pid_t pid;
	int out_fd, err_fd; /* memfds: the child's stdout and stderr */
	int status;	    /* exit status, or 128 + signal */
	int deathsig;	    /* sent when this process dies, or times it out */
	char *out, *err;    /* their text, after run_wait() */
	char cmd[512];	    /* for messages */
};

static const char *cli_path(void)
{
	const char *p = getenv("PK_CLI");
	ck_assert_msg(p && access(p, X_OK) == 0,
		      "PK_CLI must name the pagekeeper binary");
	return p;
}

/*
 * Start $PK_CLI args... (NULL-terminated).  If this process dies (a failed
 * assertion), the program gets deathsig: SIGKILL, or SIGTERM for the lab,
 * which then stops what it started and removes its directory.
 */
static void run_start_sig(struct run *r, const char *const args[], int deathsig)
{
	const char *argv[64];
	size_t n = 0, len;

	memset(r, 0, sizeof(*r));
	argv[n++] = cli_path();
	snprintf(r->cmd, sizeof(r->cmd), "pagekeeper");
	for (; *args; args++) {
		ck_assert_uint_lt(n, 63);
		argv[n++] = *args;
		len = strlen(r->cmd);
		snprintf(r->cmd + len, sizeof(r->cmd) - len, " %s",
			 **args ? *args : "''");
	}
	argv[n] = NULL;
	r->deathsig = deathsig;
	r->out_fd = memfd_create("pk-cli-out", MFD_CLOEXEC);
	r->err_fd = memfd_create("pk-cli-err", MFD_CLOEXEC);
	ck_assert(r->out_fd >= 0 && r->err_fd >= 0);
	r->pid = fork();
	ck_assert_int_ge(r->pid, 0);
	if (r->pid == 0) {
		prctl(PR_SET_PDEATHSIG, deathsig);
		dup2(r->out_fd, 1);
		dup2(r->err_fd, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
}

static void run_start(struct run *r, const char *const args[])
{
	run_start_sig(r, args, SIGKILL);
}

/* What the child wrote to fd so far, NUL-terminated (malloc'ed). */
static char *memfd_text(int fd)
{
	struct stat st;
	char *t;
	ssize_t n;

	ck_assert_int_eq(fstat(fd, &st), 0);
	t = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(t);
	n = pread(fd, t, (size_t)st.st_size, 0);
	ck_assert_int_ge(n, 0);
	t[n] = '\0';
	return t;
}

/* Wait for the child by work_ms (scaled); collect its output. */
static void run_wait(struct run *r, long work_ms)
{
	long deadline = pk_test_deadline_ms(work_ms);
	int st;
	pid_t w;

	while ((w = waitpid(r->pid, &st, WNOHANG)) == 0) {
		if (pk_test_now_ms() > deadline) {
			long stop = pk_test_deadline_ms(LAB_STOP_MS);
			/* SIGTERM first if it cleans up on it (the lab). */
			kill(r->pid, r->deathsig);
			while (waitpid(r->pid, &st, WNOHANG) == 0 &&
			       pk_test_now_ms() < stop)
				sleep_ms(5);
			kill(r->pid, SIGKILL);
			waitpid(r->pid, &st, 0);
			ck_abort_msg("`%s` did not finish within %.0f ms",
				     r->cmd, work_ms * pk_test_time_scale());
		}
		sleep_ms(5);
	}
	ck_assert_int_eq(w, r->pid);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	r->out = memfd_text(r->out_fd);
	r->err = memfd_text(r->err_fd);
	close(r->out_fd);
	close(r->err_fd);
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

/* Run and check the exit status; the output stays in r. */
static void run_expect(struct run *r, long work_ms, int want_status,
		       const char *const args[])
{
	run_start(r, args);
	run_wait(r, work_ms);
	ck_assert_msg(r->status == want_status,
		      "`%s` exited %d, want %d\nstdout: %s\nstderr: %s",
		      r->cmd, r->status, want_status, r->out, r->err);
}

static void expect_in(const char *text, const char *want, const struct run *r,
		      const char *which)
{
	ck_assert_msg(strstr(text, want), "`%s`: %s lacks \"%s\":\n%s", r->cmd,
		      which, want, text);
}

/* ---- guests: this process's RAM ---- */

struct vm {
	const char *name;
	uint64_t salt;	/* in every page's pattern: no two VMs alike */
	uint64_t pages;
	int fd;		/* -1: anonymous */
	unsigned char *ram;
	struct pk_client *c;
};

static void page_fill(unsigned char *p, uint64_t tag)
{
	for (size_t i = 0; i < PAGE; i += 8) {
		uint64_t w = (tag * 0xff51afd7ed558ccdULL) ^
			     (i * 0x9e3779b97f4a7c15ULL) ^ 0x5a;
		memcpy(p + i, &w, 8);
	}
}

static void vm_attach(struct pk_test_daemon *d, struct vm *v, const char *name,
		      uint64_t pages, int anon, uint64_t touched)
{
	struct pk_client_region r;
	struct pk_client_opts o = { .socket_path = d->sock, .vm_name = name,
				    .regions = &r, .n_regions = 1 };
	char err[512] = "";

	v->name = name;
	v->salt = (uint64_t)name[strlen(name) - 1] << 32;
	v->pages = pages;
	v->fd = anon ? -1 : memfd_create(name, MFD_CLOEXEC);
	if (!anon) {
		ck_assert_int_ge(v->fd, 0);
		ck_assert_int_eq(ftruncate(v->fd, (off_t)(pages * PAGE)), 0);
	}
	v->ram = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
		      anon ? MAP_PRIVATE | MAP_ANONYMOUS : MAP_SHARED, v->fd, 0);
	ck_assert(v->ram != MAP_FAILED);
	r = (struct pk_client_region){ v->ram, pages * PAGE, 0 };
	o.ram_fd = v->fd;
	ck_assert_msg(pk_client_attach(&o, &v->c, err, sizeof(err)) == 0,
		      "attach %s: %s", name, err);
	/* The last pages: fault-around windows stop at the region's end,
	 * so exactly these become resident. */
	for (uint64_t p = pages - touched; p < pages; p++)
		page_fill(v->ram + p * PAGE, v->salt | (p + 1));
}

/* Every touched page (the last ones) holds its pattern, every other one
 * zeros. */
static void vm_verify(const struct vm *v, uint64_t touched)
{
	unsigned char want[PAGE];

	for (uint64_t p = 0; p < v->pages; p++) {
		if (p >= v->pages - touched)
			page_fill(want, v->salt | (p + 1));
		else
			memset(want, 0, PAGE);
		ck_assert_msg(memcmp(v->ram + p * PAGE, want, PAGE) == 0,
			      "%s: page %llu differs from what was written",
			      v->name, (unsigned long long)p);
	}
}

static void vm_detach(struct vm *v)
{
	pk_client_detach(v->c);
	munmap(v->ram, v->pages * PAGE);
	if (v->fd >= 0)
		close(v->fd);
}

static void start_daemon(struct pk_test_daemon *d)
{
	/* No scanner: the figures must not move while the test reads them. */
	ck_assert_msg(pk_test_daemon_start(d, "--scan-rate 0 --swap-size 64M")
		      == 0, "%s", d->error);
}

static void stop_daemon(struct pk_test_daemon *d)
{
	int n = pk_test_wait_vm_count(d->sock, 0,
				      (int)(DETACH_MS * pk_test_time_scale()));
	ck_assert_msg(n == 0, "%d VMs left after every guest detached", n);
	pk_test_daemon_stop_ok(d);
}

/*
 * The table row of VM name: "NAME PID CONFIG RESIDENT ZERO SHARED SWAPPED
 * BALLOONED FAULTS/s FAULTS SWAPINS/s".  Returns the 10 numbers in f[].
 */
static void table_row(const struct run *r, const char *name, double f[10])
{
	char key[80];
	const char *line;
	int n;

	snprintf(key, sizeof(key), "\n%s ", name);
	line = strstr(r->out, key);
	ck_assert_msg(line, "`%s`: no row for VM %s:\n%s", r->cmd, name, r->out);
	n = sscanf(line + strlen(key), "%lf %lf %lf %lf %lf %lf %lf %lf %lf %lf",
		   &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7],
		   &f[8], &f[9]);
	ck_assert_msg(n == 10, "`%s`: row of %s has %d numbers:\n%s", r->cmd,
		      name, n, r->out);
}

/* The table row agrees with the daemon's JSON figures for the VM. */
static void check_row(struct pk_test_daemon *d, const struct run *r,
		      const char *name)
{
	static const char *const keys[] = {
		"pid", "configured_mib", "resident_mib", "zero_mib",
		"shared_mib", "swapped_mib", "ballooned_mib", NULL,
		"faults_total", NULL };
	double f[10];

	table_row(r, name, f);
	for (int i = 0; i < 10; i++) {
		double want;
		if (!keys[i])
			continue;
		want = vm_field(d, name, keys[i]);
		/* The table prints MiB with one decimal. */
		ck_assert_msg(f[i] > want - 0.051 && f[i] < want + 0.051,
			      "`%s`: %s of %s is %g in the table, %g in the "
			      "daemon's status:\n%s", r->cmd, keys[i], name,
			      f[i], want, r->out);
	}
}

static const char *const table_units[] = {
	"CONFIG MiB", "RESIDENT MiB", "ZERO MiB", "SHARED MiB", "SWAPPED MiB",
	"BALLOONED MiB", "FAULTS/s", "SWAPINS/s", NULL };

/* ---- against a live daemon ---- */

START_TEST(live_status)
{
	struct pk_test_daemon d;
	struct vm a, b, c;
	struct run r;
	char pid[32], sock_eq[160];
	const char *first_line = "3 VM(s); page table 8 bytes per guest page\n";
	json_object *root, *vms;

	start_daemon(&d);
	vm_attach(&d, &a, "cli-a", 16 * MIB_PAGES, 0, 16 * MIB_PAGES);
	vm_attach(&d, &b, "cli-b", 8 * MIB_PAGES, 0, 4 * MIB_PAGES);
	vm_attach(&d, &c, "cli-anon", 4 * MIB_PAGES, 1, 1 * MIB_PAGES);
	snprintf(pid, sizeof(pid), " %d ", (int)getpid());

	run_expect(&r, CLI_MS, 0,
		   (const char *const[]){ "--socket", d.sock, "status", NULL });
	ck_assert_msg(strncmp(r.out, first_line, strlen(first_line)) == 0,
		      "`%s`: first line:\n%s", r.cmd, r.out);
	for (int i = 0; table_units[i]; i++)
		expect_in(r.out, table_units[i], &r, "the header");
	check_row(&d, &r, "cli-a");
	check_row(&d, &r, "cli-b");
	check_row(&d, &r, "cli-anon");
	expect_in(r.out, pid, &r, "the table (this process's pid)");
	expect_in(r.out, "swap file: 0 of 16384 slots in use (0.0 of 64.0 MiB)",
		  &r, "the swap line");
	expect_in(r.out, "sharing: ", &r, "the sharing summary");
	ck_assert_msg(r.err[0] == '\0', "`%s` wrote on stderr: %s", r.cmd, r.err);
	run_free(&r);

	/* The same with --socket=PATH. */
	snprintf(sock_eq, sizeof(sock_eq), "--socket=%s", d.sock);
	run_expect(&r, CLI_MS, 0, (const char *const[]){ sock_eq, "status", NULL });
	check_row(&d, &r, "cli-b");
	run_free(&r);

	/* --json: the daemon's document. */
	run_expect(&r, CLI_MS, 0, (const char *const[]){ "--socket", d.sock,
		   "status", "--json", NULL });
	root = json_tokener_parse(r.out);
	ck_assert_msg(root, "`%s` printed no JSON:\n%s", r.cmd, r.out);
	ck_assert(json_object_object_get_ex(root, "vms", &vms));
	ck_assert_uint_eq(json_object_array_length(vms), 3);
	for (size_t i = 0; i < 3; i++) {
		json_object *vm = json_object_array_get_idx(vms, i);
		const char *name = json_object_get_string(
			json_object_object_get(vm, "name"));
		ck_assert_double_eq(jnum(vm, "pid"), getpid());
		ck_assert_double_eq(jnum(vm, "configured_mib"),
				    vm_field(&d, name, "configured_mib"));
		ck_assert_double_eq(jnum(vm, "resident_mib"),
				    vm_field(&d, name, "resident_mib"));
	}
	ck_assert_double_eq(jnum(json_object_object_get(root, "swap"),
				 "slots_total"), 16384);
	json_object_put(root);
	run_free(&r);
	ck_assert_double_eq(vm_field(&d, "cli-a", "resident_mib"), 16);
	ck_assert_double_eq(vm_field(&d, "cli-b", "resident_mib"), 4);
	ck_assert_double_eq(vm_field(&d, "cli-b", "untouched_mib"), 4);

	vm_verify(&a, a.pages);
	vm_verify(&b, 4 * MIB_PAGES);
	vm_detach(&a);
	vm_detach(&b);
	vm_detach(&c);
	stop_daemon(&d);
}
END_TEST

START_TEST(live_reclaim)
{
	struct pk_test_daemon d;
	struct vm a, b, c;
	struct run r;

	start_daemon(&d);
	vm_attach(&d, &a, "cli-a", 16 * MIB_PAGES, 0, 16 * MIB_PAGES);
	vm_attach(&d, &b, "cli-b", 8 * MIB_PAGES, 0, 4 * MIB_PAGES);
	vm_attach(&d, &c, "cli-anon", 4 * MIB_PAGES, 1, 1 * MIB_PAGES);

	run_expect(&r, CLI_MS + 4 * EVICT_MS_PER_MIB, 0,
		   (const char *const[]){ "--socket", d.sock, "reclaim",
					  "cli-a", "--mib", "4", NULL });
	ck_assert_msg(strncmp(r.out, "cli-a: 4.0 MiB evicted in ", 26) == 0,
		      "`%s` printed:\n%s", r.cmd, r.out);
	expect_in(r.out, " MiB/s): 4.0 MiB written to swap, 0.0 MiB zero "
		  "pages, 0.0 MiB kept (written by the guest meanwhile)\n",
		  &r, "stdout");
	expect_in(r.err, "pagekeeper: evicting 4 MiB of cli-a ...", &r, "stderr");
	run_free(&r);
	ck_assert_double_eq(vm_field(&d, "cli-a", "swapped_mib"), 4);
	ck_assert_double_eq(vm_field(&d, "cli-a", "resident_mib"), 12);
	ck_assert_double_eq(vm_field(&d, "cli-b", "swapped_mib"), 0);
	ck_assert_double_eq(vm_field(&d, "cli-b", "resident_mib"), 4);

	/* The table shows it, on the VM's row and the swap file's line. */
	run_expect(&r, CLI_MS, 0,
		   (const char *const[]){ "--socket", d.sock, "status", NULL });
	check_row(&d, &r, "cli-a");
	check_row(&d, &r, "cli-b");
	expect_in(r.out, "swap file: 1024 of 16384 slots in use (4.0 of 64.0 "
		  "MiB)", &r, "the swap line");
	run_free(&r);

	/* More than the VM holds: all its resident pages, no more. */
	run_expect(&r, CLI_MS + 8 * EVICT_MS_PER_MIB, 0,
		   (const char *const[]){ "--socket", d.sock, "reclaim",
					  "cli-b", "--mib", "100", NULL });
	ck_assert_msg(strncmp(r.out, "cli-b: 4.0 MiB evicted in ", 26) == 0,
		      "`%s` printed:\n%s", r.cmd, r.out);
	run_free(&r);
	ck_assert_double_eq(vm_field(&d, "cli-b", "swapped_mib"), 4);
	ck_assert_double_eq(vm_field(&d, "cli-b", "untouched_mib"), 4);
	ck_assert_double_eq(vm_field(&d, "cli-a", "swapped_mib"), 4);

	/* Refused by the daemon: exit 1 with its reason, nothing moves. */
	run_expect(&r, CLI_MS, EXIT_FAILED,
		   (const char *const[]){ "--socket", d.sock, "reclaim",
					  "nosuch", "--mib", "1", NULL });
	expect_in(r.err, "pagekeeper: reclaim refused: no VM named 'nosuch'", &r,
		  "stderr");
	ck_assert_msg(r.out[0] == '\0', "`%s` printed: %s", r.cmd, r.out);
	run_free(&r);
	run_expect(&r, CLI_MS, EXIT_FAILED,
		   (const char *const[]){ "--socket", d.sock, "reclaim",
					  "cli-anon", "--mib", "1", NULL });
	expect_in(r.err, "pagekeeper: reclaim refused: eviction of private "
		  "anonymous RAM", &r, "stderr");
	run_free(&r);
	ck_assert_double_eq(vm_field(&d, "cli-anon", "resident_mib"), 1);

	/* Every byte comes back. */
	vm_verify(&a, a.pages);
	vm_verify(&b, 4 * MIB_PAGES);
	vm_verify(&c, 1 * MIB_PAGES);
	ck_assert_double_eq(vm_field(&d, "cli-a", "swapped_mib"), 0);
	ck_assert_double_eq(vm_field(&d, "cli-a", "swapins"), 1024);
	vm_detach(&a);
	vm_detach(&b);
	vm_detach(&c);
	stop_daemon(&d);
}
END_TEST

/* ---- drain ---- */

/*
 * Drain deadlines: a scanner pass over both guests (32 MiB at >= 200 MiB/s,
 * passes >= 1 s apart) is at most SCAN_PASS_MS; faults on swapped or
 * merged pages are served at >= 2000 pages/s; a drain brings pages back
 * at the eviction floor, EVICT_MS_PER_MIB.
 */
#define DRAIN_MIB 16
#define SCAN_PASS_MS 1100
#define REFAULT_MS_PER_MIB (1000 * MIB_PAGES / 2000)

/* Has every one of n VMs made `passes` scanner passes (target[i])? */
static int passes_done(struct pk_test_daemon *d, const char *const *names,
		       int n, const double *target)
{
	for (int i = 0; i < n; i++)
		if (vm_field(d, names[i], "scan_passes") < target[i])
			return 0;
	return 1;
}

/*
 * The merged MiB of names[0] once it is above 0 and stayed the same while
 * both VMs made two whole scanner passes (the first may have begun before
 * the last change): nothing of theirs is left to merge.
 */
static double wait_merged(struct pk_test_daemon *d, const char *const *names)
{
	double v = -1, now, target[2] = { 0, 0 };
	long end = pk_test_deadline_ms(8 * SCAN_PASS_MS + CLI_MS);

	for (;;) {
		now = vm_field(d, names[0], "shared_mib");
		if (now != v) {
			v = now;
			for (int i = 0; i < 2; i++)
				target[i] = vm_field(d, names[i],
						     "scan_passes") + 2;
		} else if (now > 0 && passes_done(d, names, 2, target)) {
			return v;
		}
		ck_assert_msg(pk_test_now_ms() < end, "timed out after %.1f s "
			      "waiting for the merged MiB of %s to stay the "
			      "same for two scanner passes (%.2f MiB)",
			      (8 * SCAN_PASS_MS + CLI_MS) *
				      pk_test_time_scale() / 1e3, names[0], now);
		sleep_ms(100);
	}
}

/* SIGUSR1: the lab guest runs 1 s, verifies every page and exits 0. */
static void guest_verifies(struct guest *g, double refault_mib)
{
	json_object *res;

	ck_assert_int_eq(kill(g->pid, SIGUSR1), 0);
	guest_expect(g, NULL, &res, pk_test_deadline_ms(
			     1000 + DRAIN_MIB * SWEEP_MS_PER_MIB +
			     (long)(refault_mib * REFAULT_MS_PER_MIB) + CLI_MS),
		     "workload of 1 s and verify of every page");
	ck_assert_msg(res, "guest %s printed no result", g->name);
	ck_assert_double_eq(jnum(res, "mismatches"), 0);
	ck_assert_double_eq(jnum(res, "pages_verified"), DRAIN_MIB * MIB_PAGES);
	json_object_put(res);
	ck_assert_int_eq(guest_finish(g, DETACH_MS), 0);
}

START_TEST(live_drain)
{
	const char *const names[2] = { "dr-a", "dr-b" };
	const char *const extra[] = {
		"--size", "16M", "--seed", "3", "--content", "zero=0,shared=0.6",
		"--share-domain", "lab", "--idle-before", "3600", "--workload",
		"random", "--writers", "1", "--readers", "1", "--duration", "1",
		"--verify", "--json", NULL };
	struct pk_test_daemon d;
	struct pk_reclaim_reply rr;
	struct guest g[2];
	struct run r;
	double merged, merged_b, swapped, in, unshared, ms, lost, target;

	ck_assert_msg(pk_test_daemon_start(&d, "--scan-rate 1G --swap-size 64M")
		      == 0, "%s", d.error);
	for (int i = 0; i < 2; i++) {
		guest_start(&g[i], d.sock, names[i], extra);
		guest_expect(&g[i], "IDLE", NULL, pk_test_deadline_ms(
				     CLI_MS + 2 * DRAIN_MIB * SWEEP_MS_PER_MIB),
			     "attach and fill");
	}
	merged = wait_merged(&d, names);
	ck_assert_double_eq(vm_field(&d, "dr-b", "shared_mib"), merged);
	/* Merged pages are not resident: this evicts unique ones. */
	ck_assert_msg(pk_test_reclaim(d.sock, "dr-a", 4 << 20, &rr) == 0,
		      "reclaim: %s", rr.reason);
	ck_assert_uint_eq(rr.pages_swapped, 4 * MIB_PAGES);
	swapped = vm_field(&d, "dr-a", "swapped_mib");
	ck_assert_double_eq(swapped, 4);
	ck_assert_double_eq(vm_field(&d, "dr-a", "shared_mib"), merged);
	merged_b = vm_field(&d, "dr-b", "shared_mib");
	ck_assert_double_eq(vm_field(&d, "dr-a", "drained"), 0);

	run_expect(&r, CLI_MS + (long)((swapped + merged) * EVICT_MS_PER_MIB),
		   0, (const char *const[]){ "--socket", d.sock, "drain",
					     "dr-a", NULL });
	ck_assert_msg(sscanf(r.out, "dr-a: %lf MiB swapped in and %lf MiB "
			     "unshared in %lf ms; %lf MiB lost", &in,
			     &unshared, &ms, &lost) == 4,
		      "`%s` printed:\n%s", r.cmd, r.out);
	expect_in(r.out, " MiB lost (unreadable: the guest gets memory errors "
		  "there)\n", &r, "stdout");
	expect_in(r.err, "pagekeeper: draining dr-a ...", &r, "stderr");
	/* Exactly what it had, in MiB with one decimal. */
	ck_assert_msg(fabs(in - swapped) < 0.051 &&
		      fabs(unshared - merged) < 0.051 && ms > 0 && lost == 0,
		      "`%s` printed %s; dr-a had %.2f MiB swapped and %.2f MiB "
		      "merged", r.cmd, r.out, swapped, merged);
	run_free(&r);
	ck_assert_double_eq(vm_field(&d, "dr-a", "swapped_mib"), 0);
	ck_assert_double_eq(vm_field(&d, "dr-a", "shared_mib"), 0);
	ck_assert_double_eq(vm_field(&d, "dr-a", "drained"), 1);
	ck_assert_double_eq(vm_field(&d, "dr-a", "draining"), 0);
	ck_assert_double_eq(vm_field(&d, "dr-b", "shared_mib"), merged_b);

	/* From then on: no merging (two more scanner passes) ... */
	target = vm_field(&d, "dr-b", "scan_passes") + 2;
	WAIT_FOR(vm_field(&d, "dr-b", "scan_passes") >= target,
		 3 * SCAN_PASS_MS + CLI_MS, 100, "two more scanner passes "
		 "over dr-b");
	ck_assert_double_eq(vm_field(&d, "dr-a", "shared_mib"), 0);
	/* ... and no eviction. */
	run_expect(&r, CLI_MS, EXIT_FAILED,
		   (const char *const[]){ "--socket", d.sock, "reclaim",
					  "dr-a", "--mib", "1", NULL });
	expect_in(r.err, "pagekeeper: reclaim refused: vm dr-a is drained", &r,
		  "stderr");
	ck_assert_msg(r.out[0] == '\0', "`%s` printed: %s", r.cmd, r.out);
	run_free(&r);
	ck_assert_double_eq(vm_field(&d, "dr-a", "swapped_mib"), 0);

	/* Draining it again finds nothing left. */
	run_expect(&r, CLI_MS, 0, (const char *const[]){ "--socket", d.sock,
		   "drain", "dr-a", NULL });
	ck_assert_msg(strncmp(r.out, "dr-a: 0.0 MiB swapped in and 0.0 MiB "
			      "unshared in ", 45) == 0, "`%s` printed:\n%s",
		      r.cmd, r.out);
	run_free(&r);
	/* An unknown VM: the daemon's reason, exit 1. */
	run_expect(&r, CLI_MS, EXIT_FAILED,
		   (const char *const[]){ "--socket", d.sock, "drain", "nosuch",
					  NULL });
	expect_in(r.err, "pagekeeper: drain refused: no VM named 'nosuch'", &r,
		  "stderr");
	ck_assert_msg(r.out[0] == '\0', "`%s` printed: %s", r.cmd, r.out);
	run_free(&r);

	/* Every page of both, dr-b's merged ones from the copies. */
	guest_verifies(&g[0], 0);
	guest_verifies(&g[1], merged_b);
	stop_daemon(&d);
}
END_TEST

/* ---- no daemon ---- */

/* Every command that talks to the daemon, against sock: exit 3, the
 * socket and why on stderr, nothing on stdout. */
static void expect_unreachable(const char *sock, const char *why)
{
	const char *const cmds[][6] = {
		{ "--socket", sock, "status", NULL },
		{ "--socket", sock, "status", "--json", NULL },
		{ "--socket", sock, "reclaim", "vm1", "--mib", "1" },
		{ "--socket", sock, "drain", "vm1", NULL },
	};

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char *args[8] = { 0 };
		struct run r;

		memcpy(args, cmds[i], sizeof(cmds[i]));
		run_expect(&r, CLI_MS, EXIT_UNREACHABLE, args);
		expect_in(r.err, sock, &r, "stderr (the socket)");
		expect_in(r.err, why, &r, "stderr (the reason)");
		expect_in(r.err, "pagekeeperd", &r, "stderr");
		ck_assert_msg(!strstr(r.out, "VM") && !strstr(r.out, "{"),
			      "`%s` printed on stdout: %s", r.cmd, r.out);
		run_free(&r);
	}
}

/* no_daemon's sockets live here; made and removed by the parent process
 * (an unchecked fixture), so a failed test leaves nothing behind. */
static char nd_dir[] = "/tmp/pk-cli-XXXXXX";

static void nd_setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(nd_dir));
}

static void nd_teardown(void)
{
	static const char *const files[] = { "stale.sock", "mute.sock", NULL };
	char path[128];

	for (int i = 0; files[i]; i++) {
		snprintf(path, sizeof(path), "%s/%s", nd_dir, files[i]);
		unlink(path);
	}
	rmdir(nd_dir);
}

START_TEST(no_daemon)
{
	char *dir = nd_dir, sock[128], stale[128], mute[128];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, lfd;
	pid_t server;

	/* Nothing at the path. */
	snprintf(sock, sizeof(sock), "%s/pk.sock", dir);
	expect_unreachable(sock, "cannot reach pagekeeperd at");
	expect_unreachable(sock, "No such file or directory");

	/* A socket file nobody listens on (a daemon that died). */
	snprintf(stale, sizeof(stale), "%s/stale.sock", dir);
	strcpy(sa.sun_path, stale);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	expect_unreachable(stale, "Connection refused");

	/* Something listens, takes the request and hangs up. */
	snprintf(mute, sizeof(mute), "%s/mute.sock", dir);
	strcpy(sa.sun_path, mute);
	lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(lfd, 8), 0);
	server = fork();
	ck_assert_int_ge(server, 0);
	if (server == 0) {
		char buf[512];
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;) {
			int c = accept(lfd, NULL, NULL);
			if (c < 0)
				_exit(0);
			(void)!recv(c, buf, sizeof(buf), 0);
			close(c);
		}
	}
	close(lfd);
	expect_unreachable(mute, "no answer from pagekeeperd at");
	expect_unreachable(mute, "it closed the connection");
	kill(server, SIGKILL);
	waitpid(server, NULL, 0);
}
END_TEST

/* ---- bad arguments ---- */

struct bad_case {
	const char *args[8];
	const char *says;
};

START_TEST(bad_args)
{
	struct pk_test_daemon d;
	struct vm a;
	char long_path[200], long_name[80];
	/* S: replaced with the live daemon's socket. */
	const struct bad_case cases[] = {
		{ { NULL }, "pagekeeper: missing command" },
		{ { "frob" }, "pagekeeper: unknown command 'frob'" },
		{ { "--bogus", "status" }, "pagekeeper: unknown option '--bogus'" },
		{ { "--socket" }, "pagekeeper: --socket needs a PATH" },
		{ { "--socket", "", "status" }, "pagekeeper: empty socket path" },
		{ { "--socket", long_path, "status" },
		  "pagekeeper: socket path too long" },
		{ { "--socket", "S" }, "pagekeeper: missing command" },
		{ { "--socket", "S", "status", "--xml" },
		  "pagekeeper: status: unknown argument '--xml'" },
		{ { "--socket", "S", "status", "cli-a" },
		  "pagekeeper: status: unknown argument 'cli-a'" },
		{ { "--socket", "S", "reclaim" },
		  "pagekeeper: reclaim needs VM and --mib N" },
		{ { "--socket", "S", "reclaim", "cli-a" },
		  "pagekeeper: reclaim needs VM and --mib N" },
		{ { "--socket", "S", "reclaim", "--mib", "4" },
		  "pagekeeper: reclaim needs VM and --mib N" },
		{ { "--socket", "S", "reclaim", "cli-a", "--mib" },
		  "pagekeeper: reclaim: --mib needs a number of MiB" },
		{ { "--socket", "S", "reclaim", "cli-a", "--mib", "0" },
		  "pagekeeper: reclaim: --mib '0': want a positive whole number" },
		{ { "--socket", "S", "reclaim", "cli-a", "--mib", "-4" },
		  "pagekeeper: reclaim: --mib '-4'" },
		{ { "--socket", "S", "reclaim", "cli-a", "--mib", "4x" },
		  "pagekeeper: reclaim: --mib '4x'" },
		{ { "--socket", "S", "reclaim", "cli-a", "--mib", "" },
		  "pagekeeper: reclaim: --mib ''" },
		/* 2^44 MiB is 2^64 bytes: it must not wrap to 0. */
		{ { "--socket", "S", "reclaim", "cli-a", "--mib",
		    "17592186044416" },
		  "at most 17592186044415" },
		{ { "--socket", "S", "reclaim", "cli-a", "--mib",
		    "99999999999999999999999" },
		  "pagekeeper: reclaim: --mib '99999999999999999999999'" },
		{ { "--socket", "S", "reclaim", "cli-a", "cli-b", "--mib", "4" },
		  "pagekeeper: reclaim: unexpected argument 'cli-b'" },
		{ { "--socket", "S", "reclaim", long_name, "--mib", "4" },
		  "pagekeeper: reclaim: VM name longer than 63 bytes" },
		{ { "--socket", "S", "drain" },
		  "pagekeeper: drain needs exactly one VM" },
		{ { "--socket", "S", "drain", "cli-a", "cli-b" },
		  "pagekeeper: drain needs exactly one VM" },
		{ { "--socket", "S", "drain", "--mib" },
		  "pagekeeper: drain needs exactly one VM" },
		{ { "--socket", "S", "drain", long_name },
		  "pagekeeper: drain: VM name longer than 63 bytes" },
		{ { "--socket", "S", "set" },
		  "pagekeeper: set needs VM and at least one of" },
		{ { "--socket", "S", "set", "cli-a" },
		  "pagekeeper: set needs VM and at least one of" },
		{ { "--socket", "S", "set", "cli-a", "--shares", "0" },
		  "pagekeeper: set: --shares '0': want 1..1000000" },
		{ { "--socket", "S", "set", "cli-a", "--shares", "12x" },
		  "pagekeeper: set: --shares '12x'" },
		{ { "--socket", "S", "set", "cli-a", "--min", "1000" },
		  "pagekeeper: set: --min '1000': not a whole number of 4 KiB" },
		{ { "--socket", "S", "set", "cli-a", "--max" },
		  "pagekeeper: set: unexpected argument '--max' (it needs a value)" },
		{ { "--socket", "S", "set", "cli-a", "--balloon", "maybe" },
		  "pagekeeper: set: unexpected argument '--balloon' (want on or off)" },
		{ { "lab", "--guests", "0" }, "pagekeeper lab: --guests wants 1..32" },
		{ { "lab", "--guests", "33" }, "pagekeeper lab: --guests wants 1..32" },
		{ { "lab", "--size", "12Q" }, "pagekeeper lab: bad --size '12Q'" },
		{ { "lab", "--size", "1000" },
		  "pagekeeper lab: bad --size '1000': want a positive multiple of "
		  "4096 bytes" },
		{ { "lab", "--size", "8T" },
		  "pagekeeper lab: bad --size '8T': too large" },
		{ { "lab", "--duration", "soon" },
		  "pagekeeper lab: bad --duration 'soon'" },
		{ { "lab", "--duration", "-1" },
		  "pagekeeper lab: bad --duration '-1'" },
		{ { "lab", "--workload", "bogus" },
		  "pagekeeper lab: bad --workload 'bogus'" },
		{ { "lab", "--frob" }, "unrecognized option '--frob'" },
		{ { "lab", "extra" }, "pagekeeper lab: unexpected argument 'extra'" },
	};

	memset(long_path, 'p', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = '\0';
	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[64] = '\0';
	start_daemon(&d);
	vm_attach(&d, &a, "cli-a", 4 * MIB_PAGES, 0, 4 * MIB_PAGES);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *args[8] = { 0 };
		struct run r;

		for (int k = 0; k < 7 && cases[i].args[k]; k++)
			args[k] = strcmp(cases[i].args[k], "S") == 0
					  ? d.sock : cases[i].args[k];
		run_expect(&r, CLI_MS, EXIT_USAGE, args);
		expect_in(r.err, cases[i].says, &r, "stderr");
		ck_assert_msg(r.out[0] == '\0', "`%s` printed on stdout: %s",
			      r.cmd, r.out);
		run_free(&r);
	}
	/* None of them reached the daemon's VM. */
	ck_assert_double_eq(vm_field(&d, "cli-a", "swapped_mib"), 0);
	ck_assert_double_eq(vm_field(&d, "cli-a", "resident_mib"), 4);
	ck_assert_double_eq(vm_field(&d, "cli-a", "drained"), 0);
	vm_verify(&a, a.pages);
	vm_detach(&a);
	stop_daemon(&d);
}
END_TEST

/* set: a VM's allocation for the policy, and the daemon's refusals. */
START_TEST(live_set)
{
	struct pk_test_daemon d;
	struct vm a;
	struct run r;

	start_daemon(&d);
	vm_attach(&d, &a, "cli-a", 4 * MIB_PAGES, 0, 4 * MIB_PAGES);
	ck_assert_double_eq(vm_field(&d, "cli-a", "shares"), 1000);
	ck_assert_double_eq(vm_field(&d, "cli-a", "max_mib"), 4);
	run_expect(&r, CLI_MS, 0, (const char *const[]){ "--socket", d.sock,
		   "set", "cli-a", "--shares", "2000", "--min", "1M", "--max",
		   "3M", "--balloon", "off", NULL });
	expect_in(r.out, "cli-a: allocation set", &r, "stdout");
	run_free(&r);
	ck_assert_double_eq(vm_field(&d, "cli-a", "shares"), 2000);
	ck_assert_double_eq(vm_field(&d, "cli-a", "min_mib"), 1);
	ck_assert_double_eq(vm_field(&d, "cli-a", "max_mib"), 3);
	ck_assert_double_eq(vm_field(&d, "cli-a", "balloon_opt_out"), 1);
	/* Only what is named changes. */
	run_expect(&r, CLI_MS, 0, (const char *const[]){ "--socket", d.sock,
		   "set", "cli-a", "--balloon", "on", NULL });
	run_free(&r);
	ck_assert_double_eq(vm_field(&d, "cli-a", "shares"), 2000);
	ck_assert_double_eq(vm_field(&d, "cli-a", "balloon_opt_out"), 0);
	run_expect(&r, CLI_MS, EXIT_FAILED, (const char *const[]){ "--socket",
		   d.sock, "set", "cli-a", "--min", "3M", "--max", "2M", NULL });
	expect_in(r.err, "pagekeeper: set refused: min (3 MiB) is above max "
		  "(2 MiB)", &r, "stderr");
	run_free(&r);
	run_expect(&r, CLI_MS, EXIT_FAILED, (const char *const[]){ "--socket",
		   d.sock, "set", "cli-a", "--min", "8M", NULL });
	expect_in(r.err, "at most the VM's size (4 MiB)", &r, "stderr");
	run_free(&r);
	run_expect(&r, CLI_MS, EXIT_FAILED, (const char *const[]){ "--socket",
		   d.sock, "set", "nosuch", "--shares", "5", NULL });
	expect_in(r.err, "no VM named 'nosuch'", &r, "stderr");
	run_free(&r);
	/* Refusals changed nothing. */
	ck_assert_double_eq(vm_field(&d, "cli-a", "min_mib"), 1);
	ck_assert_double_eq(vm_field(&d, "cli-a", "max_mib"), 3);
	vm_verify(&a, a.pages);
	vm_detach(&a);
	stop_daemon(&d);
}
END_TEST

START_TEST(help)
{
	static const char *const forms[][2] = { { "--help", NULL },
						{ "-h", NULL } };
	struct run r;

	for (int i = 0; i < 2; i++) {
		run_expect(&r, CLI_MS, 0, forms[i]);
		expect_in(r.out, "usage: pagekeeper [--socket PATH] status [--json]",
			  &r, "stdout");
		expect_in(r.out, "reclaim VM --mib N", &r, "stdout");
		expect_in(r.out, "drain VM", &r, "stdout");
		expect_in(r.out, "pagekeeper lab", &r, "stdout");
		/* The exit statuses this test holds the program to. */
		expect_in(r.out, "Exit status: 0 done, 1 the daemon refused or "
			  "failed the request,\n2 bad usage, 3 no pagekeeperd "
			  "answers at the socket", &r, "stdout");
		ck_assert_msg(r.err[0] == '\0', "`%s` wrote on stderr: %s", r.cmd,
			      r.err);
		run_free(&r);
	}
	run_expect(&r, CLI_MS, 0, (const char *const[]){ "lab", "--help", NULL });
	expect_in(r.out, "usage: pagekeeper lab [--guests N]", &r, "stdout");
	expect_in(r.out, "Exit status: 0 every guest verified every page, 1 a "
		  "guest failed\nor the lab could not start, 2 bad usage, 130 "
		  "interrupted.", &r, "stdout");
	run_free(&r);
}
END_TEST

/* ---- lab ---- */

/* The parent pid of pid, from /proc/PID/stat; -1 when gone. */
static pid_t parent_of(pid_t pid)
{
	char path[64], buf[512], *p;
	int ppid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')))
		sscanf(p + 2, "%*c %d", &ppid);
	fclose(f);
	return ppid;
}

/* What a lab run started: its daemon, guests, and directory. */
struct lab_seen {
	pid_t daemon, guests[8];
	int n_guests;
	char dir[PATH_MAX];
};

/* Look for the lab's children; 1 once the daemon and n_guests are seen. */
static int lab_find(pid_t lab, int n_guests, struct lab_seen *s)
{
	DIR *proc = opendir("/proc");
	struct dirent *de;

	ck_assert_ptr_nonnull(proc);
	memset(s, 0, sizeof(*s));
	while ((de = readdir(proc))) {
		char cmd[4096];
		pid_t pid = (pid_t)atoi(de->d_name);
		size_t n;

		if (pid <= 0 || parent_of(pid) != lab)
			continue;
		n = proc_cmdline(pid, cmd, sizeof(cmd));
		if (!n)
			continue;
		if (strstr(cmd, "pagekeeperd")) {
			/* argv: pagekeeperd --socket DIR/pk.sock ... */
			const char *sock = cmd + strlen(cmd) + 1;
			if (sock < cmd + n && strcmp(sock, "--socket") == 0) {
				char *slash;
				sock += strlen(sock) + 1;
				snprintf(s->dir, sizeof(s->dir), "%s", sock);
				slash = strrchr(s->dir, '/');
				if (slash)
					*slash = '\0';
			}
			s->daemon = pid;
		} else if (strstr(cmd, "guestsim") && s->n_guests < 8) {
			s->guests[s->n_guests++] = pid;
		}
	}
	closedir(proc);
	return s->daemon && s->dir[0] && s->n_guests == n_guests;
}

/* Start the lab and wait (by work_ms) until its children are there. */
static void lab_start(struct run *r, const char *const args[], int n_guests,
		      struct lab_seen *s, long work_ms)
{
	long deadline;

	run_start_sig(r, args, SIGTERM);
	deadline = pk_test_deadline_ms(work_ms);
	while (!lab_find(r->pid, n_guests, s)) {
		ck_assert_msg(pk_test_now_ms() < deadline,
			      "`%s`: its daemon and %d guests did not show up "
			      "within %.0f ms", r->cmd, n_guests,
			      work_ms * pk_test_time_scale());
		ck_assert_msg(waitpid(r->pid, NULL, WNOHANG) == 0,
			      "`%s` ended before its guests ran", r->cmd);
		sleep_ms(5);
	}
	ck_assert_msg(strncmp(s->dir, "/tmp/pagekeeper-lab.", 20) == 0,
		      "the lab's daemon runs in %s", s->dir);
}

/* Nothing the lab started is left: processes and directory. */
static void lab_gone(const struct run *r, const struct lab_seen *s)
{
	struct stat st;

	ck_assert_msg(kill(s->daemon, 0) < 0 && errno == ESRCH,
		      "`%s` left its daemon pid %d running", r->cmd,
		      (int)s->daemon);
	for (int i = 0; i < s->n_guests; i++)
		ck_assert_msg(kill(s->guests[i], 0) < 0 && errno == ESRCH,
			      "`%s` left guest pid %d running", r->cmd,
			      (int)s->guests[i]);
	ck_assert_msg(stat(s->dir, &st) < 0 && errno == ENOENT,
		      "`%s` left its directory %s", r->cmd, s->dir);
}

/* A live-view line "[  T.T s]  NAME R/C MiB N faults/s ..." with a and b. */
static int live_line(const char *out, const char *a, const char *b)
{
	for (const char *l = out; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : l) {
		const char *end = strchr(l, '\n');
		size_t len = end ? (size_t)(end - l) : strlen(l);
		char line[512];
		double t;

		if (*l != '[' || len >= sizeof(line))
			continue;
		memcpy(line, l, len);
		line[len] = '\0';
		if (sscanf(line, "[ %lf s]", &t) == 1 && strstr(line, a) &&
		    strstr(line, b) && strstr(line, " faults/s"))
			return 1;
	}
	return 0;
}

START_TEST(lab_run)
{
	const char *const args[] = { "lab", "--guests", "2", "--size", "16M",
				     "--duration", "3", "--workload", "seq",
				     NULL };
	struct lab_seen s;
	struct run r;
	char line[128];
	/* Two guests at once: fill and verify 16 MiB each, 3 s of
	 * workload, then the lab's 1 s display tick. */
	long work_ms = CLI_MS + 2 * 16 * 2 * SWEEP_MS_PER_MIB + 3000 + 1000;

	lab_start(&r, args, 2, &s, CLI_MS);
	run_wait(&r, work_ms);
	ck_assert_msg(r.status == 0, "`%s` exited %d\nstdout: %s\nstderr: %s",
		      r.cmd, r.status, r.out, r.err);
	snprintf(line, sizeof(line), "lab: daemon %s, 2 guest(s) of 16M, seq "
		 "workload for 3 s, memfd RAM\n", getenv("PK_DAEMON"));
	expect_in(r.out, line, &r, "stdout");
	/* The live view, once a second while the guests run 3 s: a line
	 * with both guests filled, in MiB, and their faults/s. */
	ck_assert_msg(live_line(r.out, "lab0 16/16 MiB", "lab1 16/16 MiB"),
		      "`%s`: no live line shows both guests with 16/16 MiB:\n%s",
		      r.cmd, r.out);
	for (int i = 0; i < 2; i++) {
		char *res;
		double mibs, ops, rp, wp, pages, bad;
		snprintf(line, sizeof(line), "  lab%d   verified fill ", i);
		res = strstr(r.out, line);
		ck_assert_msg(res, "`%s`: no result for lab%d:\n%s", r.cmd, i,
			      r.out);
		ck_assert_msg(sscanf(res + strlen(line), "%*f s ( %lf MiB/s) %lf "
				     "ops/s read p99 %lf us write p99 %lf us "
				     "%lf pages verified, %lf mismatches",
				     &mibs, &ops, &rp, &wp, &pages, &bad) == 6,
			      "`%s`: lab%d's result line: %s", r.cmd, i, res);
		ck_assert_double_gt(mibs, 0);
		ck_assert_double_gt(ops, 0);
		ck_assert_double_eq(pages, 16 * MIB_PAGES);
		ck_assert_double_eq(bad, 0);
	}
	expect_in(r.out, "lab: every guest verified every page\n", &r, "stdout");
	lab_gone(&r, &s);
	run_free(&r);
}
END_TEST

START_TEST(lab_interrupt)
{
	const char *const args[] = { "lab", "--guests", "1", "--size", "16M",
				     "--duration", "600", "--workload", "idle",
				     NULL };
	struct lab_seen s;
	struct run r;

	lab_start(&r, args, 1, &s, CLI_MS);
	ck_assert_int_eq(kill(r.pid, SIGINT), 0);
	/* It stops its guest and its daemon (2 s of grace each at most). */
	run_wait(&r, LAB_STOP_MS);
	ck_assert_msg(r.status == 130, "`%s` exited %d on SIGINT, want 130\n"
		      "stdout: %s\nstderr: %s", r.cmd, r.status, r.out, r.err);
	expect_in(r.err, "pagekeeper lab: interrupted; stopping", &r, "stderr");
	lab_gone(&r, &s);
	run_free(&r);
}
END_TEST

/* ---- balloon ---- */

#define EXIT_STALLED 4	/* balloon: stopped short of the target */
#define EXIT_TIMEOUT 5	/* balloon: not at the target by --timeout */
#define BALLOON_MIB 64
/* The lab guest's balloon moves >= 5 MiB/s here while it pages (about
 * 10 MiB/s measured); its stats come every 2 s, rates need two. */
#define BALLOON_MS_PER_MIB 200
#define BALLOON_STATS_MS 2000

/* A key of VM name's status is null (1) or a value (0); asserts it is
 * there. */
static int vm_null(struct pk_test_daemon *d, const char *name, const char *key)
{
	json_object *root = status_root(d), *vms, *x;
	int is_null = -1;

	ck_assert(json_object_object_get_ex(root, "vms", &vms));
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		json_object *v = json_object_array_get_idx(vms, i), *nm;
		if (json_object_object_get_ex(v, "name", &nm) &&
		    !strcmp(json_object_get_string(nm), name)) {
			ck_assert_msg(json_object_object_get_ex(v, key, &x),
				      "status of %s has no \"%s\"", name, key);
			is_null = x == NULL;
		}
	}
	json_object_put(root);
	ck_assert_msg(is_null >= 0, "VM %s not in the status", name);
	return is_null;
}

/* The balloon table's row of VM name: its text after the name. */
static const char *balloon_row(const struct run *r, const char *name)
{
	const char *t = strstr(r->out, "\nNAME             BALLOON"), *row;
	char key[80];

	ck_assert_msg(t, "`%s`: no balloon table:\n%s", r->cmd, r->out);
	snprintf(key, sizeof(key), "\n%s ", name);
	row = strstr(t + 1, key);
	ck_assert_msg(row, "`%s`: no balloon row for %s:\n%s", r->cmd, name,
		      r->out);
	return row + strlen(key);
}

/*
 * A lab guest with a guest OS (pk-guestsim --balloon) of 64 MiB, 80 %
 * of it locked, idle until SIGUSR1: `status` shows its balloon with units,
 * `balloon` inflates it to 16 MiB and stalls short (exit 4, shortfall =
 * actual - target, as the status says), deflates it to 60 MiB (exit 0,
 * actual follows), refuses a target above its RAM (exit 1, the RAM in
 * MiB), returns at once with --no-wait, times out on a stopped guest
 * (exit 5, the daemon still answering); bad sizes are exit 2 and change
 * nothing; an unknown VM or one without a balloon channel is exit 1.  The
 * guest verifies every page at the end.
 */
START_TEST(live_balloon)
{
	const char *const extra[] = {
		"--size", "64M", "--balloon", "--locked", "0.8",
		"--idle-before", "3600", "--workload", "random", "--writers",
		"1", "--duration", "1", "--verify", "--json", NULL };
	struct pk_test_daemon d;
	struct guest g;
	struct vm plain;
	struct run r;
	char link[64], tmo[16], want[128];
	const char *row;
	json_object *res;
	long inflate_ms = (BALLOON_MIB - 16) * BALLOON_MS_PER_MIB;

	start_daemon(&d);
	guest_start(&g, d.sock, "cli-lab", extra);
	guest_expect(&g, "IDLE", NULL, pk_test_deadline_ms(
			     CLI_MS + BALLOON_MIB * SWEEP_MS_PER_MIB),
		     "attach and fill");
	WAIT_FOR((vm_string(&d, "cli-lab", "balloon_link", link, sizeof(link)),
		  !strcmp(link, "ready")), CLI_MS, 20,
		 "the lab balloon to be ready (link '%s')", link);
	WAIT_FOR(!vm_null(&d, "cli-lab", "guest_pageins_per_s"),
		 2 * BALLOON_STATS_MS + CLI_MS, 50,
		 "two stats of the lab guest (its paging rates)");

	/* status: the balloon table, every figure with its unit. */
	run_expect(&r, CLI_MS, 0, (const char *const[]){ "--socket", d.sock,
							 "status", NULL });
	for (const char *const *h = (const char *const[]){
		     "BALLOON", "LINK", "TARGET", "ACTUAL", "GUEST TOTAL",
		     "GUEST FREE", "GUEST AVAIL", "PAGE-INS", "PAGE-OUTS",
		     "STALLED", NULL }; *h; h++)
		expect_in(r.out, *h, &r, "stdout");
	row = balloon_row(&r, "cli-lab");
	ck_assert_msg(!strncmp(row + strspn(row, " "), "lab ", 4) &&
		      strstr(row, " ready ") && strstr(row, " 64.0 MiB ") &&
		      strstr(row, " pages/s "),
		      "balloon row of cli-lab: %s", row);
	ck_assert_double_eq(vm_field(&d, "cli-lab", "balloon_actual_mib"),
			    BALLOON_MIB);
	ck_assert(vm_null(&d, "cli-lab", "balloon_target_mib"));
	run_free(&r);

	/* Inflate past what the guest can give: it stalls short. */
	snprintf(tmo, sizeof(tmo), "%d", scaled_ms(inflate_ms + CLI_MS) / 1000);
	run_expect(&r, inflate_ms + 2 * CLI_MS, EXIT_STALLED,
		   (const char *const[]){ "--socket", d.sock, "balloon",
					  "cli-lab", "--target", "16M",
					  "--timeout", tmo, NULL });
	expect_in(r.out, "cli-lab: balloon target 16.0 MiB accepted; the "
		  "guest is 64.0 MiB now", &r, "stdout");
	expect_in(r.out, "MiB now, target 16.0 MiB (", &r, "stdout");
	expect_in(r.err, "MiB short of the target 16.0 MiB", &r, "stderr");
	const char *const keys[] = { "balloon_actual_mib", "balloon_target_mib",
				     "balloon_shortfall_mib", "balloon_stalled",
				     NULL };
	double f[4];
	vm_fields(&d, "cli-lab", keys, f);
	ck_assert_double_eq(f[1], 16);
	ck_assert_double_eq(f[3], 1);
	ck_assert_msg(f[0] > 16 + 1 && f[0] < BALLOON_MIB,
		      "stalled at %.1f MiB", f[0]);
	/* 80 % locked: it cannot go below 51.2 MiB of the 64. */
	ck_assert_msg(f[0] >= 0.8 * BALLOON_MIB, "stalled at %.1f MiB, below "
		      "the locked 51.2 MiB", f[0]);
	ck_assert_msg(f[2] > f[0] - 16 - 0.51 && f[2] < f[0] - 16 + 0.51,
		      "shortfall %.1f MiB, actual %.1f MiB - target 16 MiB",
		      f[2], f[0]);
	snprintf(want, sizeof(want), "stalled at %.1f MiB, %.1f MiB short",
		 f[0], f[2]);
	expect_in(r.err, want, &r, "stderr");
	run_free(&r);
	printf("live_balloon: target 16 MiB of 64 MiB with 80 %% locked: "
	       "stalled at %.1f MiB, %.1f MiB short\n", f[0], f[2]);

	/* Deflate: the actual follows to the target. */
	run_expect(&r, inflate_ms + CLI_MS, 0, (const char *const[]){
			   "--socket", d.sock, "balloon", "cli-lab",
			   "--target", "60M", NULL });
	expect_in(r.out, "cli-lab: reached the target, 60.0 MiB", &r, "stdout");
	vm_fields(&d, "cli-lab", keys, f);
	ck_assert_double_eq(f[0], 60);
	ck_assert_double_eq(f[3], 0);
	run_free(&r);

	/* Refusals: above RAM (the daemon's why), unknown VM, no channel. */
	run_expect(&r, CLI_MS, EXIT_FAILED, (const char *const[]){
			   "--socket", d.sock, "balloon", "cli-lab",
			   "--target", "65M", NULL });
	expect_in(r.err, "balloon refused: a balloon target must be", &r,
		  "stderr");
	expect_in(r.err, "the guest's RAM (64 MiB)", &r, "stderr");
	run_free(&r);
	run_expect(&r, CLI_MS, EXIT_FAILED, (const char *const[]){
			   "--socket", d.sock, "balloon", "nosuch",
			   "--target", "32M", NULL });
	expect_in(r.err, "no VM named 'nosuch'", &r, "stderr");
	run_free(&r);
	vm_attach(&d, &plain, "cli-plain", 256, 0, 0);
	run_expect(&r, CLI_MS, EXIT_FAILED, (const char *const[]){
			   "--socket", d.sock, "balloon", "cli-plain",
			   "--target", "512K", NULL });
	expect_in(r.err, "registered no balloon channel", &r, "stderr");
	run_free(&r);
	run_expect(&r, CLI_MS, 0, (const char *const[]){
			   "--socket", d.sock, "status", NULL });
	/* The balloon table ends at the swap file's line. */
	const char *tb = strstr(r.out, "\nNAME             BALLOON");
	const char *te = tb ? strstr(tb, "\nswap file:") : NULL;
	const char *pl = tb ? strstr(tb, "\ncli-plain ") : NULL;
	ck_assert_msg(tb && te && (!pl || pl > te),
		      "a VM without balloon in the balloon table:\n%s", r.out);
	run_free(&r);
	vm_detach(&plain);

	/* Bad sizes and options: usage, nothing sent. */
	static const char *const bad[][2] = {
		{ "lots", "not a number" }, { "0", "cannot keep 0 bytes" },
		{ "12Q", "suffix" }, { "-5M", "--target '-5M'" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		run_expect(&r, CLI_MS, EXIT_USAGE, (const char *const[]){
				   "--socket", d.sock, "balloon", "cli-lab",
				   "--target", bad[i][0], NULL });
		expect_in(r.err, bad[i][1], &r, "stderr");
		ck_assert_msg(!r.out[0], "`%s` printed: %s", r.cmd, r.out);
		run_free(&r);
	}
	run_expect(&r, CLI_MS, EXIT_USAGE, (const char *const[]){
			   "--socket", d.sock, "balloon", "cli-lab",
			   "--target", "32M", "--timeout", "0", NULL });
	expect_in(r.err, "--timeout '0'", &r, "stderr");
	run_free(&r);
	run_expect(&r, CLI_MS, EXIT_USAGE, (const char *const[]){
			   "--socket", d.sock, "balloon", "cli-lab", NULL });
	expect_in(r.err, "balloon needs VM and --target SIZE", &r, "stderr");
	run_free(&r);
	ck_assert_double_eq(vm_field(&d, "cli-lab", "balloon_target_mib"), 60);

	/* --no-wait: the accepted target, no progress. */
	run_expect(&r, CLI_MS, 0, (const char *const[]){
			   "--socket", d.sock, "balloon", "cli-lab",
			   "--target", "62M", "--no-wait", NULL });
	expect_in(r.out, "balloon target 62.0 MiB accepted", &r, "stdout");
	ck_assert_msg(!strstr(r.out, "MiB now, target"), "--no-wait waited:\n%s",
		      r.out);
	run_free(&r);
	WAIT_FOR(vm_field(&d, "cli-lab", "balloon_actual_mib") == 62,
		 2 * BALLOON_MS_PER_MIB + CLI_MS, 20,
		 "the guest at 62 MiB (%.1f MiB)",
		 vm_field(&d, "cli-lab", "balloon_actual_mib"));

	/* A stopped guest cannot move: the deadline passes, exit 5. */
	pid_stop(g.pid, "the lab guest");
	run_expect(&r, 1000 + CLI_MS, EXIT_TIMEOUT, (const char *const[]){
			   "--socket", d.sock, "balloon", "cli-lab",
			   "--target", "40M", "--timeout", "1", NULL });
	expect_in(r.out, "balloon target 40.0 MiB accepted", &r, "stdout");
	expect_in(r.err, "not at the target 40.0 MiB after 1 s", &r, "stderr");
	run_free(&r);
	ck_assert_int_eq(kill(g.pid, SIGCONT), 0);

	/* The guest runs its workload and verifies every page. */
	ck_assert_int_eq(kill(g.pid, SIGUSR1), 0);
	guest_expect(&g, NULL, &res, pk_test_deadline_ms(
			     1000 + CLI_MS + inflate_ms +
			     2 * BALLOON_MIB * SWEEP_MS_PER_MIB),
		     "workload of 1 s and verify of every page");
	ck_assert_msg(res, "guest %s printed no result", g.name);
	ck_assert_double_eq(jnum(res, "mismatches"), 0);
	ck_assert_double_eq(jnum(res, "pages_verified"), BALLOON_MIB * MIB_PAGES);
	json_object_put(res);
	ck_assert_int_eq(guest_finish(&g, DETACH_MS), 0);
	stop_daemon(&d);
}
END_TEST

static TCase *add(Suite *s, const char *name, const TTest *t)
{
	TCase *tc = tcase_create(name);

	/* A backstop: each run inside has its own, shorter deadline. */
	tcase_set_timeout(tc, 60 * pk_test_time_scale());
	tcase_add_test(tc, t);
	suite_add_tcase(s, tc);
	return tc;
}

int main(void)
{
	Suite *s = suite_create("cli");
	SRunner *sr;
	int failed;

	add(s, "live_status", live_status);
	add(s, "live_reclaim", live_reclaim);
	add(s, "live_drain", live_drain);
	add(s, "live_balloon", live_balloon);
	add(s, "live_set", live_set);
	tcase_add_unchecked_fixture(add(s, "no_daemon", no_daemon), nd_setup,
				    nd_teardown);
	add(s, "bad_args", bad_args);
	add(s, "help", help);
	add(s, "lab_run", lab_run);
	add(s, "lab_interrupt", lab_interrupt);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
