/*
 * floor_handler.c - the minimal cross-process userfaultfd handler.
 *
 * What/how/why: see floor_handler.h.  Ioctl errors: EAGAIN (the guest's
 * mm is changing) is retried; EEXIST means the page is already there, so
 * the waiter is woken explicitly (a failed ioctl does not wake it).
 * Anything else is fatal for the handler, which exits; the benchmark's
 * watchdog then reports a stall instead of hanging.  Copy mode's region
 * is published through struct floor_ctl: the guest stores len and n, then
 * base with release order, then registers; the handler loads base with
 * acquire order, so a fault in the region always sees the whole triple.
 */
#include "floor_handler.h"
#include "bench_mem.h"
#include "cleanup.h"
#include "engine/uffd_compat.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

/* First page of the shared mapping; the source pages follow it. */
struct floor_ctl {
	uint64_t base;	/* copy region start, 0: none (all zero mode) */
	uint64_t len;	/* copy region bytes */
	uint64_t n;	/* source pages cycled over the region */
};

int uffd_open(bool *via_dev)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	*via_dev = false;
	if (fd >= 0)
		return fd;
	if (errno != EPERM && errno != ENOSYS)
		return -errno;
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -errno;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	int e = errno;
	close(dev);
	if (fd < 0)
		return -e;
	*via_dev = true;
	return fd;
}

/* One resolving ioctl with the retry/EEXIST policy.  0 or -errno. */
static int resolve_ioctl(int uffd, unsigned long req, void *arg,
			 uint64_t addr)
{
	for (;;) {
		if (ioctl(uffd, req, arg) == 0)
			return 0;
		if (errno == EAGAIN)
			continue;
		if (errno == EEXIST) {
			struct uffdio_range r = { .start = addr, .len = BENCH_PAGE };
			if (ioctl(uffd, UFFDIO_WAKE, &r) == 0 || errno == EAGAIN)
				return 0;
		}
		return -errno;
	}
}

/* The source page for addr when it lies in the copy region, else NULL. */
static const char *copy_source(const struct floor_ctl *ctl, const char *src,
			       uint64_t addr)
{
	if (!ctl)
		return NULL;
	uint64_t base = __atomic_load_n(&ctl->base, __ATOMIC_ACQUIRE);
	if (!base || addr < base || addr - base >= ctl->len)
		return NULL;
	return src + ((addr - base) / BENCH_PAGE % ctl->n) * BENCH_PAGE;
}

static int resolve(int uffd, bool anon, const struct floor_ctl *ctl,
		   const char *src, const struct uffd_msg *m, const void *zero)
{
	uint64_t flags = m->arg.pagefault.flags;
	uint64_t addr = m->arg.pagefault.address & ~(uint64_t)(BENCH_PAGE - 1);

	if (flags & UFFD_PAGEFAULT_FLAG_WP) {
		struct uffdio_writeprotect wp = {
			.range = { .start = addr, .len = BENCH_PAGE }, .mode = 0 };
		return resolve_ioctl(uffd, UFFDIO_WRITEPROTECT, &wp, addr);
	}
	const char *from = copy_source(ctl, src, addr);
	if (from) {
		struct uffdio_copy c = { .dst = addr, .src = (uint64_t)(uintptr_t)from,
					 .len = BENCH_PAGE, .mode = 0 };
		return resolve_ioctl(uffd, UFFDIO_COPY, &c, addr);
	}
	if (anon && (flags & UFFD_PAGEFAULT_FLAG_WRITE)) {
		struct uffdio_copy c = { .dst = addr, .src = (uint64_t)(uintptr_t)zero,
					 .len = BENCH_PAGE, .mode = 0 };
		return resolve_ioctl(uffd, UFFDIO_COPY, &c, addr);
	}
	struct uffdio_zeropage z = {
		.range = { .start = addr, .len = BENCH_PAGE }, .mode = 0 };
	return resolve_ioctl(uffd, UFFDIO_ZEROPAGE, &z, addr);
}

static void __attribute__((noreturn)) handler_loop(int uffd, bool anon,
						   const struct floor_ctl *ctl,
						   const char *src)
{
	static const char zero[BENCH_PAGE] __attribute__((aligned(4096)));
	struct uffd_msg msgs[16];
	struct pollfd pfd = { .fd = uffd, .events = POLLIN };

	for (;;) {
		if (poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(2);
		}
		if (pfd.revents & (POLLERR | POLLHUP))
			_exit(0); /* the guest's mm is gone */
		ssize_t n = read(uffd, msgs, sizeof(msgs));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			_exit(3);
		}
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				continue; /* REMOVE etc.: reading it suffices */
			int r = resolve(uffd, anon, ctl, src, &msgs[i], zero);
			if (r < 0) {
				fprintf(stderr, "floor handler: resolve 0x%llx: %s\n",
					(unsigned long long)msgs[i].arg.pagefault.address,
					strerror(-r));
				_exit(4);
			}
		}
	}
}

