/*
 * ram.c - the guest's RAM and its attachment to pagekeeperd.
 *
 * What: guest RAM is what a VMM such as QEMU would give a guest: a memfd
 * mapped MAP_SHARED (the usual memory-backend-memfd, which lets the daemon
 * map the same pages), or with --anon private anonymous memory (the
 * default memory backend, which the daemon can only reach through the
 * userfaultfd).  MAP_NORESERVE because an overcommitted guest is expected
 * to be bigger than what it really uses.
 *
 * How: one region covers all of RAM at file offset 0.  pk_client_attach()
 * runs before the first touch, so from the very first fault the daemon
 * owns every page (a first touch is served as a zero page).  reconnect is
 * on, as a VMM would want: if the daemon restarts, faults wait for it
 * instead of failing.
 *
 * With --mergeable the whole mapping is madvise(MADV_MERGEABLE)d right
 * after mmap, before any touch, so KSM (ksmd) may merge its pages: the
 * kernel baseline the sharing benchmark compares pagekeeperd with.  KSM
 * only merges private anonymous memory; on a MAP_SHARED memfd the call
 * returns 0 and nothing is merged (FACTS.md).
 *
 * Why a file of its own: the rest of the simulator only sees a base
 * pointer; how RAM is backed and managed is decided here.
 */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/client/pagekeeper-client.h"
#include "ram.h"

int gs_ram_map(struct gs_ram *r, size_t size, bool anon)
{
	void *p;
	int err;

	r->size = size;
	r->fd = -1;
	r->client = NULL;
	if (anon) {
		p = mmap(NULL, size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	} else {
		r->fd = memfd_create("pk-guestsim", MFD_CLOEXEC);
		if (r->fd < 0)
			return -errno;
		if (ftruncate(r->fd, (off_t)size) < 0) {
			err = -errno;
			close(r->fd);
			r->fd = -1;
			return err;
		}
		p = mmap(NULL, size, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_NORESERVE, r->fd, 0);
	}
	if (p == MAP_FAILED) {
		err = -errno;
		if (r->fd >= 0)
			close(r->fd);
		r->fd = -1;
		return err;
	}
	r->base = p;
	return 0;
}

int gs_ram_mergeable(struct gs_ram *r)
{
	return madvise(r->base, r->size, MADV_MERGEABLE) < 0 ? -errno : 0;
}

int gs_ram_attach(struct gs_ram *r, const struct gs_opts *o, char *err,
		  size_t err_len)
{
	struct pk_client_region region = {
		.addr = r->base,
		.length = r->size,
		.file_offset = 0,
	};
	struct pk_client_opts copts = {
		.socket_path = o->socket_path,
		.vm_name = o->name,
		.ram_fd = r->fd,
		.regions = &region,
		.n_regions = 1,
		.share_domain = o->share_domain,
		.balloon_kind = o->balloon_kind,
		.balloon_channel = o->balloon_channel,
		.reconnect = 1,
	};

	if (err_len)
		err[0] = '\0';
	return pk_client_attach(&copts, &r->client, err, err_len);
}

int gs_ram_discard(struct gs_ram *r, uint64_t first, uint64_t count)
{
	/* On a shared memfd mapping MADV_DONTNEED only unmaps: the next
	 * access maps the file's page again, old bytes and all. */
	int advice = r->fd >= 0 ? MADV_REMOVE : MADV_DONTNEED;

	return madvise(r->base + first * 4096, count * 4096, advice) < 0
		       ? -errno
		       : 0;
}

void gs_ram_release(struct gs_ram *r)
{
	if (r->client)
		pk_client_detach(r->client);
	r->client = NULL;
	if (r->base)
		munmap(r->base, r->size);
	r->base = NULL;
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}
