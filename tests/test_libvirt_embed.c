/*
 * test_libvirt_embed.c - the test guest started by embedded libvirt
 * (qemu:///embed?root=DIR) as user nobody, its QEMU attached to a real
 * pagekeeperd by libpagekeeper-preload.so, and ballooned through the
 * libvirt API.  Suite 'qemu' (slow), test 'libvirt_embed'.
 *
 * The root test process starts the daemon (its directory opened to
 * traversal; --socket-group nogroup lets QEMU, as nobody, connect, and
 * --admin-group nogroup lets it name a libvirt balloon channel, which
 * is for admins only: engine/PROTOCOL.md, "Access control"), makes a scratch directory owned by
 * nobody with copies of the kernel, the initramfs and the shim (so the
 * build tree's permissions do not matter), and grants nobody read-write
 * on /dev/userfaultfd for the run by an ACL entry (libvirt_host.h says
 * why that way and how it is undone).  A child drops to nobody
 * (setgroups, setgid, setuid; then PR_SET_PDEATHSIG), opens the embedded
 * driver with the libvirt C API and, with a domain XML of
 * <domain type='qemu'> (TCG), the image's kernel and initrd with the
 * checker's pkcheck.* options, the serial console to a file, shared memfd
 * RAM and a virtio memballoon:
 *  1. boots it without the shim: create -> ready line time, checker
 *     rounds with 0 errors, and the balloon's inflate and deflate times,
 *     the baseline; then the balloon bridge's libvirt driver
 *     (balloon-bridge/libvirt.c, channel "URI|NAME") on that domain,
 *     driven as pagekeeperd drives it (pk_balloon_fd/io/tick from a poll
 *     loop, events counted, every call timed): link up, stats (actual,
 *     MemTotal, MemFree, MemAvailable, in bytes), a target of 160 MiB and
 *     back to 256 MiB until the bridge's actual follows (deadline from
 *     the MiB moved at QEMU_BALLOON_MIN_MIB_S), MemTotal in its stats
 *     falls by the 96 MiB and comes back; virDomainDestroy makes it say
 *     GONE; prints "MEASURE libvirt balloon inflate X MiB/s deflate Y
 *     MiB/s" (resolution: the bridge polls actual every 0.2 s while
 *     chasing a target).  Migration events cannot be produced here (one
 *     host, one embedded driver): no MIGRATION event is asserted except
 *     that none comes;
 *  2. boots it with <qemu:env> LD_PRELOAD=the shim, PAGEKEEPER_SOCKET and
 *     PAGEKEEPER_BALLOON=libvirt:URI: the daemon lists the VM under
 *     libvirt's -name guest=NAME with 256 MiB, QEMU's pid, balloon
 *     "libvirt" and shared RAM, and the shim's "attached" line is in
 *     libvirt's domain log; the checker runs rounds with 0 errors;
 *     virDomainSetMemoryFlags(LIVE) to 176 MiB until virDomainGetInfo and
 *     virDomainMemoryStats(ACTUAL_BALLOON) report it; the daemon saw
 *     REMOVE events and counts about 80 MiB ballooned; the guest's
 *     MemTotal drops by about 80 MiB, 0 errors; deflate back, MemTotal
 *     back, 0 errors; the guest runs throughout;
 *  3. virDomainDestroy: QEMU is gone and the daemon drops the VM.
 * The embedded root gets etc/qemu.conf with stdio_handler = "file": QEMU's
 * stderr goes straight to the domain log, and no virtlogd is spawned (as
 * nobody, it would outlive the test).  HOME and XDG_* point into scratch.
 * PAGEKEEPER_BALLOON=libvirt:URI is what the shim registers (balloon
 * "libvirt", channel "URI|NAME"); an embedded driver can only be driven
 * from the process that embeds it, so the daemon shows that VM's balloon
 * "unavailable" with that reason and never connects (engine/vm_balloon.c);
 * the bridge is driven from the nobody child instead (bridge_run).
 * Then the root process checks that no process uses the scratch
 * directory, restores /dev/userfaultfd (and checks its mode and ACL are
 * what they were) and removes the directory.  A cleaner process does the
 * same if the test dies half-way.
 *
 * PK_TEST_BOOT_RUNS=N (default 1, at most 4) boots each variant N times,
 * in turn, for the create -> ready line timing (libvirt's probe of QEMU's
 * capabilities is done before, so no run pays for it).
 *
 * A missing libvirt QEMU driver, QEMU, image, shim or user nobody fails
 * the test with the reason; nothing is skipped.
 */
#include "balloon-bridge/balloon.h"
#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"
#include "tests/libvirt_host.h"
#include "tests/qemu_guest.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <json-c/json.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <link.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GUEST_MIB 256
#define CHECK_MIB 64
#define BALLOON_MIB 176
/*
 * Deadlines derive from the work (qemu_guest.h's budgets: one boot at a
 * time, the checker's MiB per round, the balloon's MiB) times
 * pk_test_time_scale(); LV_MS is what one libvirt call, a domain's
 * destruction or the daemon's bookkeeping after it may take.  The whole
 * child (PK_TEST_BOOT_RUNS boots of each kind, balloon runs) gets
 * CHILD_TIMEOUT_S, scaled too.
 */
#define LV_MS ((int)(10000 * pk_test_time_scale()))
#define CHILD_TIMEOUT_S ((int)(780 * pk_test_time_scale()))
#define MAX_RUNS 4
#define MAX_PIDS 16

/* What the nobody child reports to the root test process. */
struct lv_result {
	int ok;
	char msg[2048];
	int n_plain, n_managed;
	long plain_create_ms[MAX_RUNS], plain_ready_ms[MAX_RUNS];
	long managed_create_ms[MAX_RUNS], managed_ready_ms[MAX_RUNS];
	long plain_inflate_ms, plain_deflate_ms;
	long managed_inflate_ms, managed_deflate_ms;
	long long remove_events;
	double ballooned_mib, faults_total;
	long mem_total[3]; /* managed guest: before, inflated, after */
	long rounds;
	long long errors;
	int n_pids;
	pid_t pids[MAX_PIDS]; /* every QEMU the child started */
};

/* One domain. */
struct run {
	char name[64];
	char serial[256];
	char log[256]; /* libvirt's domain log: QEMU's stderr */
	virDomainPtr dom;
	pid_t pid;
	long cursor;	/* serial log offset for wait_line */
	long t0;	/* before virDomainCreateXML */
};

static struct pk_test_daemon D;
static char image_error[1024];
static char scratch[64];    /* /tmp/pk-lvembed-XXXXXX, owned by nobody */
static char embed_root[128];
static char uri[192];
static char kernel[128], initrd[128], shim[128], preload[1024];

