/*
 * test_balloon_engine.c - the balloon bridge inside a real pagekeeperd:
 * the BALLOON message, the balloon fields of the status, and the proof
 * that a balloon peer that hangs costs the guests' faults nothing.
 *
 * What:
 *  - no_channel: a VM registered without a balloon channel: every balloon
 *    key of its status is there and null (kind "none"); BALLOON is
 *    -ENODEV saying it registered none, an unknown VM -ENOENT, a
 *    malformed request an ERROR_REPLY -EBADMSG; the VM keeps working.
 *  - qmp_stall: THE STALL PROOF.  The VM's balloon channel is `qmp:PATH`,
 *    a real UNIX socket this test listens on, accepts, and never answers
 *    (QMP peers speak first: the bridge waits for a greeting that never
 *    comes, for its 5 s request timeout).  While it waits (the accepted
 *    connection still open, status "connecting"), this process times
 *    every fault of its own guest RAM, one page at a time
 *    (--fault-around 1: one fault per page), for STALL_MEASURE_MS, and
 *    BALLOON requests: one accepted at once (kept until the channel is
 *    up), targets above the RAM, 0, and not page-aligned refused with the
 *    bridge's why.  No fault and no reply may take PK_FAULT_BOUND_MS
 *    (scaled), far below the 5 s the bridge waits; the latencies are
 *    printed (µs).  Every touched page reads back.
 *  - qmp_garbage_logged_once: a peer that answers each connection with
 *    garbage and hangs up: the bridge retries (1 s, then 2 s back-off) and
 *    the daemon logs the lost channel once, not once per retry; the why
 *    is in the status; the VM's faults are still served.
 *  - libvirt_follows: channel `test:///default|test` (libvirt's test
 *    driver, in the daemon's process): BALLOON 32 then 48 MiB is answered
 *    at once and the domain's actual follows in the status; above RAM is
 *    -EINVAL with the RAM in MiB; the link came up and was logged once.
 *
 * How: the guest is this process (libpagekeeper-client, a memfd); the
 * daemon is real (daemon_fixture.h); the hostile peer is a listening
 * socket served from the test's own flow with poll() deadlines.
 *
 * Why: the rule that the bridge never blocks the loop that serves
 * faults can only be seen from a guest: a fault that waits for a hung
 * balloon peer is what the rule forbids.
 */
#include "engine/client/pagekeeper-client.h"
#include "engine/protocol.h"
#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"

#include <check.h>
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define VM_PAGES 16384 /* 64 MiB */
#define VM_MIB 64

/*
 * A fault here is one UFFDIO_COPY round trip, 30-100 µs; a status or a
 * BALLOON is one round trip.  A bound of 250 ms (scaled) leaves room for
 * a shared, busy machine, and is a twentieth of the 5 s that the QMP
 * driver waits for a silent peer: a loop that waited would show seconds.
 */
#define PK_FAULT_BOUND_MS 250
#define STALL_MEASURE_MS 2000 /* within the peer's 5 s: still waiting */
#define QMP_TIMEOUT_MS 5000   /* balloon.h's default request timeout */
#define CONNECT_MS 2000	      /* the bridge connects at registration */
#define RETRY_MS 1000	      /* qmp.c's first back-off, then doubled */

struct guest_ram {
	int fd;
	unsigned char *ram;
	struct pk_client *c;
};

static void attach(struct pk_test_daemon *d, struct guest_ram *g,
		   const char *name, int kind, const char *channel)
{
	struct pk_client_region r;
	struct pk_client_opts o = { .socket_path = d->sock, .vm_name = name,
				    .regions = &r, .n_regions = 1,
				    .balloon_kind = kind,
				    .balloon_channel = channel };
	char err[512] = "";

	g->fd = memfd_create(name, MFD_CLOEXEC);
	ck_assert_int_ge(g->fd, 0);
	ck_assert_int_eq(ftruncate(g->fd, (off_t)VM_PAGES * PAGE), 0);
	g->ram = mmap(NULL, (size_t)VM_PAGES * PAGE, PROT_READ | PROT_WRITE,
		      MAP_SHARED, g->fd, 0);
	ck_assert(g->ram != MAP_FAILED);
	r = (struct pk_client_region){ g->ram, (size_t)VM_PAGES * PAGE, 0 };
	o.ram_fd = g->fd;
	ck_assert_msg(pk_client_attach(&o, &g->c, err, sizeof(err)) == 0,
		      "attach %s: %s", name, err);
}

