/*
 * procfs.c - the few facts the preload shim reads from the kernel.
 *
 * Own command line and executable, what an fd is (its /proc/self/fd
 * link), how many userfaultfds the process holds (QEMU's own, during an
 * incoming postcopy migration), and whether the daemon's socket answers.
 * All of it is cheap and none of it touches guest memory.
 */
#include "engine/preload/preload.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int pk_proc_cmdline(char **buf, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *b = malloc(cap);
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);

	if (!b || fd < 0) {
		int e = fd < 0 ? -errno : -ENOMEM;
		free(b);
		if (fd >= 0)
			close(fd);
		return e;
	}
	for (;;) {
		ssize_t r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == cap) {
			char *nb = realloc(b, cap * 2);
			if (!nb) {
				free(b);
				close(fd);
				return -ENOMEM;
			}
			b = nb;
			cap *= 2;
		}
	}
	close(fd);
	*buf = b;
	*len = n;
	return 0;
}

int pk_proc_fd_link(int fd, char *out, size_t out_len)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, out, out_len - 1);
	if (n < 0)
		return -errno;
	out[n] = '\0';
	return 0;
}

/* qemu-system-*, qemu-kvm, kvm: not the helpers QEMU may exec. */
int pk_proc_exe_is_qemu(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	const char *base;

	if (n < 0)
		return 0;
	exe[n] = '\0';
	base = strrchr(exe, '/');
	base = base ? base + 1 : exe;
	return !strncmp(base, "qemu-system-", 12) ||
	       !strcmp(base, "qemu-kvm") || !strcmp(base, "kvm");
}

int pk_proc_uffd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char link[64];
		int fd = atoi(e->d_name);
		if (e->d_name[0] < '0' || e->d_name[0] > '9' || fd == dirfd(d))
			continue;
		if (pk_proc_fd_link(fd, link, sizeof(link)) == 0 &&
		    !strcmp(link, "anon_inode:[userfaultfd]"))
			n++;
	}
	closedir(d);
	return n;
}

/*
 * 0 if a daemon accepts connections on sock_path.  The shim asks before
 * each retry, so a running guest's RAM is not registered on a fresh
 * userfaultfd (which blocks its faults until the daemon answers) only to
 * learn the daemon is still away.
 */
int pk_proc_can_connect(const char *sock_path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), rc = 0;

	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/*
 * path made absolute and free of symlinks, also when its last component
 * does not exist yet (QEMU creates a mem-path file): malloc'ed, or NULL.
 */
char *pk_proc_abs_path(const char *path)
{
	char *dir_copy, *base_copy, *dir_real, *out = NULL;
	char *r = realpath(path, NULL);

	if (r)
		return r;
	dir_copy = strdup(path);
	base_copy = strdup(path);
	if (dir_copy && base_copy) {
		dir_real = realpath(dirname(dir_copy), NULL);
		if (dir_real &&
		    asprintf(&out, "%s/%s", dir_real, basename(base_copy)) < 0)
			out = NULL;
		free(dir_real);
	}
	free(dir_copy);
	free(base_copy);
	return out;
}