/* The child's state (REQUIRE reaches it). */
static struct lv_result R;
static int result_fd = -1;
static virConnectPtr conn;
static struct run *live[4];

/* ---- the child: failing ---------------------------------------------------- */

static void send_result(void)
{
	const char *p = (const char *)&R;
	size_t left = sizeof(R);

	while (left) {
		ssize_t n = write(result_fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		p += n;
		left -= (size_t)n;
	}
}

static void dump_run(const struct run *r)
{
	fprintf(stderr, "libvirt_embed: %s: last serial lines (%s):\n", r->name,
		r->serial);
	qemu_log_dump_tail(r->serial, 30, "  | ");
	fprintf(stderr, "libvirt_embed: %s: end of libvirt's domain log (%s):\n",
		r->name, r->log);
	qemu_log_dump_tail(r->log, 15, "  | ");
}

__attribute__((noreturn, format(printf, 2, 3)))
static void child_fail(int line, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(R.msg, sizeof(R.msg), "line %d: ", line);

	va_start(ap, fmt);
	vsnprintf(R.msg + n, sizeof(R.msg) - (size_t)n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "libvirt_embed: FAILED: %s\n", R.msg);
	for (int i = 0; i < 4; i++)
		if (live[i]) {
			dump_run(live[i]);
			if (live[i]->dom)
				virDomainDestroy(live[i]->dom);
		}
	R.ok = 0;
	send_result();
	_exit(1);
}

#define REQUIRE(cond, ...)                                                 \
	do {                                                               \
		if (!(cond))                                               \
			child_fail(__LINE__, __VA_ARGS__);                 \
	} while (0)

static const char *lv_error(void)
{
	const char *m = virGetLastErrorMessage();
	return m ? m : "unknown libvirt error";
}

/* ---- the child: the daemon's status ---------------------------------------- */

struct vm_stat {
	int present;
	double configured_mib, ballooned_mib, faults_total;
	long long pid, remove_events;
	char balloon[32], ram[32];
};

static void vm_status(const char *name, struct vm_stat *s)
{
	json_object *root, *vms, *v;
	char *json;
	int rc;

	memset(s, 0, sizeof(*s));
	rc = pk_test_status_json(D.sock, &json);
	REQUIRE(rc == 0, "status from the daemon at %s: %s", D.sock,
		strerror(-rc));
	root = json_tokener_parse(json);
	free(json);
	REQUIRE(root && json_object_object_get_ex(root, "vms", &vms),
		"the daemon's status is not JSON with \"vms\"");
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		json_object *vm = json_object_array_get_idx(vms, i);
		if (!json_object_object_get_ex(vm, "name", &v) ||
		    strcmp(json_object_get_string(v), name))
			continue;
		s->present = 1;
#define GET(key, field, conv)                                              \
	if (json_object_object_get_ex(vm, key, &v))                        \
		s->field = conv(v)
		GET("configured_mib", configured_mib, json_object_get_double);
		GET("ballooned_mib", ballooned_mib, json_object_get_double);
		GET("faults_total", faults_total, json_object_get_double);
		GET("pid", pid, json_object_get_int64);
		GET("remove_events", remove_events, json_object_get_int64);
#undef GET
		if (json_object_object_get_ex(vm, "balloon", &v))
			snprintf(s->balloon, sizeof(s->balloon), "%s",
				 json_object_get_string(v));
		if (json_object_object_get_ex(vm, "ram", &v))
			snprintf(s->ram, sizeof(s->ram), "%s",
				 json_object_get_string(v));
	}
	json_object_put(root);
}

/* Wait until the daemon lists name (present 1) or not (0). */
static int wait_vm(const char *name, int present, int timeout_ms,
		   struct vm_stat *s)
{
	long deadline = pk_test_now_ms() + timeout_ms;

	for (;;) {
		vm_status(name, s);
		if (s->present == present)
			return 1;
		if (pk_test_now_ms() > deadline)
			return 0;
		sleep_ms(50);
	}
}

/* ---- the child: domains ------------------------------------------------------ */

static void *event_loop(void *arg)
{
	(void)arg;
	for (;;)
		if (virEventRunDefaultImpl() < 0)
			sleep_ms(10);
	return NULL;
}

static void domain_xml(char *xml, size_t len, const struct run *r, int managed)
{
	const char *qemu = getenv("PK_QEMU");
	char env[2048] = "";

	if (managed)
		snprintf(env, sizeof(env),
			 "  <qemu:commandline>\n"
			 "    <qemu:env name='LD_PRELOAD' value='%s'/>\n"
			 "    <qemu:env name='PAGEKEEPER_SOCKET' value='%s'/>\n"
			 "    <qemu:env name='PAGEKEEPER_BALLOON' value='libvirt:%s'/>\n"
			 "    <qemu:env name='ASAN_OPTIONS' value='detect_leaks=0:abort_on_error=1'/>\n"
			 "    <qemu:env name='UBSAN_OPTIONS' value='halt_on_error=1:print_stacktrace=1'/>\n"
			 "  </qemu:commandline>\n", preload, D.sock, uri);
	snprintf(xml, len,
		 "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n"
		 "  <name>%s</name>\n"
		 "  <memory unit='MiB'>%d</memory>\n"
		 "  <currentMemory unit='MiB'>%d</currentMemory>\n"
		 "  <vcpu>1</vcpu>\n"
		 "  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>\n"
		 "  <os>\n"
		 "    <type arch='x86_64' machine='q35'>hvm</type>\n"
		 "    <kernel>%s</kernel>\n"
		 "    <initrd>%s</initrd>\n"
		 "    <cmdline>console=ttyS0 panic=-1 pkcheck.mib=%d pkcheck.rewrite=0.1</cmdline>\n"
		 "  </os>\n"
		 "  <on_poweroff>destroy</on_poweroff>\n"
		 "  <on_reboot>destroy</on_reboot>\n"
		 "  <on_crash>destroy</on_crash>\n"
		 "  <devices>\n"
		 "    <emulator>%s</emulator>\n"
		 "    <serial type='file'><source path='%s'/><target port='0'/></serial>\n"
		 "    <memballoon model='virtio'/>\n"
		 "  </devices>\n"
		 "%s"
		 "</domain>\n", r->name, GUEST_MIB, GUEST_MIB, kernel, initrd,
		 CHECK_MIB, qemu, r->serial, env);
}

static void track(struct run *r, int on)
{
	for (int i = 0; i < 4; i++)
		if (on ? !live[i] : live[i] == r) {
			live[i] = on ? r : NULL;
			return;
		}
}

