/*
 * file_floor.h - the floor for swap-in: a minimal uffd handler that
 * reads each missing page from a file with O_DIRECT.
 *
 * What: the least work any userspace swap-in can do per fault: a child
 * process that loops poll() + read(uffd_msg) and, for each MISSING fault,
 * preads exactly that page (index = offset in the region) from a source
 * file opened O_DIRECT into an aligned buffer, then UFFDIO_COPY.  No
 * page table, no checksum, no batching, no read-ahead.
 * How: the benchmark maps a fresh memfd region (all pages missing, like
 * pages pagekeeperd evicted by punching), creates a uffd (UFFDIO_API with
 * MISSING_SHMEM only), forks the handler, then registers the region
 * MISSING; the handler shares the uffd but not the address space, as
 * pagekeeperd does.  The source file holds the same content the other
 * variants hold and was fdatasync'd and dropped from the page cache.
 * Why: pagekeeperd's swap-in latency is judged against this floor on
 * the same file system.
 */
#ifndef PK_BENCH_FILE_FLOOR_H
#define PK_BENCH_FILE_FLOOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct file_floor {
	int uffd;
	int src_fd;
	pid_t pid;
	void *addr;
	size_t len;
	bool registered;
	bool via_dev; /* uffd came from /dev/userfaultfd */
};

/* Start serving [addr, addr + len) from src_path.  0 or -errno + err. */
int file_floor_start(struct file_floor *f, void *addr, size_t len,
		     const char *src_path, char *err, size_t err_len);

/* Unregister, stop the handler (by pid), close the fds. */
void file_floor_stop(struct file_floor *f);

/* Write npages of round content for seed to path, fdatasync, drop cache. */
int file_floor_write_source(const char *path, size_t npages, uint64_t seed,
			    char *err, size_t err_len);

#endif
