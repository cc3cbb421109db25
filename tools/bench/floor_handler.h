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
 * before unmapping.  Two modes, chosen per registered region:
 *   zero (floor_register): UFFDIO_ZEROPAGE (on shmem it allocates a real
 *     zeroed page); on anon a WRITE fault gets UFFDIO_COPY of a zero page
 *     instead, because ZEROPAGE would map the shared zero page and the
 *     write would take a second, kernel COW fault;
 *   copy (floor_register_copy, handlers started with floor_start_src):
 *     UFFDIO_COPY of page (offset in the region / 4096) % n of a source
 *     buffer the guest filled: the floor of serving a page from a copy
 *     kept in the handler's memory.
 * The mode, the copy region and the source live in a MAP_SHARED anonymous
 * mapping created before the fork, so both processes see them at the same
 * address; the guest sets them before registering a region, the handler
 * reads them per fault (one cache line).
 * Why: pagekeeperd's random-touch latency is judged against this floor.
 */
#ifndef PK_BENCH_FLOOR_HANDLER_H
#define PK_BENCH_FLOOR_HANDLER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct floor_ctl; /* shared with the handler: mode and copy region */

struct floor_handler {
	int uffd;
	pid_t pid;
	bool anon;
	bool via_dev; /* uffd came from /dev/userfaultfd */
	struct floor_ctl *ctl;	/* NULL: zero mode only (floor_start) */
	char *src;		/* copy mode source, src_max pages, guest fills it */
	size_t src_max;
};

/*
 * Create the uffd and fork the handler.  Call before mapping guest
 * memory (the child then inherits none of it).  Returns 0 or a negative
 * errno with a reason in err.
 */
int floor_start(struct floor_handler *f, bool anon, char *err, size_t err_len);

/*
 * floor_start plus a source buffer of src_pages pages (f->src, zeroed)
 * for copy mode.  Same contract as floor_start.
 */
int floor_start_src(struct floor_handler *f, bool anon, size_t src_pages,
		    char *err, size_t err_len);

/* Register a region served in zero mode. */
int floor_register(struct floor_handler *f, void *addr, size_t len,
		   char *err, size_t err_len);

/*
 * Register a region served in copy mode: the page at addr + i * 4096 gets
 * a copy of f->src page i % n (1 <= n <= f->src_max).  One copy region
 * at a time; floor_unregister of it returns the handler to zero mode.
 * 0 or -errno with the reason in err.
 */
int floor_register_copy(struct floor_handler *f, void *addr, size_t len, size_t n,
			char *err, size_t err_len);
int floor_unregister(struct floor_handler *f, void *addr, size_t len);

/* Kill the handler (by pid) and close the uffd. */
void floor_stop(struct floor_handler *f);

/* Create a uffd: the syscall, or /dev/userfaultfd when refused. */
int uffd_open(bool *via_dev);

#endif
