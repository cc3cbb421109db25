/*
 * vm.c - the VM registry: create a VM from a registration, tear it down.
 *
 * Creation runs every check that needs real fds or the registry, in an
 * order that makes each failure say exactly what was wrong:
 *   1. the name is not taken;
 *   2. the uffd is a userfaultfd whose API handshake enabled the features
 *      pagekeeper relies on (read from /proc/self/fdinfo);
 *   3. the RAM fd is a shared-memory file (tmpfs: memfd or /dev/shm),
 *      open read-write and not sealed against writes (evicting punches
 *      it), that covers every region's file range;
 *   4. every region is really mapped in the peer, shared from that very
 *      file (or private anonymous for anon RAM), per /proc/PID/maps;
 *   5. UFFDIO_REGISTER on each region succeeds and offers the ioctls the
 *      fault path needs.  Registering a range the client registered is
 *      idempotent; doing it here proves the ranges to the kernel.
 * Then either the VM is one a previous daemon kept, whose guest is coming
 * back (state.h proves it and restores its pages), or a new one gets its
 * record, and pages the guest already populated are marked resident
 * (SEEK_DATA on the file, or /proc/PID/pagemap for anon), so a guest that
 * registers late keeps its data.  Either way every range is woken:
 * faults read by a previous daemon that died are raised again.
 */
#include "engine/vm.h"
#include "engine/state.h"
#include "engine/vm_balloon.h"
#include "engine/uffd_compat.h"
#include "engine/swap_dedup.h"
#include "swapper/state_file.h"
#include "swapper/swap_store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#define REJECT(err, ...)                                                   \
	do {                                                               \
		snprintf(reason, reason_len, __VA_ARGS__);                 \
		return (err);                                              \
	} while (0)

int pk_uffd_check(int fd, char *reason, size_t reason_len)
{
	char path[64], buf[512];
	ssize_t n;
	unsigned long long features = 0, ioctls = 0;
	char *api;
	int info;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		REJECT(-EBADF, "fd %d is not open", fd);
	buf[n] = '\0';
	if (strcmp(buf, "anon_inode:[userfaultfd]") != 0)
		REJECT(-ENOTTY, "the first fd is not a userfaultfd (it is %s)",
		       buf);

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	info = open(path, O_RDONLY | O_CLOEXEC);
	if (info < 0)
		REJECT(-errno, "cannot read %s: %s", path, strerror(errno));
	n = read(info, buf, sizeof(buf) - 1);
	close(info);
	buf[n > 0 ? n : 0] = '\0';
	api = strstr(buf, "API:\t");
	/* "API:\t<UFFD_API>:<enabled features>:<ioctls>" */
	if (!api || sscanf(api, "API:\t%*x:%llx:%llx", &features, &ioctls) != 2)
		REJECT(-EINVAL, "cannot parse the userfaultfd's fdinfo");
	if ((features & PK_UFFD_FEATURES) != PK_UFFD_FEATURES)
		REJECT(-EINVAL,
		       "userfaultfd lacks features 0x%llx (UFFDIO_API must "
		       "enable 0x%llx before registering)",
		       (unsigned long long)PK_UFFD_FEATURES & ~features,
		       (unsigned long long)PK_UFFD_FEATURES);
	return 0;
}

static int check_ram_fd(int ram_fd, const struct pk_registration *reg,
			struct stat *st, char *reason, size_t reason_len)
{
	struct statfs sfs;

	if (fstat(ram_fd, st) < 0 || fstatfs(ram_fd, &sfs) < 0)
		REJECT(-EBADF, "RAM fd: %s", strerror(errno));
	if (!S_ISREG(st->st_mode) || sfs.f_type != TMPFS_MAGIC)
		REJECT(-EINVAL, "RAM fd is not a memfd or /dev/shm file");
	/* Eviction and merging punch pages out of the file: a read-only fd
	 * or a write seal would make every punch fail. */
	int fl = fcntl(ram_fd, F_GETFL), seals = fcntl(ram_fd, F_GET_SEALS);
	if (fl < 0 || (fl & O_ACCMODE) != O_RDWR)
		REJECT(-EINVAL, "RAM fd is not open read-write: pagekeeper "
		       "punches evicted pages out of it");
	if (seals > 0 && (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)))
		REJECT(-EINVAL, "RAM file is sealed against writes: pagekeeper "
		       "punches evicted pages out of it");
	for (uint32_t i = 0; i < reg->n_regions; i++) {
		const struct pk_region_desc *r = &reg->regions[i];
		if (r->file_offset + r->length > (uint64_t)st->st_size)
			REJECT(-EINVAL,
			       "region %u ends at file offset %" PRIu64
			       " beyond the RAM file's %lld bytes",
			       i, r->file_offset + r->length,
			       (long long)st->st_size);
	}
	return 0;
}