static void detach(struct guest_ram *g)
{
	pk_client_detach(g->c);
	munmap(g->ram, (size_t)VM_PAGES * PAGE);
	close(g->fd);
}

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* BALLOON on a fresh connection; the reply's status, *r filled. */
static int balloon_request(struct pk_test_daemon *d, const char *vm,
			   uint64_t bytes, struct pk_balloon_reply *r,
			   long long *elapsed_us)
{
	struct pk_balloon_msg m;
	char buf[sizeof(*r) + 16];
	long long t0 = now_us();
	int fd = pk_test_connect(d->sock);
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pk_balloon_msg_encode(&m, vm, bytes), 0);
	ck_assert_int_eq(send(fd, &m, sizeof(m), MSG_NOSIGNAL), sizeof(m));
	n = pk_test_recv(fd, buf, sizeof(buf), scaled_ms(CONNECT_MS));
	if (elapsed_us)
		*elapsed_us = now_us() - t0;
	close(fd);
	ck_assert_msg(n > 0, "no BALLOON_REPLY for %s (%zd)", vm, n);
	ck_assert_msg(pk_balloon_reply_decode(buf, (size_t)n, r) == 0,
		      "not a BALLOON_REPLY (%zd bytes)", n);
	return r->status;
}

/* A key of VM name's status: present, and null (1) or not (0). */
static int vm_key_null(struct pk_test_daemon *d, const char *name,
		       const char *key)
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

static const char *const balloon_keys[] = {
	"balloon_link", "balloon_why", "balloon_target_mib",
	"balloon_actual_mib", "guest_total_mib", "guest_free_mib",
	"guest_available_mib", "guest_pageins_per_s", "guest_pageouts_per_s",
	"balloon_stalled", "balloon_shortfall_mib", NULL,
};

static void start_daemon(struct pk_test_daemon *d)
{
	/* One fault per page (no fault-around), no scanner moving things. */
	ck_assert_msg(pk_test_daemon_start(d, "--scan-rate 0 --fault-around 1")
		      == 0, "%s", d->error);
}

/* A listening UNIX socket at dir/name (path into path). */
static int peer_listen(const struct pk_test_daemon *d, const char *name,
		       char *path, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(path, len, "%s/%s", d->dir, name);
	ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
	strcpy(sa.sun_path, path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 8), 0);
	return fd;
}

/* Accept one connection within work_ms (scaled); what names the wait. */
static int peer_accept(int lfd, long work_ms, const char *what)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	int r = poll(&p, 1, scaled_ms((double)work_ms));

	ck_assert_msg(r == 1, "timed out after %.1f s waiting for %s",
		      scaled_ms((double)work_ms) / 1e3, what);
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	return fd;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return x < y ? -1 : x > y;
}

/* ---- no balloon channel ---- */

