/*
 * state.c - the daemon's durable state, and a restarted daemon's replay
 * (see state.h for the contract).
 *
 * What is kept, and where.  Guest RAM dies with the kernel, so the state
 * must outlive the daemon process, never the kernel: everything is a
 * file whose bytes are in the page cache as soon as a store or a write
 * returns, and nothing is fsynced.
 *   STATE/lock, RUN/lock          flock()ed for the daemon's whole life;
 *   STATE/swap.pk                 the swap file (disk, O_DIRECT);
 *   RUN/swap-sums.pk              a record: the swap file's identity
 *                                 (device, inode, size) and one XXH3 per
 *                                 slot, stored when a write completes;
 *   RUN/vm-<hex name>.pk          a record per VM: its identity and its
 *                                 page-state table, 8 bytes a page, which
 *                                 vm->pages maps and the fault path
 *                                 updates in place, a word of flags
 *                                 (drained), and the inbox: the buffer
 *                                 the VM's uffd is read into (2 KiB),
 *                                 and its run-time settings (below);
 *   RUN/canon-<hex key>.pages     a sharing domain's canonical copies;
 *   RUN/name-<hex name>           a VM name's reservation: its owner's
 *                                 uid as text (state.h).
 * RUN is expected on tmpfs (/run): records then cost memory like the
 * anonymous tables they replace, and nothing is written back.  (Records
 * are described in swapper/state_file.h: header written once before a
 * rename, payload of aligned 8-byte stores a killed process cannot tear.)
 *
 * Why this order makes a kill -9 safe at any instant.  A page's bytes
 * leave the guest only by a punch, and evict.c punches a page only after
 * (1) its slot write completed and its checksum was stored, and (2) its
 * entry says SWAPPED(slot) or SHARED(copy) (a copy is written before the
 * entry names it).  A swap-in copies the page in before its entry turns
 * RESIDENT and before its slot is let go.  So after a kill:
 *   - a page present in the RAM file is resident, whatever its entry says
 *     (the entry may be one step behind: recorded but not yet punched,
 *     or copied in but not yet recorded); the RAM file wins, and the slot
 *     or copy its entry names is let go;
 *   - an absent page's entry is right: SWAPPED and SHARED name where its
 *     bytes are; a RESIDENT entry on an absent page means the guest
 *     discarded the page, so it reads zeros, as before the kill.
 * Slot and copy reference counts are not stored: replay counts the
 * entries that name each one; a slot with a checksum that no entry names
 * is freed (the scrub punches it), and so is a copy.  A page whose slot
 * or copy cannot be had (swap file gone, entry out of range) is poisoned:
 * the guest gets a memory error for it, never zeros.
 *
 * Discards.  The kernel lets a guest's MADV_REMOVE go on (and punch) as
 * soon as the daemon's read() takes the REMOVE event, before the daemon
 * has recorded it; a kill in between (the released guest may well
 * preempt the daemon there) would leave SWAPPED on a page the guest
 * discarded, and serve its old bytes instead of zeros.  So the uffd is
 * read straight into the record's inbox: the kernel copies each message
 * into the page cache within that read(), which a kill cannot split.
 * fault.c clears a REMOVE message once its pages say REMOVED, and replay
 * applies the ones still there.  Re-applying one is harmless: nothing
 * else happens to those pages between the two stores, and if the guest
 * had not punched yet, adoption finds the page present and keeps it.
 * The inbox's pages are locked, so the kernel's copy never faults.
 *
 * Run-time settings (pagekeeper set: shares, min, max, balloon opt-out).
 * A record's header, metadata included, is written once before its
 * rename and checksummed (swapper/state_file.h): it cannot change in
 * place, and a new record would mean copying the whole table.  So a
 * version 3 record's metadata says where its settings block is: 9 words
 * after the inbox, a sequence word and two slots of 4 words (which
 * fields were given and the balloon opt-out, min, max, and the hash of
 * the [vm NAME] section they override).  Written at registration (all
 * zeros: nothing set), on each successful SET, and when a changed [vm
 * NAME] section (a reload, or a restart with another file) makes them
 * void: the slot the sequence does not name is filled, then the
 * sequence word is stored (one aligned 8-byte store, after the slot's),
 * so a kill leaves the old settings or the new ones, never a mix.
 * Version 2 records (no block) still load, with no run-time settings.
 *
 * Bounded: records are rewritten in place (8 bytes a guest page, 8 a
 * slot); a VM's record goes when the VM goes, a domain's copies with its
 * last VM.  There is no log to compact.
 */
#include "engine/state.h"

#include "engine/engine.h"
#include "engine/swap_dedup.h"
#include "engine/uffd_compat.h"
#include "engine/vm.h"
#include "hashing/canonical_store.h"
#include "swapper/state_file.h"
#include "swapper/swap_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#define KIND_VM 0x564d5054u   /* "VMPT" */
#define KIND_SUMS 0x53554d53u /* "SUMS" */
#define SUMS_NAME "swap-sums.pk"
#define RECORD_VERSION 3u /* 2: the inbox; 3: the settings block */
#define RECORD_VERSION_V2 2u
#define RECORD_DRAINED 0x1ull /* the VM flags word: pagekeeper drain ran */
/* A VM record's payload, in 8-byte words: entries, flags, inbox. */
#define INBOX_WORDS (PK_UFFD_READ_BATCH * sizeof(struct uffd_msg) / 8)
#define RECORD_WORDS(n_pages) ((n_pages) + 1 + INBOX_WORDS)
/* Version 3: then the settings block, a sequence word and two slots. */
#define SETTINGS_WORDS 9u
#define SET_SHARES 0x1ull /* slot word 0: which figures were given */
#define SET_MIN 0x2ull
#define SET_MAX 0x4ull
#define SET_BALLOON 0x8ull
#define SET_NO_BALLOON 0x10ull /* ... the opt-out; shares in bits 32-63 */

