/*
 * libvirt_host.c - /dev/userfaultfd access, process scan, tree removal
 * and the cleaner for test_libvirt_embed.c (see libvirt_host.h).
 */
#include "tests/libvirt_host.h"
#include "tests/daemon_fixture.h"
#include "tests/guest_proc.h"
#include "tests/qemu_guest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/posix_acl.h>
#include <linux/posix_acl_xattr.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#define ACL_XATTR "system.posix_acl_access"
#define MAX_ACL_ENTRIES 32

static int fail(char *err, size_t len, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return rc;
}

/* ---- the ACL ------------------------------------------------------------ */

struct acl_entry {
	uint16_t tag, perm;
	uint32_t id;
};

static int entry_order(const void *a, const void *b)
{
	const struct acl_entry *x = a, *y = b;

	if (x->tag != y->tag)
		return x->tag < y->tag ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* The ACL the mode stands for, when the file has no ACL xattr. */
static int acl_from_mode(mode_t mode, struct acl_entry *e)
{
	e[0] = (struct acl_entry){ ACL_USER_OBJ, (mode >> 6) & 7,
				   (uint32_t)ACL_UNDEFINED_ID };
	e[1] = (struct acl_entry){ ACL_GROUP_OBJ, (mode >> 3) & 7,
				   (uint32_t)ACL_UNDEFINED_ID };
	e[2] = (struct acl_entry){ ACL_OTHER, mode & 7,
				   (uint32_t)ACL_UNDEFINED_ID };
	return 3;
}

static int acl_parse(const char *buf, ssize_t len, struct acl_entry *e)
{
	struct posix_acl_xattr_header h;
	int n = 0;

	if (len < (ssize_t)sizeof(h))
		return -EINVAL;
	memcpy(&h, buf, sizeof(h));
	if (h.a_version != POSIX_ACL_XATTR_VERSION ||
	    (len - (ssize_t)sizeof(h)) % sizeof(struct posix_acl_xattr_entry))
		return -EINVAL;
	for (ssize_t off = sizeof(h); off < len;
	     off += sizeof(struct posix_acl_xattr_entry)) {
		struct posix_acl_xattr_entry x;
		if (n == MAX_ACL_ENTRIES - 2)
			return -E2BIG;
		memcpy(&x, buf + off, sizeof(x));
		e[n++] = (struct acl_entry){ x.e_tag, x.e_perm, x.e_id };
	}
	return n;
}

static ssize_t acl_format(const struct acl_entry *e, int n, char *buf)
{
	struct posix_acl_xattr_header h = { POSIX_ACL_XATTR_VERSION };
	ssize_t off = sizeof(h);

	memcpy(buf, &h, sizeof(h));
	for (int i = 0; i < n; i++) {
		struct posix_acl_xattr_entry x = { e[i].tag, e[i].perm, e[i].id };
		memcpy(buf + off, &x, sizeof(x));
		off += sizeof(x);
	}
	return off;
}

int lv_uffd_acl_grant(struct lv_uffd_acl *a, uid_t uid, int wait_ms,
		      char *err, size_t err_len)
{
	struct acl_entry e[MAX_ACL_ENTRIES];
	char buf[sizeof(a->old_acl)];
	long deadline = pk_test_now_ms() + wait_ms;
	int n, user = -1, mask = -1, rc;
	struct stat st;
	ssize_t len;

	memset(a, 0, sizeof(*a));
	a->lock_fd = -1;
	a->old_len = -1;
	a->lock_fd = open(LV_UFFD_DEV, O_RDONLY | O_CLOEXEC);
	if (a->lock_fd < 0)
		return fail(err, err_len, -errno, "%s: %s (the kernel has no "
			    "userfaultfd device: Linux 6.1 or newer needed)",
			    LV_UFFD_DEV, strerror(errno));
	while (flock(a->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK || pk_test_now_ms() > deadline) {
			rc = -errno;
			close(a->lock_fd);
			a->lock_fd = -1;
			return fail(err, err_len, rc, "flock %s: %s (another run "
				    "of this test holds it)", LV_UFFD_DEV,
				    strerror(-rc));
		}
		usleep(100000);
	}
	if (fstat(a->lock_fd, &st) < 0) {
		rc = -errno;
		goto unlock;
	}
	a->mode = st.st_mode & 07777;
	a->old_len = fgetxattr(a->lock_fd, ACL_XATTR, a->old_acl,
			       sizeof(a->old_acl));
	if (a->old_len < 0 && errno != ENODATA) {
		rc = -errno;
		fail(err, err_len, rc, "reading the ACL of %s: %s%s",
		     LV_UFFD_DEV, strerror(errno), errno == EOPNOTSUPP ?
		     " (this /dev has no POSIX ACLs: give the user access to "
		     "/dev/userfaultfd by hand, e.g. through a group)" : "");
		goto unlock_keep_err;
	}
	if (a->old_len >= 0) {
		n = acl_parse(a->old_acl, a->old_len, e);
		if (n < 0) {
			rc = n;
			fail(err, err_len, rc, "cannot parse the ACL of %s",
			     LV_UFFD_DEV);
			goto unlock_keep_err;
		}
	} else {
		n = acl_from_mode(a->mode, e);
	}
	for (int i = 0; i < n; i++) {
		if (e[i].tag == ACL_USER && e[i].id == uid)
			user = i;
		if (e[i].tag == ACL_MASK)
			mask = i;
	}
	if ((st.st_uid == uid && (a->mode & 0600) == 0600) ||
	    (a->mode & 0006) == 0006 ||
	    (user >= 0 && (e[user].perm & 6) == 6 &&
	     (mask < 0 || (e[mask].perm & 6) == 6)))
		return 0; /* it can open it already: change nothing */
	if (user < 0) {
		user = n;
		e[n++] = (struct acl_entry){ ACL_USER, 0, uid };
	}
	e[user].perm |= ACL_READ | ACL_WRITE;
	if (mask < 0) /* a named entry needs a mask: the group class's */
		e[n++] = (struct acl_entry){ ACL_MASK, ACL_READ | ACL_WRITE |
					     ((a->mode >> 3) & 7),
					     (uint32_t)ACL_UNDEFINED_ID };
	else
		e[mask].perm |= ACL_READ | ACL_WRITE;
	qsort(e, (size_t)n, sizeof(e[0]), entry_order);
	len = acl_format(e, n, buf);
	a->changed = 1; /* from here on, restore puts it back */
	if (fsetxattr(a->lock_fd, ACL_XATTR, buf, (size_t)len, 0) < 0) {
		rc = -errno;
		fail(err, err_len, rc, "setting an ACL on %s: %s%s", LV_UFFD_DEV,
		     strerror(errno), errno == EOPNOTSUPP ?
		     " (this /dev has no POSIX ACLs: give the user access to "
		     "/dev/userfaultfd by hand, e.g. through a group)" : "");
		lv_uffd_acl_restore(a, buf, sizeof(buf));
		return rc;
	}
	return 0;

unlock:
	fail(err, err_len, rc, "%s: %s", LV_UFFD_DEV, strerror(-rc));
unlock_keep_err:
	close(a->lock_fd);
	a->lock_fd = -1;
	return rc;
}

int lv_uffd_acl_restore(struct lv_uffd_acl *a, char *err, size_t err_len)
{
	char now_acl[sizeof(a->old_acl)];
	ssize_t now_len;
	struct stat st;
	int rc = 0;

	if (a->lock_fd < 0)
		return 0;
	if (a->changed) {
		if (a->old_len < 0)
			rc = fremovexattr(a->lock_fd, ACL_XATTR) < 0 &&
			     errno != ENODATA ? -errno : 0;
		else
			rc = fsetxattr(a->lock_fd, ACL_XATTR, a->old_acl,
				       (size_t)a->old_len, 0) < 0 ? -errno : 0;
		/* Setting an ACL set the group bits to its mask. */
		if (fchmod(a->lock_fd, a->mode) < 0 && !rc)
			rc = -errno;
		if (rc) {
			fail(err, err_len, rc, "restoring %s: %s", LV_UFFD_DEV,
			     strerror(-rc));
			goto out;
		}
	}
	now_len = fgetxattr(a->lock_fd, ACL_XATTR, now_acl, sizeof(now_acl));
	if (fstat(a->lock_fd, &st) < 0) {
		rc = fail(err, err_len, -errno, "fstat %s: %s", LV_UFFD_DEV,
			  strerror(errno));
		goto out;
	}
	if ((st.st_mode & 07777) != a->mode)
		rc = fail(err, err_len, -EIO, "%s has mode %04o, was %04o",
			  LV_UFFD_DEV, st.st_mode & 07777, a->mode);
	else if (now_len != a->old_len ||
		 (now_len > 0 && memcmp(now_acl, a->old_acl, (size_t)now_len)))
		rc = fail(err, err_len, -EIO, "%s: its ACL is not what it was "
			  "(%zd bytes, was %zd)", LV_UFFD_DEV, now_len,
			  a->old_len);
	else
		a->changed = 0;
out:
	if (!rc) {
		close(a->lock_fd); /* drops the lock unless a fork holds it */
		a->lock_fd = -1;
	}
	return rc;
}

/* ---- processes ---------------------------------------------------------- */

/* 1 if the NUL-separated file /proc/PID/what has a string with needle. */
static int proc_file_mentions(pid_t pid, const char *what, const char *needle)
{
	char path[64], *buf;
	size_t cap = 1 << 17;
	ssize_t n, got = 0;
	int fd, hit = 0;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	buf = malloc(cap + 1);
	if (!buf) {
		close(fd);
		return 0;
	}
	while (got < (ssize_t)cap &&
	       (n = read(fd, buf + got, cap - (size_t)got)) > 0)
		got += n;
	close(fd);
	buf[got] = '\0';
	for (ssize_t i = 0; i < got && !hit; i += (ssize_t)strlen(buf + i) + 1)
		hit = strstr(buf + i, needle) != NULL;
	free(buf);
	return hit;
}


/*
 * QEMU's command line names files under scratch, a helper's environment
 * has HOME there, and a process libvirt forked that has not exec'd QEMU
 * yet holds files there open (the domain log, the driver's state).
 */
static int uses(pid_t pid, const char *needle)
{
	return pk_test_pid_running(pid) &&
	       (proc_file_mentions(pid, "cmdline", needle) ||
		proc_file_mentions(pid, "environ", needle) ||
		proc_fd_find(pid, needle, NULL, 0));
}

int lv_procs_using(const char *needle, pid_t *out, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0 || pid == getpid())
			continue;
		if (uses((pid_t)pid, needle)) {
			if (n < max)
				out[n] = (pid_t)pid;
			n++;
		}
	}
	closedir(d);
	return n;
}

