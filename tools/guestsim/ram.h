/*
 * ram.h - the guest's RAM and its attachment to pagekeeperd.  See ram.c.
 */
#ifndef GS_RAM_H
#define GS_RAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "opts.h"

struct pk_client;

struct gs_ram {
	unsigned char *base;
	size_t size;
	int fd;			  /* memfd, or -1 for private anonymous RAM */
	struct pk_client *client; /* NULL while not attached */
};

/* Map size bytes.  0 or -errno. */
int gs_ram_map(struct gs_ram *r, size_t size, bool anon);

/* madvise(MADV_MERGEABLE) all of it, for KSM (--mergeable).  0 or -errno. */
int gs_ram_mergeable(struct gs_ram *r);

/* Hand the RAM to pagekeeperd.  0, or -errno with the reason in err. */
int gs_ram_attach(struct gs_ram *r, const struct gs_opts *o, char *err,
		  size_t err_len);

/*
 * Discard pages [first, first + count) the way a guest's balloon does:
 * MADV_REMOVE on a memfd (frees the data), MADV_DONTNEED on anonymous
 * RAM.  They read as zeros afterwards.  0 or -errno.
 */
int gs_ram_discard(struct gs_ram *r, uint64_t first, uint64_t count);

/* Detach if attached, unmap, close. */
void gs_ram_release(struct gs_ram *r);

#endif