_Static_assert(sizeof(struct uffd_msg) % 8 == 0, "uffd messages tile words");

struct sums_meta {
	uint32_t version;
	uint32_t pad;
	uint64_t size, dev, ino;
};

struct vm_meta {
	uint32_t version;
	uint32_t n_regions;
	int32_t pid;
	uint32_t anon;
	uint64_t pid_start; /* /proc/PID/stat starttime: pid reuse differs */
	uint64_t ram_dev, ram_ino, ram_size;
	uint64_t n_pages;
	char name[PK_PROTO_NAME_MAX];
	char share_domain[PK_PROTO_NAME_MAX];
	struct {
		uint64_t start, length, file_offset;
	} regions[PK_PROTO_MAX_REGIONS];
	/* Version 3: the settings block, in payload words (state.c's top
	 * comment).  A version 2 record's metadata ends here. */
	uint64_t settings_at, settings_words;
};
#define VM_META_V2_SIZE offsetof(struct vm_meta, settings_at)

_Static_assert(sizeof(struct vm_meta) <= PK_SFILE_META_MAX,
	       "a VM record's metadata fits its header");
_Static_assert(VM_META_V2_SIZE == 1720 &&
	       sizeof(struct vm_meta) == VM_META_V2_SIZE + 16,
	       "version 2's metadata is version 3's prefix");

/* ---- small helpers ---------------------------------------------------- */

/* name -> "<prefix><hex of name><suffix>": any name makes a safe file name. */
static void hex_name(char *out, size_t len, const char *prefix,
		     const char *name, const char *suffix)
{
	size_t n = (size_t)snprintf(out, len, "%s", prefix);

	for (const unsigned char *p = (const unsigned char *)name;
	     *p && n + 3 < len; p++)
		n += (size_t)snprintf(out + n, len - n, "%02x", *p);
	snprintf(out + n, len - n, "%s", suffix);
}

/* Field 22 of /proc/PID/stat (start time in clock ticks), 0 if gone. */
static uint64_t pid_start_time(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long start = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* the command may hold spaces and parens */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			 "%*u %*u %*d %*d %*d %*d %*d %*d %llu", &start) != 1)
		return 0;
	return start;
}

