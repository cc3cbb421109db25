/*
 * test_hostile.c - hostile clients against a real pagekeeperd (issue 17,
 * item 3): whatever a client does to the fds it shares with the daemon or
 * to the control socket, the event loop never blocks and never spins,
 * and every other guest goes on being served.
 *
 *  - uffd_blocking: a client registers a VM (the test process itself: a
 *    memfd mapping, its own userfaultfd), then clears O_NONBLOCK on the
 *    uffd with fcntl(F_SETFL): the file description is shared with the
 *    daemon, so the daemon's uffd is blocking from then on.  Eviction
 *    reads the uffd with no event pending (engine/evict.c), and so does
 *    the sharing scanner's reclaim of zero pages: a plain read() would
 *    hang the loop for good.  Checked: a RECLAIM of the hostile VM is
 *    answered, the scanner reclaims its zero pages, a lab guest (whose
 *    pages were all evicted first) faults every page back meanwhile and
 *    verifies them, and SIGTERM stops the daemon.  Its worst fault
 *    latency (read/write max) is printed.
 *  - recvmsg_reset: a connection that closes with a reply unread makes
 *    the daemon's recvmsg() fail with ECONNRESET.  Nothing arrived then,
 *    so msg_control is untouched and still holds the fd numbers of the
 *    last message that carried fds (a REGISTER: now the VM's uffd and RAM
 *    fd).  Checked: the daemon's fd count is back to its baseline and a
 *    RECLAIM of that VM (which needs its uffd) still succeeds.
 *  - ctrunc: a message with more fds than the daemon's buffer holds
 *    (MSG_CTRUNC): refused with -EMSGSIZE, the fds that arrived closed
 *    (fd count back to baseline), the daemon serves on.
 *  - accept_emfile: the daemon's RLIMIT_NOFILE is lowered (prlimit on its
 *    pid) and connections are opened until every fd slot is taken, so
 *    accept() fails with EMFILE and more connections wait in the
 *    backlog.  Checked: the daemon's CPU time (utime + stime from
 *    /proc/PID/stat) over a second of that stays under 20% of a core (a
 *    level-triggered loop polling the listen fd spins at 100%), a lab
 *    guest faults all its evicted pages back meanwhile, and once the
 *    idle connections close a waiting one gets its STATUS answered.
 *
 * Why the test process is the hostile client: it needs the uffd's file
 * description itself (fcntl on it), which a pk-guestsim guest keeps to
 * itself; the registration is the raw REGISTER of daemon_fixture.h.
 *
 * Access control (item 1, case "access"; engine/PROTOCOL.md, "Access
 * control").  The daemon runs with --socket-group users --admin-group
 * nogroup; clients are forked children that drop (setgroups, setgid,
 * setuid) to unused uids, no account needed: 65534 and 65532 in group
 * users, 65533 in users and nogroup (an admin).  A child's guest (memfd,
 * uffd) is made before the drop: vm.unprivileged_userfaultfd is 0 here.
 *  - socket_mode: the socket is 0660, group users (logged); a uid not in
 *    the group cannot connect (EACCES).
 *  - foreign_vm: root's VM; uid 65534 gets -EPERM for RECLAIM, DRAIN,
 *    SET and BALLOON, one log line each, and a STATUS without it; the
 *    admin sees it and may SET and RECLAIM it.
 *  - own_vm_and_channels: a user registers, reclaims and sees its own
 *    VM; a QMP channel that is root's socket, the user's own symbolic
 *    link to it, or a libvirt URI are -EPERM (logged once); the user's
 *    own socket is accepted.
 *  - share_domains: two users naming domain "pool" get u65534.pool and
 *    u65532.pool; with --share-domain-allow both get "pool".
 *  - name_squat: root's VM name is -EEXIST for a user, also after a
 *    restart while the VM waits for its guest.
 *  - name_reserved: a user's VM whose guest died leaves its name
 *    reserved for that user: another user gets -EEXIST (logged), also
 *    after a restart; the owner takes it back, root takes it over; with
 *    --name-reserve 1 another user gets it once the second is over, and
 *    a restart removes the expired reservation of a name nobody took.
 *  - status_sharing: STATUS's sharing section lists, for a user, only
 *    the domains its own VMs are in (not root's "secret"), and its
 *    waiting_vms list after a restart shows no VM of root's.
 *  - balloon_swap: a user registers a QMP channel that is its own
 *    socket (nothing listens yet), then swaps the file for a symbolic
 *    link to root's socket, then for root's socket itself (the test
 *    does the swaps as root; a user does them in its own directory).
 *    The bridge's reconnects refuse both (its balloon_why says why)
 *    and root's listener never sees a connection.
 */
#include "tests/guest_proc.h"
#include "engine/uffd_compat.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define BASE_MS 2000
#define FILL_MIB_PER_S 20	  /* tests/test_swap.c's floor rates */
#define SWAPIN_PAGES_PER_S 2000
#define GOOD_MIB 16
#define GOOD_PAGES (GOOD_MIB * 256)
#define HOSTILE_BYTES (8u << 20)

static uint64_t msgbuf[PK_PROTO_MAX_MSG / sizeof(uint64_t)];

/* A lab guest, filled and idle until SIGUSR1, then a random workload. */
static void good_guest(struct guest *g, const char *sock)
{
	static const char *const extra[] = {
		"--size", "16M", "--workload", "random", "--writers", "1",
		"--readers", "1", "--idle-before", "3600", "--duration", "2",
		"--verify", "--json", NULL
	};

	guest_start(g, sock, "good", extra);
	guest_expect(g, "IDLE", NULL,
		     pk_test_deadline_ms(BASE_MS + GOOD_MIB * 1000 /
						   FILL_MIB_PER_S),
		     "the good guest's fill");
}

/* The good guest's run after SIGUSR1: every page verified; prints its
 * worst fault latency. */
