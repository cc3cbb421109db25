/*
 * file_floor.c - the floor for swap-in: a minimal uffd handler that
 * reads each missing page from a file with O_DIRECT.
 *
 * What/how/why: see file_floor.h.  Ioctl errors: EAGAIN is retried;
 * EEXIST (page already there) wakes the waiter explicitly.  Anything else,
 * and a short read, end the handler; the watchdog then reports that the
 * process serving faults died instead of letting the toucher hang.
 */
#include "file_floor.h"
#include "bench_mem.h"
#include "cleanup.h"
#include "floor_handler.h"
#include "swap_touch.h"
#include "sys_guard.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <unistd.h>

#define WRITE_CHUNK_PAGES 256

static int copy_page(int uffd, uint64_t addr, void *buf)
{
	struct uffdio_copy c = { .dst = addr, .src = (uint64_t)(uintptr_t)buf,
				 .len = BENCH_PAGE, .mode = 0 };
	for (;;) {
		if (ioctl(uffd, UFFDIO_COPY, &c) == 0)
			return 0;
		if (errno == EAGAIN) {
			c.copy = 0;
			continue;
		}
		if (errno == EEXIST) {
			struct uffdio_range r = { .start = addr, .len = BENCH_PAGE };
			if (ioctl(uffd, UFFDIO_WAKE, &r) == 0 || errno == EAGAIN)
				return 0;
		}
		return -errno;
	}
}

static void __attribute__((noreturn)) handler_loop(int uffd, int src, uint64_t base,
						   size_t len)
{
	struct uffd_msg msgs[16];
	struct pollfd pfd = { .fd = uffd, .events = POLLIN };
	void *buf;

	if (posix_memalign(&buf, BENCH_PAGE, BENCH_PAGE))
		_exit(5);
	for (;;) {
		if (poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(2);
		}
		if (pfd.revents & (POLLERR | POLLHUP))
			_exit(0);
		ssize_t n = read(uffd, msgs, sizeof(msgs));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			_exit(3);
		}
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			uint64_t addr = msgs[i].arg.pagefault.address & ~(uint64_t)(BENCH_PAGE - 1);
			if (addr < base || addr >= base + len)
				_exit(6);
			off_t off = (off_t)(addr - base);
			ssize_t r = pread(src, buf, BENCH_PAGE, off);
			int e = r == (ssize_t)BENCH_PAGE ? 0 : r < 0 ? -errno : -EIO;
			if (e == 0)
				e = copy_page(uffd, addr, buf);
			if (e < 0) {
				fprintf(stderr, "file floor: page at offset %lld: %s\n",
					(long long)off, strerror(-e));
				_exit(4);
			}
		}
	}
}

int file_floor_start(struct file_floor *f, void *addr, size_t len,
		     const char *src_path, char *err, size_t err_len)
{
	*f = (struct file_floor){ .uffd = -1, .src_fd = -1, .pid = -1, .addr = addr,
				  .len = len };
	int e;

	f->src_fd = open(src_path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (f->src_fd < 0) {
		e = -errno;
		snprintf(err, err_len, "open %s O_DIRECT: %s", src_path, strerror(errno));
		return e;
	}
	f->uffd = uffd_open(&f->via_dev);
	if (f->uffd < 0) {
		e = f->uffd;
		snprintf(err, err_len, "userfaultfd: %s", strerror(-e));
		goto fail;
	}
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_MISSING_SHMEM };
	if (ioctl(f->uffd, UFFDIO_API, &api) < 0) {
		e = -errno;
		snprintf(err, err_len, "UFFDIO_API MISSING_SHMEM: %s", strerror(errno));
		goto fail;
	}
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		e = -errno;
		snprintf(err, err_len, "fork file floor: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(0);
		signal(SIGINT, SIG_IGN);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		guard_close_in_child();
		handler_loop(f->uffd, f->src_fd, (uint64_t)(uintptr_t)addr, len);
	}
	f->pid = pid;
	cleanup_track_pid(pid, 0);
	struct uffdio_register reg = {
		.range = { .start = (uint64_t)(uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	if (ioctl(f->uffd, UFFDIO_REGISTER, &reg) < 0) {
		e = -errno;
		snprintf(err, err_len, "UFFDIO_REGISTER MISSING %zu bytes: %s", len,
			 strerror(errno));
		goto fail;
	}
	f->registered = true;
	if (!(reg.ioctls & (1ull << _UFFDIO_COPY))) {
		snprintf(err, err_len, "UFFDIO_REGISTER: no UFFDIO_COPY on this range");
		e = -EOPNOTSUPP;
		goto fail;
	}
	return 0;
fail:
	file_floor_stop(f);
	return e;
}

void file_floor_stop(struct file_floor *f)
{
	if (f->registered) {
		struct uffdio_range r = { .start = (uint64_t)(uintptr_t)f->addr, .len = f->len };
		ioctl(f->uffd, UFFDIO_UNREGISTER, &r);
		f->registered = false;
	}
	if (f->pid > 0)
		cleanup_stop_pid(f->pid);
	if (f->uffd >= 0)
		close(f->uffd);
	if (f->src_fd >= 0)
		close(f->src_fd);
	f->pid = -1;
	f->uffd = f->src_fd = -1;
}

int file_floor_write_source(const char *path, size_t npages, uint64_t seed,
			    char *err, size_t err_len)
{
	char *buf = malloc(WRITE_CHUNK_PAGES * BENCH_PAGE);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int e = 0;

	if (!buf || fd < 0) {
		e = buf ? -errno : -ENOMEM;
		snprintf(err, err_len, "create %s: %s", path, strerror(-e));
		goto out;
	}
	for (size_t p = 0; p < npages; p += WRITE_CHUNK_PAGES) {
		size_t k = npages - p < WRITE_CHUNK_PAGES ? npages - p : WRITE_CHUNK_PAGES;
		content_fill(buf, p, k, seed);
		ssize_t w = pwrite(fd, buf, k * BENCH_PAGE, (off_t)(p * BENCH_PAGE));
		if (w != (ssize_t)(k * BENCH_PAGE)) {
			e = w < 0 ? -errno : -EIO;
			snprintf(err, err_len, "write %s: %s", path, strerror(-e));
			goto out;
		}
	}
	if (fdatasync(fd) < 0) {
		e = -errno;
		snprintf(err, err_len, "fdatasync %s: %s", path, strerror(errno));
		goto out;
	}
	/* O_DIRECT reads bypass the cache anyway; drop it so nothing is shared */
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return e;
}