static int lock_dir(struct pk_engine *e, const char *dir, int *dirfd,
		    int *lockfd)
{
	char pid[32] = "";

	*dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*dirfd < 0) {
		int err = -errno;
		pk_log_prio(&e->log, LOG_ERR, "cannot open %s: %s", dir, strerror(errno));
		return err;
	}
	*lockfd = openat(*dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*lockfd < 0) {
		int err = -errno;
		pk_log_prio(&e->log, LOG_ERR, "cannot create %s/lock: %s", dir, strerror(errno));
		return err;
	}
	if (flock(*lockfd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		ssize_t n = pread(*lockfd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		pk_log(&e->log, "%s is in use by another pagekeeperd (pid %s); "
		       "nothing was touched", dir, pid[0] ? pid : "?");
		return err;
	}
	if (ftruncate(*lockfd, 0) == 0)
		dprintf(*lockfd, "%d\n", (int)getpid());
	return 0;
}

int pk_state_open(struct pk_engine *e)
{
	struct stat a, b;
	struct statfs sfs;
	int err;

	e->state_dirfd = e->run_dirfd = -1;
	e->state_lock_fd = e->run_lock_fd = -1;
	err = lock_dir(e, e->cfg.state_dir, &e->state_dirfd, &e->state_lock_fd);
	if (err)
		return err;
	if (fstat(e->state_dirfd, &a) < 0 || stat(e->cfg.run_dir, &b) < 0) {
		err = -errno;
		pk_log_prio(&e->log, LOG_ERR, "cannot stat %s: %s", e->cfg.run_dir, strerror(errno));
		return err;
	}
	if (a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
		/* One directory for both: one lock. */
		e->run_dirfd = dup(e->state_dirfd);
		if (e->run_dirfd < 0)
			return -errno;
	} else {
		err = lock_dir(e, e->cfg.run_dir, &e->run_dirfd, &e->run_lock_fd);
		if (err)
			return err;
	}
	if (e->cfg.volatile_state)
		pk_log(&e->log, "--volatile-state: VM records and canonical copies "
		       "are in this process's memory; a restart loses every "
		       "swapped and merged page");
	else if (fstatfs(e->run_dirfd, &sfs) == 0 && sfs.f_type != TMPFS_MAGIC)
		pk_log(&e->log, "note: the run directory %s is not on tmpfs: VM "
		       "records are written back to its disk, and canonical "
		       "copies use 4 KiB pages (refaults of merged pages are "
		       "slower)", e->cfg.run_dir);
	return 0;
}

/* ---- the swap file and its checksums ---------------------------------- */

static int swap_watch_and_dedup(struct pk_engine *e);
static int name_read(struct pk_engine *e, const char *f, uid_t *uid,
		     time_t *mtime);
static void names_sweep(struct pk_engine *e);

int pk_state_swap_open(struct pk_engine *e)
{
	char path[4096];
	struct pk_swap_open_opts o = { .queue_depth = PK_SWAP_QUEUE_DEPTH,
				       .flags = PK_SWAP_OPEN_KEEP,
				       .inject = e->cfg.swap_inject };
	struct pk_sfile *sums = NULL;
	struct stat st;
	int err;

	snprintf(path, sizeof(path), "%s/swap.pk", e->cfg.state_dir);
	o.path = path;
	if (e->cfg.volatile_state) {
		if (!e->cfg.swap_bytes)
			return 0;
		o.flags = 0; /* replaced now, unlinked at stop */
		o.size_bytes = e->cfg.swap_bytes;
		err = pk_swap_store_open_opts(&e->swap, &o);
		if (err) {
			pk_log_prio(&e->log, LOG_ERR, "cannot create the swap file %s: %s", path,
			       strerror(-err));
			return err;
		}
		return swap_watch_and_dedup(e);
	}
	err = pk_sfile_open(&sums, e->run_dirfd, SUMS_NAME, KIND_SUMS);
	if (err == 0) {
		size_t len;
		const struct sums_meta *m = pk_sfile_meta(sums, &len);
		if (len == sizeof(*m) && stat(path, &st) == 0 &&
		    (uint64_t)st.st_dev == m->dev &&
		    (uint64_t)st.st_ino == m->ino &&
		    (uint64_t)st.st_size == m->size &&
		    pk_sfile_payload_bytes(sums) ==
			    m->size / PK_SWAP_PAGE_SIZE * sizeof(uint64_t)) {
			if (m->size != e->cfg.swap_bytes)
				pk_log(&e->log, "keeping the previous daemon's swap "
				       "file (%" PRIu64 " MiB, not the %" PRIu64
				       " MiB asked for): guests' pages are in it",
				       m->size >> 20, e->cfg.swap_bytes >> 20);
			o.size_bytes = m->size;
			o.checksums = pk_sfile_payload(sums);
			err = pk_swap_store_open_opts(&e->swap, &o);
			if (err == 0 && !pk_swap_store_reopened(e->swap))
				err = -ENOENT;
			if (err) {
				pk_log_prio(&e->log, LOG_ERR, "cannot reopen the swap file %s: %s",
				       path, strerror(-err));
				pk_swap_store_close(e->swap);
				e->swap = NULL;
				pk_sfile_close(sums);
				return err;
			}
			e->swap_sums = sums;
			pk_log(&e->log, "swap file %s: %" PRIu64 " MiB, kept from the "
			       "previous daemon, %s I/O", path, m->size >> 20,
			       pk_swap_store_is_direct(e->swap) ? "O_DIRECT"
								: "buffered");
			return swap_watch_and_dedup(e);
		}
		pk_log_prio(&e->log, LOG_ERR, "the swap file %s is not the one the previous daemon "
		       "left (missing, replaced or resized): pages swapped "
		       "there are lost, and their guests get memory errors for "
		       "them", path);
		e->swap_lost = 1;
		pk_sfile_remove(sums);
	} else if (err != -ENOENT) {
		pk_log_prio(&e->log, LOG_ERR, "%s/%s is damaged (%s): pages swapped by the previous "
		       "daemon are lost", e->cfg.run_dir, SUMS_NAME,
		       strerror(-err));
		e->swap_lost = 1;
		unlinkat(e->run_dirfd, SUMS_NAME, 0);
	}
	if (!e->cfg.swap_bytes)
		return 0;

	/* A fresh swap file, and then its record. */
	(void)unlink(path);
	o.size_bytes = e->cfg.swap_bytes;
	err = pk_swap_store_open_opts(&e->swap, &o);
	if (err) {
		pk_log_prio(&e->log, LOG_ERR, "cannot create the swap file %s: %s", path,
		       strerror(-err));
		return err;
	}
	struct sums_meta m = { .version = RECORD_VERSION,
			       .size = e->cfg.swap_bytes };
	if (stat(path, &st) < 0)
		return -errno;
	m.dev = (uint64_t)st.st_dev;
	m.ino = (uint64_t)st.st_ino;
	err = pk_sfile_create(&sums, e->run_dirfd, SUMS_NAME, KIND_SUMS, &m,
			      sizeof(m), m.size / PK_SWAP_PAGE_SIZE *
						 sizeof(uint64_t));
	if (err) {
		pk_log_prio(&e->log, LOG_ERR, "cannot create %s/%s: %s", e->cfg.run_dir, SUMS_NAME,
		       strerror(-err));
		return err;
	}
	pk_swap_store_use_checksums(e->swap, pk_sfile_payload(sums));
	e->swap_sums = sums;
	pk_log(&e->log, "swap file %s: %" PRIu64 " MiB, %s I/O", path,
	       e->cfg.swap_bytes >> 20,
	       pk_swap_store_is_direct(e->swap) ? "O_DIRECT"
						: "buffered (no O_DIRECT here)");
	return swap_watch_and_dedup(e);
}

static void on_swap_io(struct pk_event_loop *loop, struct pk_watch *w,
		       uint32_t events, void *data)
{
	(void)loop, (void)w, (void)events;
	pk_engine_reap_swap(data);
}

static int swap_watch_and_dedup(struct pk_engine *e)
{
	if (!pk_watch_add(e->loop, pk_swap_store_event_fd(e->swap), EPOLLIN,
			  on_swap_io, e))
		return -errno;
	return pk_swap_dedup_init(e);
}

/* ---- VM records -------------------------------------------------------- */

/* Read the VM's uffd into its record from now on (the pages locked). */
static void inbox_attach(struct pk_vm *vm)
{
	uint64_t *words = pk_sfile_payload(vm->record);
	uintptr_t lo = (uintptr_t)&words[vm->pages.n_pages + 1];
	uintptr_t hi = lo + INBOX_WORDS * 8;
	uintptr_t mask = PK_PAGE_SIZE - 1;

	vm->inbox = (struct uffd_msg *)lo;
	/* Best effort: without the lock a fault there only risks the
	 * window the inbox closes. */
	mlock((void *)(lo & ~mask), ((hi + mask) & ~mask) - (lo & ~mask));
}

/*
 * REMOVE events the dead daemon had read (so its guest went on to
 * discard) but perhaps not recorded: their pages are REMOVED now, before
 * any slot or copy is counted.  Returns the pages.
 */
static uint64_t inbox_replay(struct pk_vm *vm)
{
	uint64_t pages = 0;

	for (unsigned k = 0; k < PK_UFFD_READ_BATCH; k++) {
		const struct uffd_msg *m = &vm->inbox[k];
		if (m->event != UFFD_EVENT_REMOVE)
			continue;
		for (uint32_t i = 0; i < vm->n_regions; i++) {
			uint64_t first, n = pk_vm_range_in_region(
				vm, i, m->arg.remove.start, m->arg.remove.end,
				&first);
			for (uint64_t p = first; p < first + n; p++)
				pk_page_set(&vm->pages, p, PK_PAGE_REMOVED, 0);
			pages += n;
		}
	}
	memset(vm->inbox, 0, INBOX_WORDS * 8);
	return pages;
}

int pk_state_vm_record(struct pk_vm *vm, const struct stat *ram,
		       uint64_t n_pages)
{
	struct pk_engine *e = vm->engine;
	struct vm_meta m;
	char name[PK_PROTO_NAME_MAX * 2 + 16];
	int err;

	if (e->cfg.volatile_state)
		return pk_page_table_init(&vm->pages, n_pages);
	memset(&m, 0, sizeof(m));
	m.version = RECORD_VERSION;
	m.n_regions = vm->n_regions;
	m.pid = (int32_t)vm->pid;
	m.anon = (uint32_t)vm->anon;
	if (ram) {
		m.ram_dev = (uint64_t)ram->st_dev;
		m.ram_ino = (uint64_t)ram->st_ino;
		m.ram_size = (uint64_t)ram->st_size;
	}
	vm->pid_start = pid_start_time(vm->pid);
	m.pid_start = vm->pid_start;
	m.n_pages = n_pages;
	snprintf(m.name, sizeof(m.name), "%s", vm->name);
	snprintf(m.share_domain, sizeof(m.share_domain), "%s", vm->share_domain);
	for (uint32_t i = 0; i < vm->n_regions; i++) {
		m.regions[i].start = vm->regions[i].start;
		m.regions[i].length = vm->regions[i].length;
		m.regions[i].file_offset = vm->regions[i].file_offset;
	}
	m.settings_at = RECORD_WORDS(n_pages);
	m.settings_words = SETTINGS_WORDS;
	hex_name(name, sizeof(name), "vm-", vm->name, ".pk");
	/* The table, one word of VM flags (RECORD_DRAINED), the inbox, the
	 * settings block (zeros: nothing set). */
	err = pk_sfile_create(&vm->record, e->run_dirfd, name, KIND_VM, &m,
			      sizeof(m),
			      (RECORD_WORDS(m.n_pages) + SETTINGS_WORDS) * 8);
	if (err)
		return err;
	pk_page_table_attach(&vm->pages, pk_sfile_payload(vm->record),
			     m.n_pages);
	inbox_attach(vm);
	vm->rec_settings = (uint64_t *)pk_sfile_payload(vm->record) +
			   m.settings_at;
	return 0;
}

static void run_set_none(struct pk_vm *vm)
{
	struct pk_vm_setting *r = &vm->run_set;

	snprintf(r->vm, sizeof(r->vm), "%s", vm->name);
	r->shares = r->min_bytes = r->max_bytes = -1;
	r->no_balloon = -1;
	vm->run_set_section = 0;
}

void pk_state_vm_settings(struct pk_vm *vm)
{
	const struct pk_vm_setting *r = &vm->run_set;
	uint64_t *b = vm->rec_settings, *slot, seq, w = 0;

	if (!b) {
		if (vm->record)
			pk_log(&vm->engine->log, "vm %s: its record is of "
			       "version 2, from the previous daemon: its "
			       "settings are not kept across a restart until "
			       "it registers anew", vm->name);
		return;
	}
	if (r->shares > 0)
		w |= SET_SHARES | (uint64_t)r->shares << 32;
	if (r->min_bytes >= 0)
		w |= SET_MIN;
	if (r->max_bytes >= 0)
		w |= SET_MAX;
	if (r->no_balloon >= 0)
		w |= SET_BALLOON | (r->no_balloon ? SET_NO_BALLOON : 0);
	seq = __atomic_load_n(&b[0], __ATOMIC_RELAXED) + 1;
	slot = &b[1 + 4 * (seq & 1)];
	slot[0] = w;
	slot[1] = r->min_bytes >= 0 ? (uint64_t)r->min_bytes : 0;
	slot[2] = r->max_bytes >= 0 ? (uint64_t)r->max_bytes : 0;
	slot[3] = vm->run_set_section;
	/* The slot before the word that names it (release). */
	__atomic_store_n(&b[0], seq, __ATOMIC_RELEASE);
}

/* A replayed record's run-time settings (none when never set). */
static void settings_load(struct pk_vm *vm)
{
	const uint64_t *b = vm->rec_settings, *slot;
	struct pk_vm_setting *r = &vm->run_set;
	uint64_t seq;

	run_set_none(vm);
	if (!b || !(seq = __atomic_load_n(&b[0], __ATOMIC_ACQUIRE)))
		return;
	slot = &b[1 + 4 * (seq & 1)];
	if (slot[0] & SET_SHARES)
		r->shares = (int64_t)(slot[0] >> 32);
	if ((slot[0] & SET_MIN) && slot[1] <= INT64_MAX)
		r->min_bytes = (int64_t)slot[1];
	if ((slot[0] & SET_MAX) && slot[2] <= INT64_MAX)
		r->max_bytes = (int64_t)slot[2];
	if (slot[0] & SET_BALLOON)
		r->no_balloon = !!(slot[0] & SET_NO_BALLOON);
	vm->run_set_section = slot[3];
}

void pk_state_vm_drained(struct pk_vm *vm)
{
	vm->drained = 1;
	if (vm->record)
		vm->pages.entries[vm->pages.n_pages] |= RECORD_DRAINED;
}

static void waiting_unlink(struct pk_engine *e, struct pk_vm *vm)
{
	for (struct pk_vm **p = &e->waiting; *p; p = &(*p)->next)
		if (*p == vm) {
			*p = vm->next;
			e->n_waiting--;
			break;
		}
	vm->next = NULL;
	vm->waiting = 0;
}

/* Free a waiting VM for good, saying why and what it held. */
static void waiting_free(struct pk_vm *vm, const char *why)
{
	const struct pk_page_table *pt = &vm->pages;

	pk_log(&vm->engine->log, "vm %s (pid %d) %s: freeing the %" PRIu64
	       " swapped and %" PRIu64 " merged pages it left", vm->name,
	       (int)vm->pid, why, pt->count[PK_PAGE_SWAPPED],
	       pt->count[PK_PAGE_SHARED]);
	pk_vm_destroy(vm);
}

static void waiting_exited(struct pk_event_loop *loop, struct pk_watch *w,
			   uint32_t events, void *data)
{
	(void)loop, (void)w, (void)events;
	waiting_free(data, "exited while waiting for its guest to reconnect");
}

/* Is the waiting VM's process still the one that registered? */
static int waiting_alive(const struct pk_vm *vm)
{
	return vm->pidfd >= 0 &&
	       syscall(SYS_pidfd_send_signal, vm->pidfd, 0, NULL, 0) == 0 &&
	       pid_start_time(vm->pid) == vm->pid_start;
}

/* Pages the record's regions hold; UINT64_MAX if one is not whole pages. */
static uint64_t regions_pages(const struct vm_meta *m)
{
	uint64_t pages = 0;

	for (uint32_t i = 0; i < m->n_regions; i++) {
		if (m->regions[i].length % PK_PAGE_SIZE ||
		    m->regions[i].length > PK_PROTO_MAX_REGION_BYTES)
			return UINT64_MAX;
		pages += m->regions[i].length / PK_PAGE_SIZE;
	}
	return pages;
}

/*
 * Replay one record into a waiting VM.  Every SWAPPED and SHARED entry
 * takes back a reference on its slot or copy, or is poisoned.
 */
static void record_load(struct pk_engine *e, const char *fname)
{
	struct pk_sfile *rec;
	const struct vm_meta *m;
	struct pk_vm *vm;
	uint64_t lost = 0;
	size_t len;
	int err;

	int v3 = 0;

	err = pk_sfile_open(&rec, e->run_dirfd, fname, KIND_VM);
	if (!err) {
		m = pk_sfile_meta(rec, &len);
		/* Version 2 (the previous binary's): its metadata is version
		 * 3's prefix, its payload has no settings block. */
		v3 = len == sizeof(*m) && m->version == RECORD_VERSION &&
		     m->settings_at == RECORD_WORDS(m->n_pages) &&
		     m->settings_words == SETTINGS_WORDS;
		if ((!v3 && (len != VM_META_V2_SIZE ||
			     m->version != RECORD_VERSION_V2)) ||
		    m->n_regions == 0 || m->n_regions > PK_PROTO_MAX_REGIONS ||
		    !memchr(m->name, 0, sizeof(m->name)) ||
		    !memchr(m->share_domain, 0, sizeof(m->share_domain)) ||
		    (RECORD_WORDS(m->n_pages) + (v3 ? SETTINGS_WORDS : 0)) * 8 !=
			    pk_sfile_payload_bytes(rec) ||
		    regions_pages(m) != m->n_pages) {
			pk_sfile_close(rec);
			err = -EBADMSG;
		}
	}
	if (err) {
		char bad[512];
		snprintf(bad, sizeof(bad), "%s.bad", fname);
		pk_log_prio(&e->log, LOG_ERR, "VM record %s/%s cannot be read (%s): set aside as "
		       "%s; its guest's swapped and merged pages are lost",
		       e->cfg.run_dir, fname, strerror(-err), bad);
		renameat(e->run_dirfd, fname, e->run_dirfd, bad);
		return;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		pk_sfile_close(rec);
		return;
	}
	vm->engine = e;
	vm->record = rec;
	vm->waiting = 1;
	vm->uffd = vm->ram_fd = vm->conn_fd = vm->reclaim_fd = -1;
	vm->drain_fd = -1;
	vm->pid = (pid_t)m->pid;
	vm->pid_start = m->pid_start;
	vm->anon = (int)m->anon;
	snprintf(vm->name, sizeof(vm->name), "%s", m->name);
	vm->n_regions = m->n_regions;
	uint64_t first = 0;
	for (uint32_t i = 0; i < m->n_regions; i++) {
		vm->regions[i].start = m->regions[i].start;
		vm->regions[i].length = m->regions[i].length;
		vm->regions[i].file_offset = m->regions[i].file_offset;
		vm->regions[i].first_page = first;
		first += m->regions[i].length / PK_PAGE_SIZE;
	}
	vm->configured_bytes = m->n_pages * PK_PAGE_SIZE;
	/* Its owner, from its name's reservation (written at its
	 * registration, before this record could be left behind). */
	char resv[PK_PROTO_NAME_MAX * 2 + 16];
	time_t resv_mtime;
	hex_name(resv, sizeof(resv), "name-", vm->name, "");
	vm->name_held = name_read(e, resv, &vm->owner_uid, &resv_mtime) == 0;
	pk_page_table_attach(&vm->pages, pk_sfile_payload(rec), m->n_pages);
	vm->drained = !!(vm->pages.entries[m->n_pages] & RECORD_DRAINED);
	vm->id = ++e->next_vm_id;
	vm->pidfd = (int)syscall(SYS_pidfd_open, vm->pid, 0);
	vm->grace_deadline_ms = pk_monotonic_ms() +
				(uint64_t)e->cfg.restart_grace_s * 1000;
	vm->next = e->waiting;
	e->waiting = vm;
	e->n_waiting++;
	if (pk_share_rejoin(vm, m->share_domain) < 0)
		pk_log_prio(&e->log, LOG_ERR, "vm %s: cannot reopen its sharing domain's copies",
		       vm->name);

	inbox_attach(vm);
	if (v3)
		vm->rec_settings = (uint64_t *)pk_sfile_payload(rec) +
				   m->settings_at;
	settings_load(vm);
	uint64_t discarded = inbox_replay(vm);
	if (discarded)
		pk_log(&e->log, "vm %s: %" PRIu64 " pages the guest discarded as the "
		       "previous daemon stopped are recorded discarded",
		       vm->name, discarded);

	struct pk_page_table *pt = &vm->pages;
	for (uint64_t i = 0; i < pt->n_pages; i++) {
		enum pk_page_state st = pk_page_state(pt, i);
		uint64_t payload = pk_page_payload(pt, i);
		/* The dead daemon's flags (busy) and a resident page's
		 * scanner bits mean nothing now. */
		if (st == PK_PAGE_RESIDENT)
			payload = 0;
		if (pt->entries[i] != ((payload << PK_PTE_PAYLOAD_SHIFT) | st))
			pk_page_set(pt, i, st, payload);
		if (st == PK_PAGE_SWAPPED &&
		    (!e->swap || e->swap_lost ||
		     pk_swap_slot_restore(e->swap, payload) < 0)) {
			pk_page_set(pt, i, PK_PAGE_POISONED, 0);
			lost++;
		} else if (st == PK_PAGE_SHARED &&
			   (!vm->domain || !vm->domain->store ||
			    pk_canon_restore_ref(vm->domain->store, payload) < 0)) {
			pk_page_set(pt, i, PK_PAGE_POISONED, 0);
			lost++;
		}
	}
	if (lost)
		pk_log_prio(&e->log, LOG_ERR, "vm %s: %" PRIu64 " pages LOST with the previous "
		       "daemon's state (swap file or canonical copies gone); "
		       "its guest gets memory errors for them, never zeros",
		       vm->name, lost);
}

int pk_state_replay(struct pk_engine *e)
{
	DIR *d;
	struct dirent *de;
	int fd = dup(e->run_dirfd);
	unsigned loaded = 0;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	rewinddir(d); /* dups share the directory's offset */
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (e->cfg.volatile_state) {
			if (strncmp(de->d_name, "vm-", 3) == 0) {
				closedir(d);
				pk_log(&e->log, "%s holds a previous daemon's VM records: "
				       "--volatile-state would lose their pages; "
				       "start without it", e->cfg.run_dir);
				return -EEXIST;
			}
			continue;
		}
		if (n > 4 && strcmp(de->d_name + n - 4, ".new") == 0) {
			unlinkat(e->run_dirfd, de->d_name, 0); /* torn create */
			continue;
		}
		if (strncmp(de->d_name, "vm-", 3) == 0 && n > 6 &&
		    strcmp(de->d_name + n - 3, ".pk") == 0) {
			record_load(e, de->d_name);
			loaded++;
		}
	}
	closedir(d);

	/* Every reference is back: free what nobody names. */
	for (struct pk_share_domain *dom = e->domains; dom; dom = dom->next)
		if (dom->store)
			pk_canon_restore_done(dom->store);
	if (e->swap) {
		uint64_t stale = pk_swap_store_restore_done(e->swap);
		if (stale)
			pk_log(&e->log, "swap file: %" PRIu64 " slots no page owns any "
			       "more; punched by the scrub", stale);
	}
	pk_state_canon_sweep(e);
	names_sweep(e);

	for (struct pk_vm *vm = e->waiting, *next; vm; vm = next) {
		next = vm->next;
		if (!waiting_alive(vm)) {
			waiting_free(vm, "exited while no daemon ran");
			continue;
		}
		vm->pidfd_watch = pk_watch_add(e->loop, vm->pidfd, EPOLLIN,
					       waiting_exited, vm);
		pk_log(&e->log, "vm %s (pid %d): waiting up to %u s for its guest to "
		       "reconnect; %" PRIu64 " pages swapped, %" PRIu64
		       " merged", vm->name, (int)vm->pid,
		       e->cfg.restart_grace_s,
		       vm->pages.count[PK_PAGE_SWAPPED],
		       vm->pages.count[PK_PAGE_SHARED]);
	}
	if (loaded)
		pk_log(&e->log, "replayed %u VM record(s) from %s", loaded,
		       e->cfg.run_dir);
	return 0;
}