/*
 * Each region must be covered by the peer's mappings with no gap: shared
 * mappings of the RAM file at the matching offsets, or private anonymous
 * ones.  This stops a client from making the daemon serve one file's
 * state for another's pages.
 */
static int check_peer_mappings(pid_t pid, const struct pk_registration *reg,
			       const struct stat *st, char *reason,
			       size_t reason_len)
{
	char path[64], *line = NULL;
	size_t line_cap = 0;
	FILE *maps;
	uint64_t covered[PK_PROTO_MAX_REGIONS] = { 0 };
	int anon = !!(reg->flags & PK_REG_ANON);

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	maps = fopen(path, "re");
	if (!maps)
		REJECT(-ESRCH, "cannot read %s: %s", path, strerror(errno));
	/* getline: a long path must not split a line into a forged one. */
	while (getline(&line, &line_cap, maps) > 0) {
		unsigned long long lo, hi, off, ino;
		unsigned maj, min;
		char perms[8];
		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu", &lo, &hi,
			   perms, &off, &maj, &min, &ino) != 7)
			continue;
		int shared = perms[3] == 's';
		int matches = anon ? (!shared && ino == 0)
				   : (shared && ino == st->st_ino &&
				      makedev(maj, min) == st->st_dev);
		if (!matches)
			continue;
		for (uint32_t i = 0; i < reg->n_regions; i++) {
			const struct pk_region_desc *r = &reg->regions[i];
			uint64_t s = r->host_addr, e = s + r->length;
			uint64_t a = lo > s ? lo : s, b = hi < e ? hi : e;
			if (a >= b)
				continue;
			if (!anon && off + (a - lo) != r->file_offset + (a - s))
				continue; /* same file, wrong offset */
			covered[i] += b - a;
		}
	}
	free(line);
	fclose(maps);
	for (uint32_t i = 0; i < reg->n_regions; i++)
		if (covered[i] != reg->regions[i].length)
			REJECT(-EINVAL,
			       "region %u (0x%" PRIx64 "+%" PRIu64
			       ") is not mapped in pid %d as %s",
			       i, reg->regions[i].host_addr,
			       reg->regions[i].length, (int)pid,
			       anon ? "private anonymous memory"
				    : "a shared mapping of the RAM file");
	return 0;
}

static int register_ranges(int uffd, const struct pk_registration *reg,
			   char *reason, size_t reason_len)
{
	for (uint32_t i = 0; i < reg->n_regions; i++) {
		struct uffdio_register r = {
			.range = { .start = reg->regions[i].host_addr,
				   .len = reg->regions[i].length },
			.mode = UFFDIO_REGISTER_MODE_MISSING |
				UFFDIO_REGISTER_MODE_WP,
		};
		if (ioctl(uffd, UFFDIO_REGISTER, &r) < 0)
			REJECT(-errno, "UFFDIO_REGISTER of region %u: %s", i,
			       strerror(errno));
		if ((r.ioctls & PK_UFFD_RANGE_IOCTLS) != PK_UFFD_RANGE_IOCTLS)
			REJECT(-EINVAL,
			       "region %u does not support the needed uffd ioctls",
			       i);
	}
	return 0;
}