static void good_guest_finish(struct guest *g, const char *attack)
{
	json_object *res;

	guest_expect(g, NULL, &res,
		     pk_test_deadline_ms(BASE_MS + 2000 + GOOD_PAGES * 1000 /
							  SWAPIN_PAGES_PER_S),
		     "the good guest's workload and verify");
	ck_assert_msg(res, "the good guest printed no result");
	ck_assert_msg(jnum(res, "mismatches") == 0, "good guest: %.0f mismatches",
		      jnum(res, "mismatches"));
	ck_assert_msg(jnum(res, "pages_verified") == GOOD_PAGES,
		      "good guest verified %.0f of %d pages",
		      jnum(res, "pages_verified"), GOOD_PAGES);
	printf("%s: good guest's worst latency: read %.0f us, write %.0f us "
	       "(p99 read %.0f us, write %.0f us), %.0f ops\n",
	       attack, jnum(res, "read_max_us"), jnum(res, "write_max_us"),
	       jnum(res, "read_p99_us"), jnum(res, "write_p99_us"),
	       jnum(res, "read_ops") + jnum(res, "write_ops"));
	fflush(stdout);
	json_object_put(res);
	ck_assert_int_eq(guest_finish(g, BASE_MS), 0);
}

static void evict_all(struct pk_test_daemon *d, const char *vm,
		      uint64_t bytes)
{
	struct pk_reclaim_reply r;
	int rc = pk_test_reclaim(d->sock, vm, bytes, &r);

	ck_assert_msg(rc == 0, "RECLAIM of %s: %s (%s)", vm, strerror(-rc),
		      r.reason);
}

/*
 * The hostile client: a memfd mapping of HOSTILE_BYTES, its first half
 * unique data, its second half written with zeros (resident zero pages
 * the scanner reclaims), registered as VM name with the test process's
 * own uffd.  Returns the VM's connection.
 */
static int hostile_register(struct pk_test_daemon *d, const char *name,
			    struct pk_test_guest *g)
{
	struct pk_region_desc r;
	struct pk_registration reg = { .vm_name = name, .share_domain = "",
				       .balloon_channel = "", .n_regions = 1,
				       .regions = &r };
	struct pk_reply_msg reply;
	char err[256] = "";
	int rc, conn, len, fds[2];

	rc = pk_test_guest_create(g, HOSTILE_BYTES, HOSTILE_BYTES);
	ck_assert_msg(rc == 0, "memfd guest: %s", strerror(-rc));
	for (size_t off = 0; off < HOSTILE_BYTES; off += PK_PAGE_SIZE)
		memset((char *)g->addr + off,
		       off < HOSTILE_BYTES / 2 ? (int)(off / PK_PAGE_SIZE % 251) + 1
					       : 0,
		       PK_PAGE_SIZE);
	g->uffd = pk_test_uffd_open(PK_UFFD_FEATURES, err, sizeof(err));
	ck_assert_msg(g->uffd >= 0, "userfaultfd: %s", err);
	rc = pk_test_uffd_register(g->uffd, g->addr, g->map_len);
	ck_assert_msg(rc == 0, "UFFDIO_REGISTER: %s", strerror(-rc));
	r = (struct pk_region_desc){ .host_addr = (uintptr_t)g->addr,
				     .length = HOSTILE_BYTES,
				     .page_size = PK_PAGE_SIZE };
	len = pk_register_encode(msgbuf, sizeof(msgbuf), &reg);
	ck_assert_int_gt(len, 0);
	fds[0] = g->uffd;
	fds[1] = g->memfd;
	rc = pk_test_request(d->sock, msgbuf, (size_t)len, fds, 2, &reply,
			     &conn);
	ck_assert_msg(rc == 0 && reply.status == 0,
		      "REGISTER of %s: %d, status %d (%s)", name, rc,
		      reply.status, reply.reason);
	return conn;
}

START_TEST(uffd_blocking)
{
	struct pk_test_daemon d;
	struct pk_test_guest h;
	struct guest good;
	int conn, fl;

	ck_assert_msg(pk_test_daemon_start(&d, "--swap-size 64M") == 0, "%s",
		      d.error);
	good_guest(&good, d.sock);
	evict_all(&d, "good", GOOD_MIB << 20);
	conn = hostile_register(&d, "hostile", &h);

	/* The attack: the daemon's uffd is blocking from now on. */
	fl = fcntl(h.uffd, F_GETFL);
	ck_assert_int_ge(fl, 0);
	ck_assert_int_eq(fcntl(h.uffd, F_SETFL, fl & ~O_NONBLOCK), 0);
	ck_assert_int_eq(fcntl(h.uffd, F_GETFL) & O_NONBLOCK, 0);

	/* The good guest faults its pages back while the daemon evicts
	 * and scans the hostile VM. */
	ck_assert_int_eq(kill(good.pid, SIGUSR1), 0);
	evict_all(&d, "hostile", HOSTILE_BYTES / 2);
	WAIT_FOR(vm_field(&d, "hostile", "scan_zero_reclaimed") > 0,
		 BASE_MS + 3000, 20,
		 "the scanner to reclaim a zero page of the hostile VM "
		 "(its uffd is blocking)");
	good_guest_finish(&good, "uffd_blocking");

	/* SIGTERM is served (stop judges a clean exit in its deadline). */
	pk_test_daemon_stop_ok(&d);
	close(conn);
	pk_test_guest_destroy(&h);
}
END_TEST

/* The daemon's fd count, settled, must be want. */
static void expect_fds(struct pk_test_daemon *d, int want, const char *after)
{
	int n = pk_test_daemon_settled_fd_count(d);

	ck_assert_msg(n == want, "the daemon holds %d fds after %s, want %d",
		      n, after, want);
}