/*
 * The grace is over and the guest has not come back, though its process
 * lives: its swapped and merged pages are freed, and their entries say
 * POISONED.  The short record stays while the process lives, so a guest
 * that reconnects after all gets memory errors for what it lost, never
 * zeros; it goes when the process exits.
 */
static void waiting_expire(struct pk_vm *vm)
{
	struct pk_page_table *pt = &vm->pages;
	uint64_t swapped = pt->count[PK_PAGE_SWAPPED];
	uint64_t merged = pt->count[PK_PAGE_SHARED];

	for (uint64_t i = 0; i < pt->n_pages && (pt->count[PK_PAGE_SWAPPED] ||
					       pt->count[PK_PAGE_SHARED]); i++) {
		enum pk_page_state st = pk_page_state(pt, i);
		if (st == PK_PAGE_SWAPPED)
			pk_swap_slot_put(vm->engine, pk_page_payload(pt, i));
		else if (st == PK_PAGE_SHARED && vm->domain)
			pk_canon_put(vm->domain->store, pk_page_payload(pt, i));
		else
			continue;
		pk_page_set(pt, i, PK_PAGE_POISONED, 0);
	}
	vm->grace_deadline_ms = UINT64_MAX;
	pk_log(&vm->engine->log, "vm %s (pid %d) did not reconnect within the grace "
	       "period (--restart-grace): freeing the %" PRIu64 " swapped and %"
	       PRIu64 " merged pages it left; should it come back, it gets "
	       "memory errors there, never zeros", vm->name, (int)vm->pid,
	       swapped, merged);
}