/* QEMU's pid from libvirt's pid file. */
static pid_t qemu_pid(const struct run *r)
{
	char path[256], buf[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/run/qemu/%s.pid", embed_root, r->name);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	return (pid_t)atoi(buf);
}

static void dom_start(struct run *r, const char *name, int managed,
		      long *create_ms)
{
	char xml[8192];

	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->serial, sizeof(r->serial), "%s/%s-serial.log", scratch,
		 name);
	snprintf(r->log, sizeof(r->log), "%s/log/qemu/%s.log", embed_root, name);
	domain_xml(xml, sizeof(xml), r, managed);
	track(r, 1);
	r->t0 = pk_test_now_ms();
	r->dom = virDomainCreateXML(conn, xml, 0);
	*create_ms = pk_test_now_ms() - r->t0;
	REQUIRE(r->dom, "virDomainCreateXML %s: %s", name, lv_error());
	r->pid = qemu_pid(r);
	REQUIRE(r->pid > 0, "no QEMU pid file for %s under %s", name,
		embed_root);
	if (R.n_pids < MAX_PIDS)
		R.pids[R.n_pids++] = r->pid;
	fprintf(stderr, "libvirt_embed: %s: %s QEMU pid %d, "
		"virDomainCreateXML %ld ms%s%s\n", name,
		managed ? "managed" : "plain", (int)r->pid, *create_ms,
		managed ? ", LD_PRELOAD=" : "", managed ? preload : "");
}

static void assert_running(struct run *r)
{
	int state = -1, reason;

	REQUIRE(virDomainGetState(r->dom, &state, &reason, 0) == 0,
		"virDomainGetState %s: %s", r->name, lv_error());
	REQUIRE(state == VIR_DOMAIN_RUNNING && pk_test_pid_running(r->pid),
		"%s is not running (libvirt state %d reason %d, QEMU pid %d "
		"%s)", r->name, state, reason, (int)r->pid,
		pk_test_pid_running(r->pid) ? "runs" : "is gone");
}

/* 1 if a complete serial line after r->cursor contains prefix; out gets
 * the line from prefix on. */
static int scan_serial(struct run *r, const char *prefix, char *out,
		       size_t len)
{
	char line[512];

	if (!qemu_serial_scan(r->serial, &r->cursor, prefix, line,
			      sizeof(line), NULL, 0))
		return 0;
	snprintf(out, len, "%s", strstr(line, prefix));
	return 1;
}

/* Wait for a serial line with prefix; ms since virDomainCreateXML. */
static long wait_line(struct run *r, const char *prefix, char *out,
		      size_t len)
{
	int budget = qemu_guest_boot_budget_ms(1);
	long deadline = pk_test_now_ms() + budget;

	for (;;) {
		if (scan_serial(r, prefix, out, len))
			return pk_test_now_ms() - r->t0;
		REQUIRE(pk_test_pid_running(r->pid), "%s: QEMU exited before a "
			"serial line with '%s'", r->name, prefix);
		REQUIRE(pk_test_now_ms() < deadline, "%s: no serial line "
			"with '%s' in %d ms", r->name, prefix, budget);
		sleep_ms(10);
	}
}

static void wait_rounds(struct run *r, long rounds, struct pkcheck_status *st)
{
	/* Only its serial path and the checker's work are used. */
	static struct qemu_guest g = { .check_mib = CHECK_MIB };
	long deadline;
	int budget;

	REQUIRE(strlen(r->serial) < sizeof(g.serial), "path too long: %s",
		r->serial);
	memcpy(g.serial, r->serial, strlen(r->serial) + 1);
	budget = qemu_guest_rounds_budget_ms(&g, rounds);
	deadline = pk_test_now_ms() + budget;
	for (;;) {
		REQUIRE(qemu_guest_checker_status(&g, st) == 0, "%s", g.error);
		if (st->round >= rounds)
			return;
		REQUIRE(!st->exited, "%s: the checker exited with status %d "
			"after round %ld", r->name, st->exit_status, st->round);
		assert_running(r);
		REQUIRE(pk_test_now_ms() < deadline, "%s: no checker round "
			"%ld within %d ms: the checker is at round %ld",
			r->name, rounds, budget, st->round);
		sleep_ms(100);
	}
}

/* The balloon's size in KiB: virDomainMemoryStats' ACTUAL_BALLOON
 * (libvirt asks QEMU, query-balloon, each time). */
static unsigned long long balloon_actual(struct run *r)
{
	virDomainMemoryStatStruct stats[VIR_DOMAIN_MEMORY_STAT_NR];
	unsigned long long actual = 0;
	int n = virDomainMemoryStats(r->dom, stats, VIR_DOMAIN_MEMORY_STAT_NR,
				     0);

	REQUIRE(n >= 0, "virDomainMemoryStats %s: %s", r->name, lv_error());
	for (int i = 0; i < n; i++)
		if (stats[i].tag == VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON)
			actual = stats[i].val;
	return actual;
}

/*
 * Set the balloon target through libvirt; the ms until
 * virDomainMemoryStats reports the guest there.  virDomainGetInfo must
 * follow: it reports what QEMU's BALLOON_CHANGE events said, which QEMU
 * sends at most once a second, so it lags by up to a second.
 */
static long balloon_to(struct run *r, int mib)
{
	unsigned long want = (unsigned long)mib * 1024;
	unsigned long long actual = balloon_actual(r);
	double moved = fabs((double)actual - (double)want) / 1024;
	int budget = qemu_guest_mib_budget_ms(moved, QEMU_BALLOON_MIN_MIB_S);
	long t0 = pk_test_now_ms(), deadline = t0 + budget, ms, info_ms;
	virDomainInfo info;

	REQUIRE(virDomainSetMemoryFlags(r->dom, want, VIR_DOMAIN_AFFECT_LIVE)
		== 0, "virDomainSetMemoryFlags %s %d MiB: %s", r->name, mib,
		lv_error());
	while ((actual = balloon_actual(r)) != want) {
		assert_running(r);
		REQUIRE(pk_test_now_ms() < deadline, "%s: balloon at %llu "
			"KiB: waited %d ms for the target %lu KiB (%.0f MiB "
			"to move)",
			r->name, actual, budget, want, moved);
		sleep_ms(20);
	}
	ms = pk_test_now_ms() - t0;
	for (;;) {
		REQUIRE(virDomainGetInfo(r->dom, &info) == 0,
			"virDomainGetInfo %s: %s", r->name, lv_error());
		if (info.memory == want)
			break;
		REQUIRE(pk_test_now_ms() < t0 + ms + LV_MS, "%s: "
			"virDomainMemoryStats says %lu KiB but "
			"virDomainGetInfo %lu KiB %d ms later",
			r->name, want, info.memory, LV_MS);
		sleep_ms(20);
	}
	info_ms = pk_test_now_ms() - t0;
	fprintf(stderr, "libvirt_embed: %s: balloon to %d MiB reached after "
		"%ld ms (virDomainGetInfo after %ld ms)\n", r->name, mib, ms,
		info_ms);
	return ms;
}