START_TEST(recvmsg_reset)
{
	struct pk_test_daemon d;
	struct pk_test_guest h;
	struct pk_msg_header st;
	struct pk_reclaim_reply r;
	int conn, y, base, rc;

	/* No scan timer: nothing else runs on the loop between the
	 * REGISTER and the reset, as on a quiet daemon. */
	ck_assert_msg(pk_test_daemon_start(&d, "--swap-size 64M --scan-rate 0")
			      == 0, "%s", d.error);
	y = pk_test_connect(d.sock);
	ck_assert_int_ge(y, 0);
	conn = hostile_register(&d, "victim", &h);
	base = pk_test_daemon_settled_fd_count(&d);

	/* A STATUS whose reply is never read, then close: ECONNRESET. */
	pk_msg_header_init(&st, PK_MSG_STATUS, sizeof(st));
	ck_assert_int_eq(pk_test_send(y, &st, sizeof(st), NULL, 0), 0);
	struct pollfd p = { .fd = y, .events = POLLIN };
	ck_assert_msg(poll(&p, 1, scaled_ms(BASE_MS)) == 1,
		      "no STATUS reply queued within %d ms", scaled_ms(BASE_MS));
	close(y);
	expect_fds(&d, base - 1, "a connection reset with a reply unread");

	/* The VM's uffd is still the daemon's: eviction needs it. */
	rc = pk_test_reclaim(d.sock, "victim", HOSTILE_BYTES / 2, &r);
	ck_assert_msg(rc == 0 && r.pages_swapped + r.pages_zero > 0,
		      "RECLAIM of victim after the reset: %s (%s)",
		      strerror(-rc), r.reason);
	pk_test_daemon_stop_ok(&d);
	close(conn);
	pk_test_guest_destroy(&h);
}
END_TEST

START_TEST(ctrunc)
{
	struct pk_test_daemon d;
	struct pk_msg_header st;
	struct pk_reply_msg reply;
	int fds[12], base, rc;

	ck_assert_msg(pk_test_daemon_start(&d, NULL) == 0, "%s", d.error);
	base = pk_test_daemon_settled_fd_count(&d);
	for (int i = 0; i < 12; i++) {
		fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		ck_assert_int_ge(fds[i], 0);
	}
	pk_msg_header_init(&st, PK_MSG_STATUS, sizeof(st));
	rc = pk_test_request(d.sock, &st, sizeof(st), fds, 12, &reply, NULL);
	ck_assert_msg(rc == 0, "STATUS with 12 fds: no reply (%s)",
		      strerror(-rc));
	ck_assert_int_eq(reply.hdr.type, PK_MSG_ERROR_REPLY);
	ck_assert_msg(reply.status == -EMSGSIZE &&
			      strstr(reply.reason, "too many fds"),
		      "STATUS with 12 fds: %d (%s), not -EMSGSIZE", reply.status,
		      reply.reason);
	expect_fds(&d, base, "a message with 12 fds");
	ck_assert_int_eq(pk_test_vm_count(d.sock), 0);
	for (int i = 0; i < 12; i++)
		close(fds[i]);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

/* utime + stime of pid, in clock ticks. */
static long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	ck_assert_msg(f, "%s: %s", path, strerror(errno));
	ck_assert(fgets(buf, sizeof(buf), f));
	fclose(f);
	p = strrchr(buf, ')');
	ck_assert(p);
	/* state ppid pgrp session tty tpgid flags minflt cminflt majflt
	 * cmajflt utime stime */
	ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
				       "%*u %*u %lu %lu", &ut, &st), 2);
	return (long)(ut + st);
}

/* The highest fd number pid holds. */
static int max_fd(pid_t pid)
{
	char path[64];
	struct dirent *de;
	DIR *dir;
	int max = -1;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	ck_assert_msg(dir, "%s: %s", path, strerror(errno));
	while ((de = readdir(dir)))
		if (de->d_name[0] != '.' && atoi(de->d_name) > max)
			max = atoi(de->d_name);
	closedir(dir);
	return max;
}

#define EMFILE_SPARE 8	 /* fd slots above the highest fd in use */
#define EMFILE_CONNS_MAX 64
#define EMFILE_WAITING 4 /* connections left in the backlog */
#define EMFILE_CPU_MAX 0.2 /* of one core, over the window */

