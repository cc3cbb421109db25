/*
 * test_validation.c - the daemon's registration checks, end to end.
 *
 * Each test starts a private, real pagekeeperd (checked fixture: the
 * daemon is a child of the forked test process and is stopped by pid in
 * the teardown, which also fails the test unless the daemon exits 0 with
 * no sanitizer report; the fixture's cleaner stops it when an assertion
 * ends the test first),
 * sends one crafted REGISTER over a fresh SOCK_SEQPACKET connection with
 * real fds (userfaultfd, memfd) as SCM_RIGHTS, and asserts:
 *   - the reply type, the negative errno and a reason substring unique to
 *     the rule that should fire;
 *   - the daemon closed every fd it was sent (its /proc/PID/fd count goes
 *     back to where it was);
 *   - the daemon still serves: STATUS answers with the expected VM count.
 *
 * Why: the pure rules are unit-tested in test_protocol.c; this proves the
 * socket layer applies them, and covers the checks that need real fds and
 * the registry (uffd identity and features, tmpfs RAM file and its size,
 * the peer's mappings, fd count, duplicate names).  A client must never be
 * able to crash the daemon, leak its fds, or make it manage memory the
 * client does not own.  Two positive tests (raw and client library) make
 * sure the baseline messages are valid, so each rejection is for the one
 * thing the test broke.
 */
#include "engine/client/pagekeeper-client.h"
#include "engine/protocol.h"
#include "engine/uffd_compat.h"
#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <linux/magic.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#define PG 4096ULL
#define NPAGES 16
#define LEN (NPAGES * PG)

static struct pk_test_daemon D;
static int base_fds; /* the daemon's fd count when idle */

/* Scratch for messages, large enough for the oversize test. */
static uint64_t msgbuf[(2 * PK_PROTO_MAX_MSG) / sizeof(uint64_t)];
#define MSG ((struct pk_register_msg *)msgbuf)

static void setup(void)
{
	int rc = pk_test_daemon_start(&D, NULL);

	ck_assert_msg(rc == 0, "cannot start the daemon: %s", D.error);
	base_fds = pk_test_daemon_settled_fd_count(&D);
	ck_assert_msg(base_fds > 0, "cannot read /proc/%d/fd: %s", (int)D.pid,
		      strerror(-base_fds));
}

/* Every test ends here: the daemon must exit 0 on SIGTERM, log clean. */
static void teardown(void)
{
	pk_test_daemon_stop_ok(&D);
}

/*
 * Deadlines: closing a connection's fds, or freeing a VM whose client
 * went, takes the daemon one pass of its event loop (well under 10 ms);
 * DETACH_MS is 200 times that, and scaled for slow builds.
 */
#define DETACH_MS 2000
#define DETACH_WAIT ((int)(DETACH_MS * pk_test_time_scale()))

/* ---- guests ---- */

static void guest(struct pk_test_guest *g, size_t map_len, size_t file_len)
{
	int rc = pk_test_guest_create(g, map_len, file_len);
	ck_assert_msg(rc == 0, "memfd guest: %s", strerror(-rc));
}

/* A guest with its own uffd (UFFDIO_API(features), whole mapping registered). */
static void guest_uffd(struct pk_test_guest *g, size_t map_len, size_t file_len,
		       uint64_t features)
{
	char err[256] = "";
	int rc;

	guest(g, map_len, file_len);
	g->uffd = pk_test_uffd_open(features, err, sizeof(err));
	ck_assert_msg(g->uffd >= 0, "userfaultfd: %s", err);
	rc = pk_test_uffd_register(g->uffd, g->addr, g->map_len);
	ck_assert_msg(rc == 0,
		      "UFFDIO_REGISTER (MISSING|WP) of a memfd mapping failed: "
		      "%s; the kernel lacks shmem userfaultfd support",
		      strerror(-rc));
}

/* ---- messages ---- */

static struct pk_region_desc region(const void *addr, uint64_t len,
				    uint64_t off)
{
	return (struct pk_region_desc){ .host_addr = (uint64_t)(uintptr_t)addr,
					.length = len,
					.file_offset = off,
					.page_size = PK_PAGE_SIZE };
}

static size_t build(const char *name, uint32_t flags, uint32_t n,
		    const struct pk_region_desc *r)
{
	struct pk_registration reg = { .vm_name = name, .share_domain = "",
				       .balloon_channel = "", .flags = flags,
				       .n_regions = n, .regions = r };
	int len;

	memset(msgbuf, 0, sizeof(msgbuf));
	len = pk_register_encode(msgbuf, sizeof(msgbuf), &reg);
	ck_assert_int_gt(len, 0);
	return (size_t)len;
}

static size_t build1(const char *name, const void *addr, uint64_t len,
		     uint64_t off)
{
	struct pk_region_desc r = region(addr, len, off);
	return build(name, 0, 1, &r);
}