static void dom_destroy(struct run *r)
{
	long deadline;

	REQUIRE(virDomainDestroy(r->dom) == 0, "virDomainDestroy %s: %s",
		r->name, lv_error());
	deadline = pk_test_now_ms() + LV_MS;
	while (pk_test_pid_running(r->pid)) {
		REQUIRE(pk_test_now_ms() < deadline, "%s: QEMU pid %d still "
			"runs %d ms after virDomainDestroy", r->name,
			(int)r->pid, LV_MS);
		sleep_ms(20);
	}
	virDomainFree(r->dom);
	r->dom = NULL;
	track(r, 0);
}

/* ---- the child: the balloon bridge's libvirt driver ------------------------ */

/*
 * The bridge (balloon-bridge/libvirt.c) against this real domain, driven
 * as pagekeeperd drives it: pk_balloon_fd() polled, pk_balloon_io() when
 * it is ready, pk_balloon_tick() when its time comes, events counted.
 * It runs in this child because an embedded driver can only be reached
 * from the process that embeds it; the bridge's worker opens its own
 * connection to the same root (libvirt shares one embedded driver per
 * process and root).  The event loop: the bridge registers libvirt's
 * default implementation once (pthread_once) and runs it on its own
 * thread; this child registered it first (child_main).  In libvirt >= 6.3
 * the default implementation is GLib's main context, registered under
 * virOnce, so the bridge's second registration changes nothing and its
 * loop thread and ours take turns on the one context.
 */
#define BRIDGE_LOW_MIB 160
#define MAX_CALL_MS 50.0 /* a pk_balloon_* call in the loop; scaled */

struct bridge {
	struct pk_balloon *b;
	uint64_t next_tick;
	int n_ev[PK_BLN_EV_MIGRATION + 1];
	double max_call_ms;
	const char *max_call;
};

static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

#define TIMED(br, name, expr)                                              \
	do {                                                               \
		double t0_ = mono_ms();                                    \
		expr;                                                      \
		double d_ = mono_ms() - t0_;                               \
		if (d_ > (br)->max_call_ms) {                              \
			(br)->max_call_ms = d_;                            \
			(br)->max_call = (name);                           \
		}                                                          \
	} while (0)

static void bridge_event(struct pk_balloon *b, enum pk_balloon_event ev,
			 void *data)
{
	struct bridge *br = data;

	(void)b;
	br->n_ev[ev]++;
}

/* One turn of the owner's loop, waiting at most max_ms. */
static void bridge_pump(struct bridge *br, int max_ms)
{
	uint32_t want = 0;
	struct pollfd p = { .fd = -1 };
	uint64_t now = (uint64_t)pk_test_now_ms();
	int fd, wait_ms = max_ms;

	TIMED(br, "pk_balloon_fd", fd = pk_balloon_fd(br->b, &want));
	p.fd = fd;
	/* EPOLLIN/OUT/ERR/HUP have poll's values. */
	p.events = (short)(want & (POLLIN | POLLOUT));
	if (br->next_tick && br->next_tick < now + (uint64_t)wait_ms)
		wait_ms = br->next_tick > now ? (int)(br->next_tick - now) : 0;
	if (poll(&p, fd >= 0 ? 1 : 0, wait_ms) == 1 && p.revents)
		TIMED(br, "pk_balloon_io",
		      pk_balloon_io(br->b, (uint32_t)p.revents));
	now = (uint64_t)pk_test_now_ms();
	if (now >= br->next_tick)
		TIMED(br, "pk_balloon_tick",
		      br->next_tick = pk_balloon_tick(br->b, now));
}

static const struct pk_balloon_info *binfo(struct bridge *br)
{
	const struct pk_balloon_info *in;

	TIMED(br, "pk_balloon_info", in = pk_balloon_info(br->b));
	return in;
}

/* Pump until cond holds; fail naming what after budget_ms. */
#define BRIDGE_WAIT(br, cond, budget_ms, ...)                               \
	do {                                                                \
		long dl_ = pk_test_now_ms() + (budget_ms);                  \
		while (!(cond) && pk_test_now_ms() < dl_)                   \
			bridge_pump((br), 20);                              \
		if (!(cond)) {                                              \
			char w_[256];                                       \
			snprintf(w_, sizeof(w_), __VA_ARGS__);              \
			child_fail(__LINE__, "bridge: no %s within %ld ms " \
				   "(link %s, actual %llu bytes, target "   \
				   "%llu bytes, why '%s')", w_,             \
				   (long)(budget_ms),                       \
				   pk_balloon_link_name(binfo(br)->link),   \
				   (unsigned long long)binfo(br)->actual_bytes, \
				   (unsigned long long)binfo(br)->target_bytes, \
				   binfo(br)->why);                         \
		}                                                           \
	} while (0)

/* Target mib through the bridge; MiB/s until its actual got there. */
static double bridge_to(struct bridge *br, const struct run *r, int mib)
{
	uint64_t want = (uint64_t)mib << 20;
	double moved = fabs((double)binfo(br)->actual_bytes - (double)want) /
		       (1 << 20);
	int budget = qemu_guest_mib_budget_ms(moved, QEMU_BALLOON_MIN_MIB_S) +
		     LV_MS;
	int changed = br->n_ev[PK_BLN_EV_CHANGED], rc;
	char why[PK_BALLOON_WHY_MAX] = "";
	double t0 = mono_ms(), s;

	TIMED(br, "pk_balloon_set_target",
	      rc = pk_balloon_set_target(br->b, want, why, sizeof(why)));
	REQUIRE(rc == 0, "bridge: set_target %d MiB on %s: %s (%s)", mib,
		r->name, strerror(-rc), why);
	BRIDGE_WAIT(br, binfo(br)->actual_bytes == want ||
		    br->n_ev[PK_BLN_EV_FAILED], budget,
		    "actual %d MiB (%.0f MiB to move at >= %d MiB/s)", mib,
		    moved, QEMU_BALLOON_MIN_MIB_S);
	s = (mono_ms() - t0) / 1e3;
	REQUIRE(br->n_ev[PK_BLN_EV_FAILED] == 0, "bridge: target %d MiB "
		"FAILED: %s", mib, binfo(br)->why);
	REQUIRE(br->n_ev[PK_BLN_EV_CHANGED] > changed, "bridge: actual "
		"reached %d MiB without a CHANGED event", mib);
	fprintf(stderr, "libvirt_embed: bridge: %s to %d MiB: %.0f MiB in "
		"%.3f s\n", r->name, mib, moved, s);
	return moved / s;
}