void pk_state_tick(struct pk_engine *e)
{
	uint64_t now = pk_monotonic_ms();

	for (struct pk_vm *vm = e->waiting, *next; vm; vm = next) {
		next = vm->next;
		if (now >= vm->grace_deadline_ms)
			waiting_expire(vm);
	}
}

static int regions_equal(const struct pk_vm *vm,
			 const struct pk_registration *reg)
{
	uint32_t matched = 0;

	if (reg->n_regions != vm->n_regions)
		return 0;
	for (uint32_t i = 0; i < reg->n_regions; i++)
		for (uint32_t j = 0; j < vm->n_regions; j++)
			if (reg->regions[i].host_addr == vm->regions[j].start &&
			    reg->regions[i].length == vm->regions[j].length &&
			    reg->regions[i].file_offset ==
				    vm->regions[j].file_offset) {
				matched++;
				break;
			}
	return matched == vm->n_regions;
}

int pk_state_adopt(struct pk_engine *e, const struct pk_registration *reg,
		   pid_t pid, const struct stat *ram, struct pk_vm **out,
		   char *reason, size_t reason_len)
{
	struct pk_vm *vm;
	const struct vm_meta *m;
	size_t len;

	for (vm = e->waiting; vm; vm = vm->next)
		if (strcmp(vm->name, reg->vm_name) == 0)
			break;
	if (!vm)
		return -ENOENT;
	m = pk_sfile_meta(vm->record, &len);
	if (vm->pid == pid && pid_start_time(pid) == vm->pid_start &&
	    vm->anon == !ram &&
	    (!ram || ((uint64_t)ram->st_dev == m->ram_dev &&
		      (uint64_t)ram->st_ino == m->ram_ino)) &&
	    regions_equal(vm, reg)) {
		*out = vm;
		return 0;
	}
	if (waiting_alive(vm)) {
		snprintf(reason, reason_len,
			 "VM '%s' of the previous daemon (pid %d) is waiting for "
			 "its guest to reconnect; pid %d%s is not that guest",
			 vm->name, (int)vm->pid, (int)pid,
			 ram ? " with another RAM file or regions" : "");
		return -EEXIST;
	}
	waiting_free(vm, "is gone (a new guest took its name)");
	return -ENOENT;
}