/* Call fn for the pages of region r whose file range [lo, hi) holds data. */
static void file_data_pages(struct pk_vm *vm, const struct pk_vm_region *r,
			    uint64_t lo, uint64_t hi, pk_vm_page_fn *fn)
{
	off_t pos = (off_t)lo, end = (off_t)hi;

	while (pos < end) {
		off_t data = lseek(vm->ram_fd, pos, SEEK_DATA);
		if (data < 0 || data >= end)
			break;
		off_t hole = lseek(vm->ram_fd, data, SEEK_HOLE);
		if (hole < 0 || hole > end)
			hole = end;
		uint64_t first = r->first_page +
				 ((uint64_t)data - r->file_offset) / PK_PAGE_SIZE;
		uint64_t n = (uint64_t)(hole - data) / PK_PAGE_SIZE;
		for (uint64_t i = first; i < first + n; i++)
			fn(vm, i);
		pos = hole;
	}
}

static void resident_if_removed(struct pk_vm *vm, uint64_t idx)
{
	if (pk_page_state(&vm->pages, idx) == PK_PAGE_REMOVED)
		pk_page_set(&vm->pages, idx, PK_PAGE_RESIDENT, 0);
}

void pk_vm_recheck_removed(struct pk_vm *vm, uint64_t start, uint64_t end)
{
	for (uint32_t i = 0; i < vm->n_regions && !vm->anon; i++) {
		const struct pk_vm_region *r = &vm->regions[i];
		uint64_t lo = start > r->start ? start : r->start;
		uint64_t hi = end < r->start + r->length ? end
							 : r->start + r->length;
		if (lo < hi)
			file_data_pages(vm, r, r->file_offset + (lo - r->start),
					r->file_offset + (hi - r->start),
					resident_if_removed);
	}
}

void pk_vm_scan_present(struct pk_vm *vm, pk_vm_page_fn *fn)
{
	int pagemap = -1;

	if (vm->anon) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)vm->pid);
		pagemap = open(path, O_RDONLY | O_CLOEXEC);
		if (pagemap < 0)
			return;
	}
	for (uint32_t i = 0; i < vm->n_regions; i++) {
		const struct pk_vm_region *r = &vm->regions[i];
		uint64_t n = r->length / PK_PAGE_SIZE;
		if (vm->anon) {
			uint64_t ents[512];
			for (uint64_t p = 0; p < n; p += 512) {
				uint64_t k = n - p < 512 ? n - p : 512;
				off_t off = (off_t)((r->start / PK_PAGE_SIZE + p) *
						    sizeof(uint64_t));
				if (pread(pagemap, ents, k * 8, off) !=
				    (ssize_t)(k * 8))
					break;
				for (uint64_t j = 0; j < k; j++)
					if (ents[j] & (3ULL << 62)) /* present|swapped */
						fn(vm, r->first_page + p + j);
			}
			continue;
		}
		file_data_pages(vm, r, r->file_offset, r->file_offset + r->length,
				fn);
	}
	if (pagemap >= 0)
		close(pagemap);
}

static void mark_resident(struct pk_vm *vm, uint64_t idx)
{
	pk_page_set(&vm->pages, idx, PK_PAGE_RESIDENT, 0);
}

static void wake_all(struct pk_vm *vm)
{
	for (uint32_t i = 0; i < vm->n_regions; i++) {
		struct uffdio_range r = { .start = vm->regions[i].start,
					  .len = vm->regions[i].length };
		ioctl(vm->uffd, UFFDIO_WAKE, &r);
	}
}

struct pk_vm *pk_vm_find_by_name(struct pk_engine *e, const char *name)
{
	for (struct pk_vm *vm = e->vms; vm; vm = vm->next)
		if (strcmp(vm->name, name) == 0)
			return vm;
	return NULL;
}

struct pk_vm *pk_vm_find_by_id(struct pk_engine *e, uint32_t id)
{
	for (struct pk_vm *vm = e->vms; vm; vm = vm->next)
		if (vm->id == id)
			return vm;
	return NULL;
}

void pk_vm_page_where(const struct pk_vm *vm, uint64_t idx, uint64_t *addr,
		      uint64_t *off)
{
	for (uint32_t i = 0; i < vm->n_regions; i++) {
		const struct pk_vm_region *r = &vm->regions[i];
		uint64_t n = r->length / PK_PAGE_SIZE;
		if (idx >= r->first_page && idx < r->first_page + n) {
			*addr = r->start + (idx - r->first_page) * PK_PAGE_SIZE;
			*off = r->file_offset + (idx - r->first_page) * PK_PAGE_SIZE;
			return;
		}
	}
	*addr = *off = 0;
}