/* Wait for stats newer than since with MemTotal (total_bytes) in [lo, hi]. */
static void bridge_stats(struct bridge *br, uint64_t since, int64_t lo,
			 int64_t hi, const char *what)
{
	BRIDGE_WAIT(br, binfo(br)->stats_ms > since &&
		    binfo(br)->total_bytes >= lo && binfo(br)->total_bytes <= hi,
		    2 * 1000 * 3 + LV_MS, "stats with MemTotal in [%lld, %lld] "
		    "MiB %s (MemTotal now %lld bytes)", (long long)(lo >> 20),
		    (long long)(hi >> 20), what,
		    (long long)binfo(br)->total_bytes);
}

/*
 * Open the bridge on r (running, balloon at GUEST_MIB), set it down to
 * BRIDGE_LOW_MIB and back, check its stats, then destroy r: the bridge
 * must say the domain is gone.  Prints the MEASURE line.
 */
static void bridge_run(struct run *r)
{
	char chan[320], err[PK_BALLOON_WHY_MAX] = "";
	struct bridge br = { 0 };
	struct pk_balloon_cfg cfg = {
		.driver = PK_BLN_LIBVIRT,
		.channel = chan,
		.ram_bytes = (uint64_t)GUEST_MIB << 20,
		.stats_period_ms = 2000,
		.on_event = bridge_event,
		.data = &br,
	};
	const struct pk_balloon_info *in;
	int64_t total0, drop = (int64_t)(GUEST_MIB - BRIDGE_LOW_MIB) << 20;
	double inflate, deflate, t0;
	uint64_t since;
	int rc;

	snprintf(chan, sizeof(chan), "%s|%s", uri, r->name);
	TIMED(&br, "pk_balloon_open",
	      rc = pk_balloon_open(&br.b, &cfg, err, sizeof(err)));
	REQUIRE(rc == 0, "pk_balloon_open(%s): %s (%s)", chan, strerror(-rc),
		err);
	BRIDGE_WAIT(&br, binfo(&br)->link == PK_BLN_READY, LV_MS, "link up");
	BRIDGE_WAIT(&br, br.n_ev[PK_BLN_EV_STATS] >= 1 &&
		    binfo(&br)->total_bytes > 0, 2 * 1000 * 3 + LV_MS,
		    "first stats with MemTotal");
	in = binfo(&br);
	REQUIRE(in->actual_bytes == (uint64_t)GUEST_MIB << 20, "bridge: "
		"actual %llu bytes, the domain has %d MiB",
		(unsigned long long)in->actual_bytes, GUEST_MIB);
	REQUIRE(in->free_bytes > 0 && in->available_bytes > 0 &&
		in->free_bytes <= in->total_bytes &&
		in->total_bytes <= (int64_t)in->actual_bytes, "bridge: stats "
		"free %lld available %lld total %lld actual %llu bytes",
		(long long)in->free_bytes, (long long)in->available_bytes,
		(long long)in->total_bytes,
		(unsigned long long)in->actual_bytes);
	total0 = in->total_bytes;
	fprintf(stderr, "libvirt_embed: bridge stats: actual %llu MiB, "
		"MemTotal %lld MiB, MemFree %lld MiB, MemAvailable %lld MiB, "
		"swap in %lld bytes, major faults %lld\n",
		(unsigned long long)(in->actual_bytes >> 20),
		(long long)(in->total_bytes >> 20),
		(long long)(in->free_bytes >> 20),
		(long long)(in->available_bytes >> 20),
		(long long)in->swap_in_bytes, (long long)in->major_faults);

	inflate = bridge_to(&br, r, BRIDGE_LOW_MIB);
	since = binfo(&br)->stats_ms;
	/* The guest's MemTotal falls by what the balloon took (the kernel
	 * adjusts totalram as it inflates), within 8 MiB. */
	bridge_stats(&br, since, total0 - drop - (8 << 20),
		     total0 - drop + (8 << 20), "after inflating");
	assert_running(r);
	deflate = bridge_to(&br, r, GUEST_MIB);
	since = binfo(&br)->stats_ms;
	bridge_stats(&br, since, total0, total0, "after deflating");
	assert_running(r);
	fprintf(stderr, "MEASURE libvirt balloon inflate %.1f MiB/s deflate "
		"%.1f MiB/s (%d MiB each way, %d MiB TCG guest, bridge stats "
		"polled every 2 s, 0.2 s while chasing a target)\n", inflate,
		deflate, GUEST_MIB - BRIDGE_LOW_MIB, GUEST_MIB);

	/* Gone: the lifecycle event (STOPPED) makes the bridge drop it. */
	int gone = br.n_ev[PK_BLN_EV_GONE];
	t0 = mono_ms();
	dom_destroy(r);
	BRIDGE_WAIT(&br, br.n_ev[PK_BLN_EV_GONE] > gone &&
		    binfo(&br)->link != PK_BLN_READY, LV_MS,
		    "GONE event after virDomainDestroy");
	fprintf(stderr, "libvirt_embed: bridge: GONE %.0f ms after "
		"virDomainDestroy returned: %s\n", mono_ms() - t0,
		binfo(&br)->why);
	REQUIRE(br.n_ev[PK_BLN_EV_MIGRATION] == 0 && br.n_ev[PK_BLN_EV_UP] == 1,
		"bridge: %d MIGRATION, %d UP events",
		br.n_ev[PK_BLN_EV_MIGRATION], br.n_ev[PK_BLN_EV_UP]);
	t0 = mono_ms();
	pk_balloon_close(br.b);
	fprintf(stderr, "libvirt_embed: bridge: longest pk_balloon_* call "
		"%.3f ms (%s), close %.3f ms\n", br.max_call_ms,
		br.max_call ? br.max_call : "-", mono_ms() - t0);
	REQUIRE(br.max_call_ms < MAX_CALL_MS * pk_test_time_scale(),
		"bridge: %s took %.3f ms: it blocked its caller", br.max_call,
		br.max_call_ms);
}

/* Boot to the ready line; *ready_ms since virDomainCreateXML. */
static void boot(struct run *r, const char *name, int managed,
		 long *create_ms, long *ready_ms)
{
	char line[512];

	dom_start(r, name, managed, create_ms);
	*ready_ms = wait_line(r, "pkguest: ready", line, sizeof(line));
	fprintf(stderr, "libvirt_embed: %s: ready line %ld ms after "
		"virDomainCreateXML: %s\n", name, *ready_ms, line);
}