/* ---- assertions ---- */

static void assert_serving(int want_vms)
{
	char *json = NULL;
	int rc, n;

	ck_assert_msg(pk_test_daemon_alive(&D), "daemon died: %s", D.error);
	rc = pk_test_status_json(D.sock, &json);
	ck_assert_msg(rc == 0, "STATUS failed: %s (daemon alive: %d)",
		      strerror(-rc), pk_test_daemon_alive(&D));
	if (want_vms == 0)
		ck_assert_msg(strstr(json, "\"vms\":[]"),
			      "status should list no VMs: %s", json);
	free(json);
	n = pk_test_vm_count(D.sock);
	ck_assert_msg(n == want_vms, "status lists %d VMs, want %d", n, want_vms);
}

/*
 * Send one request on a fresh connection and check the rejection; then
 * check the daemon dropped every fd and still serves, with no VM.
 */
static void expect_rejected(const char *what, const void *buf, size_t len,
			    const int *fds, int n_fds, uint16_t type, int err,
			    const char *substr)
{
	struct pk_reply_msg r;
	int conn, rc, n;

	rc = pk_test_request(D.sock, buf, len, fds, n_fds, &r, &conn);
	ck_assert_msg(rc == 0, "%s: no valid reply: %s (daemon alive: %d %s)",
		      what, strerror(-rc), pk_test_daemon_alive(&D), D.error);
	ck_assert_msg(r.hdr.type == type, "%s: reply type %u, want %u (%s)",
		      what, r.hdr.type, type, r.reason);
	ck_assert_msg(r.status == err, "%s: status %d (%s), want %d (%s); reason: %s",
		      what, r.status, strerror(-r.status), err, strerror(-err),
		      r.reason);
	ck_assert_msg(strstr(r.reason, substr), "%s: reason '%s' lacks '%s'",
		      what, r.reason, substr);
	ck_assert_uint_eq(r.vm_id, 0);
	close(conn);
	n = pk_test_daemon_wait_fd_count(&D, base_fds, DETACH_WAIT);
	ck_assert_msg(n == base_fds,
		      "%s: the daemon holds %d fds %d ms after the request, %d "
		      "before: it leaked fds it was sent", what, n, DETACH_WAIT,
		      base_fds);
	assert_serving(0);
}

/* ---- the rules ---- */

START_TEST(test_truncated_message)
{
	struct pk_test_guest g;
	size_t len;

	guest_uffd(&g, LEN, LEN, PK_UFFD_FEATURES);
	len = build1("trunc", g.addr, LEN, 0);
	int fds[2] = { g.uffd, g.memfd };
	/* Shorter than a header. */
	expect_rejected("10-byte message", msgbuf, 10, fds, 2, PK_MSG_ERROR_REPLY,
			-EBADMSG, "truncated message: 10 bytes");
	/* Header says the whole message, part of it arrives. */
	expect_rejected("cut REGISTER", msgbuf, len - 64, fds, 2,
			PK_MSG_ERROR_REPLY, -EBADMSG,
			"truncated message: header says");
	pk_test_guest_destroy(&g);
}
END_TEST

START_TEST(test_oversized_message)
{
	struct pk_test_guest g;
	size_t len = PK_PROTO_MAX_MSG + 4096;

	guest_uffd(&g, LEN, LEN, PK_UFFD_FEATURES);
	build1("big", g.addr, LEN, 0);
	MSG->hdr.length = (uint32_t)len;
	int fds[2] = { g.uffd, g.memfd };
	expect_rejected("72 KiB message", msgbuf, len, fds, 2, PK_MSG_ERROR_REPLY,
			-EMSGSIZE, "oversized message");
	pk_test_guest_destroy(&g);
}
END_TEST

START_TEST(test_unknown_version)
{
	struct pk_test_guest g;
	size_t len;

	guest_uffd(&g, LEN, LEN, PK_UFFD_FEATURES);
	len = build1("ver", g.addr, LEN, 0);
	MSG->hdr.version = PK_PROTO_VERSION + 1;
	int fds[2] = { g.uffd, g.memfd };
	expect_rejected("version 2", msgbuf, len, fds, 2, PK_MSG_ERROR_REPLY,
			-EPROTONOSUPPORT, "unsupported protocol version 2");
	pk_test_guest_destroy(&g);
}
END_TEST