START_TEST(accept_emfile)
{
	struct pk_test_daemon d;
	struct guest good;
	struct rlimit rl;
	int conns[EMFILE_CONNS_MAX], n_conns = 0, limit, free_slots;
	long hz = sysconf(_SC_CLK_TCK);

	ck_assert_msg(pk_test_daemon_start(&d, "--swap-size 64M --scan-rate 0")
			      == 0, "%s", d.error);
	good_guest(&good, d.sock);
	evict_all(&d, "good", GOOD_MIB << 20);

	limit = max_fd(d.pid) + 1 + EMFILE_SPARE;
	free_slots = limit - pk_test_daemon_settled_fd_count(&d);
	/* Holes below the highest fd are free slots too. */
	ck_assert_int_le(free_slots, EMFILE_CONNS_MAX - EMFILE_WAITING);
	rl.rlim_cur = rl.rlim_max = (rlim_t)limit;
	ck_assert_msg(prlimit(d.pid, RLIMIT_NOFILE, &rl, NULL) == 0,
		      "prlimit: %s", strerror(errno));
	for (int i = 0; i < free_slots + EMFILE_WAITING; i++) {
		conns[n_conns] = pk_test_connect(d.sock);
		ck_assert_msg(conns[n_conns] >= 0, "connect %d: %s", i,
			      strerror(-conns[n_conns]));
		n_conns++;
	}
	WAIT_FOR(pk_test_daemon_fd_count(&d) == limit, BASE_MS, 10,
		 "the daemon to hold %d fds, its limit (%d now)", limit,
		 pk_test_daemon_fd_count(&d));
	/* A second of a full fd table and connections waiting. */
	long t0 = pk_test_now_ms(), c0 = cpu_ticks(d.pid);
	sleep_ms(1000);
	long t1 = pk_test_now_ms(), c1 = cpu_ticks(d.pid);
	double cpu = (double)(c1 - c0) / (double)hz / ((double)(t1 - t0) / 1e3);
	printf("accept_emfile: daemon CPU %.1f%% of a core over %ld ms with "
	       "accept() at EMFILE\n", cpu * 100, t1 - t0);
	fflush(stdout);
	ck_assert_msg(cpu < EMFILE_CPU_MAX,
		      "the daemon used %.0f%% of a core while accept() failed "
		      "with EMFILE: it spins on the listen fd", cpu * 100);
	WAIT_FOR(file_has(d.log, "accept: Too many open files"), BASE_MS, 10,
		 "the log line about accept's EMFILE");

	/* Existing guests are served meanwhile. */
	ck_assert_int_eq(kill(good.pid, SIGUSR1), 0);
	good_guest_finish(&good, "accept_emfile");

	/* Once the accepted ones close, a waiting one is served. */
	for (int i = 0; i < free_slots; i++)
		close(conns[i]);
	struct pk_msg_header st;
	char buf[PK_PROTO_MAX_MSG];
	pk_msg_header_init(&st, PK_MSG_STATUS, sizeof(st));
	int w = conns[n_conns - 1];
	ck_assert_int_eq(pk_test_send(w, &st, sizeof(st), NULL, 0), 0);
	ssize_t n = pk_test_recv(w, buf, sizeof(buf), scaled_ms(BASE_MS));
	ck_assert_msg(n > (ssize_t)sizeof(st),
		      "a connection waiting in the backlog got no STATUS reply "
		      "after the others closed (%zd)", n);
	for (int i = free_slots; i < n_conns; i++)
		close(conns[i]);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

/* ---- access control (item 1) ---------------------------------------- */

/*
 * Unprivileged clients are forked children that drop to an unused uid
 * (no account needed): ATTACKER_UID with only the socket's group,
 * ADMIN_UID with the admin group too, OUTSIDER_UID without the socket's
 * group.  The daemon runs with --socket-group users --admin-group
 * nogroup (both exist on Debian).
 */
#define ATTACKER_UID 65534
#define ADMIN_UID 65533
#define OUTSIDER_UID 65532
#define ACCESS_ARGS "--socket-group users --admin-group nogroup"

/* Start a daemon for the access tests: its directory (mkdtemp, 0700)
 * searchable by all, so only the socket's own mode decides. */
static void access_daemon(struct pk_test_daemon *d, const char *args)
{
	ck_assert_msg(pk_test_daemon_start(d, args) == 0, "%s", d->error);
	ck_assert_int_eq(chmod(d->dir, 0711), 0);
}

static gid_t group_id(const char *name)
{
	struct group *g = getgrnam(name);

	ck_assert_msg(g, "group %s does not exist", name);
	return g->gr_gid;
}

/* Drop to uid with these groups (the first is the primary). */
static int drop_to(uid_t uid, const gid_t *groups, int n)
{
	return setgroups((size_t)n, groups) || setgid(groups[0]) ||
	       setuid(uid) ? -errno : 0;
}

/*
 * One request, whole reply: the reply's status (every reply type has
 * it right after the header), or a negative errno of the transport.
 */
static int raw_request(const char *sock, const void *msg, size_t len,
		       void *reply, size_t reply_len)
{
	char buf[PK_PROTO_MAX_MSG];
	int32_t status;
	int fd = pk_test_connect(sock);
	ssize_t n;

	if (fd < 0)
		return fd;
	if ((n = pk_test_send(fd, msg, len, NULL, 0)) == 0)
		n = pk_test_recv(fd, buf, sizeof(buf),
				 scaled_ms(PK_TEST_REPLY_WAIT_MS));
	close(fd);
	if (n < 0)
		return (int)n;
	if ((size_t)n < sizeof(struct pk_msg_header) + sizeof(status))
		return -EBADMSG;
	if (reply)
		memcpy(reply, buf, (size_t)n < reply_len ? (size_t)n : reply_len);
	memcpy(&status, buf + sizeof(struct pk_msg_header), sizeof(status));
	return status;
}

enum act { ACT_RECLAIM, ACT_DRAIN, ACT_SET, ACT_BALLOON, ACT_STATUS,
	   ACT_STATUS_HAS };

/* The status of act on vm (ACT_STATUS: how many VMs it lists;
 * ACT_STATUS_HAS: 1 if the status text holds vm, as a string, else 0). */
static int act_on(const char *sock, enum act act, const char *vm)
{
	union {
		struct pk_reclaim_msg reclaim;
		struct pk_drain_msg drain;
		struct pk_set_msg set;
		struct pk_balloon_msg balloon;
		struct pk_msg_header status;
	} m;
	size_t len = 0;

	memset(&m, 0, sizeof(m));
	switch (act) {
	case ACT_RECLAIM:
		pk_msg_header_init(&m.reclaim.hdr, PK_MSG_RECLAIM,
				   sizeof(m.reclaim));
		snprintf(m.reclaim.vm_name, sizeof(m.reclaim.vm_name), "%s", vm);
		m.reclaim.bytes = 1 << 20;
		len = sizeof(m.reclaim);
		break;
	case ACT_DRAIN:
		pk_msg_header_init(&m.drain.hdr, PK_MSG_DRAIN, sizeof(m.drain));
		snprintf(m.drain.vm_name, sizeof(m.drain.vm_name), "%s", vm);
		len = sizeof(m.drain);
		break;
	case ACT_SET:
		pk_set_msg_encode(&m.set, vm, 1, -1, -1, -1);
		len = sizeof(m.set);
		break;
	case ACT_BALLOON:
		pk_balloon_msg_encode(&m.balloon, vm, 1 << 20);
		len = sizeof(m.balloon);
		break;
	case ACT_STATUS:
		return pk_test_vm_count(sock);
	case ACT_STATUS_HAS: {
		char *json = NULL, needle[PK_PROTO_NAME_MAX + 2];
		int rc = pk_test_status_json(sock, &json);
		if (rc == 0) {
			snprintf(needle, sizeof(needle), "\"%s\"", vm);
			rc = strstr(json, needle) != NULL;
		}
		free(json);
		return rc;
	}
	}
	return raw_request(sock, &m, len, NULL, 0);
}

/*
 * Run act as uid (groups as drop_to) in a forked child; returns its
 * result (exit code: 100 + status, 0..200) or fails.
 */
static int act_as(const char *sock, uid_t uid, const gid_t *groups, int n,
		  enum act act, const char *vm)
{
	int st;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int rc = drop_to(uid, groups, n);
		if (rc == 0)
			rc = act_on(sock, act, vm);
		_exit(rc < -100 || rc > 100 ? 255 : 100 + rc);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 255,
		      "child as uid %u: status 0x%x", (unsigned)uid, st);
	return WEXITSTATUS(st) - 100;
}