/* The baseline: the same domain without the shim (run i). */
static void plain_run(int i)
{
	struct pkcheck_status st;
	struct run r;
	char name[64];

	snprintf(name, sizeof(name), "pk-lve-plain-%d-%d", (int)getppid(), i);
	boot(&r, name, 0, &R.plain_create_ms[i], &R.plain_ready_ms[i]);
	R.n_plain = i + 1;
	if (i == 0) {
		wait_rounds(&r, 2, &st);
		REQUIRE(st.errors == 0, "%s: %lld checker errors without "
			"pagekeeper", name, st.errors);
		R.plain_inflate_ms = balloon_to(&r, BALLOON_MIB);
		R.plain_deflate_ms = balloon_to(&r, GUEST_MIB);
		assert_running(&r);
		bridge_run(&r); /* destroys r */
		return;
	}
	dom_destroy(&r);
}

static void managed_run(void)
{
	struct pkcheck_status before, inflated, after;
	struct vm_stat s;
	struct run r;
	char name[64], line[160];
	long long removes0;
	long drop;

	snprintf(name, sizeof(name), "pk-lve-%d", (int)getppid());
	boot(&r, name, 1, &R.managed_create_ms[0], &R.managed_ready_ms[0]);
	R.n_managed = 1;

	/* Attached under libvirt's -name guest=NAME, the whole RAM. */
	/* The shim attached when QEMU mapped the RAM, before the boot. */
	REQUIRE(wait_vm(name, 1, LV_MS, &s), "the daemon does not list VM %s "
		"(is the shim's line in the domain log? see below)", name);
	REQUIRE(s.configured_mib == GUEST_MIB, "%s: configured_mib %.1f, "
		"want %d", name, s.configured_mib, GUEST_MIB);
	REQUIRE(s.pid == r.pid, "%s: the daemon has pid %lld, QEMU is %d",
		name, s.pid, (int)r.pid);
	REQUIRE(!strcmp(s.balloon, "libvirt"), "%s: balloon '%s', want "
		"'libvirt'", name, s.balloon);
	REQUIRE(!strcmp(s.ram, "shared"), "%s: ram '%s'", name, s.ram);
	REQUIRE(s.faults_total > 0, "%s: the booted guest made no faults "
		"through the daemon", name);
	snprintf(line, sizeof(line), "pagekeeper-preload: VM '%s' attached",
		 name);
	REQUIRE(file_has(r.log, line), "%s: no '%s' in %s", name, line, r.log);

	wait_rounds(&r, 2, &before);
	REQUIRE(before.errors == 0, "%s: %lld checker errors", name,
		before.errors);
	REQUIRE(before.verified_mib == CHECK_MIB, "%s: the checker verified "
		"%.0f MiB, want %d", name, before.verified_mib, CHECK_MIB);
	assert_running(&r);
	vm_status(name, &s);
	removes0 = s.remove_events;

	/* Inflate through libvirt: QEMU discards the pages, the shim's
	 * userfaultfd raises REMOVE, the daemon counts them ballooned. */
	R.managed_inflate_ms = balloon_to(&r, BALLOON_MIB);
	vm_status(name, &s);
	R.remove_events = s.remove_events;
	R.ballooned_mib = s.ballooned_mib;
	fprintf(stderr, "libvirt_embed: %s: after inflating: remove_events "
		"%lld (%lld before), ballooned_mib %.1f\n", name,
		s.remove_events, removes0, s.ballooned_mib);
	REQUIRE(s.present, "%s: the daemon dropped the VM", name);
	REQUIRE(s.remove_events > removes0, "%s: no REMOVE event while the "
		"balloon took %d MiB", name, GUEST_MIB - BALLOON_MIB);
	REQUIRE(s.ballooned_mib >= 0.9 * (GUEST_MIB - BALLOON_MIB) &&
		s.ballooned_mib <= GUEST_MIB - BALLOON_MIB + 8,
		"%s: ballooned_mib %.1f, want about %d", name, s.ballooned_mib,
		GUEST_MIB - BALLOON_MIB);

	/* Rounds that began after the inflation. */
	wait_rounds(&r, before.round + 2, &inflated);
	wait_rounds(&r, inflated.round + 2, &inflated);
	drop = before.mem_total_mib - inflated.mem_total_mib;
	fprintf(stderr, "libvirt_embed: %s: guest MemTotal %ld -> %ld MiB, "
		"round %ld, %lld errors\n", name, before.mem_total_mib,
		inflated.mem_total_mib, inflated.round, inflated.errors);
	REQUIRE(inflated.errors == 0, "%s: %lld checker errors after the "
		"inflation", name, inflated.errors);
	REQUIRE(drop >= GUEST_MIB - BALLOON_MIB - 8 &&
		drop <= GUEST_MIB - BALLOON_MIB + 8, "%s: MemTotal %ld -> %ld "
		"MiB, want about %d MiB less", name, before.mem_total_mib,
		inflated.mem_total_mib, GUEST_MIB - BALLOON_MIB);
	assert_running(&r);

	R.managed_deflate_ms = balloon_to(&r, GUEST_MIB);
	wait_rounds(&r, inflated.round + 2, &after);
	wait_rounds(&r, after.round + 2, &after);
	fprintf(stderr, "libvirt_embed: %s: after deflating: MemTotal %ld "
		"MiB, round %ld, %lld errors\n", name, after.mem_total_mib,
		after.round, after.errors);
	REQUIRE(after.errors == 0, "%s: %lld checker errors after the "
		"deflation", name, after.errors);
	REQUIRE(after.mem_total_mib == before.mem_total_mib, "%s: MemTotal "
		"%ld MiB after deflating, %ld before", name,
		after.mem_total_mib, before.mem_total_mib);
	assert_running(&r);
	vm_status(name, &s);
	REQUIRE(s.present, "%s: the daemon dropped the running VM", name);
	R.faults_total = s.faults_total;
	R.mem_total[0] = before.mem_total_mib;
	R.mem_total[1] = inflated.mem_total_mib;
	R.mem_total[2] = after.mem_total_mib;
	R.rounds = after.round;
	R.errors = after.errors;

	dom_destroy(&r);
	REQUIRE(wait_vm(name, 0, LV_MS, &s), "the daemon still lists %s %d ms "
		"after its QEMU was destroyed", name, LV_MS);
}

/* Another managed boot (run i > 0), for the timing only. */
static void managed_boot(int i)
{
	struct vm_stat s;
	struct run r;
	char name[64];

	snprintf(name, sizeof(name), "pk-lve-%d-%d", (int)getppid(), i);
	boot(&r, name, 1, &R.managed_create_ms[i], &R.managed_ready_ms[i]);
	R.n_managed = i + 1;
	REQUIRE(wait_vm(name, 1, LV_MS, &s) && s.configured_mib == GUEST_MIB,
		"the daemon does not list %s with %d MiB", name, GUEST_MIB);
	dom_destroy(&r);
	REQUIRE(wait_vm(name, 0, LV_MS, &s), "the daemon still lists %s %d "
		"ms after virDomainDestroy", name, LV_MS);
}

