/*
 * ram.c - the guest RAM backends QEMU maps, and their attachments.
 *
 * When: QEMU reserves the RAM's address range with an anonymous PROT_NONE
 * mapping, then maps the backend's file MAP_SHARED|MAP_FIXED over it
 * (qemu_ram_mmap).  The wrapped mmap() hands that second mapping here,
 * right after it exists and long before any vCPU runs, and the backend is
 * attached there and then, synchronously: the daemon owns the RAM from
 * its first touch.  Pages QEMU writes later (ROMs, prealloc=on, an
 * incoming migration) fault through the daemon like the guest's.  The
 * daemon also copes with RAM that is already populated: at registration
 * it marks every page with data in the file as resident (SEEK_DATA), so a
 * late attach loses nothing.
 *
 * Two cases attach later, from a worker thread:
 *  - -incoming: QEMU may register the RAM on its own userfaultfd for
 *    postcopy, which fails if ours holds it.  The worker polls every
 *    100 ms until QEMU's run state is "running" (a postcopy or precopy
 *    migration reached the guest-runs point) and no userfaultfd is open
 *    in the process (postcopy has ended: QEMU unregisters and closes its
 *    own).  A destination never returns to "incoming", so nothing can
 *    register after that.
 *  - the daemon is absent: pk_client_attach() fails outright then (it
 *    reconnects only after a first success), so the worker retries every
 *    second, connecting first so no running guest is registered on a
 *    userfaultfd nobody serves.  The same for a name the daemon says is
 *    taken (-EEXIST): on a migration destination that is the source
 *    QEMU, registered under the same name until it exits.  Any other
 *    refusal is final.
 * Once attached, the client library's reconnect thread re-registers the
 * same userfaultfd after a daemon restart.
 *
 * munmap(): a backend whose range goes away (object-del, QEMU's exit
 * teardown) is detached first, so the daemon drops the VM at once.
 *
 * fallocate64() needs no wrapper: QEMU discards RAM (balloon, free page
 * reporting, virtio-mem) in ram_block_discard_range() by punching the
 * file and then madvise(MADV_DONTNEED) on the mapping, and that madvise
 * raises UFFD_EVENT_REMOVE on our userfaultfd for shmem too, which the
 * daemon's fault path handles (checked on Linux 6.18: a punch alone
 * raises nothing, punch + DONTNEED and MADV_REMOVE raise REMOVE; a real
 * guest ballooned down by 256 MiB gave 65536 REMOVE pages).
 *
 * Locking: state->lock guards the ram table; an attach or detach (socket
 * round trips) runs outside it, with the entry marked busy.
 */
#include "engine/preload/preload.h"
#include "engine/preload/backend.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

static const char *const type_names[] = {
	[PK_QC_BE_OTHER] = "memory backend",
	[PK_QC_BE_MEMFD] = "memory-backend-memfd",
	[PK_QC_BE_FILE] = "memory-backend-file",
};

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * Failures worth retrying: no daemon listens (yet), it went away or
 * hangs, or the name is taken (by this VM's migration source most often,
 * registered until it exits).
 */
static int transient(int rc)
{
	return rc == -ENOENT || rc == -ECONNREFUSED || rc == -ECONNRESET ||
	       rc == -EPIPE || rc == -EAGAIN || rc == -ETIMEDOUT ||
	       rc == -EINTR || rc == -EEXIST;
}

static void describe_balloon(const struct pk_preload *s, char *out,
			     size_t len)
{
	static const char *const kinds[] = { "none", "lab", "qmp", "libvirt" };

	if (s->balloon_kind == PK_BALLOON_NONE)
		snprintf(out, len, "none");
	else
		snprintf(out, len, "%s:%s", kinds[s->balloon_kind],
			 s->balloon_channel);
}

/*
 * Attach entry r (marked busy by the caller), outside the lock.  Updates
 * its state and logs the outcome; returns 1 if it should be retried.
 */