START_TEST(test_fd_not_uffd)
{
	struct pk_test_guest g;
	int p[2], exe;
	size_t len;

	guest_uffd(&g, LEN, LEN, PK_UFFD_FEATURES);
	len = build1("notuffd", g.addr, LEN, 0);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	exe = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(exe, 0);

	int pipe_fds[2] = { p[0], g.memfd };
	expect_rejected("pipe as uffd", msgbuf, len, pipe_fds, 2,
			PK_MSG_REGISTER_REPLY, -ENOTTY,
			"the first fd is not a userfaultfd (it is pipe:");
	int file_fds[2] = { exe, g.memfd };
	expect_rejected("regular file as uffd", msgbuf, len, file_fds, 2,
			PK_MSG_REGISTER_REPLY, -ENOTTY,
			"the first fd is not a userfaultfd (it is /");
	int swapped[2] = { g.memfd, g.uffd }; /* RAM fd first */
	expect_rejected("fds swapped", msgbuf, len, swapped, 2,
			PK_MSG_REGISTER_REPLY, -ENOTTY,
			"the first fd is not a userfaultfd (it is /memfd:");
	close(p[0]);
	close(p[1]);
	close(exe);
	pk_test_guest_destroy(&g);
}
END_TEST

START_TEST(test_uffd_without_features)
{
	struct pk_test_guest g;
	size_t len;
	int raw;

	/* A real uffd, API handshake with no features, range registered. */
	guest_uffd(&g, LEN, LEN, 0);
	len = build1("nofeat", g.addr, LEN, 0);
	int fds[2] = { g.uffd, g.memfd };
	expect_rejected("uffd with features 0", msgbuf, len, fds, 2,
			PK_MSG_REGISTER_REPLY, -EINVAL,
			"userfaultfd lacks features");
	/* Only some of the features. */
	pk_test_guest_destroy(&g);
	guest_uffd(&g, LEN, LEN, UFFD_FEATURE_MISSING_SHMEM);
	len = build1("somefeat", g.addr, LEN, 0);
	int fds2[2] = { g.uffd, g.memfd };
	expect_rejected("uffd with MISSING_SHMEM only", msgbuf, len, fds2, 2,
			PK_MSG_REGISTER_REPLY, -EINVAL,
			"userfaultfd lacks features");
	pk_test_guest_destroy(&g);
	/* No UFFDIO_API handshake at all. */
	guest(&g, LEN, LEN);
	raw = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	ck_assert_msg(raw >= 0, "userfaultfd: %s", strerror(errno));
	len = build1("noapi", g.addr, LEN, 0);
	int fds3[2] = { raw, g.memfd };
	expect_rejected("uffd without UFFDIO_API", msgbuf, len, fds3, 2,
			PK_MSG_REGISTER_REPLY, -EINVAL,
			"userfaultfd lacks features");
	close(raw);
	pk_test_guest_destroy(&g);
}
END_TEST

START_TEST(test_overlapping_regions)
{
	struct pk_test_guest g;
	struct pk_region_desc r[2];
	char *a;
	size_t len;

	guest_uffd(&g, LEN, LEN, PK_UFFD_FEATURES);
	a = g.addr;
	int fds[2] = { g.uffd, g.memfd };
	r[0] = region(a, 8 * PG, 0);
	r[1] = region(a + 4 * PG, 8 * PG, 8 * PG);
	len = build("overlap", 0, 2, r);
	expect_rejected("overlapping addresses", msgbuf, len, fds, 2,
			PK_MSG_REGISTER_REPLY, -EINVAL,
			"region 1 overlaps another region's addresses");
	r[0] = region(a, 8 * PG, 0);
	r[1] = region(a + 8 * PG, 8 * PG, 4 * PG);
	len = build("overlap", 0, 2, r);
	expect_rejected("overlapping file ranges", msgbuf, len, fds, 2,
			PK_MSG_REGISTER_REPLY, -EINVAL,
			"region 1 overlaps another region's file range");
	pk_test_guest_destroy(&g);
}
END_TEST

START_TEST(test_unaligned_regions)
{
	struct pk_test_guest g;
	char *a;
	size_t len;

	guest_uffd(&g, LEN, LEN, PK_UFFD_FEATURES);
	a = g.addr;
	int fds[2] = { g.uffd, g.memfd };
	len = build1("unal", a + 2048, 8 * PG, 0);
	expect_rejected("unaligned address", msgbuf, len, fds, 2,
			PK_MSG_REGISTER_REPLY, -EINVAL, "region 0: unaligned");
	len = build1("unal", a, 8 * PG + 100, 0);
	expect_rejected("unaligned length", msgbuf, len, fds, 2,
			PK_MSG_REGISTER_REPLY, -EINVAL, "region 0: unaligned");
	len = build1("unal", a, 8 * PG, 100);
	expect_rejected("unaligned offset", msgbuf, len, fds, 2,
			PK_MSG_REGISTER_REPLY, -EINVAL, "region 0: unaligned");
	pk_test_guest_destroy(&g);
}
END_TEST

