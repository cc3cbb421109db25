/*
 * bench_mem.c - fresh guest-like memory for one benchmark variant.
 *
 * What/how: see bench_mem.h.  MADV_NOHUGEPAGE keeps the kernel variant
 * honest on hosts whose THP setting is "always" (here it is "madvise" for
 * anon and "never" for shmem, so it changes nothing on this machine).
 * Why: one allocator for all variants, so they differ only in who serves
 * the first-touch fault.
 */
#include "bench_mem.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

int bench_mem_alloc(struct bench_mem *m, size_t len, bool anon)
{
	*m = (struct bench_mem){ .fd = -1, .addr = NULL, .len = len, .anon = anon };
	if (anon) {
		void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED)
			return -errno;
		m->addr = p;
	} else {
		int fd = memfd_create("pk-bench-ram", MFD_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (ftruncate(fd, (off_t)len) < 0) {
			int e = -errno;
			close(fd);
			return e;
		}
		void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED) {
			int e = -errno;
			close(fd);
			return e;
		}
		m->fd = fd;
		m->addr = p;
	}
	madvise(m->addr, len, MADV_NOHUGEPAGE);
	return 0;
}

void bench_mem_free(struct bench_mem *m)
{
	if (m->addr)
		munmap(m->addr, m->len);
	if (m->fd >= 0)
		close(m->fd);
	m->addr = NULL;
	m->fd = -1;
}