static int attach_one(struct pk_preload *s, struct pk_ram *r)
{
	const struct pk_qc_backend *b = &s->cmd.backends[r->backend];
	struct pk_client_region region = {
		.addr = r->addr, .length = r->len, .file_offset = r->offset };
	struct pk_client_opts o = {
		.socket_path = s->socket,
		.vm_name = r->name,
		.ram_fd = r->fd,
		.regions = &region,
		.n_regions = 1,
		.share_domain = s->share_domain,
		.balloon_kind = r->balloon ? s->balloon_kind : PK_BALLOON_NONE,
		.balloon_channel = r->balloon ? s->balloon_channel : "",
		.reconnect = 1,
	};
	struct pk_client *c = NULL;
	char err[PK_PROTO_REASON_MAX + 64], balloon[PK_PROTO_CHANNEL_MAX + 16];
	unsigned vm_id = 0;
	int rc, retry = 0;

	rc = pk_proc_can_connect(s->socket);
	if (rc == 0)
		rc = pk_client_attach_settings(
			&o, r->balloon && s->has_settings ? &s->settings : NULL,
			&c, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "connect %s: %s", s->socket,
			 strerror(-rc));

	pthread_mutex_lock(&s->lock);
	r->busy = 0;
	if (r->state == PK_RAM_GONE) {
		/* QEMU unmapped it meanwhile: let go at once. */
		pthread_mutex_unlock(&s->lock);
		pk_client_detach(c);
		close(r->fd);
		return 0;
	}
	if (rc == 0) {
		r->client = c;
		r->state = PK_RAM_ATTACHED;
		vm_id = pk_client_vm_id(c); /* c is munmap's once unlocked */
	} else if (transient(rc)) {
		retry = 1;
	} else {
		r->state = PK_RAM_REFUSED;
		atomic_fetch_sub(&s->n_live, 1);
	}
	pthread_mutex_unlock(&s->lock);

	if (rc == 0) {
		describe_balloon(s, balloon, sizeof(balloon));
		pk_say("VM '%s' attached to %s: %zu MiB of %s '%s', vm id %u, "
		       "balloon %s",
		       r->name, s->socket, r->len >> 20, type_names[b->type],
		       b->id, vm_id,
		       r->balloon ? balloon : "none");
	} else if (retry && !r->said_retry) {
		r->said_retry = 1;
		pk_say("VM '%s' runs unmanaged: %s; retrying every %d s in the "
		       "background",
		       r->name, err, PK_RETRY_MS / 1000);
	} else if (!retry) {
		pk_say("VM '%s' runs unmanaged: %s", r->name, err);
	}
	if (!retry && rc)
		close(r->fd);
	return retry;
}

/* Pick the next entry the worker may attach; -1 if none is pending. */
static int next_pending(struct pk_preload *s, int *any_pending)
{
	*any_pending = 0;
	for (unsigned i = 0; i < s->n_ram; i++) {
		if (s->ram[i].state != PK_RAM_PENDING)
			continue;
		*any_pending = 1;
		if (!s->ram[i].busy)
			return (int)i;
	}
	return -1;
}

/*
 * The worker may attach now: -incoming's migration is over.  QEMU's
 * runstate_is_running() reads one enum without QEMU's lock; a stale
 * answer only delays the attach by a poll.
 */
static int may_attach(struct pk_preload *s)
{
	int deferred;

	pthread_mutex_lock(&s->lock);
	deferred = s->deferred;
	pthread_mutex_unlock(&s->lock);
	if (deferred &&
	    (!s->runstate_is_running() || pk_proc_uffd_count() != 0))
		return 0;
	pthread_mutex_lock(&s->lock);
	s->deferred = 0;
	pthread_mutex_unlock(&s->lock);
	return 1;
}

static void *worker(void *arg)
{
	struct pk_preload *s = arg;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL); /* QEMU's signals are its own */
	for (;;) {
		int any, retry = 0, i;

		pthread_mutex_lock(&s->lock);
		next_pending(s, &any);
		if (!any) {
			s->worker = 0;
			pthread_mutex_unlock(&s->lock);
			return NULL;
		}
		pthread_mutex_unlock(&s->lock);
		if (!may_attach(s)) {
			sleep_ms(PK_DEFER_POLL_MS);
			continue;
		}
		/* One pass over what is pending now. */
		pthread_mutex_lock(&s->lock);
		while (!retry && (i = next_pending(s, &any)) >= 0) {
			s->ram[i].busy = 1;
			pthread_mutex_unlock(&s->lock);
			/* If the daemon is away, it is away for all of them. */
			retry = attach_one(s, &s->ram[i]);
			pthread_mutex_lock(&s->lock);
		}
		next_pending(s, &any);
		pthread_mutex_unlock(&s->lock);
		if (any) /* the daemon is away, or an attach is in flight */
			sleep_ms(retry ? PK_RETRY_MS : PK_DEFER_POLL_MS);
	}
}

/* Called with the lock held. */
static void start_worker(struct pk_preload *s)
{
	pthread_attr_t a;
	pthread_t t;

	if (s->worker)
		return;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &a, worker, s) == 0) {
		s->worker = 1;
		pthread_setname_np(t, "pk-preload");
	} else {
		pk_say("VM '%s': cannot start the shim's thread: the RAM QEMU "
		       "maps from now on is attached only if the daemon "
		       "answers at once", s->name);
	}
	pthread_attr_destroy(&a);
}