START_TEST(socket_mode)
{
	struct pk_test_daemon d;
	struct stat st;
	gid_t users = group_id("users"), outsider[] = { group_id("nogroup") };

	access_daemon(&d, ACCESS_ARGS);
	ck_assert_int_eq(stat(d.sock, &st), 0);
	ck_assert_msg((st.st_mode & 0777) == 0660 && st.st_gid == users,
		      "control socket mode %o group %u, want 0660 group users "
		      "(%u)", st.st_mode & 0777, (unsigned)st.st_gid,
		      (unsigned)users);
	/* Not in the socket's group: cannot even connect. */
	ck_assert_int_eq(act_as(d.sock, OUTSIDER_UID, outsider, 1, ACT_STATUS,
				NULL), -EACCES);
	ck_assert_msg(file_has(d.log, "mode 0660, group users"),
		      "no log line about the socket's group in %s", d.log);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

START_TEST(foreign_vm)
{
	static const enum act acts[] = { ACT_RECLAIM, ACT_DRAIN, ACT_SET,
					 ACT_BALLOON };
	static const char *const what[] = { "reclaim", "drain", "set",
					    "balloon" };
	struct pk_test_daemon d;
	struct pk_test_guest h;
	gid_t attacker[] = { group_id("users") };
	gid_t admin[] = { group_id("users"), group_id("nogroup") };
	char line[128];
	int conn;

	access_daemon(&d, "--swap-size 64M " ACCESS_ARGS);
	conn = hostile_register(&d, "rootvm", &h); /* owned by uid 0 */
	for (size_t i = 0; i < sizeof(acts) / sizeof(acts[0]); i++) {
		int rc = act_as(d.sock, ATTACKER_UID, attacker, 1, acts[i],
				"rootvm");
		ck_assert_msg(rc == -EPERM, "%s of root's VM by uid %d: %d, "
			      "not -EPERM", what[i], ATTACKER_UID, rc);
		snprintf(line, sizeof(line), "refused %s of vm rootvm to uid %d",
			 what[i], ATTACKER_UID);
		ck_assert_msg(file_count(d.log, line) == 1,
			      "want one log line '%s' in %s", line, d.log);
	}
	/* STATUS hides root's VM from the user, not from an admin. */
	ck_assert_int_eq(act_as(d.sock, ATTACKER_UID, attacker, 1, ACT_STATUS,
				NULL), 0);
	ck_assert_int_eq(act_as(d.sock, ADMIN_UID, admin, 2, ACT_STATUS, NULL),
			 1);
	/* An admin (the admin group as a supplementary group) may act. */
	ck_assert_int_eq(act_as(d.sock, ADMIN_UID, admin, 2, ACT_SET, "rootvm"),
			 0);
	ck_assert_int_eq(act_as(d.sock, ADMIN_UID, admin, 2, ACT_RECLAIM,
				"rootvm"), 0);
	ck_assert_int_eq(act_on(d.sock, ACT_STATUS, NULL), 1); /* root */
	pk_test_daemon_stop_ok(&d);
	close(conn);
	pk_test_guest_destroy(&h);
}
END_TEST

/*
 * In a child: a guest made as root (the uffd needs root here:
 * vm.unprivileged_userfaultfd is 0), then dropped to uid; registers
 * name with a balloon channel, then RECLAIMs it and counts the VMs its
 * STATUS shows.  Exit: 100 + register status, or 0 when everything
 * worked (register 0, reclaim 0, status 1).
 */
/*
 * In a forked child (no Check assertions): a 1 MiB guest made as root,
 * then the drop to uid; registers name.  Returns the register status.
 */
static int child_register(const char *sock, uid_t uid, const gid_t *groups,
			  int n, const char *name, const char *domain,
			  uint32_t kind, const char *channel)
{
	struct pk_test_guest g;
	struct pk_region_desc r;
	struct pk_registration reg = {
		.vm_name = name, .share_domain = domain,
		.balloon_kind = kind, .balloon_channel = channel,
		.n_regions = 1, .regions = &r
	};
	struct pk_reply_msg reply;
	int conn, fds[2], len, rc;

	if (pk_test_guest_create(&g, 1 << 20, 1 << 20) ||
	    (g.uffd = pk_test_uffd_open(PK_UFFD_FEATURES, NULL, 0)) < 0 ||
	    pk_test_uffd_register(g.uffd, g.addr, g.map_len) ||
	    drop_to(uid, groups, n))
		_exit(254);
	r = (struct pk_region_desc){ .host_addr = (uintptr_t)g.addr,
				     .length = g.map_len,
				     .page_size = PK_PAGE_SIZE };
	len = pk_register_encode(msgbuf, sizeof(msgbuf), &reg);
	fds[0] = g.uffd;
	fds[1] = g.memfd;
	rc = pk_test_request(sock, msgbuf, (size_t)len, fds, 2, &reply, &conn);
	return rc ? rc : reply.status;
}

static int own_vm_as(const char *sock, uid_t uid, const gid_t *groups, int n,
		     const char *name, uint32_t kind, const char *channel)
{
	int st;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int rc = child_register(sock, uid, groups, n, name, "", kind,
					channel);
		if (rc)
			_exit(100 + rc);
		_exit(act_on(sock, ACT_RECLAIM, name) == 0 &&
				      act_on(sock, ACT_STATUS, NULL) == 1
			      ? 0 : 253);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) < 250,
		      "child as uid %u registering %s: status 0x%x",
		      (unsigned)uid, name, st);
	return WEXITSTATUS(st) ? WEXITSTATUS(st) - 100 : 0;
}