/* A page the RAM file holds: resident; it lets go of its slot or copy. */
static void restore_present(struct pk_vm *vm, uint64_t idx)
{
	struct pk_page_table *pt = &vm->pages;

	switch (pk_page_state(pt, idx)) {
	case PK_PAGE_SWAPPED:
		pk_swap_slot_put(vm->engine, pk_page_payload(pt, idx));
		break;
	case PK_PAGE_SHARED:
		pk_canon_put(vm->domain->store, pk_page_payload(pt, idx));
		break;
	default:
		break;
	}
	pk_page_set(pt, idx, PK_PAGE_RESIDENT, 0);
}

void pk_state_restore_pages(struct pk_vm *vm)
{
	struct pk_engine *e = vm->engine;
	struct pk_page_table *pt = &vm->pages;

	waiting_unlink(e, vm);
	pk_watch_del(e->loop, vm->pidfd_watch);
	vm->pidfd_watch = NULL;
	/* An absent page whose entry says RESIDENT was discarded; the pages
	 * the RAM file holds are resident, whatever their entry says. */
	for (uint64_t i = 0; i < pt->n_pages; i++)
		if (pk_page_state(pt, i) == PK_PAGE_RESIDENT)
			pk_page_set(pt, i, PK_PAGE_REMOVED, 0);
	pk_vm_scan_present(vm, restore_present);
	/* An eviction cut short left pages write-protected: lift it (this
	 * wakes writers), then wake every range for the faults the dead
	 * daemon read and never answered. */
	for (uint32_t i = 0; i < vm->n_regions; i++) {
		struct uffdio_writeprotect wp = {
			.range = { .start = vm->regions[i].start,
				   .len = vm->regions[i].length },
			.mode = 0,
		};
		ioctl(vm->uffd, UFFDIO_WRITEPROTECT, &wp);
	}
	pk_log(&e->log, "vm %s (pid %d) is back: %" PRIu64 " resident, %" PRIu64
	       " swapped, %" PRIu64 " merged, %" PRIu64 " zero pages",
	       vm->name, (int)vm->pid, pt->count[PK_PAGE_RESIDENT],
	       pt->count[PK_PAGE_SWAPPED], pt->count[PK_PAGE_SHARED],
	       pt->count[PK_PAGE_ZERO]);
}

