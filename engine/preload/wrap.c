/*
 * wrap.c - the libc entry points libpagekeeper-preload.so interposes.
 *
 * Only three, all on QEMU's RAM set-up and teardown path:
 *   mmap, mmap64  a MAP_SHARED mapping of a file may be a guest RAM
 *                 backend: ram.c looks at it after the real mmap;
 *   munmap        a RAM backend going away is detached before the real
 *                 munmap.
 * QEMU 7.2 imports mmap64 (it is built with 64-bit off_t); glibc makes
 * mmap and mmap64 one function, and both names are wrapped so either
 * import is seen.  glibc's own mappings (malloc, thread stacks) call the
 * kernel directly and never come through here.  Each wrapper keeps the
 * real call's result and errno; its own cost on every other call is a
 * flag test.  No fallocate64 wrapper: see ram.c.
 *
 * Meson builds with _FILE_OFFSET_BITS=64, which makes <sys/mman.h>
 * rename mmap to mmap64; this file needs both names as they are.  On
 * 64-bit targets off_t is 64 bits either way.
 */
#undef _FILE_OFFSET_BITS
#include "engine/preload/preload.h"

#include <dlfcn.h>
#include <errno.h>
#include <sys/mman.h>
#include <sys/types.h>

#define PK_EXPORT __attribute__((visibility("default")))

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_fn)(void *, size_t);

/* The next definition of name (libc's); resolved once, on first use. */
static void *real(void **slot, const char *name)
{
	void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);

	if (!f) {
		f = dlsym(RTLD_NEXT, name);
		__atomic_store_n(slot, f, __ATOMIC_RELEASE);
	}
	return f;
}

static void *after_mmap(void *p, size_t len, int flags, int fd, off_t off)
{
	if (p != MAP_FAILED && (flags & MAP_SHARED) && fd >= 0 &&
	    pk_preload_state()->active) {
		int saved = errno;
		pk_ram_mapped(p, len, fd, (uint64_t)off);
		errno = saved;
	}
	return p;
}

PK_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd,
		     off_t off)
{
	static void *slot;
	mmap_fn f = (mmap_fn)real(&slot, "mmap");

	if (!f) {
		errno = ENOSYS;
		return MAP_FAILED;
	}
	return after_mmap(f(addr, len, prot, flags, fd, off), len, flags, fd,
			  off);
}

PK_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd,
		       off_t off)
{
	static void *slot;
	mmap_fn f = (mmap_fn)real(&slot, "mmap64");

	if (!f) {
		errno = ENOSYS;
		return MAP_FAILED;
	}
	return after_mmap(f(addr, len, prot, flags, fd, off), len, flags, fd,
			  off);
}

PK_EXPORT int munmap(void *addr, size_t len)
{
	static void *slot;
	munmap_fn f = (munmap_fn)real(&slot, "munmap");
	int saved = errno;

	if (!f) {
		errno = ENOSYS;
		return -1;
	}
	pk_ram_unmapping(addr, len);
	errno = saved;
	return f(addr, len);
}