START_TEST(test_region_beyond_file)
{
	struct pk_test_guest g;
	char *a;
	size_t len;

	/* 16 pages mapped, but the memfd holds only 8. */
	guest_uffd(&g, LEN, LEN / 2, PK_UFFD_FEATURES);
	a = g.addr;
	int fds[2] = { g.uffd, g.memfd };
	len = build1("short", a, LEN, 0);
	expect_rejected("region longer than the file", msgbuf, len, fds, 2,
			PK_MSG_REGISTER_REPLY, -EINVAL,
			"region 0 ends at file offset 65536 beyond the RAM file's "
			"32768 bytes");
	len = build1("short", a + 4 * PG, 8 * PG, 4 * PG);
	expect_rejected("region offset past the file end", msgbuf, len, fds, 2,
			PK_MSG_REGISTER_REPLY, -EINVAL,
			"beyond the RAM file's 32768 bytes");
	pk_test_guest_destroy(&g);
}
END_TEST

START_TEST(test_zero_size)
{
	struct pk_test_guest g;
	size_t len;

	guest_uffd(&g, LEN, LEN, PK_UFFD_FEATURES);
	len = build1("zero", g.addr, 0, 0);
	int fds[2] = { g.uffd, g.memfd };
	expect_rejected("zero-length region", msgbuf, len, fds, 2,
			PK_MSG_REGISTER_REPLY, -EINVAL, "region 0: zero length");
	pk_test_guest_destroy(&g);
}
END_TEST

START_TEST(test_absurd_size)
{
	struct pk_test_guest g;
	size_t len;

	guest_uffd(&g, LEN, LEN, PK_UFFD_FEATURES);
	len = build1("absurd", g.addr, 1ULL << 43, 0);
	int fds[2] = { g.uffd, g.memfd };
	expect_rejected("8 TiB region", msgbuf, len, fds, 2,
			PK_MSG_REGISTER_REPLY, -E2BIG, "region 0: absurd length");
	pk_test_guest_destroy(&g);
}
END_TEST