__attribute__((noreturn))
static void child_main(uid_t uid, gid_t gid, int runs, pid_t parent)
{
	char home[128], path[192], *caps;
	pthread_t t;

	memset(&R, 0, sizeof(R));
	REQUIRE(setgroups(0, NULL) == 0 && setgid(gid) == 0 &&
		setuid(uid) == 0, "dropping to user nobody: %s",
		strerror(errno));
	REQUIRE(getuid() == uid && geteuid() == uid && getegid() == gid,
		"still uid %d", (int)geteuid());
	/* After setuid: a change of credentials clears it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1); /* the test is gone already */
	snprintf(home, sizeof(home), "%s/home", scratch);
	setenv("HOME", home, 1);
	snprintf(path, sizeof(path), "%s/.cache", home);
	setenv("XDG_CACHE_HOME", path, 1);
	snprintf(path, sizeof(path), "%s/.config", home);
	setenv("XDG_CONFIG_HOME", path, 1);
	snprintf(path, sizeof(path), "%s/run", home);
	setenv("XDG_RUNTIME_DIR", path, 1);
	REQUIRE(access(D.sock, R_OK | W_OK) == 0, "nobody cannot reach the "
		"daemon's socket %s: %s", D.sock, strerror(errno));

	REQUIRE(virEventRegisterDefaultImpl() == 0, "libvirt event loop: %s",
		lv_error());
	REQUIRE(pthread_create(&t, NULL, event_loop, NULL) == 0,
		"pthread_create");
	conn = virConnectOpen(uri);
	REQUIRE(conn, "virConnectOpen(%s) as nobody: %s (the embedded QEMU "
		"driver needs the Debian package libvirt-daemon-driver-qemu)",
		uri, lv_error());

	/* The first domain would pay for libvirt's probe of QEMU's
	 * capabilities (a fresh root has no cache): probe now. */
	caps = virConnectGetDomainCapabilities(conn, getenv("PK_QEMU"),
					       "x86_64", "q35", "qemu", 0);
	REQUIRE(caps, "virConnectGetDomainCapabilities: %s", lv_error());
	free(caps);

	/* Plain and managed in turn, so that both see the same host. */
	for (int i = 0; i < runs; i++) {
		plain_run(i);
		if (i == 0)
			managed_run();
		else
			managed_boot(i);
	}

	virConnectClose(conn);
	R.ok = 1;
	send_result();
	/* _exit: libvirt's global caches are not this test's leaks. */
	_exit(0);
}

/* ---- the root test process ------------------------------------------------- */

static int copy_file(const char *from, const char *to, mode_t mode)
{
	char buf[1 << 16];
	int in = open(from, O_RDONLY | O_CLOEXEC), out, rc = 0;
	ssize_t n;

	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (out < 0) {
		rc = -errno;
		close(in);
		return rc;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			rc = -EIO;
			break;
		}
	if (n < 0)
		rc = -errno;
	if (fchmod(out, mode) < 0 && !rc)
		rc = -errno;
	close(in);
	if (close(out) < 0 && !rc)
		rc = -errno;
	return rc;
}

static uid_t nobody_uid;
static gid_t nobody_gid;

static int chown_tree(const char *path, const struct stat *st, int flag,
		      struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return lchown(path, nobody_uid, nobody_gid) < 0 ? -1 : 0;
}

/* The sanitizer runtimes this test runs with, to preload before the shim. */
static int find_sanitizers(struct dl_phdr_info *info, size_t size, void *arg)
{
	char *out = arg;

	(void)size;
	if (strstr(info->dlpi_name, "/libasan.so") ||
	    strstr(info->dlpi_name, "/libubsan.so")) {
		strcat(out, info->dlpi_name);
		strcat(out, ":");
	}
	return 0;
}

/* Fill the scratch directory, owned by nobody: what QEMU and libvirt use. */
static void make_scratch(void)
{
	const char *img = getenv("PK_GUEST_IMAGE"), *lib = getenv("PK_PRELOAD");
	char from[1024], conf[192];
	FILE *f;
	int rc;

	ck_assert_msg(img && *img, "PK_GUEST_IMAGE is not set: run via meson");
	ck_assert_msg(lib && *lib, "PK_PRELOAD is not set: run via meson");
	snprintf(embed_root, sizeof(embed_root), "%s/root", scratch);
	snprintf(uri, sizeof(uri), "qemu:///embed?root=%s", embed_root);
	snprintf(kernel, sizeof(kernel), "%s/vmlinuz", scratch);
	snprintf(initrd, sizeof(initrd), "%s/initramfs.cpio.gz", scratch);
	snprintf(shim, sizeof(shim), "%s/libpagekeeper-preload.so", scratch);
	snprintf(from, sizeof(from), "%s/vmlinuz", img);
	rc = copy_file(from, kernel, 0644);
	ck_assert_msg(!rc, "guest kernel %s: %s (build the image with "
		      "tools/guest-image/build-image)", from, strerror(-rc));
	snprintf(from, sizeof(from), "%s/initramfs.cpio.gz", img);
	rc = copy_file(from, initrd, 0644);
	ck_assert_msg(!rc, "guest initramfs %s: %s", from, strerror(-rc));
	rc = copy_file(lib, shim, 0755);
	ck_assert_msg(!rc, "the shim %s: %s", lib, strerror(-rc));
	dl_iterate_phdr(find_sanitizers, preload);
	strcat(preload, shim);

	/* QEMU's stdout and stderr straight to the domain log: no
	 * virtlogd (it would be spawned, as nobody, and outlive us). */
	ck_assert_int_eq(mkdir(embed_root, 0755), 0);
	snprintf(conf, sizeof(conf), "%s/etc", embed_root);
	ck_assert_int_eq(mkdir(conf, 0755), 0);
	snprintf(conf, sizeof(conf), "%s/etc/qemu.conf", embed_root);
	f = fopen(conf, "we");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "stdio_handler = \"file\"\n");
	ck_assert_int_eq(fclose(f), 0);
	snprintf(from, sizeof(from), "%s/home", scratch);
	ck_assert_int_eq(mkdir(from, 0700), 0);
	ck_assert_msg(nftw(scratch, chown_tree, 16, FTW_PHYS) == 0,
		      "chown %s to nobody: %s", scratch, strerror(errno));
}

static int boot_runs(void)
{
	const char *s = getenv("PK_TEST_BOOT_RUNS");
	int n = s && *s ? atoi(s) : 1;

	return n < 1 ? 1 : n > MAX_RUNS ? MAX_RUNS : n;
}

