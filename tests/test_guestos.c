/*
 * test_guestos.c - the lab guest's operating system and balloon driver
 * (pk-guestsim --balloon) against a real pagekeeperd.
 *
 * What: real lab guests whose OS pages its application's working set to
 * its own O_DIRECT page file, served by a real daemon; this test is the
 * balloon's peer: it speaks the lab balloon protocol
 * (balloon-bridge/README.md) on the guest's socket, as the daemon's lab
 * driver does - a client of the documented protocol, not a mock.
 *  - inflate_deflate: inflating past the guest's free memory forces guest
 *    page-outs (stats swap_out > 0) and the daemon sees the discards
 *    (status remove_events, ballooned_mib); deflating gives the memory
 *    back (free rises); then the workload runs and every page of the
 *    working set verifies, in RAM and in the page file; the page file and
 *    the socket are gone after the exit.
 *  - elastic_collects: --live 0.3, an elastic heap: the runtime
 *    collects when the heap is full, and a balloon deeper than the free
 *    memory makes it give its garbage back instead of paging.
 *  - locked_stalls: a --locked 0.8 guest's balloon stops short and says
 *    so (a stalled event whose shortfall is actual - target > 0); every
 *    page still verifies.
 *  - bad_input: a garbage line, a line over 4096 bytes, a target above
 *    RAM, below zero, not an integer, an unknown command, a second
 *    connection: each an error reply; the guest keeps answering and ends
 *    cleanly with every page verified.
 *  - sigterm_cleans_up: SIGTERM to a holding guest removes its page file
 *    and its socket.
 *
 * How: guests run with TMPDIR set to the daemon fixture's directory, so
 * their temp files are where the test can see them, and are removed by
 * the fixture even when a failed test leaves a guest's files behind.
 * The protocol cases run --no-daemon guests (the test is their balloon's
 * only peer: the daemon's lab driver would take the one connection).  Waits are for a protocol
 * line or a status figure, with deadlines from the MiB moved at a floor
 * rate, times pk_test_time_scale().
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"

#define MIB (1ULL << 20)
/* Floor rate of balloon movement with page-outs (O_DIRECT writes, REMOVE
 * events the daemon must read): well below what this machine does. */
#define BALLOON_MIB_PER_S 4
#define BASE_MS 3000

struct peer {
	int fd;
	char buf[8192];
	size_t len;
};

static long balloon_work_ms(double mib)
{
	return BASE_MS + (long)(mib * 1000 / BALLOON_MIB_PER_S);
}