int lv_kill_procs_using(const char *needle, int timeout_ms)
{
	long deadline = pk_test_now_ms() + timeout_ms;
	pid_t pids[64];
	int n;

	while ((n = lv_procs_using(needle, pids, 64)) > 0) {
		for (int i = 0; i < n && i < 64; i++)
			if (uses(pids[i], needle)) /* still the same one */
				kill(pids[i], SIGKILL);
		if (pk_test_now_ms() > deadline)
			return -ETIMEDOUT;
		usleep(50000);
	}
	return n < 0 ? n : 0;
}

/* ---- files -------------------------------------------------------------- */

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

int lv_rmtree(const char *path)
{
	struct stat st;

	nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	if (lstat(path, &st) == 0)
		return -ENOTEMPTY;
	return errno == ENOENT ? 0 : -errno;
}


static int dump_log(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	size_t n = strlen(path);

	(void)st;
	(void)ftw;
	if (flag == FTW_F && n > 4 && !strcmp(path + n - 4, ".log")) {
		fprintf(stderr, "libvirt_host: last lines of %s:\n", path);
		qemu_log_dump_tail(path, 30, "  | ");
	}
	return 0;
}

/* ---- the cleaner -------------------------------------------------------- */

static void run_cleaner(int rfd, const char *scratch, struct lv_uffd_acl *acl)
{
	char c = 0, err[256];
	ssize_t n;

	setpgid(0, 0); /* out of reach of Check's killpg */
	if (rfd != 0) {
		dup2(rfd, 0);
		close(rfd);
	}
	if (acl->lock_fd >= 0 && acl->lock_fd != 3) {
		dup2(acl->lock_fd, 3);
		acl->lock_fd = 3;
	}
	close(1);
	/* Keep 0 (the pipe), 2 (stderr) and 3 (the lock) only. */
	if (syscall(SYS_close_range, acl->lock_fd >= 0 ? 4U : 3U, ~0U, 0) < 0)
		for (int i = acl->lock_fd >= 0 ? 4 : 3; i < 1024; i++)
			close(i);
	while ((n = read(0, &c, 1)) < 0 && errno == EINTR)
		;
	if (n == 1 && c == 'd')
		_exit(0);
	fprintf(stderr, "libvirt_host: the test ended without cleaning up; "
		"killing what uses %s, restoring %s, removing it\n", scratch,
		LV_UFFD_DEV);
	/* A QEMU being spawned right now is found by its open files. */
	if (lv_kill_procs_using(scratch, 10000))
		fprintf(stderr, "libvirt_host: processes using %s survive\n",
			scratch);
	nftw(scratch, dump_log, 16, FTW_PHYS | FTW_MOUNT);
	if (lv_uffd_acl_restore(acl, err, sizeof(err)))
		fprintf(stderr, "libvirt_host: %s\n", err);
	if (lv_rmtree(scratch))
		fprintf(stderr, "libvirt_host: cannot remove %s\n", scratch);
	_exit(0);
}

int lv_cleaner_start(struct lv_cleaner *c, const char *scratch,
		     struct lv_uffd_acl *acl)
{
	int p[2];

	c->fd = -1;
	c->pid = 0;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	fflush(NULL);
	c->pid = fork();
	if (c->pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		c->pid = 0;
		return -e;
	}
	if (c->pid == 0) {
		close(p[1]);
		run_cleaner(p[0], scratch, acl);
	}
	close(p[0]);
	c->fd = p[1];
	return 0;
}

void lv_cleaner_done(struct lv_cleaner *c)
{
	if (c->fd >= 0) {
		if (write(c->fd, "d", 1) != 1)
			fprintf(stderr, "libvirt_host: cannot tell the cleaner\n");
		close(c->fd);
		c->fd = -1;
	}
	if (c->pid > 0) {
		waitpid(c->pid, NULL, 0);
		c->pid = 0;
	}
}