uint64_t pk_vm_range_in_region(const struct pk_vm *vm, uint32_t i,
			       uint64_t start, uint64_t end, uint64_t *first)
{
	const struct pk_vm_region *r = &vm->regions[i];
	uint64_t lo = start > r->start ? start : r->start;
	uint64_t hi = end < r->start + r->length ? end : r->start + r->length;

	if (lo >= hi)
		return 0;
	*first = r->first_page + (lo - r->start) / PK_PAGE_SIZE;
	return (hi - lo + PK_PAGE_SIZE - 1) / PK_PAGE_SIZE;
}

const struct pk_vm_region *pk_vm_region_of(const struct pk_vm *vm,
					   uint64_t addr)
{
	for (uint32_t i = 0; i < vm->n_regions; i++) {
		const struct pk_vm_region *r = &vm->regions[i];
		if (addr >= r->start && addr - r->start < r->length)
			return r;
	}
	return NULL;
}

static int region_cmp(const void *a, const void *b)
{
	const struct pk_vm_region *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* The daemon's read-only view of the RAM file (pread and SEEK_DATA use the fd). */
static int map_ram(struct pk_vm *vm, const struct stat *st, char *reason,
		   size_t reason_len)
{
	vm->ram_map_len = (uint64_t)st->st_size;
	vm->ram_map = mmap(NULL, vm->ram_map_len, PROT_READ, MAP_SHARED,
			   vm->ram_fd, 0);
	if (vm->ram_map == MAP_FAILED) {
		vm->ram_map = NULL;
		snprintf(reason, reason_len, "mapping the RAM file: %s",
			 strerror(errno));
		return -errno;
	}
	return 0;
}

/* The REGISTER trailer's settings as the policy takes them (-1: none). */
static void reg_settings(struct pk_vm *vm, const struct pk_registration *reg)
{
	const struct pk_register_settings *s = &reg->settings;
	struct pk_vm_setting *r = &vm->reg_set;

	memset(r, 0, sizeof(*r));
	snprintf(r->vm, sizeof(r->vm), "%s", reg->vm_name);
	r->shares = r->min_bytes = r->max_bytes = -1;
	r->no_balloon = -1;
	if (!(reg->flags & PK_REG_SETTINGS))
		return;
	r->shares = s->shares ? (int64_t)s->shares : -1;
	r->min_bytes = (int64_t)s->min_bytes;
	r->max_bytes = (int64_t)s->max_bytes;
	r->no_balloon = !!(s->flags & PK_REGSET_NO_BALLOON);
}

/* A waiting VM of a previous daemon gets its guest back (state.h). */
static int adopt(struct pk_vm *vm, const struct pk_registration *reg,
		 const struct stat *st, int uffd, int ram_fd, int conn_fd,
		 char *reason, size_t reason_len)
{
	int err;

	vm->ram_fd = ram_fd;
	if (!vm->anon && (err = map_ram(vm, st, reason, reason_len)) != 0) {
		vm->ram_fd = -1; /* the caller still owns the fds */
		return err;
	}
	vm->uffd = uffd;
	vm->conn_fd = conn_fd;
	vm->owner_uid = reg->owner_uid;
	vm->owner_admin = reg->owner_admin;
	vm->balloon_kind = reg->balloon_kind;
	snprintf(vm->balloon_channel, sizeof(vm->balloon_channel), "%s",
		 reg->balloon_channel);
	reg_settings(vm, reg);
	pk_state_restore_pages(vm);
	vm->next = vm->engine->vms;
	vm->engine->vms = vm;
	vm->engine->n_vms++;
	wake_all(vm);
	pk_policy_vm_init(vm);
	pk_vm_balloon_open(vm);
	return 0;
}

int pk_vm_create(struct pk_engine *e, const struct pk_registration *reg,
		 pid_t pid, int uffd, int ram_fd, int conn_fd,
		 struct pk_vm **out, char *reason, size_t reason_len)
{
	struct stat st = { 0 };
	struct pk_vm *vm;
	uint64_t pages = 0;
	int anon = !!(reg->flags & PK_REG_ANON);
	int err;

	if (pk_vm_find_by_name(e, reg->vm_name))
		REJECT(-EEXIST, "a VM named '%s' is already registered",
		       reg->vm_name);
	err = pk_uffd_check(uffd, reason, reason_len);
	if (err)
		return err;
	if (anon != (ram_fd < 0))
		REJECT(-EINVAL, anon ? "anonymous RAM must not send a RAM fd"
				     : "shared RAM needs a RAM fd after the uffd");
	if (!anon && (err = check_ram_fd(ram_fd, reg, &st, reason, reason_len)))
		return err;
	err = check_peer_mappings(pid, reg, &st, reason, reason_len);
	if (err)
		return err;
	err = register_ranges(uffd, reg, reason, reason_len);
	if (err)
		return err;

	/* The guest of a VM a previous daemon kept, coming back? */
	err = pk_state_adopt(e, reg, pid, anon ? NULL : &st, &vm, reason,
			     reason_len);
	if (err == 0) {
		err = adopt(vm, reg, &st, uffd, ram_fd, conn_fd, reason,
			    reason_len);
		if (err == 0) {
			vm->name_held = 1;
			pk_state_name_hold(e, vm->name, vm->owner_uid);
			*out = vm;
		}
		return err;
	}
	if (err != -ENOENT)
		return err;
	/* A new VM: its name must not be reserved for another uid, whose
	 * guest died or did not come back (state.h).  Root and the admin
	 * group may take it over. */
	uid_t holder;
	unsigned left;
	if (pk_state_name_owner(e, reg->vm_name, &holder, &left) == 0 &&
	    holder != reg->owner_uid) {
		if (!reg->owner_admin) {
			pk_log_prio(&e->log, LOG_NOTICE, "refused vm name %s to uid %u: reserved for uid "
			       "%u for %u s more", reg->vm_name,
			       (unsigned)reg->owner_uid, (unsigned)holder, left);
			REJECT(-EEXIST, "VM name '%s' is reserved for uid %u, "
			       "whose VM of that name went, for %u s more "
			       "(--name-reserve)", reg->vm_name,
			       (unsigned)holder, left);
		}
		pk_log(&e->log, "vm name %s, reserved for uid %u, taken over by "
		       "uid %u", reg->vm_name, (unsigned)holder,
		       (unsigned)reg->owner_uid);
	}

	vm = calloc(1, sizeof(*vm));
	if (!vm)
		REJECT(-ENOMEM, "out of memory");
	vm->engine = e;
	vm->anon = anon;
	vm->pid = pid;
	vm->uffd = uffd;
	vm->ram_fd = ram_fd;
	vm->conn_fd = conn_fd;
	vm->pidfd = -1;
	vm->reclaim_fd = vm->drain_fd = -1;
	vm->inbox = vm->inbox_mem;
	snprintf(vm->name, sizeof(vm->name), "%s", reg->vm_name);
	vm->owner_uid = reg->owner_uid;
	vm->owner_admin = reg->owner_admin;
	vm->balloon_kind = reg->balloon_kind;
	snprintf(vm->balloon_channel, sizeof(vm->balloon_channel), "%s",
		 reg->balloon_channel);
	reg_settings(vm, reg);
	vm->run_set = vm->reg_set; /* a new record: nothing set yet */
	vm->run_set.shares = vm->run_set.min_bytes = -1;
	vm->run_set.max_bytes = -1;
	vm->run_set.no_balloon = -1;
	vm->n_regions = reg->n_regions;
	for (uint32_t i = 0; i < reg->n_regions; i++) {
		vm->regions[i].start = reg->regions[i].host_addr;
		vm->regions[i].length = reg->regions[i].length;
		vm->regions[i].file_offset = reg->regions[i].file_offset;
	}
	qsort(vm->regions, vm->n_regions, sizeof(vm->regions[0]), region_cmp);
	for (uint32_t i = 0; i < vm->n_regions; i++) {
		vm->regions[i].first_page = pages;
		pages += vm->regions[i].length / PK_PAGE_SIZE;
	}
	vm->configured_bytes = pages * PK_PAGE_SIZE;

	/* The domain first: the record names it. */
	err = pk_share_attach(vm, reg->share_domain);
	if (err) {
		snprintf(reason, reason_len, "sharing domain: %s", strerror(-err));
		goto fail;
	}
	err = pk_state_vm_record(vm, anon ? NULL : &st, pages);
	if (err) {
		snprintf(reason, reason_len, "the VM's record in %s: %s",
			 e->cfg.run_dir, strerror(-err));
		goto fail;
	}
	if (!anon && (err = map_ram(vm, &st, reason, reason_len)) != 0)
		goto fail;
	vm->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (vm->pidfd < 0) {
		err = -errno;
		snprintf(reason, reason_len, "pidfd_open(%d): %s", (int)pid,
			 strerror(errno));
		goto fail;
	}
	pk_vm_scan_present(vm, mark_resident);

	vm->id = ++e->next_vm_id;
	vm->next = e->vms;
	e->vms = vm;
	e->n_vms++;
	wake_all(vm);
	pk_policy_vm_init(vm);
	pk_vm_balloon_open(vm);
	vm->name_held = 1;
	pk_state_name_hold(e, vm->name, vm->owner_uid);
	*out = vm;
	return 0;
fail:
	/* The caller still owns the fds on failure. */
	vm->uffd = vm->ram_fd = vm->conn_fd = -1;
	pk_vm_destroy(vm);
	return err;
}

void pk_vm_destroy(struct pk_vm *vm)
{
	struct pk_engine *e = vm->engine;
	struct pk_vm **list = vm->waiting ? &e->waiting : &e->vms;
	int keep = e->keep_state;

	for (struct pk_vm **p = list; *p; p = &(*p)->next)
		if (*p == vm) {
			*p = vm->next;
			if (vm->waiting)
				e->n_waiting--;
			else
				e->n_vms--;
			break;
		}
	/* Swap state: the batch in flight, retries, and (unless the state
	 * is kept for the next daemon) every slot and copy. */
	pk_evict_vm_gone(vm);
	pk_scan_vm_gone(vm);
	pk_share_detach(vm);
	while (vm->swapin_retry) {
		struct pk_swapin *op = vm->swapin_retry;
		vm->swapin_retry = op->next_retry;
		pk_swap_buf_put(e->swap, op->buf_idx);
		if (!keep)
			pk_swap_slot_put(e, op->slot);
		free(op);
	}
	for (uint64_t i = 0; !keep && e->swap && vm->pages.entries &&
			     vm->pages.count[PK_PAGE_SWAPPED] &&
			     i < vm->pages.n_pages; i++)
		if (pk_page_state(&vm->pages, i) == PK_PAGE_SWAPPED &&
		    !pk_page_busy(&vm->pages, i))
			pk_swap_slot_put(e, pk_page_payload(&vm->pages, i));
	/* The freed slots are punched by the engine's scrub, not here: a
	 * guest exit must not stall every other guest's faults. */
	if (vm->reclaim_fd >= 0)
		close(vm->reclaim_fd);
	pk_fault_drain_end(vm, -ESRCH, keep ? "the daemon is stopping"
					     : "the VM went away");
	pk_vm_balloon_close(vm);
	pk_watch_del(e->loop, vm->uffd_watch);
	pk_watch_del(e->loop, vm->pidfd_watch);
	pk_watch_del(e->loop, vm->conn_watch);
	if (vm->uffd >= 0)
		close(vm->uffd);
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	if (vm->conn_fd >= 0)
		close(vm->conn_fd);
	if (vm->ram_fd >= 0)
		close(vm->ram_fd);
	if (vm->ram_map)
		munmap(vm->ram_map, vm->ram_map_len);
	pk_page_table_free(&vm->pages);
	/* The VM went: its name stays its owner's for --name-reserve. */
	if (vm->name_held && !keep)
		pk_state_name_hold(e, vm->name, vm->owner_uid);
	if (keep)
		pk_sfile_close(vm->record);
	else
		pk_sfile_remove(vm->record);
	free(vm);
}