/* Connect to the guest's balloon socket (it listens before it attaches). */
static void peer_connect(struct peer *p, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	p->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	p->len = 0;
	ck_assert_int_ge(p->fd, 0);
	ck_assert_msg(connect(p->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
		      "connect to the balloon socket %s: %s", path,
		      strerror(errno));
}

static void peer_send(struct peer *p, const char *line)
{
	size_t n = strlen(line);

	ck_assert_int_eq(send(p->fd, line, n, MSG_NOSIGNAL), (ssize_t)n);
	ck_assert_int_eq(send(p->fd, "\n", 1, MSG_NOSIGNAL), 1);
}

/* The next line as a JSON object, by work_ms (scaled); what names it. */
static json_object *peer_recv(struct peer *p, long work_ms, const char *what)
{
	long deadline = pk_test_deadline_ms(work_ms);

	for (;;) {
		char *nl = memchr(p->buf, '\n', p->len);
		struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
		long left;
		ssize_t n;

		if (nl) {
			json_object *o;

			*nl = '\0';
			o = json_tokener_parse(p->buf);
			ck_assert_msg(o && json_object_is_type(o, json_type_object),
				      "guest sent a line that is not a JSON "
				      "object: %s", p->buf);
			p->len -= (size_t)(nl + 1 - p->buf);
			memmove(p->buf, nl + 1, p->len);
			return o;
		}
		left = deadline - pk_test_now_ms();
		ck_assert_msg(left > 0, "timed out after %.1f s waiting for %s "
			      "from the guest's balloon driver",
			      work_ms * pk_test_time_scale() / 1e3, what);
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		ck_assert_msg(p->len < sizeof(p->buf) - 1, "line too long");
		n = recv(p->fd, p->buf + p->len, sizeof(p->buf) - 1 - p->len, 0);
		ck_assert_msg(n > 0, "balloon driver closed the connection "
			      "while we waited for %s", what);
		p->len += (size_t)n;
	}
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return "";
	return json_object_get_string(v);
}

/* Skip events until the reply to `cmd` (return or error); returns it. */
static json_object *peer_reply(struct peer *p, const char *cmd, long work_ms)
{
	for (;;) {
		json_object *o = peer_recv(p, work_ms, cmd);

		if (!strcmp(jstr(o, "return"), cmd) ||
		    json_object_object_get_ex(o, "error", NULL))
			return o;
		json_object_put(o);
	}
}

static json_object *peer_stats(struct peer *p)
{
	json_object *o;

	peer_send(p, "{\"execute\":\"stats\"}");
	o = peer_reply(p, "stats", BASE_MS);
	ck_assert_msg(!strcmp(jstr(o, "return"), "stats"), "stats answered "
		      "with %s", json_object_to_json_string(o));
	return o;
}

static void set_target(struct peer *p, unsigned long long bytes)
{
	char line[128];
	json_object *o;

	snprintf(line, sizeof(line),
		 "{\"execute\":\"set-target\",\"bytes\":%llu}", bytes);
	peer_send(p, line);
	o = peer_reply(p, "set-target", BASE_MS);
	ck_assert_msg(!strcmp(jstr(o, "return"), "set-target"),
		      "set-target %llu refused: %s", bytes,
		      json_object_to_json_string(o));
	ck_assert_int_eq((long long)jnum(o, "target"), (long long)bytes);
	json_object_put(o);
}

/* Events until a final one: "balloon" at the target, or "stalled".
 * Returns it; *events counts the balloon events on the way. */
static json_object *until_settled(struct peer *p, unsigned long long target,
				  double mib_moved, int *events)
{
	long work = balloon_work_ms(mib_moved);

	*events = 0;
	for (;;) {
		json_object *o = peer_recv(p, work, "the balloon to settle");
		const char *ev = jstr(o, "event");

		if (!strcmp(ev, "stalled"))
			return o;
		if (!strcmp(ev, "balloon")) {
			++*events;
			ck_assert_int_eq((long long)jnum(o, "target"),
					 (long long)target);
			if ((unsigned long long)jnum(o, "actual") == target)
				return o;
		}
		json_object_put(o);
	}
}

/* Expect an error reply to line, naming what ("parse", a command). */
static void expect_error(struct peer *p, const char *line, const char *what)
{
	json_object *o;

	peer_send(p, line);
	o = peer_recv(p, BASE_MS, "an error reply");
	ck_assert_msg(!strcmp(jstr(o, "error"), what) && *jstr(o, "desc"),
		      "to %.60s the guest answered %s, not an error \"%s\" "
		      "with a desc", line, json_object_to_json_string(o), what);
	json_object_put(o);
}

/* Entries of dir whose name starts with prefix. */
static int dir_count(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	ck_assert_msg(d != NULL, "opendir %s", dir);
	while ((e = readdir(d)))
		n += !strncmp(e->d_name, prefix, strlen(prefix));
	closedir(d);
	return n;
}

/*
 * Start the daemon and make its directory the guests' TMPDIR (page file,
 * socket): the fixture removes it even when the test fails and its
 * guests die without cleaning up.  Guests with --no-daemon ignore the
 * daemon itself.
 */
static const char *start(struct pk_test_daemon *d)
{
	ck_assert_msg(pk_test_daemon_start(d, NULL) == 0, "%s", d->error);
	setenv("TMPDIR", d->dir, 1);
	return d->dir;
}

static void final_checks(struct guest *g, const char *dir, double pages,
			 json_object **res)
{
	guest_expect(g, NULL, res, pk_test_deadline_ms(BASE_MS + 10000),
		     "workload, verify and report");
	ck_assert_msg(*res, "guest printed no JSON report");
	ck_assert_int_eq(guest_finish(g, 2000), 0);
	ck_assert_int_eq((long)jnum(*res, "mismatches"), 0);
	ck_assert_msg(jnum(*res, "pages_verified") == pages,
		      "%.0f of %.0f pages of the working set verified",
		      jnum(*res, "pages_verified"), pages);
	ck_assert_msg(dir_count(dir, "pk-guestsim") == 0,
		      "the guest left its page file or socket in %s", dir);
}

START_TEST(protocol_inflate_deflate)
{
	struct pk_test_daemon d;
	struct guest g;
	struct peer p;
	const char *dir;
	char sock[128];
	json_object *o, *res;
	int events;
	const char *extra[] = { "--no-daemon", "--balloon", "--balloon-socket",
				sock, "--size", "32M", "--working-set", "16M",
				"--workload", "zipf", "--ops", "100000",
				"--idle-before", "1000", "--verify", "--json",
				NULL };

	dir = start(&d);
	snprintf(sock, sizeof(sock), "%s/b.sock", dir);
	guest_start(&g, "/nonexistent", "gos", extra);
	guest_expect(&g, "IDLE", NULL, pk_test_deadline_ms(BASE_MS + 2000),
		     "fill of 16 MiB");
	peer_connect(&p, sock);
	o = peer_recv(&p, BASE_MS, "the hello");
	ck_assert_int_eq((long)jnum(o, "lab-balloon"), 1);
	ck_assert_int_eq((long long)jnum(o, "ram"), 32 * MIB);
	ck_assert_int_eq((long long)jnum(o, "actual"), 32 * MIB);
	json_object_put(o);

	/* 16 MiB of working set in 32 MiB: about 15 MiB free.  A 24 MiB
	 * balloon must page about 9 MiB of the application out. */
	o = peer_stats(&p);
	ck_assert_int_eq((long)jnum(o, "swap_out"), 0);
	ck_assert_msg(jnum(o, "free") > 14 * MIB, "free %.0f bytes",
		      jnum(o, "free"));
	json_object_put(o);
	set_target(&p, 8 * MIB);
	o = until_settled(&p, 8 * MIB, 24, &events);
	ck_assert_msg(!strcmp(jstr(o, "event"), "balloon"),
		      "balloon did not reach 8 MiB: %s",
		      json_object_to_json_string(o));
	ck_assert_msg(events >= 1, "no balloon event");
	json_object_put(o);
	o = peer_stats(&p);
	ck_assert_int_eq((long long)jnum(o, "actual"), 8 * MIB);
	ck_assert_msg(jnum(o, "swap_out") >= 8 * MIB,
		      "inflating past free memory paged out only %.0f bytes",
		      jnum(o, "swap_out"));
	ck_assert_msg(jnum(o, "free") < 1 * MIB, "free %.0f bytes",
		      jnum(o, "free"));
	json_object_put(o);

	/* Deflate: the memory comes back as free guest memory. */
	set_target(&p, 32 * MIB);
	o = until_settled(&p, 32 * MIB, 24, &events);
	ck_assert_str_eq(jstr(o, "event"), "balloon");
	json_object_put(o);
	o = peer_stats(&p);
	ck_assert_int_eq((long long)jnum(o, "actual"), 32 * MIB);
	ck_assert_msg(jnum(o, "free") >= 23 * MIB, "deflated, free is %.0f "
		      "bytes", jnum(o, "free"));
	json_object_put(o);

	/* Squeeze again and run the workload inside the balloon. */
	set_target(&p, 12 * MIB);
	o = until_settled(&p, 12 * MIB, 20, &events);
	ck_assert_str_eq(jstr(o, "event"), "balloon");
	json_object_put(o);
	ck_assert_int_eq(kill(g.pid, SIGUSR1), 0);
	final_checks(&g, dir, 4096, &res);
	ck_assert_msg(jnum(res, "page_ins") > 0 && jnum(res, "page_outs") > 0,
		      "a 16 MiB working set in 12 MiB did no paging");
	ck_assert_msg(jnum(res, "balloon_mib") == 20, "balloon %.1f MiB",
		      jnum(res, "balloon_mib"));
	json_object_put(res);
	close(p.fd);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

/*
 * --live: an elastic heap, like the seed's .NET application.  20000
 * allocations (--churn 1) in a 28 MiB heap that keeps 30% live: the
 * runtime collects each time the heap is full, and every page that still
 * holds data verifies.  Then a balloon deeper than the guest's free
 * memory: the guest's runtime gives its garbage back instead of the OS
 * paging anything out (swap_out stays 0; one more collection, which freed
 * exactly the garbage the heap held).
 */
START_TEST(protocol_elastic_collects)
{
	struct pk_test_daemon d;
	struct guest g;
	struct peer p;
	const char *dir;
	char sock[128];
	json_object *o, *res;
	double committed, live, garbage, free0, gc0, freed0;
	unsigned long long target;
	int events;
	const char *extra[] = { "--no-daemon", "--balloon", "--balloon-socket",
				sock, "--size", "32M", "--working-set", "28M",
				"--live", "0.3", "--churn", "1", "--workload",
				"random", "--ops", "20000", "--verify", "--json",
				"--hold", NULL };

	dir = start(&d);
	snprintf(sock, sizeof(sock), "%s/b.sock", dir);
	guest_start(&g, "/nonexistent", "gel", extra);
	guest_expect(&g, "HOLDING", &res, pk_test_deadline_ms(BASE_MS + 5000),
		     "20000 ops and 20000 allocations in 28 MiB");
	ck_assert_msg(res, "guest printed no JSON report");
	committed = round(jnum(res, "committed_mib") * 256);
	live = round(jnum(res, "live_mib") * 256);
	/* 5017 pages of garbage fill the heap: 3 collections in 20000. */
	ck_assert_msg(jnum(res, "allocs") == 20000 && jnum(res, "gc_runs") == 3,
		      "%.0f allocations, %.0f collections (want 20000, 3)",
		      jnum(res, "allocs"), jnum(res, "gc_runs"));
	ck_assert_int_eq((long)jnum(res, "mismatches"), 0);
	ck_assert_msg(jnum(res, "pages_verified") == committed &&
		      committed > live + 1024,
		      "%.0f pages verified of %.0f committed (%.0f live)",
		      jnum(res, "pages_verified"), committed, live);
	ck_assert_int_eq((long)jnum(res, "page_outs"), 0);
	json_object_put(res);

	peer_connect(&p, sock);
	json_object_put(peer_recv(&p, BASE_MS, "the hello"));
	o = peer_stats(&p);
	free0 = jnum(o, "free");
	gc0 = jnum(o, "gc_runs");
	freed0 = jnum(o, "gc_freed");
	json_object_put(o);
	garbage = (committed - live) * 4096;
	/* All the free memory and half the garbage. */
	target = 32 * MIB - ((unsigned long long)(free0 + garbage / 2) &
			     ~4095ULL);
	set_target(&p, target);
	o = until_settled(&p, target, (32 * MIB - target) / (double)MIB,
			  &events);
	ck_assert_msg(!strcmp(jstr(o, "event"), "balloon"),
		      "balloon did not reach %llu bytes: %s", target,
		      json_object_to_json_string(o));
	json_object_put(o);
	o = peer_stats(&p);
	ck_assert_msg(jnum(o, "swap_out") == 0 && jnum(o, "gc_runs") == gc0 + 1 &&
		      jnum(o, "gc_freed") - freed0 == garbage,
		      "a %.1f MiB balloon with %.1f MiB free and %.1f MiB of "
		      "garbage: paged out %.0f bytes, %.0f collections (want "
		      "0 bytes, 1 collection), which freed %.0f bytes (want "
		      "%.0f)", (32 * MIB - target) / (double)MIB,
		      free0 / MIB, garbage / MIB, jnum(o, "swap_out"),
		      jnum(o, "gc_runs") - gc0, jnum(o, "gc_freed") - freed0,
		      garbage);
	json_object_put(o);
	close(p.fd);
	ck_assert_int_eq(guest_finish(&g, 2000), 0);
	ck_assert_msg(dir_count(dir, "pk-guestsim") == 0,
		      "the guest left its page file or socket in %s", dir);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

START_TEST(protocol_locked_stalls)
{
	struct pk_test_daemon d;
	struct guest g;
	struct peer p;
	const char *dir;
	char sock[128];
	json_object *o, *res;
	int events;
	double shortfall;
	const char *extra[] = { "--no-daemon", "--balloon", "--balloon-socket",
				sock, "--size", "32M", "--working-set", "24M",
				"--locked", "0.8", "--workload", "random",
				"--ops", "50000", "--idle-before", "1000",
				"--verify", "--json", NULL };

	dir = start(&d);
	snprintf(sock, sizeof(sock), "%s/b.sock", dir);
	guest_start(&g, "/nonexistent", "locked", extra);
	guest_expect(&g, "IDLE", NULL, pk_test_deadline_ms(BASE_MS + 3000),
		     "fill of 24 MiB");
	peer_connect(&p, sock);
	json_object_put(peer_recv(&p, BASE_MS, "the hello"));
	/* 19.2 MiB locked of 32: a 24 MiB balloon can't be had. */
	set_target(&p, 8 * MIB);
	o = until_settled(&p, 8 * MIB, 24, &events);
	ck_assert_msg(!strcmp(jstr(o, "event"), "stalled"),
		      "a locked guest's balloon reached its target: %s",
		      json_object_to_json_string(o));
	shortfall = jnum(o, "shortfall");
	ck_assert_msg(shortfall > 8 * MIB, "shortfall only %.0f bytes",
		      shortfall);
	ck_assert_msg(shortfall == jnum(o, "actual") - 8.0 * MIB,
		      "shortfall %.0f is not actual %.0f - target", shortfall,
		      jnum(o, "actual"));
	json_object_put(o);
	ck_assert_int_eq(kill(g.pid, SIGUSR1), 0);
	final_checks(&g, dir, 6144, &res);
	ck_assert_msg(jnum(res, "balloon_stalled") == 1 &&
		      fabs(jnum(res, "shortfall_mib") - shortfall / MIB) < 0.01,
		      "report: stalled %d, shortfall %.3f MiB",
		      (int)jnum(res, "balloon_stalled"),
		      jnum(res, "shortfall_mib"));
	ck_assert_msg(jnum(res, "locked_resident_mib") == jnum(res, "locked_mib"),
		      "only %.3f of %.3f MiB of locked pages are resident",
		      jnum(res, "locked_resident_mib"), jnum(res, "locked_mib"));
	printf("locked 0.8: shortfall %.1f MiB of a 24 MiB balloon\n",
	       shortfall / MIB);
	json_object_put(res);
	close(p.fd);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

START_TEST(bad_input)
{
	struct pk_test_daemon d;
	struct guest g;
	struct peer p, second;
	const char *dir;
	char sock[128], *longline;
	json_object *o, *res;
	int events;
	const char *extra[] = { "--no-daemon", "--balloon", "--balloon-socket",
				sock, "--size", "8M", "--workload", "random",
				"--ops", "20000", "--idle-before", "1000",
				"--verify", "--json", NULL };

	dir = start(&d);
	snprintf(sock, sizeof(sock), "%s/b.sock", dir);
	guest_start(&g, "/nonexistent", "bad", extra);
	guest_expect(&g, "IDLE", NULL, pk_test_deadline_ms(BASE_MS + 1000),
		     "fill of 8 MiB");
	peer_connect(&p, sock);
	json_object_put(peer_recv(&p, BASE_MS, "the hello"));
	expect_error(&p, "garbage", "parse");
	expect_error(&p, "{\"execute\":\"set-target\",\"bytes\":1}x", "parse");
	expect_error(&p, "[1,2]", "parse");
	expect_error(&p, "{\"bytes\":1}", "parse");
	expect_error(&p, "{\"execute\":\"set-target\",\"bytes\":8388609}",
		     "set-target");
	expect_error(&p, "{\"execute\":\"set-target\",\"bytes\":-4096}",
		     "set-target");
	expect_error(&p, "{\"execute\":\"set-target\",\"bytes\":\"4M\"}",
		     "set-target");
	expect_error(&p, "{\"execute\":\"set-target\"}", "set-target");
	expect_error(&p, "{\"execute\":\"explode\"}", "explode");
	longline = malloc(6000);
	ck_assert_ptr_nonnull(longline);
	memset(longline, 'x', 5999);
	longline[5999] = '\0';
	expect_error(&p, longline, "parse");
	free(longline);
	/* A second daemon connection is refused; the first one lives on. */
	peer_connect(&second, sock);
	o = peer_recv(&second, BASE_MS, "the refusal of a second connection");
	ck_assert_str_eq(jstr(o, "error"), "connect");
	json_object_put(o);
	close(second.fd);
	/* None of it moved the balloon; the driver still works. */
	o = peer_stats(&p);
	ck_assert_int_eq((long long)jnum(o, "actual"), 8 * MIB);
	json_object_put(o);
	set_target(&p, 6 * MIB);
	o = until_settled(&p, 6 * MIB, 2, &events);
	ck_assert_str_eq(jstr(o, "event"), "balloon");
	json_object_put(o);
	/* Reconnects are served: a new hello with the current size. */
	close(p.fd);
	peer_connect(&p, sock);
	o = peer_recv(&p, BASE_MS, "the hello after a reconnect");
	ck_assert_int_eq((long long)jnum(o, "actual"), 6 * MIB);
	json_object_put(o);
	ck_assert_int_eq(kill(g.pid, SIGUSR1), 0);
	final_checks(&g, dir, 2048, &res);
	ck_assert_int_eq((long)jnum(res, "balloon_errors"), 10);
	json_object_put(res);
	close(p.fd);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

/* ---- through a real daemon and its lab driver (balloon-bridge/lab.c) ---- */

/* BALLOON vm to bytes on a fresh connection; asserts it is accepted. */
static void balloon(struct pk_test_daemon *d, const char *vm, uint64_t bytes)
{
	struct pk_balloon_reply r;
	struct pk_balloon_msg m;
	char buf[sizeof(r) + 16];
	int fd = pk_test_connect(d->sock);
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pk_balloon_msg_encode(&m, vm, bytes), 0);
	ck_assert_int_eq(send(fd, &m, sizeof(m), MSG_NOSIGNAL), sizeof(m));
	n = pk_test_recv(fd, buf, sizeof(buf), scaled_ms(BASE_MS));
	close(fd);
	ck_assert_msg(n > 0, "no BALLOON_REPLY for %s (%zd)", vm, n);
	ck_assert_int_eq(pk_balloon_reply_decode(buf, (size_t)n, &r), 0);
	ck_assert_msg(r.status == 0, "BALLOON %s %llu MiB refused: %s", vm,
		      (unsigned long long)(bytes >> 20), r.reason);
}

/* The daemon's lab driver connected to the guest. */
static void wait_link(struct pk_test_daemon *d, const char *vm)
{
	char link[64] = "";

	WAIT_FOR((vm_string(d, vm, "balloon_link", link, sizeof(link)),
		  !strcmp(link, "ready")), BASE_MS, 50,
		 "the daemon's lab driver to reach %s (balloon_link \"%s\")",
		 vm, link);
}

START_TEST(daemon_inflate_deflate)
{
	struct pk_test_daemon d;
	struct guest g;
	const char *dir;
	json_object *res;
	const char *extra[] = { "--balloon", "--size", "32M", "--working-set",
				"16M", "--workload", "zipf", "--ops", "100000",
				"--idle-before", "1000", "--verify", "--json",
				NULL };

	dir = start(&d);
	guest_start(&g, d.sock, "dgos", extra);
	guest_expect(&g, "IDLE", NULL, pk_test_deadline_ms(BASE_MS + 2000),
		     "fill of 16 MiB");
	wait_link(&d, "dgos");
	/* 24 MiB of balloon where about 15 MiB are free. */
	balloon(&d, "dgos", 8 * MIB);
	WAIT_FOR(vm_field(&d, "dgos", "balloon_actual_mib") == 8,
		 balloon_work_ms(24), 50, "the balloon at 8 MiB (actual %.1f "
		 "MiB)", vm_field(&d, "dgos", "balloon_actual_mib"));
	WAIT_FOR(vm_field(&d, "dgos", "remove_events") > 0 &&
		 vm_field(&d, "dgos", "ballooned_mib") >= 23, 2000, 50,
		 "the daemon to count the balloon's discards (remove_events "
		 "%.0f, ballooned_mib %.1f)",
		 vm_field(&d, "dgos", "remove_events"),
		 vm_field(&d, "dgos", "ballooned_mib"));
	balloon(&d, "dgos", 32 * MIB);
	WAIT_FOR(vm_field(&d, "dgos", "balloon_actual_mib") == 32,
		 balloon_work_ms(24), 50, "the balloon deflated to 32 MiB "
		 "(actual %.1f MiB)", vm_field(&d, "dgos", "balloon_actual_mib"));
	balloon(&d, "dgos", 12 * MIB);
	WAIT_FOR(vm_field(&d, "dgos", "balloon_actual_mib") == 12,
		 balloon_work_ms(20), 50, "the balloon at 12 MiB (actual %.1f "
		 "MiB)", vm_field(&d, "dgos", "balloon_actual_mib"));
	ck_assert_int_eq(kill(g.pid, SIGUSR1), 0);
	final_checks(&g, dir, 4096, &res);
	/* The first inflate alone had to page out 8 MiB or more. */
	ck_assert_msg(jnum(res, "page_outs") >= 2048 && jnum(res, "page_ins") > 0,
		      "page-outs %.0f, page-ins %.0f", jnum(res, "page_outs"),
		      jnum(res, "page_ins"));
	ck_assert_msg(jnum(res, "balloon_mib") == 20, "balloon %.1f MiB",
		      jnum(res, "balloon_mib"));
	json_object_put(res);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

START_TEST(daemon_locked_stalls)
{
	struct pk_test_daemon d;
	struct guest g;
	const char *dir;
	json_object *res;
	double shortfall;
	const char *extra[] = { "--balloon", "--size", "32M", "--working-set",
				"24M", "--locked", "0.8", "--workload",
				"random", "--ops", "50000", "--idle-before",
				"1000", "--verify", "--json", NULL };

	dir = start(&d);
	guest_start(&g, d.sock, "dlocked", extra);
	guest_expect(&g, "IDLE", NULL, pk_test_deadline_ms(BASE_MS + 3000),
		     "fill of 24 MiB");
	wait_link(&d, "dlocked");
	balloon(&d, "dlocked", 8 * MIB);
	WAIT_FOR(vm_field(&d, "dlocked", "balloon_stalled") == 1,
		 balloon_work_ms(24), 50, "the locked guest's balloon to "
		 "stall (actual %.1f MiB)",
		 vm_field(&d, "dlocked", "balloon_actual_mib"));
	shortfall = vm_field(&d, "dlocked", "balloon_shortfall_mib");
	ck_assert_msg(shortfall > 8 && shortfall ==
		      vm_field(&d, "dlocked", "balloon_actual_mib") - 8,
		      "shortfall %.3f MiB, actual %.3f MiB", shortfall,
		      vm_field(&d, "dlocked", "balloon_actual_mib"));
	ck_assert_int_eq(kill(g.pid, SIGUSR1), 0);
	final_checks(&g, dir, 6144, &res);
	ck_assert_msg(jnum(res, "balloon_stalled") == 1 &&
		      fabs(jnum(res, "shortfall_mib") - shortfall) < 0.01,
		      "guest's report: stalled %d, shortfall %.3f MiB",
		      (int)jnum(res, "balloon_stalled"),
		      jnum(res, "shortfall_mib"));
	printf("daemon_locked_stalls: --locked 0.8, 32 MiB guest, target 8 "
	       "MiB: shortfall %.1f MiB\n", shortfall);
	json_object_put(res);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

/*
 * --grow: the heap starts empty and grows to 24 MiB over 3 s of the
 * guest's clock.  The daemon's resident_mib for the VM, polled every
 * 100 ms (sampling a curve, not waiting), must rise through several
 * values, be well below the working set 1 s after the guest's memory
 * first shows, and get near it (the last samples before the guest ends
 * may fall between polls); the guest reports grow_s 3 and verifies
 * every page it grew (all of them: it runs until the heap is full).
 */
START_TEST(daemon_grow)
{
	struct pk_test_daemon d;
	struct guest g;
	const char *dir;
	json_object *res;
	double r, last = 0, at_1s = -1;
	long t0 = -1, end;
	int rises = 0;
	const char *extra[] = { "--balloon", "--size", "32M", "--working-set",
				"24M", "--grow", "3", "--workload", "random",
				"--ops", "20000", "--verify", "--json", NULL };

	dir = start(&d);
	guest_start(&g, d.sock, "dgrow", extra);
	/* The work: 3 s of growth plus the attach. */
	end = pk_test_deadline_ms(BASE_MS + 3000);
	for (;;) {
		r = vm_field(&d, "dgrow", "resident_mib");
		if (r > 0 && t0 < 0)
			t0 = pk_test_now_ms();
		if (t0 >= 0 && at_1s < 0 && pk_test_now_ms() - t0 >= 1000)
			at_1s = r;
		if (r > last) {
			rises++;
			last = r;
		}
		/* Full, or the guest is done and detached (its last
		 * samples may fall between two polls under ASan). */
		if (r >= 23.9 || (t0 >= 0 && r < 0))
			break;
		ck_assert_msg(pk_test_now_ms() < end, "timed out after %.1f s "
			      "waiting for the guest's resident memory to grow "
			      "to 24 MiB (at %.1f MiB)",
			      (BASE_MS + 3000) * pk_test_time_scale() / 1e3, r);
		sleep_ms(100);
	}
	ck_assert_msg(rises >= 3 && at_1s >= 0 && at_1s < 16 && last >= 16,
		      "resident memory rose %d times, %.1f MiB 1 s after it "
		      "first showed, %.1f MiB at most (want >= 3 rises, < 16 "
		      "MiB, >= 16 MiB)", rises, at_1s, last);
	final_checks(&g, dir, 6144, &res);
	ck_assert_msg(jnum(res, "grow_s") == 3, "grow_s %.3f", jnum(res, "grow_s"));
	printf("daemon_grow: 24 MiB over 3 s: resident rose %d times, %.1f MiB "
	       "at 1 s, %.1f s run\n", rises, at_1s, jnum(res, "run_s"));
	json_object_put(res);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

START_TEST(sigterm_cleans_up)
{
	struct pk_test_daemon d;
	struct guest g;
	const char *dir;
	int st;
	const char *extra[] = { "--balloon", "--size", "8M", "--working-set",
				"12M", "--workload", "random", "--ops", "1000",
				"--hold", NULL };

	dir = start(&d);
	guest_start(&g, d.sock, "term", extra);
	guest_expect(&g, "HOLDING", NULL, pk_test_deadline_ms(BASE_MS + 2000),
		     "run of 1000 ops");
	ck_assert_int_eq(dir_count(dir, "pk-guestsim-pagefile-"), 1);
	ck_assert_int_eq(dir_count(dir, "pk-guestsim-balloon-"), 1);
	ck_assert_int_eq(kill(g.pid, SIGTERM), 0);
	guest_expect(&g, NULL, NULL, pk_test_deadline_ms(BASE_MS), "exit");
	ck_assert_int_eq(waitpid(g.pid, &st, 0), g.pid);
	close(g.in_fd);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "guest ended with status 0x%x on SIGTERM", st);
	ck_assert_msg(dir_count(dir, "pk-guestsim") == 0,
		      "SIGTERM left the page file or socket in %s", dir);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

static void add(Suite *s, const char *name, const TTest *t)
{
	TCase *tc = tcase_create(name);

	/* Backstop above every case's own deadlines (at most ~25 s). */
	tcase_set_timeout(tc, 120 * pk_test_time_scale());
	tcase_add_test(tc, t);
	suite_add_tcase(s, tc);
}

int main(void)
{
	Suite *s = suite_create("guestos");
	SRunner *sr;
	int failed;

	add(s, "protocol_inflate_deflate", protocol_inflate_deflate);
	add(s, "protocol_locked_stalls", protocol_locked_stalls);
	add(s, "protocol_elastic_collects", protocol_elastic_collects);
	add(s, "bad_input", bad_input);
	add(s, "daemon_inflate_deflate", daemon_inflate_deflate);
	add(s, "daemon_locked_stalls", daemon_locked_stalls);
	add(s, "daemon_grow", daemon_grow);
	add(s, "sigterm_cleans_up", sigterm_cleans_up);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