/* Read the child's result (up to CHILD_TIMEOUT_S); 0 if none came. */
static int read_result(int fd, pid_t child)
{
	char *p = (char *)&R;
	size_t got = 0;
	long deadline = pk_test_now_ms() + CHILD_TIMEOUT_S * 1000L;

	memset(&R, 0, sizeof(R));
	while (got < sizeof(R)) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		long left = deadline - pk_test_now_ms();
		ssize_t n;
		int rc;

		if (left <= 0) {
			kill(child, SIGKILL);
			snprintf(R.msg, sizeof(R.msg), "the libvirt child gave "
				 "no result in %d s; killed", CHILD_TIMEOUT_S);
			return 0;
		}
		rc = poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			break;
		if (rc == 0)
			continue;
		n = read(fd, p + got, sizeof(R) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* EOF: the child is gone */
		got += (size_t)n;
	}
	if (got < sizeof(R)) {
		memset(&R, 0, sizeof(R));
		snprintf(R.msg, sizeof(R.msg), "the libvirt child died without "
			 "a result (its output is above)");
		return 0;
	}
	return 1;
}

static void print_list(const char *what, const long *v, int n)
{
	fprintf(stderr, "%s [", what);
	for (int i = 0; i < n; i++)
		fprintf(stderr, "%s%ld", i ? ", " : "", v[i]);
	fprintf(stderr, "] ms");
}

START_TEST(libvirt_embed)
{
	const char *qemu = getenv("PK_QEMU");
	struct lv_uffd_acl acl;
	struct lv_cleaner cleaner;
	struct passwd *pw;
	char err[512], acl_err[512] = "";
	pid_t self, child, left[8];
	int p[2], status, rc, n_left, acl_rc, rm_rc, pids_alive = 0;

	ck_assert_msg(!image_error[0], "%s", image_error);
	ck_assert_msg(qemu && *qemu && access(qemu, X_OK) == 0, "no QEMU: "
		      "PK_QEMU='%s' (meson found no qemu-system-x86_64; install "
		      "the Debian package qemu-system-x86)", qemu ? qemu : "");
	ck_assert_msg(geteuid() == 0, "this test needs root: it starts "
		      "libvirt as user nobody and grants nobody %s",
		      LV_UFFD_DEV);
	pw = getpwnam("nobody");
	ck_assert_msg(pw, "no user nobody on this host (getpwnam)");
	nobody_uid = pw->pw_uid;
	nobody_gid = pw->pw_gid;

	ck_assert_msg(pk_test_daemon_start(&D, "--socket-group nogroup "
					   "--admin-group nogroup") == 0,
		      "cannot start the daemon: %s", D.error);
	/* nobody needs to traverse the socket's directory. */
	ck_assert_int_eq(chmod(D.dir, 0711), 0);
	snprintf(scratch, sizeof(scratch), "/tmp/pk-lvembed-XXXXXX");
	ck_assert_msg(mkdtemp(scratch), "mkdtemp: %s", strerror(errno));

	rc = lv_uffd_acl_grant(&acl, nobody_uid, 300000, err, sizeof(err));
	if (rc) {
		lv_rmtree(scratch);
		ck_abort_msg("cannot grant nobody %s: %s", LV_UFFD_DEV, err);
	}
	rc = lv_cleaner_start(&cleaner, scratch, &acl);
	if (rc) {
		lv_uffd_acl_restore(&acl, err, sizeof(err));
		lv_rmtree(scratch);
		ck_abort_msg("cannot start the cleaner: %s", strerror(-rc));
	}
	make_scratch(); /* from here on, the cleaner undoes it all */

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	self = getpid();
	fflush(NULL);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		close(p[0]);
		close(cleaner.fd);
		result_fd = p[1];
		child_main(nobody_uid, nobody_gid, boot_runs(), self);
	}
	close(p[1]);
	read_result(p[0], child);
	close(p[0]);
	waitpid(child, &status, 0);

	/* Clean up first, check afterwards: nothing of ours may be left. */
	n_left = lv_procs_using(scratch, left, 8);
	if (n_left)
		lv_kill_procs_using(scratch, LV_MS);
	for (int i = 0; i < R.n_pids && i < MAX_PIDS; i++)
		pids_alive += R.pids[i] > 0 && pk_test_pid_running(R.pids[i]);
	acl_rc = lv_uffd_acl_restore(&acl, acl_err, sizeof(acl_err));
	rm_rc = lv_rmtree(scratch);
	lv_cleaner_done(&cleaner);

	fprintf(stderr, "libvirt_embed: create -> ready line: ");
	print_list("plain", R.plain_ready_ms, R.n_plain);
	print_list(", managed", R.managed_ready_ms, R.n_managed);
	fprintf(stderr, " (virDomainCreateXML itself: ");
	print_list("plain", R.plain_create_ms, R.n_plain);
	print_list(", managed", R.managed_create_ms, R.n_managed);
	fprintf(stderr, ")\nlibvirt_embed: balloon %d -> %d MiB: inflate "
		"plain %ld ms, managed %ld ms; deflate plain %ld ms, managed "
		"%ld ms; remove_events %lld, ballooned_mib %.1f, MemTotal %ld "
		"-> %ld -> %ld MiB, %ld rounds, %lld errors, faults %.0f\n",
		GUEST_MIB, BALLOON_MIB, R.plain_inflate_ms,
		R.managed_inflate_ms, R.plain_deflate_ms, R.managed_deflate_ms,
		R.remove_events, R.ballooned_mib, R.mem_total[0],
		R.mem_total[1], R.mem_total[2], R.rounds, R.errors,
		R.faults_total);

	ck_assert_msg(R.ok && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "%s (child status 0x%x)", R.msg, status);
	ck_assert_msg(n_left == 0, "%d process(es) still used %s after the "
		      "domains were destroyed (first pid %d); killed", n_left,
		      scratch, n_left ? (int)left[0] : 0);
	ck_assert_msg(pids_alive == 0, "%d QEMU process(es) still ran",
		      pids_alive);
	ck_assert_msg(acl_rc == 0, "%s was not restored: %s", LV_UFFD_DEV,
		      acl_err);
	ck_assert_msg(rm_rc == 0, "cannot remove %s: %s", scratch,
		      strerror(-rm_rc));
	ck_assert_msg(access(scratch, F_OK) < 0 && errno == ENOENT,
		      "%s is still there", scratch);
	ck_assert_msg(pk_test_daemon_alive(&D), "%s", D.error);
	pk_test_daemon_stop_ok(&D);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("libvirt_embed");
	TCase *t = tcase_create("libvirt_embed");
	SRunner *sr;
	int failed;

	tcase_add_test(t, libvirt_embed);
	tcase_set_timeout(t, CHILD_TIMEOUT_S + 60);
	suite_add_tcase(s, t);
	qemu_guest_build_image(image_error, sizeof(image_error));
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
