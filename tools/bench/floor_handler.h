/*
 * floor_handler.h - the minimal cross-process userfaultfd handler.
 *
 * What: the "floor" a uffd-based engine cannot beat for one page per
 * fault: a child process that loops poll() + read(uffd_msg) and resolves
 * exactly the faulting page, nothing else.
 * How: the benchmark process (the "guest") creates the uffd, runs
 * UFFDIO_API with PK_UFFD_FEATURES, and forks the handler, which shares
 * the uffd but not the guest's address space, as pagekeeperd does.  The
 * guest registers each fresh region (MISSING|WP) and unregisters it
 * before unmapping.  Resolution: UFFDIO_ZEROPAGE (on shmem it allocates a
 * real zeroed page); on anon a WRITE fault gets UFFDIO_COPY of a zero page
 * instead, because ZEROPAGE would map the shared zero page and the write
 * would take a second, kernel COW fault.
 * Why: pagekeeperd's random-touch latency is judged against this floor.
 */
#ifndef PK_BENCH_FLOOR_HANDLER_H
#define PK_BENCH_FLOOR_HANDLER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct floor_handler {
	int uffd;
	pid_t pid;
	bool anon;
	bool via_dev; /* uffd came from /dev/userfaultfd */
};

/*
 * Create the uffd and fork the handler.  Call before mapping guest
 * memory (the child then inherits none of it).  Returns 0 or a negative
 * errno with a reason in err.
 */
int floor_start(struct floor_handler *f, bool anon, char *err, size_t err_len);

int floor_register(struct floor_handler *f, void *addr, size_t len,
		   char *err, size_t err_len);
int floor_unregister(struct floor_handler *f, void *addr, size_t len);

/* Kill the handler (by pid) and close the uffd. */
void floor_stop(struct floor_handler *f);

/* Create a uffd: the syscall, or /dev/userfaultfd when refused. */
int uffd_open(bool *via_dev);

#endif