START_TEST(no_channel)
{
	struct pk_test_daemon d;
	struct guest_ram g;
	struct pk_balloon_reply r;
	struct pk_reply_msg er;
	char kind[32];

	start_daemon(&d);
	attach(&d, &g, "plain", 0, NULL);
	vm_string(&d, "plain", "balloon", kind, sizeof(kind));
	ck_assert_str_eq(kind, "none");
	for (const char *const *k = balloon_keys; *k; k++)
		ck_assert_msg(vm_key_null(&d, "plain", *k),
			      "\"%s\" of a VM without balloon is not null", *k);

	ck_assert_int_eq(balloon_request(&d, "plain", 32u << 20, &r, NULL),
			 -ENODEV);
	ck_assert_msg(strstr(r.reason, "registered no balloon channel"),
		      "reason: %s", r.reason);
	ck_assert_uint_eq(r.target_bytes, 0);
	ck_assert_int_eq(balloon_request(&d, "nosuchvm", 32u << 20, &r, NULL),
			 -ENOENT);
	ck_assert_msg(strstr(r.reason, "no VM named 'nosuchvm'"), "reason: %s",
		      r.reason);

	/* A BALLOON a byte short: malformed, ERROR_REPLY. */
	struct pk_balloon_msg m;
	pk_balloon_msg_encode(&m, "plain", 32u << 20);
	m.hdr.length = sizeof(m) - 1;
	ck_assert_int_eq(pk_test_request(d.sock, &m, sizeof(m) - 1, NULL, 0,
					 &er, NULL), 0);
	ck_assert_int_eq(er.status, -EBADMSG);
	ck_assert_msg(strstr(er.reason, "balloon request must be"), "%s",
		      er.reason);

	/* The VM still works. */
	g.ram[5 * PAGE] = 7;
	ck_assert_int_eq(g.ram[5 * PAGE], 7);
	detach(&g);
	ck_assert_int_eq(pk_test_wait_vm_count(d.sock, 0, scaled_ms(2000)), 0);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

/* ---- the stall proof ---- */

START_TEST(qmp_stall)
{
	struct pk_test_daemon d;
	struct guest_ram g;
	struct pk_balloon_reply r;
	char path[160], channel[200], link[64], why[256];
	long long reply_us, bound_us = scaled_ms(PK_FAULT_BOUND_MS) * 1000LL;
	long long *lat;
	unsigned n = 0, cap = VM_PAGES / 3; /* every third page, once */

	start_daemon(&d);
	int lfd = peer_listen(&d, "qmp-silent.sock", path, sizeof(path));
	snprintf(channel, sizeof(channel), "%s", path);
	attach(&d, &g, "stalled", PK_BALLOON_QMP, channel);
	int peer = peer_accept(lfd, CONNECT_MS, "the bridge to connect to "
				    "the silent QMP peer");
	long long t_accept = now_us();

	vm_string(&d, "stalled", "balloon_link", link, sizeof(link));
	ck_assert_str_eq(link, "connecting");

	/* Requests while the bridge waits: answered at once. */
	ck_assert_int_eq(balloon_request(&d, "stalled", 32u << 20, &r,
					 &reply_us), 0);
	ck_assert_uint_eq(r.target_bytes, 32u << 20);
	ck_assert_msg(reply_us < bound_us, "BALLOON took %lld us (bound %lld)",
		      reply_us, bound_us);
	ck_assert_int_eq(balloon_request(&d, "stalled",
					 (uint64_t)(VM_MIB + 1) << 20, &r,
					 NULL), -EINVAL);
	ck_assert_msg(strstr(r.reason, "64 MiB"), "above RAM: %s", r.reason);
	ck_assert_int_eq(balloon_request(&d, "stalled", 0, &r, NULL), -EINVAL);
	ck_assert_int_eq(balloon_request(&d, "stalled", (32u << 20) + 100, &r,
					 NULL), -EINVAL);
	ck_assert_msg(strstr(r.reason, "multiple of 4096"), "unaligned: %s",
		      r.reason);
	ck_assert_double_eq(vm_field(&d, "stalled", "balloon_target_mib"), 32);

	/* Time each fault of the guest while the peer stays silent. */
	lat = calloc(cap, sizeof(*lat));
	ck_assert_ptr_nonnull(lat);
	long long end = t_accept + STALL_MEASURE_MS * 1000LL;
	for (uint64_t p = 0; n < cap && now_us() < end; p += 3) {
		long long t0 = now_us();
		g.ram[p * PAGE] = (unsigned char)(p | 1);
		lat[n++] = now_us() - t0;
		usleep(200);
	}
	/* Still waiting on the peer: its connection open, nothing said. */
	char c;
	ck_assert_msg(recv(peer, &c, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN,
		      "the bridge closed the silent peer's connection within "
		      "the measurement: the stall did not cover it");
	ck_assert_msg(now_us() - t_accept < QMP_TIMEOUT_MS * 1000LL,
		      "the measurement outlasted the bridge's wait");
	vm_string(&d, "stalled", "balloon_link", link, sizeof(link));
	ck_assert_str_eq(link, "connecting");

	qsort(lat, n, sizeof(*lat), cmp_ll);
	printf("qmp_stall: %u faults timed during %.1f s of a silent QMP peer: "
	       "median %lld us, p99 %lld us, max %lld us (bound %lld us); "
	       "BALLOON reply %lld us\n", n, STALL_MEASURE_MS / 1e3,
	       lat[n / 2], lat[n * 99 / 100], lat[n - 1], bound_us, reply_us);
	fflush(stdout);
	ck_assert_uint_ge(n, 100);
	ck_assert_msg(lat[n - 1] < bound_us,
		      "a fault took %lld us while the balloon peer hung "
		      "(bound %lld us): the loop stopped serving", lat[n - 1],
		      bound_us);
	ck_assert_double_ge(vm_field(&d, "stalled", "faults_total"), n);
	for (uint64_t p = 0, i = 0; i < n; p += 3, i++)
		ck_assert_int_eq(g.ram[p * PAGE], (unsigned char)(p | 1));
	free(lat);

	/* The why comes when the bridge gives up on the greeting. */
	WAIT_FOR((vm_string(&d, "stalled", "balloon_why", why, sizeof(why)),
		  why[0] != 0), QMP_TIMEOUT_MS + 2000, 50,
		 "the bridge to give up on the silent peer (why '%s')", why);
	detach(&g);
	close(peer);
	close(lfd);
	ck_assert_int_eq(pk_test_wait_vm_count(d.sock, 0, scaled_ms(2000)), 0);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

/* ---- a peer that talks garbage: one log line, however many retries ---- */

START_TEST(qmp_garbage_logged_once)
{
	struct pk_test_daemon d;
	struct guest_ram g;
	char path[160], why[256], link[64], line[256];
	static const char garbage[] = "}}} this is not QMP {{{\n";

	start_daemon(&d);
	int lfd = peer_listen(&d, "qmp-garbage.sock", path, sizeof(path));
	attach(&d, &g, "noisy", PK_BALLOON_QMP, path);
	/* Three connections: the first, and two retries after 1 s and 2 s. */
	for (int i = 0; i < 3; i++) {
		int fd = peer_accept(lfd, CONNECT_MS + (RETRY_MS << i),
				     "the bridge to (re)connect");
		ck_assert_int_eq(send(fd, garbage, sizeof(garbage) - 1,
				      MSG_NOSIGNAL),
				 (ssize_t)sizeof(garbage) - 1);
		close(fd);
		g.ram[(size_t)i * PAGE] = (unsigned char)(i + 1);
	}
	snprintf(line, sizeof(line), "vm noisy: qmp balloon channel %s", path);
	WAIT_FOR(file_count(d.log, line) >= 1, 1000, 20,
		 "the lost channel in the log");
	/* Its third GONE has come by now (the next retry is 4 s away). */
	WAIT_FOR((vm_string(&d, "noisy", "balloon_why", why, sizeof(why)),
		  why[0] != 0), 1000, 20, "the why in the status");
	vm_string(&d, "noisy", "balloon_link", link, sizeof(link));
	ck_assert_str_eq(link, "connecting");
	sleep_ms(300); /* let a third log line, if any, be written */
	ck_assert_msg(file_count(d.log, line) == 1,
		      "the lost channel logged %d times for 3 failures, want once",
		      file_count(d.log, line));
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(g.ram[(size_t)i * PAGE], i + 1);
	printf("qmp_garbage_logged_once: 3 garbage connections, 1 log line; "
	       "why: %s\n", why);
	detach(&g);
	close(lfd);
	ck_assert_int_eq(pk_test_wait_vm_count(d.sock, 0, scaled_ms(2000)), 0);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

/* ---- libvirt's test driver: the actual follows the target ---- */

START_TEST(libvirt_follows)
{
	struct pk_test_daemon d;
	struct guest_ram g;
	struct pk_balloon_reply r;
	char link[64];
	long long reply_us;

	start_daemon(&d);
	attach(&d, &g, "lv", PK_BALLOON_LIBVIRT, "test:///default|test");
	WAIT_FOR((vm_string(&d, "lv", "balloon_link", link, sizeof(link)),
		  !strcmp(link, "ready")), CONNECT_MS, 20,
		 "the libvirt balloon to be ready (link '%s')", link);
	ck_assert(!vm_key_null(&d, "lv", "balloon_actual_mib"));
	ck_assert(vm_key_null(&d, "lv", "balloon_target_mib"));
	ck_assert(vm_key_null(&d, "lv", "balloon_stalled")); /* lab only */
	for (unsigned mib = 32; mib <= 48; mib += 16) {
		ck_assert_int_eq(balloon_request(&d, "lv", (uint64_t)mib << 20,
						 &r, &reply_us), 0);
		ck_assert_uint_eq(r.target_bytes, (uint64_t)mib << 20);
		ck_assert_msg(reply_us < scaled_ms(PK_FAULT_BOUND_MS) * 1000LL,
			      "BALLOON took %lld us", reply_us);
		WAIT_FOR(vm_field(&d, "lv", "balloon_actual_mib") == mib,
			 CONNECT_MS, 20, "the domain at %u MiB (%.1f MiB)", mib,
			 vm_field(&d, "lv", "balloon_actual_mib"));
		ck_assert_double_eq(vm_field(&d, "lv", "balloon_target_mib"),
				    mib);
	}
	ck_assert_int_eq(balloon_request(&d, "lv", (uint64_t)(VM_MIB + 1) << 20,
					 &r, NULL), -EINVAL);
	ck_assert_msg(strstr(r.reason, "64 MiB"), "above RAM: %s", r.reason);
	ck_assert_double_eq(vm_field(&d, "lv", "balloon_actual_mib"), 48);
	ck_assert_int_eq(file_count(d.log, "vm lv: libvirt balloon up"), 1);
	g.ram[0] = 1;
	detach(&g);
	ck_assert_int_eq(pk_test_wait_vm_count(d.sock, 0, scaled_ms(2000)), 0);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

static void add(Suite *s, const char *name, const TTest *t)
{
	TCase *tc = tcase_create(name);

	/* A backstop: each wait inside has its own, shorter deadline. */
	tcase_set_timeout(tc, 60 * pk_test_time_scale());
	tcase_add_test(tc, t);
	suite_add_tcase(s, tc);
}

int main(void)
{
	Suite *s = suite_create("balloon_engine");
	SRunner *sr;
	int failed;

	add(s, "no_channel", no_channel);
	add(s, "qmp_stall", qmp_stall);
	add(s, "qmp_garbage_logged_once", qmp_garbage_logged_once);
	add(s, "libvirt_follows", libvirt_follows);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