START_TEST(test_region_not_mapped)
{
	struct pk_test_guest g, other;
	char want[128], *hole, *half, *priv;
	size_t len;

	guest_uffd(&g, LEN, LEN, PK_UFFD_FEATURES);
	guest(&other, LEN, LEN);
	int fds[2] = { g.uffd, g.memfd };
	snprintf(want, sizeof(want), "is not mapped in pid %d as a shared "
		 "mapping of the RAM file", (int)getpid());

	/* An address range with nothing mapped. */
	hole = mmap(NULL, LEN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(hole, MAP_FAILED);
	ck_assert_int_eq(munmap(hole, LEN), 0);
	len = build1("nomap", hole, LEN, 0);
	expect_rejected("unmapped range", msgbuf, len, fds, 2,
			PK_MSG_REGISTER_REPLY, -EINVAL, want);

	/* Only the first half mapped (from the right file). */
	half = mmap(NULL, 2 * LEN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(half, MAP_FAILED);
	ck_assert_ptr_ne(mmap(half, LEN / 2, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_FIXED, g.memfd, 0), MAP_FAILED);
	ck_assert_int_eq(munmap(half + LEN / 2, 2 * LEN - LEN / 2), 0);
	len = build1("nomap", half, LEN, 0);
	expect_rejected("half-mapped range", msgbuf, len, fds, 2,
			PK_MSG_REGISTER_REPLY, -EINVAL, want);

	/* Mapped, but from another memfd. */
	len = build1("nomap", other.addr, LEN, 0);
	expect_rejected("another file's mapping", msgbuf, len, fds, 2,
			PK_MSG_REGISTER_REPLY, -EINVAL, want);

	/* The right file at another offset. */
	len = build1("nomap", g.addr, 8 * PG, 8 * PG);
	expect_rejected("wrong file offset", msgbuf, len, fds, 2,
			PK_MSG_REGISTER_REPLY, -EINVAL, want);

	/* The right file, mapped private (copy-on-write, not shared). */
	priv = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, g.memfd, 0);
	ck_assert_ptr_ne(priv, MAP_FAILED);
	len = build1("nomap", priv, LEN, 0);
	expect_rejected("private mapping of the file", msgbuf, len, fds, 2,
			PK_MSG_REGISTER_REPLY, -EINVAL, want);

	munmap(priv, LEN);
	munmap(half, LEN / 2);
	pk_test_guest_destroy(&other);
	pk_test_guest_destroy(&g);
}
END_TEST

static int attach(struct pk_test_guest *g, const char *name,
		  struct pk_client **c, char *err, size_t err_len)
{
	struct pk_client_region r = { .addr = g->addr, .length = g->map_len,
				      .file_offset = 0 };
	struct pk_client_opts o = { .socket_path = D.sock, .vm_name = name,
				    .ram_fd = g->memfd, .regions = &r,
				    .n_regions = 1 };
	return pk_client_attach(&o, c, err, err_len);
}

START_TEST(test_duplicate_name)
{
	struct pk_test_guest a, b;
	struct pk_client *ca = NULL, *cb = NULL;
	char err[PK_PROTO_REASON_MAX + 64] = "";
	int rc, n;

	guest(&a, LEN, LEN);
	guest(&b, LEN, LEN); /* a separate mapping: one uffd per range */
	rc = attach(&a, "dup-vm", &ca, err, sizeof(err));
	ck_assert_msg(rc == 0, "first attach failed: %d %s", rc, err);
	assert_serving(1);

	err[0] = '\0';
	rc = attach(&b, "dup-vm", &cb, err, sizeof(err));
	ck_assert_msg(rc == -EEXIST, "second attach: %d (%s), want -EEXIST", rc,
		      err);
	ck_assert_ptr_null(cb);
	ck_assert_msg(strstr(err, "'dup-vm'") && strstr(err, "already registered"),
		      "reason does not name the VM: %s", err);
	assert_serving(1);

	/* The same name is free again once the first VM detaches. */
	pk_client_detach(ca);
	n = pk_test_wait_vm_count(D.sock, 0, DETACH_WAIT);
	ck_assert_msg(n == 0, "%d VMs %d ms after detach", n, DETACH_WAIT);
	rc = attach(&b, "dup-vm", &cb, err, sizeof(err));
	ck_assert_msg(rc == 0, "attach after detach failed: %d %s", rc, err);
	assert_serving(1);
	pk_client_detach(cb);
	n = pk_test_wait_vm_count(D.sock, 0, DETACH_WAIT);
	ck_assert_msg(n == 0, "%d VMs %d ms after detach", n, DETACH_WAIT);
	pk_test_guest_destroy(&a);
	pk_test_guest_destroy(&b);
}
END_TEST

START_TEST(test_wrong_fd_count)
{
	struct pk_test_guest g;
	struct pk_region_desc r;
	void *anon;
	int p[2];
	size_t len;

	guest_uffd(&g, LEN, LEN, PK_UFFD_FEATURES);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	len = build1("fds", g.addr, LEN, 0);

	expect_rejected("no fds", msgbuf, len, NULL, 0, PK_MSG_REGISTER_REPLY,
			-EINVAL, "register carries 0 fds; expected 2");
	int one[1] = { g.uffd };
	expect_rejected("uffd only", msgbuf, len, one, 1, PK_MSG_REGISTER_REPLY,
			-EINVAL, "register carries 1 fds; expected 2");
	int three[3] = { g.uffd, g.memfd, p[0] };
	expect_rejected("three fds", msgbuf, len, three, 3, PK_MSG_REGISTER_REPLY,
			-EINVAL, "register carries 3 fds; expected 2");
	int five[5] = { g.uffd, g.memfd, p[0], p[1], g.memfd };
	expect_rejected("five fds", msgbuf, len, five, 5, PK_MSG_ERROR_REPLY,
			-EMSGSIZE, "too many fds attached");

	/* Anonymous RAM takes the uffd alone. */
	anon = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(anon, MAP_FAILED);
	r = region(anon, LEN, 0);
	len = build("fds", PK_REG_ANON, 1, &r);
	int two[2] = { g.uffd, g.memfd };
	expect_rejected("anonymous RAM with a RAM fd", msgbuf, len, two, 2,
			PK_MSG_REGISTER_REPLY, -EINVAL,
			"register carries 2 fds; expected 1 (uffd)");
	munmap(anon, LEN);
	close(p[0]);
	close(p[1]);
	pk_test_guest_destroy(&g);
}
END_TEST

/* A regular file on a disk filesystem: the build dir (meson sets it). */
static int non_tmpfs_file(char *path, size_t path_len)
{
	const char *dir = getenv("PK_TEST_SCRATCH");
	char exe[PATH_MAX];
	struct statfs sfs;
	int fd;

	if (!dir || !*dir) {
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		ck_assert_int_gt(n, 0);
		exe[n] = '\0';
		dir = dirname(exe);
	}
	snprintf(path, path_len, "%s/pk-test-ram-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	ck_assert_msg(fd >= 0, "mkstemp %s: %s", path, strerror(errno));
	ck_assert_int_eq(ftruncate(fd, (off_t)LEN), 0);
	ck_assert_int_eq(fstatfs(fd, &sfs), 0);
	if (sfs.f_type == TMPFS_MAGIC) {
		unlink(path);
		ck_abort_msg("%s is on tmpfs; set PK_TEST_SCRATCH to a directory "
			     "on a disk filesystem", dir);
	}
	return fd;
}

START_TEST(test_ram_fd_not_tmpfs)
{
	struct pk_test_guest g;
	char path[PATH_MAX];
	int file, p[2];
	size_t len;

	guest_uffd(&g, LEN, LEN, PK_UFFD_FEATURES);
	file = non_tmpfs_file(path, sizeof(path));
	unlink(path); /* the fd keeps it alive; nothing left behind */
	len = build1("disk", g.addr, LEN, 0);
	int fds[2] = { g.uffd, file };
	expect_rejected("RAM fd on a disk filesystem", msgbuf, len, fds, 2,
			PK_MSG_REGISTER_REPLY, -EINVAL,
			"RAM fd is not a memfd or /dev/shm file");
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	int pfds[2] = { g.uffd, p[0] };
	expect_rejected("pipe as RAM fd", msgbuf, len, pfds, 2,
			PK_MSG_REGISTER_REPLY, -EINVAL,
			"RAM fd is not a memfd or /dev/shm file");
	close(p[0]);
	close(p[1]);
	close(file);
	pk_test_guest_destroy(&g);
}
END_TEST

/* The raw baseline is valid: the rejections above are for what was broken. */
START_TEST(test_valid_raw_register)
{
	struct pk_test_guest g;
	struct pk_reply_msg r;
	char *json = NULL;
	size_t len;
	int conn, rc, n;

	guest_uffd(&g, LEN, LEN, PK_UFFD_FEATURES);
	len = build1("raw-ok", g.addr, LEN, 0);
	int fds[2] = { g.uffd, g.memfd };
	rc = pk_test_request(D.sock, msgbuf, len, fds, 2, &r, &conn);
	ck_assert_msg(rc == 0, "no reply: %s", strerror(-rc));
	ck_assert_uint_eq(r.hdr.type, PK_MSG_REGISTER_REPLY);
	ck_assert_msg(r.status == 0, "valid registration refused: %d %s",
		      r.status, r.reason);
	ck_assert_uint_ge(r.vm_id, 1);
	ck_assert_int_eq(pk_test_status_json(D.sock, &json), 0);
	ck_assert_msg(strstr(json, "\"name\":\"raw-ok\""), "%s", json);
	free(json);
	assert_serving(1);
	/* Closing the connection detaches; the daemon frees every fd. */
	close(conn);
	n = pk_test_wait_vm_count(D.sock, 0, DETACH_WAIT);
	ck_assert_msg(n == 0, "%d VMs %d ms after the connection closed", n,
		      DETACH_WAIT);
	n = pk_test_daemon_wait_fd_count(&D, base_fds, DETACH_WAIT);
	ck_assert_msg(n == base_fds, "daemon holds %d fds %d ms after detach, "
		      "%d before", n, DETACH_WAIT, base_fds);
	pk_test_guest_destroy(&g);
}
END_TEST

START_TEST(test_valid_attach_detach)
{
	struct pk_test_guest g;
	struct pk_client *c = NULL;
	char err[PK_PROTO_REASON_MAX + 64] = "", *json = NULL;
	volatile unsigned char *mem;
	int rc, n;

	guest(&g, LEN, LEN);
	rc = attach(&g, "attach-ok", &c, err, sizeof(err));
	ck_assert_msg(rc == 0, "attach failed: %d %s", rc, err);
	ck_assert_uint_ge(pk_client_vm_id(c), 1);
	ck_assert_uint_eq(pk_client_generation(c), 1);
	ck_assert_int_eq(pk_test_status_json(D.sock, &json), 0);
	ck_assert_msg(strstr(json, "\"name\":\"attach-ok\""), "%s", json);
	free(json);
	assert_serving(1);

	/* The daemon now resolves this process's faults: touch two pages. */
	mem = g.addr;
	ck_assert_uint_eq(mem[5 * PG], 0);
	mem[9 * PG + 1] = 0xab;
	ck_assert_uint_eq(mem[9 * PG + 1], 0xab);

	pk_client_detach(c);
	n = pk_test_wait_vm_count(D.sock, 0, DETACH_WAIT);
	ck_assert_msg(n == 0, "%d VMs %d ms after pk_client_detach", n,
		      DETACH_WAIT);
	assert_serving(0);
	/* Unmanaged again: plain memory. */
	mem[0] = 1;
	ck_assert_uint_eq(mem[9 * PG + 1], 0xab);
	pk_test_guest_destroy(&g);
}
END_TEST

/* ---- a registration's own settings (PK_REG_SETTINGS, issue 15) ---- */

/* The daemon for these: its socket's group "users", so that a child
 * dropped to NOBODY_UID in that group connects (test_hostile.c). */
#define NOBODY_UID 65534
static void setup_users(void)
{
	int rc = pk_test_daemon_start(&D, "--socket-group users");

	ck_assert_msg(rc == 0, "cannot start the daemon: %s", D.error);
	ck_assert_int_eq(chmod(D.dir, 0711), 0);
}

/*
 * Root (an admin) registers with every setting: status shows them, and
 * a max above the VM's size is no limit (clamped: max_mib is its size).
 */
START_TEST(test_settings_from_root)
{
	struct pk_test_guest g;
	struct pk_client *c = NULL;
	struct pk_client_region r;
	struct pk_client_opts o;
	struct pk_client_settings set = { .shares = 2500, .min_bytes = 8 * PG,
					  .max_bytes = 12 * PG,
					  .no_balloon = 1 };
	char err[PK_PROTO_REASON_MAX + 64] = "";
	int rc;

	guest(&g, LEN, LEN);
	r = (struct pk_client_region){ .addr = g.addr, .length = g.map_len };
	o = (struct pk_client_opts){ .socket_path = D.sock, .vm_name = "set-a",
				     .ram_fd = g.memfd, .regions = &r,
				     .n_regions = 1 };
	rc = pk_client_attach_settings(&o, &set, &c, err, sizeof(err));
	ck_assert_msg(rc == 0, "attach with settings: %d %s", rc, err);
	ck_assert_msg(vm_field(&D, "set-a", "shares") == 2500 &&
			      vm_field(&D, "set-a", "min_mib") == 8 * PG / 1048576.0 &&
			      vm_field(&D, "set-a", "max_mib") == 12 * PG / 1048576.0 &&
			      vm_field(&D, "set-a", "balloon_opt_out") == 1,
		      "set-a: shares %.0f, min %.4f MiB, max %.4f MiB, opt-out "
		      "%.0f: want the registration's 2500, 0.0312, 0.0469, 1",
		      vm_field(&D, "set-a", "shares"),
		      vm_field(&D, "set-a", "min_mib"),
		      vm_field(&D, "set-a", "max_mib"),
		      vm_field(&D, "set-a", "balloon_opt_out"));
	pk_client_detach(c);
	ck_assert_int_eq(pk_test_wait_vm_count(D.sock, 0, DETACH_WAIT), 0);

	set = (struct pk_client_settings){ .max_bytes = 2 * LEN };
	rc = pk_client_attach_settings(&o, &set, &c, err, sizeof(err));
	ck_assert_msg(rc == 0, "attach with a max above the size: %d %s", rc,
		      err);
	ck_assert_msg(vm_field(&D, "set-a", "max_mib") == LEN / 1048576.0 &&
			      vm_field(&D, "set-a", "shares") == 1000,
		      "a max of twice the size: max_mib %.4f, shares %.0f; want "
		      "the VM's size %.4f (clamped) and the default 1000",
		      vm_field(&D, "set-a", "max_mib"),
		      vm_field(&D, "set-a", "shares"), LEN / 1048576.0);
	pk_client_detach(c);
	ck_assert_int_eq(pk_test_wait_vm_count(D.sock, 0, DETACH_WAIT), 0);
	pk_test_guest_destroy(&g);
}
END_TEST

/* In a child dropped to NOBODY_UID (group users): register "set-u" with
 * settings s (the guest is made as root: no unprivileged userfaultfd
 * here); returns the reply's status and reason.  When that works and
 * set is given, the child then sends it for set-u: its status in
 * *set_status. */
static int register_as_nobody(const struct pk_register_settings *s,
			      const struct pk_set_msg *set, int *set_status,
			      char *reason, size_t reason_len)
{
	int res[2], st, rc = -1;
	struct pk_reply_msg reply[2];
	pid_t pid;

	ck_assert_int_eq(pipe2(res, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct pk_test_guest g;
		struct pk_region_desc r;
		struct group *users = getgrnam("users");
		struct pk_registration reg = {
			.vm_name = "set-u", .share_domain = "",
			.balloon_channel = "", .flags = PK_REG_SETTINGS,
			.n_regions = 1, .regions = &r, .settings = *s };
		int fds[2], conn, len;

		memset(reply, 0, sizeof(reply));
		if (!users || pk_test_guest_create(&g, LEN, LEN) ||
		    (g.uffd = pk_test_uffd_open(PK_UFFD_FEATURES, NULL, 0)) < 0 ||
		    pk_test_uffd_register(g.uffd, g.addr, g.map_len) ||
		    setgroups(1, &users->gr_gid) || setgid(users->gr_gid) ||
		    setuid(NOBODY_UID))
			_exit(1);
		r = region(g.addr, g.map_len, 0);
		len = pk_register_encode(msgbuf, sizeof(msgbuf), &reg);
		fds[0] = g.uffd;
		fds[1] = g.memfd;
		if (len < 0 || pk_test_request(D.sock, msgbuf, (size_t)len, fds,
					       2, &reply[0], &conn))
			_exit(2);
		if (set && reply[0].status == 0 &&
		    pk_test_request(D.sock, set, sizeof(*set), NULL, 0,
				    &reply[1], &conn))
			_exit(4);
		if (write(res[1], reply, sizeof(reply)) != sizeof(reply))
			_exit(3);
		_exit(0);
	}
	close(res[1]);
	if (read(res[0], reply, sizeof(reply)) == sizeof(reply)) {
		rc = reply[0].status;
		snprintf(reason, reason_len, "%s", reply[0].reason);
		if (set_status)
			*set_status = reply[1].status;
	}
	close(res[0]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "the child registering as uid %d: status 0x%x",
		      NOBODY_UID, st);
	return rc;
}

/*
 * Issue 17: a peer that is neither root nor an admin may not give its VM
 * more than the others: shares above the default, a min, or a balloon
 * opt-out are -EPERM with the reason; the same peer's max and lower
 * shares are fine.  The same rule for its SET on its own VM: lowering
 * works, raising is -EPERM.
 */
START_TEST(test_settings_not_admin)
{
	static const struct {
		struct pk_register_settings s;
		int err;
		const char *reason;
	} cases[] = {
		{ { .shares = 1001 }, -EPERM,
		  "settings: shares 1001 above the default 1000 needs root or "
		  "the admin group (uid 65534 is neither)" },
		{ { .min_bytes = PG }, -EPERM,
		  "settings: a reservation (min) needs root or the admin group" },
		{ { .flags = PK_REGSET_NO_BALLOON }, -EPERM,
		  "settings: a balloon opt-out needs root or the admin group" },
		{ { .shares = 1000, .max_bytes = 4 * PG }, 0, "ok" },
	};
	char reason[PK_PROTO_REASON_MAX];
	struct pk_set_msg set;
	int set_rc = 1;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = register_as_nobody(&cases[i].s, NULL, NULL, reason,
					    sizeof(reason));
		ck_assert_msg(rc == cases[i].err && strstr(reason, cases[i].reason),
			      "case %zu: status %d (%s), want %d with '%s'", i,
			      rc, reason, cases[i].err, cases[i].reason);
		/* The child exited: its VM (the allowed case) goes. */
		ck_assert_int_eq(pk_test_wait_vm_count(D.sock, 0, DETACH_WAIT), 0);
	}
	ck_assert_msg(file_count(D.log, "refused vm set-u's settings to uid "
				 "65534") == 3, "want 3 refusals logged in %s",
		      D.log);
	/* SET by the same owner: lowering works, raising does not. */
	static const struct { int64_t shares, min; int32_t nb; int err; } sets[] = {
		{ 500, 0, 0, 0 }, { 1001, -1, -1, -EPERM },
		{ -1, PG, -1, -EPERM }, { -1, -1, 1, -EPERM },
	};
	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		struct pk_register_settings none = { 0 };
		ck_assert_int_eq(pk_set_msg_encode(&set, "set-u", sets[i].shares,
						   sets[i].min, -1, sets[i].nb), 0);
		ck_assert_int_eq(register_as_nobody(&none, &set, &set_rc, reason,
						    sizeof(reason)), 0);
		ck_assert_msg(set_rc == sets[i].err, "SET case %zu by the owner "
			      "uid 65534: status %d, want %d", i, set_rc,
			      sets[i].err);
		ck_assert_int_eq(pk_test_wait_vm_count(D.sock, 0, DETACH_WAIT), 0);
	}
	ck_assert_msg(file_count(D.log, "set request refused: settings: ") == 3,
		      "want 3 SET refusals logged in %s", D.log);
}
END_TEST

static Suite *validation_suite(void)
{
	Suite *s = suite_create("validation");
	TCase *tc = tcase_create("register");

	tcase_add_checked_fixture(tc, setup, teardown);
	/* A backstop: each test's own waits are shorter. */
	tcase_set_timeout(tc, 15 * pk_test_time_scale());
	tcase_add_test(tc, test_truncated_message);
	tcase_add_test(tc, test_oversized_message);
	tcase_add_test(tc, test_unknown_version);
	tcase_add_test(tc, test_fd_not_uffd);
	tcase_add_test(tc, test_uffd_without_features);
	tcase_add_test(tc, test_overlapping_regions);
	tcase_add_test(tc, test_unaligned_regions);
	tcase_add_test(tc, test_region_beyond_file);
	tcase_add_test(tc, test_zero_size);
	tcase_add_test(tc, test_absurd_size);
	tcase_add_test(tc, test_region_not_mapped);
	tcase_add_test(tc, test_duplicate_name);
	tcase_add_test(tc, test_wrong_fd_count);
	tcase_add_test(tc, test_ram_fd_not_tmpfs);
	tcase_add_test(tc, test_valid_raw_register);
	tcase_add_test(tc, test_valid_attach_detach);
	suite_add_tcase(s, tc);

	tc = tcase_create("settings");
	tcase_add_checked_fixture(tc, setup_users, teardown);
	tcase_set_timeout(tc, 15 * pk_test_time_scale());
	tcase_add_test(tc, test_settings_from_root);
	tcase_add_test(tc, test_settings_not_admin);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(validation_suite());
	int failed;

	srunner_run_all(sr, CK_VERBOSE);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