/* ---- canonical copies -------------------------------------------------- */

int pk_state_canon_open(struct pk_engine *e, const char *key,
			struct pk_canon_store **out)
{
	char name[PK_PROTO_NAME_MAX * 2 + 32];
	int fd, err;

	if (e->cfg.volatile_state)
		return pk_canon_store_create(out);
	hex_name(name, sizeof(name), "canon-", key, ".pages");
	fd = openat(e->run_dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	err = pk_canon_store_open_file(out, fd);
	if (err)
		close(fd);
	return err;
}

void pk_state_canon_remove(struct pk_engine *e, const char *key)
{
	char name[PK_PROTO_NAME_MAX * 2 + 32];

	if (e->cfg.volatile_state)
		return;
	hex_name(name, sizeof(name), "canon-", key, ".pages");
	unlinkat(e->run_dirfd, name, 0);
}

/* Copies files no live domain owns: their pages are named by no one. */
void pk_state_canon_sweep(struct pk_engine *e)
{
	int fd = dup(e->run_dirfd);
	struct dirent *de;
	DIR *d;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	/* A dup shares the directory's offset, which the replay's walk
	 * left at its end: from the start again. */
	rewinddir(d);
	while ((de = readdir(d))) {
		char name[PK_PROTO_NAME_MAX * 2 + 32];
		int owned = 0;
		if (strncmp(de->d_name, "canon-", 6) != 0)
			continue;
		for (struct pk_share_domain *dom = e->domains; dom && !owned;
		     dom = dom->next) {
			hex_name(name, sizeof(name), "canon-", dom->key, ".pages");
			owned = strcmp(name, de->d_name) == 0;
		}
		if (!owned)
			unlinkat(e->run_dirfd, de->d_name, 0);
	}
	closedir(d);
}

/* ---- VM name reservations (state.h) ----------------------------------- */

void pk_state_name_hold(struct pk_engine *e, const char *name, uid_t uid)
{
	char f[PK_PROTO_NAME_MAX * 2 + 16], tmp[sizeof(f) + 8], buf[16];
	int fd, n, ok;

	hex_name(f, sizeof(f), "name-", name, "");
	snprintf(tmp, sizeof(tmp), "%s.new", f);
	fd = openat(e->run_dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC |
				       O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		pk_log_prio(&e->log, LOG_WARNING, "vm %s: cannot reserve its name for uid %u (%s/%s: "
		       "%s)", name, (unsigned)uid, e->cfg.run_dir, tmp,
		       strerror(errno));
		return;
	}
	n = snprintf(buf, sizeof(buf), "%u\n", (unsigned)uid);
	ok = write(fd, buf, (size_t)n) == n;
	close(fd);
	/* The rename replaces a reservation whole, and sets its mtime. */
	if (!ok || renameat(e->run_dirfd, tmp, e->run_dirfd, f) < 0) {
		pk_log_prio(&e->log, LOG_WARNING, "vm %s: cannot reserve its name for uid %u (%s/%s)",
		       name, (unsigned)uid, e->cfg.run_dir, f);
		unlinkat(e->run_dirfd, tmp, 0);
	}
}

/* The reservation file f: 0 with its uid and mtime, or -ENOENT. */
static int name_read(struct pk_engine *e, const char *f, uid_t *uid,
		     time_t *mtime)
{
	char buf[16], *end;
	struct stat st;
	unsigned long u;
	ssize_t n;
	int fd = openat(e->run_dirfd, f, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return -ENOENT;
	n = fstat(fd, &st) == 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	close(fd);
	if (n <= 0)
		return -ENOENT;
	buf[n] = '\0';
	u = strtoul(buf, &end, 10);
	if (end == buf || *end != '\n' || u > UINT32_MAX)
		return -ENOENT;
	*uid = (uid_t)u;
	*mtime = st.st_mtime;
	return 0;
}

int pk_state_name_owner(struct pk_engine *e, const char *name, uid_t *uid,
			unsigned *left_s)
{
	char f[PK_PROTO_NAME_MAX * 2 + 16];
	time_t now = time(NULL), mtime;

	hex_name(f, sizeof(f), "name-", name, "");
	if (name_read(e, f, uid, &mtime) < 0)
		return -ENOENT;
	if (now >= mtime + (time_t)e->cfg.name_reserve_s) {
		unlinkat(e->run_dirfd, f, 0);
		return -ENOENT;
	}
	*left_s = (unsigned)(mtime + (time_t)e->cfg.name_reserve_s - now);
	return 0;
}

/*
 * Replay: remove the reservations past --name-reserve whose VM does not
 * wait for its guest (a name nobody registers again would otherwise
 * keep its file for good; one registered again is renewed or removed
 * then).
 */
static void names_sweep(struct pk_engine *e)
{
	int fd = dup(e->run_dirfd);
	time_t now = time(NULL), mtime;
	struct dirent *de;
	uid_t uid;
	DIR *d;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(d); /* the dup shares the offset earlier walks moved */
	while ((de = readdir(d))) {
		char f[PK_PROTO_NAME_MAX * 2 + 16];
		int waits = 0;
		if (strncmp(de->d_name, "name-", 5) ||
		    name_read(e, de->d_name, &uid, &mtime) < 0 ||
		    now < mtime + (time_t)e->cfg.name_reserve_s)
			continue;
		for (struct pk_vm *vm = e->waiting; vm && !waits; vm = vm->next) {
			hex_name(f, sizeof(f), "name-", vm->name, "");
			waits = strcmp(f, de->d_name) == 0;
		}
		if (!waits)
			unlinkat(e->run_dirfd, de->d_name, 0);
	}
	closedir(d);
}

unsigned pk_state_n_waiting(const struct pk_engine *e)
{
	return e->n_waiting;
}

void pk_state_close(struct pk_engine *e)
{
	pk_sfile_close(e->swap_sums);
	e->swap_sums = NULL;
	if (e->run_lock_fd >= 0)
		close(e->run_lock_fd);
	if (e->state_lock_fd >= 0)
		close(e->state_lock_fd);
	if (e->run_dirfd >= 0)
		close(e->run_dirfd);
	if (e->state_dirfd >= 0)
		close(e->state_dirfd);
	e->run_lock_fd = e->state_lock_fd = e->run_dirfd = e->state_dirfd = -1;
}