/* Matched backend b may be managed?  NULL, or why not. */
static const char *check_file(int fd, const struct pk_qc_backend *b)
{
	struct statfs sfs;
	struct stat st;

	if (fstat(fd, &st) < 0 || fstatfs(fd, &sfs) < 0)
		return "its file cannot be inspected";
	if (sfs.f_type != TMPFS_MAGIC)
		return "its file is not on tmpfs (hugetlbfs and disk files "
		       "cannot be managed)";
	return pk_backend_refusal(b, (unsigned long)st.st_nlink);
}

/* Record a new entry; with the lock held.  Returns it, or NULL. */
static struct pk_ram *add_ram(struct pk_preload *s, int backend, void *addr,
			      size_t len, int fd, uint64_t offset)
{
	const struct pk_qc_backend *b = &s->cmd.backends[backend];
	struct pk_ram *r;
	int dup_fd;

	if (s->n_ram >= PK_QC_MAX_BACKENDS)
		return NULL;
	dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (dup_fd < 0) {
		pk_say("VM '%s': backend '%s' runs unmanaged: dup: %s",
		       s->name, b->id, strerror(errno));
		return NULL;
	}
	r = &s->ram[s->n_ram++];
	memset(r, 0, sizeof(*r));
	r->fd = dup_fd;
	r->addr = addr;
	r->len = len;
	r->offset = offset;
	r->backend = backend;
	r->balloon = backend == s->balloon_backend;
	r->state = PK_RAM_PENDING;
	pk_backend_vm_name(s->name, b->id, s->several, r->name,
			   sizeof(r->name));
	atomic_fetch_add(&s->n_live, 1);
	return r;
}

void pk_ram_mapped(void *addr, size_t len, int fd, uint64_t offset)
{
	struct pk_preload *s = pk_preload_state();
	char link[PK_QC_PATH_MAX + 32];
	const struct pk_qc_backend *b;
	const char *why;
	struct pk_ram *r;
	int idx;

	if (pk_proc_fd_link(fd, link, sizeof(link)) < 0)
		return;
	if (len == 0 || len % PK_PAGE_SIZE || offset % PK_PAGE_SIZE)
		return;
	pthread_mutex_lock(&s->lock);
	idx = pk_backend_match(&s->cmd, (const char *const *)s->mem_paths,
			       link, &s->used);
	if (idx < 0) {
		pthread_mutex_unlock(&s->lock);
		if (!strncmp(link, PK_MEMFD_LINK, strlen(PK_MEMFD_LINK)))
			pk_say("VM '%s': a memory-backend-memfd of %zu MiB that "
			       "is not on the command line (object-add?) runs "
			       "unmanaged", s->name, len >> 20);
		return;
	}
	b = &s->cmd.backends[idx];
	why = check_file(fd, b);
	if (why) {
		pthread_mutex_unlock(&s->lock);
		if (b->ram) /* ivshmem & co. are not ours: say nothing */
			pk_say("VM '%s': %s '%s' runs unmanaged: %s", s->name,
			       type_names[b->type], b->id, why);
		return;
	}
	r = add_ram(s, idx, addr, len, fd, offset);
	if (!r || s->deferred) {
		if (r)
			start_worker(s);
		pthread_mutex_unlock(&s->lock);
		return;
	}
	r->busy = 1;
	pthread_mutex_unlock(&s->lock);
	if (attach_one(s, r)) {
		pthread_mutex_lock(&s->lock);
		start_worker(s);
		pthread_mutex_unlock(&s->lock);
	}
}

void pk_ram_unmapping(void *addr, size_t len)
{
	struct pk_preload *s = pk_preload_state();
	uintptr_t lo = (uintptr_t)addr, hi = lo + len;

	if (atomic_load(&s->n_live) == 0)
		return;
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < s->n_ram; i++) {
		struct pk_ram *r = &s->ram[i];
		uintptr_t a = (uintptr_t)r->addr;
		struct pk_client *c;

		if (r->state == PK_RAM_GONE || r->state == PK_RAM_REFUSED ||
		    hi <= a || lo >= a + r->len)
			continue;
		c = r->state == PK_RAM_ATTACHED ? r->client : NULL;
		if (!r->busy && !c)
			close(r->fd); /* pending: nobody else owns it */
		r->state = PK_RAM_GONE;
		r->client = NULL;
		atomic_fetch_sub(&s->n_live, 1);
		if (c) {
			/* Detach before the range goes: the daemon frees the
			 * VM now rather than at QEMU's exit. */
			pthread_mutex_unlock(&s->lock);
			pk_client_detach(c);
			close(r->fd);
			pthread_mutex_lock(&s->lock);
		}
	}
	pthread_mutex_unlock(&s->lock);
}