START_TEST(own_vm_and_channels)
{
	struct pk_test_daemon d;
	gid_t user[] = { group_id("users") };
	char own_sock[128];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s;

	access_daemon(&d, "--swap-size 64M " ACCESS_ARGS);
	/* A user registers, reclaims and sees its own VM. */
	ck_assert_int_eq(own_vm_as(d.sock, ATTACKER_UID, user, 1, "mine",
				   PK_BALLOON_NONE, ""), 0);
	/* Root's socket as a QMP channel: the daemon would connect to it. */
	ck_assert_int_eq(own_vm_as(d.sock, ATTACKER_UID, user, 1, "qmp",
				   PK_BALLOON_QMP, d.sock), -EPERM);
	ck_assert_msg(file_count(d.log, "rejected registration: balloon "
				 "channel") == 1,
		      "want one line 'rejected registration: balloon channel' "
		      "in %s", d.log);
	ck_assert_int_eq(own_vm_as(d.sock, ATTACKER_UID, user, 1, "lv",
				   PK_BALLOON_LIBVIRT, "test:///default|test"),
			 -EPERM);
	ck_assert_msg(file_count(d.log, "rejected registration: a libvirt "
				 "balloon channel needs root") == 1,
		      "want one line about the libvirt channel in %s", d.log);
	/* Its own socket is fine. */
	snprintf(own_sock, sizeof(own_sock), "%s/own.sock", d.dir);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	strcpy(sa.sun_path, own_sock);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(s, 4), 0);
	ck_assert_int_eq(chown(own_sock, ATTACKER_UID, (gid_t)-1), 0);
	ck_assert_int_eq(own_vm_as(d.sock, ATTACKER_UID, user, 1, "lab",
				   PK_BALLOON_LAB, own_sock), 0);
	/* The user's own link to root's socket. */
	snprintf(own_sock, sizeof(own_sock), "%s/link.sock", d.dir);
	ck_assert_int_eq(symlink(d.sock, own_sock), 0);
	ck_assert_int_eq(lchown(own_sock, ATTACKER_UID, (gid_t)-1), 0);
	ck_assert_int_eq(own_vm_as(d.sock, ATTACKER_UID, user, 1, "link",
				   PK_BALLOON_QMP, own_sock), -EPERM);
	close(s);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

/* A VM registered by uid in a child that holds it until vm_drop(). */
struct held_vm {
	pid_t pid;
};

static int vm_hold_channel(struct held_vm *h, const char *sock, uid_t uid,
			   const gid_t *groups, int n, const char *name,
			   const char *domain, uint32_t kind,
			   const char *channel)
{
	int res[2], rc;

	ck_assert_int_eq(pipe2(res, O_CLOEXEC), 0);
	h->pid = fork();
	ck_assert_int_ge(h->pid, 0);
	if (h->pid == 0) {
		/* Dies with the test (SIGKILL by vm_drop, or PDEATHSIG). */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		rc = child_register(sock, uid, groups, n, name, domain, kind,
				    channel);
		if (write(res[1], &rc, sizeof(rc)) != sizeof(rc))
			_exit(1);
		for (;;)
			pause();
	}
	close(res[1]);
	ck_assert_msg(read(res[0], &rc, sizeof(rc)) == sizeof(rc),
		      "the child registering %s died", name);
	close(res[0]);
	return rc;
}

static int vm_hold(struct held_vm *h, const char *sock, uid_t uid,
		   const gid_t *groups, int n, const char *name,
		   const char *domain)
{
	return vm_hold_channel(h, sock, uid, groups, n, name, domain,
			       PK_BALLOON_NONE, "");
}

static void vm_drop(struct held_vm *h)
{
	int st;

	kill(h->pid, SIGKILL);
	ck_assert_int_eq(waitpid(h->pid, &st, 0), h->pid);
}

static void expect_domain(struct pk_test_daemon *d, const char *vm,
			  const char *want)
{
	char got[PK_PROTO_NAME_MAX];

	vm_string(d, vm, "share_domain", got, sizeof(got));
	ck_assert_msg(strcmp(got, want) == 0, "VM %s is in sharing domain "
		      "'%s', want '%s'", vm, got, want);
}