/* The shared control page plus src_pages source pages, before the fork. */
static int map_shared_ctl(struct floor_handler *f, size_t src_pages, char *err,
			  size_t err_len)
{
	size_t len = (1 + src_pages) * BENCH_PAGE;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		       -1, 0);

	if (p == MAP_FAILED) {
		int e = -errno;
		snprintf(err, err_len, "floor source buffer of %zu KiB: %s", len >> 10,
			 strerror(errno));
		return e;
	}
	f->ctl = p;
	f->src = (char *)p + BENCH_PAGE;
	f->src_max = src_pages;
	return 0;
}

static void unmap_shared_ctl(struct floor_handler *f)
{
	if (f->ctl)
		munmap(f->ctl, (1 + f->src_max) * BENCH_PAGE);
	f->ctl = NULL;
	f->src = NULL;
	f->src_max = 0;
}

int floor_start(struct floor_handler *f, bool anon, char *err, size_t err_len)
{
	return floor_start_src(f, anon, 0, err, err_len);
}

int floor_start_src(struct floor_handler *f, bool anon, size_t src_pages,
		    char *err, size_t err_len)
{
	*f = (struct floor_handler){ .uffd = -1, .pid = -1, .anon = anon };
	if (src_pages) {
		int r = map_shared_ctl(f, src_pages, err, err_len);
		if (r < 0)
			return r;
	}
	int fd = uffd_open(&f->via_dev);
	if (fd < 0) {
		snprintf(err, err_len, "userfaultfd (syscall and /dev/userfaultfd): %s",
			 strerror(-fd));
		unmap_shared_ctl(f);
		return fd;
	}
	struct uffdio_api api = { .api = UFFD_API, .features = PK_UFFD_FEATURES };
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int e = -errno;
		snprintf(err, err_len, "UFFDIO_API features 0x%llx: %s",
			 (unsigned long long)PK_UFFD_FEATURES, strerror(errno));
		close(fd);
		unmap_shared_ctl(f);
		return e;
	}
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int e = -errno;
		snprintf(err, err_len, "fork floor handler: %s", strerror(errno));
		close(fd);
		unmap_shared_ctl(f);
		return e;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(0);
		signal(SIGINT, SIG_IGN); /* the parent tears us down */
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		handler_loop(fd, anon, f->ctl, f->src);
	}
	cleanup_track_pid(pid, 0);
	f->uffd = fd;
	f->pid = pid;
	return 0;
}

/* MISSING|WP registration; need: the resolving ioctls the mode uses. */
static int register_range(struct floor_handler *f, void *addr, size_t len,
			  uint64_t need, char *err, size_t err_len)
{
	struct uffdio_register reg = {
		.range = { .start = (uint64_t)(uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
	};
	if (ioctl(f->uffd, UFFDIO_REGISTER, &reg) < 0) {
		int e = -errno;
		snprintf(err, err_len, "UFFDIO_REGISTER MISSING|WP %zu bytes: %s",
			 len, strerror(errno));
		return e;
	}
	need |= 1ull << _UFFDIO_WAKE;
	if ((reg.ioctls & need) != need) {
		snprintf(err, err_len, "UFFDIO_REGISTER: ioctls 0x%llx lack 0x%llx",
			 (unsigned long long)reg.ioctls, (unsigned long long)need);
		floor_unregister(f, addr, len);
		return -EOPNOTSUPP;
	}
	return 0;
}

int floor_register(struct floor_handler *f, void *addr, size_t len,
		   char *err, size_t err_len)
{
	return register_range(f, addr, len,
			      f->anon ? (1ull << _UFFDIO_COPY) : (1ull << _UFFDIO_ZEROPAGE),
			      err, err_len);
}

int floor_register_copy(struct floor_handler *f, void *addr, size_t len, size_t n,
			char *err, size_t err_len)
{
	if (!f->ctl || n == 0 || n > f->src_max) {
		snprintf(err, err_len, "copy mode with %zu source pages: the handler has "
			 "%zu (start it with floor_start_src)", n, f->src_max);
		return -EINVAL;
	}
	if (__atomic_load_n(&f->ctl->base, __ATOMIC_ACQUIRE)) {
		snprintf(err, err_len, "a copy-mode region is registered already");
		return -EBUSY;
	}
	f->ctl->len = len;
	f->ctl->n = n;
	__atomic_store_n(&f->ctl->base, (uint64_t)(uintptr_t)addr, __ATOMIC_RELEASE);
	int r = register_range(f, addr, len, 1ull << _UFFDIO_COPY, err, err_len);
	if (r < 0)
		__atomic_store_n(&f->ctl->base, 0, __ATOMIC_RELEASE);
	return r;
}

int floor_unregister(struct floor_handler *f, void *addr, size_t len)
{
	struct uffdio_range r = { .start = (uint64_t)(uintptr_t)addr, .len = len };
	int ret = ioctl(f->uffd, UFFDIO_UNREGISTER, &r) < 0 ? -errno : 0;

	if (f->ctl && __atomic_load_n(&f->ctl->base, __ATOMIC_ACQUIRE) ==
			      (uint64_t)(uintptr_t)addr)
		__atomic_store_n(&f->ctl->base, 0, __ATOMIC_RELEASE);
	return ret;
}

void floor_stop(struct floor_handler *f)
{
	if (f->pid > 0)
		cleanup_stop_pid(f->pid);
	if (f->uffd >= 0)
		close(f->uffd);
	unmap_shared_ctl(f);
	f->pid = -1;
	f->uffd = -1;
}
