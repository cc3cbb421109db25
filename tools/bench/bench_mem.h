/*
 * bench_mem.h - fresh guest-like memory for one benchmark variant.
 *
 * What: a region that is either a memfd mapped MAP_SHARED (the main
 * pagekeeper target) or private anonymous memory (--anon).
 * How: memfd_create + ftruncate + mmap, or mmap(MAP_ANONYMOUS); THP is
 * disabled on the range so every first touch is one 4 KiB fault.
 * Why: every variant gets never-touched memory, and freeing it between
 * variants keeps a 1 GiB sequential run from piling up RAM.
 */
#ifndef PK_BENCH_MEM_H
#define PK_BENCH_MEM_H

#include <stdbool.h>
#include <stddef.h>

#define BENCH_PAGE 4096ul

struct bench_mem {
	int fd;	   /* memfd, or -1 for anon */
	char *addr;
	size_t len;
	bool anon;
};

/* Returns 0 or a negative errno; m is left with fd -1, addr NULL on error. */
int bench_mem_alloc(struct bench_mem *m, size_t len, bool anon);
void bench_mem_free(struct bench_mem *m);

#endif