START_TEST(share_domains)
{
	struct pk_test_daemon d;
	struct held_vm a, b;
	gid_t user[] = { group_id("users") };

	/* Two users name the same domain: each gets its own. */
	access_daemon(&d, ACCESS_ARGS);
	ck_assert_int_eq(vm_hold(&a, d.sock, ATTACKER_UID, user, 1, "a1",
				 "pool"), 0);
	ck_assert_int_eq(vm_hold(&b, d.sock, OUTSIDER_UID, user, 1, "b1",
				 "pool"), 0);
	expect_domain(&d, "a1", "u65534.pool");
	expect_domain(&d, "b1", "u65532.pool");
	vm_drop(&a);
	vm_drop(&b);
	pk_test_daemon_stop_ok(&d);

	/* The admin lets both into "pool". */
	access_daemon(&d, ACCESS_ARGS " --share-domain-allow "
				      "pool:65534,pool:65532");
	ck_assert_int_eq(vm_hold(&a, d.sock, ATTACKER_UID, user, 1, "a2",
				 "pool"), 0);
	ck_assert_int_eq(vm_hold(&b, d.sock, OUTSIDER_UID, user, 1, "b2",
				 "pool"), 0);
	expect_domain(&d, "a2", "pool");
	expect_domain(&d, "b2", "pool");
	vm_drop(&a);
	vm_drop(&b);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

START_TEST(name_squat)
{
	struct pk_test_daemon d;
	struct pk_test_guest h;
	struct held_vm a;
	gid_t user[] = { group_id("users") };
	int conn;

	access_daemon(&d, ACCESS_ARGS);
	conn = hostile_register(&d, "taken", &h);
	ck_assert_int_eq(vm_hold(&a, d.sock, ATTACKER_UID, user, 1, "taken",
				 ""), -EEXIST);
	vm_drop(&a);
	/* After a restart the VM waits for its guest: still reserved. */
	ck_assert_msg(pk_test_daemon_kill(&d, SIGTERM) == 0, "%s", d.error);
	ck_assert_msg(pk_test_daemon_restart(&d, NULL) == 0, "%s", d.error);
	ck_assert_int_eq(chmod(d.dir, 0711), 0);
	ck_assert_int_eq(vm_hold(&a, d.sock, ATTACKER_UID, user, 1, "taken",
				 ""), -EEXIST);
	vm_drop(&a);
	pk_test_daemon_stop_ok(&d);
	close(conn);
	pk_test_guest_destroy(&h);
}
END_TEST

/* uid registers name (then lets it go): the register status. */
static int try_name(const char *sock, uid_t uid, const gid_t *groups, int n,
		    const char *name)
{
	struct held_vm h;
	int rc = vm_hold(&h, sock, uid, groups, n, name, "");

	vm_drop(&h);
	return rc;
}

/* The held VM's guest dies; wait for the daemon to free the VM. */
static void guest_dies(struct pk_test_daemon *d, struct held_vm *h)
{
	vm_drop(h);
	ck_assert_msg(pk_test_wait_vm_count(d->sock, 0, scaled_ms(BASE_MS)) == 0,
		      "the daemon did not free a VM whose guest died");
}

START_TEST(name_reserved)
{
	struct pk_test_daemon d;
	struct held_vm a;
	gid_t user[] = { group_id("users") }, root[] = { 0 };
	const char *line = "refused vm name web to uid 65532: reserved for "
			   "uid 65534";

	access_daemon(&d, ACCESS_ARGS);
	ck_assert_int_eq(vm_hold(&a, d.sock, ATTACKER_UID, user, 1, "web", ""),
			 0);
	guest_dies(&d, &a);
	/* Another user may not take the name while its owner may return. */
	ck_assert_int_eq(try_name(d.sock, OUTSIDER_UID, user, 1, "web"),
			 -EEXIST);
	ck_assert_msg(file_count(d.log, line) == 1, "want one line '%s' in %s",
		      line, d.log);
	/* Nor after a restart. */
	ck_assert_msg(pk_test_daemon_kill(&d, SIGTERM) == 0, "%s", d.error);
	ck_assert_msg(pk_test_daemon_restart(&d, NULL) == 0, "%s", d.error);
	ck_assert_int_eq(chmod(d.dir, 0711), 0);
	ck_assert_int_eq(try_name(d.sock, OUTSIDER_UID, user, 1, "web"),
			 -EEXIST);
	/* Its owner takes it back; root takes it over. */
	ck_assert_int_eq(vm_hold(&a, d.sock, ATTACKER_UID, user, 1, "web", ""),
			 0);
	guest_dies(&d, &a);
	ck_assert_int_eq(vm_hold(&a, d.sock, 0, root, 1, "web", ""), 0);
	guest_dies(&d, &a);
	ck_assert_msg(file_has(d.log, "vm name web, reserved for uid 65534, "
				      "taken over by uid 0"),
		      "no log line about root taking the name over in %s",
		      d.log);
	/* Now root's: the user may not have it back. */
	ck_assert_int_eq(try_name(d.sock, ATTACKER_UID, user, 1, "web"),
			 -EEXIST);
	pk_test_daemon_stop_ok(&d);

	/* A reservation ends after --name-reserve. */
	access_daemon(&d, ACCESS_ARGS " --name-reserve 1");
	ck_assert_int_eq(vm_hold(&a, d.sock, ATTACKER_UID, user, 1, "old", ""),
			 0);
	guest_dies(&d, &a);
	ck_assert_int_eq(vm_hold(&a, d.sock, ATTACKER_UID, user, 1, "web", ""),
			 0);
	guest_dies(&d, &a);
	WAIT_FOR(try_name(d.sock, OUTSIDER_UID, user, 1, "web") == 0,
		 BASE_MS + 1000, 100,
		 "another user to get name web once its 1 s reservation ended");
	/* "old" (hex 6f6c64), expired too, is swept at the next start. */
	char resv[sizeof(d.run_dir) + 32];
	snprintf(resv, sizeof(resv), "%s/name-6f6c64", d.run_dir);
	ck_assert_msg(access(resv, F_OK) == 0, "no reservation file %s", resv);
	ck_assert_msg(pk_test_daemon_kill(&d, SIGTERM) == 0, "%s", d.error);
	ck_assert_msg(pk_test_daemon_restart(&d, NULL) == 0, "%s", d.error);
	ck_assert_msg(access(resv, F_OK) < 0 && errno == ENOENT,
		      "the expired reservation %s is still there after a "
		      "restart", resv);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

START_TEST(status_sharing)
{
	struct pk_test_daemon d;
	struct held_vm a, r;
	gid_t user[] = { group_id("users") }, root[] = { 0 };
	gid_t admin[] = { group_id("users"), group_id("nogroup") };

	access_daemon(&d, ACCESS_ARGS);
	ck_assert_int_eq(vm_hold(&r, d.sock, 0, root, 1, "rootvm", "secret"), 0);
	ck_assert_int_eq(vm_hold(&a, d.sock, ATTACKER_UID, user, 1, "a1",
				 "pool"), 0);
	ck_assert_int_eq(act_as(d.sock, ATTACKER_UID, user, 1, ACT_STATUS_HAS,
				"u65534.pool"), 1);
	ck_assert_msg(act_as(d.sock, ATTACKER_UID, user, 1, ACT_STATUS_HAS,
			     "secret") == 0,
		      "a user's STATUS names root's sharing domain 'secret'");
	ck_assert_int_eq(act_as(d.sock, ADMIN_UID, admin, 2, ACT_STATUS_HAS,
				"secret"), 1);
	/* After a restart root's VM waits for its guest: not the user's. */
	ck_assert_msg(pk_test_daemon_kill(&d, SIGTERM) == 0, "%s", d.error);
	ck_assert_msg(pk_test_daemon_restart(&d, NULL) == 0, "%s", d.error);
	ck_assert_int_eq(chmod(d.dir, 0711), 0);
	ck_assert_int_eq(act_as(d.sock, ADMIN_UID, admin, 2, ACT_STATUS_HAS,
				"rootvm"), 1);
	ck_assert_msg(act_as(d.sock, ATTACKER_UID, user, 1, ACT_STATUS_HAS,
			     "rootvm") == 0,
		      "a user's STATUS lists root's VM waiting for its guest");
	vm_drop(&a);
	vm_drop(&r);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

/* A UNIX stream socket bound at path; listening unless !listening. */
static int bound_socket(const char *path, int listening)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(s, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ck_assert_msg(bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0,
		      "bind %s: %s", path, strerror(errno));
	if (listening)
		ck_assert_int_eq(listen(s, 4), 0);
	return s;
}

/* Does the VM's balloon_why (kept in why for the messages) hold what? */
static char why[384];
static int why_has(struct pk_test_daemon *d, const char *vm, const char *what)
{
	vm_string(d, vm, "balloon_why", why, sizeof(why));
	return strstr(why, what) != NULL;
}

/* Backoff of the bridge's reconnects: 1 s doubling (balloon-bridge/qmp.c). */
#define RECONNECT_MS 8000

START_TEST(balloon_swap)
{
	struct pk_test_daemon d;
	struct held_vm a;
	gid_t user[] = { group_id("users") };
	char udir[160], chan[192], root_sock[160];
	int root_l, dead, c;

	access_daemon(&d, "--swap-size 64M " ACCESS_ARGS);
	/* Root's listener: the daemon must never connect to it. */
	snprintf(root_sock, sizeof(root_sock), "%s/root.sock", d.dir);
	root_l = bound_socket(root_sock, 1);
	/* The user's directory and its socket, nothing listening yet. */
	snprintf(udir, sizeof(udir), "%s/u", d.dir);
	ck_assert_int_eq(mkdir(udir, 0755), 0);
	ck_assert_int_eq(chown(udir, ATTACKER_UID, (gid_t)-1), 0);
	snprintf(chan, sizeof(chan), "%s/qmp.sock", udir);
	dead = bound_socket(chan, 0);
	ck_assert_int_eq(chown(chan, ATTACKER_UID, (gid_t)-1), 0);
	close(dead);
	ck_assert_int_eq(vm_hold_channel(&a, d.sock, ATTACKER_UID, user, 1,
					 "bln", "", PK_BALLOON_QMP, chan), 0);
	WAIT_FOR(why_has(&d, "bln", "refused"), BASE_MS, 20,
		 "the bridge's first connect to be refused (nothing listens); "
		 "balloon_why: %.300s", why);

	/* Swap 1: a symbolic link to root's socket. */
	ck_assert_int_eq(unlink(chan), 0);
	ck_assert_int_eq(symlink(root_sock, chan), 0);
	ck_assert_int_eq(lchown(chan, ATTACKER_UID, (gid_t)-1), 0);
	WAIT_FOR(why_has(&d, "bln", "a symbolic link"), BASE_MS + RECONNECT_MS,
		 50, "the bridge to refuse the link at its reconnect; "
		 "balloon_why: %.300s", why);
	c = accept4(root_l, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_msg(c < 0 && errno == EAGAIN,
		      "the daemon connected to root's socket through the "
		      "user's symbolic link");

	/* Swap 2: root's socket itself, moved to the user's path. */
	ck_assert_int_eq(unlink(chan), 0);
	ck_assert_int_eq(rename(root_sock, chan), 0);
	WAIT_FOR(why_has(&d, "bln", "a socket of uid 0, not a socket of uid "
			 "65534"), BASE_MS + 2 * RECONNECT_MS, 50,
		 "the bridge to refuse root's socket at its reconnect; "
		 "balloon_why: %.300s", why);
	c = accept4(root_l, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_msg(c < 0 && errno == EAGAIN,
		      "the daemon connected to root's socket swapped in at the "
		      "user's path");
	close(root_l);
	vm_drop(&a);
	pk_test_daemon_stop_ok(&d);
}
END_TEST

static Suite *hostile_suite(void)
{
	Suite *s = suite_create("hostile");
	TCase *tc = tcase_create("loop");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, uffd_blocking);
	tcase_add_test(tc, recvmsg_reset);
	tcase_add_test(tc, ctrunc);
	tcase_add_test(tc, accept_emfile);
	suite_add_tcase(s, tc);
	tc = tcase_create("access");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, socket_mode);
	tcase_add_test(tc, foreign_vm);
	tcase_add_test(tc, own_vm_and_channels);
	tcase_add_test(tc, share_domains);
	tcase_add_test(tc, name_squat);
	tcase_add_test(tc, name_reserved);
	tcase_add_test(tc, status_sharing);
	tcase_add_test(tc, balloon_swap);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(hostile_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
