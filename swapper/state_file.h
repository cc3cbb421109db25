/*
 * state_file.h - records that outlive the daemon: mapped, self-describing
 * files in the run directory.
 *
 * A state file is one record of the daemon's durable state: a VM's
 * page-state table, the swap file's slot checksums.  Its layout:
 *
 *   offset 0      header: magic, version, kind, payload size, the
 *                 caller's metadata (at most PK_SFILE_META_MAX bytes),
 *                 and an XXH3 of all of it;
 *   offset 4 KiB  payload: an array the caller updates in place through
 *                 a MAP_SHARED mapping (pk_sfile_payload()).
 *
 * Durability is against the death of the daemon process, not of the
 * kernel: every guest's RAM (a memfd or a /dev/shm file) dies with the
 * kernel, so state that outlives the kernel would describe nothing.  A
 * store into the mapping is in the page cache the moment it is made, and
 * the page cache outlives the process; nothing is ever fsynced.  On tmpfs
 * (the run directory's expected home) nothing is written back either.
 *
 * Torn writes: the header is written once, into NAME.new, before a rename
 * gives the file its name, so a file that has its name has its whole
 * header (a crash during creation leaves only a .new file, which
 * pk_sfile_open() never opens and pk_sfile_create() replaces).  Payload
 * updates are aligned 8-byte stores, which a killed process cannot tear.
 * A header that fails its checksum, a wrong magic, kind or version, or a
 * file shorter than its header says, opens as -EBADMSG: the caller
 * decides what that costs (never zeros for a guest).
 *
 * Bounded by construction: a record is rewritten in place, never appended
 * to, so there is nothing to compact.
 *
 * Functions return 0 or a negative errno.  Not thread-safe.
 */
#ifndef PK_STATE_FILE_H
#define PK_STATE_FILE_H

#include <stddef.h>
#include <stdint.h>

#define PK_SFILE_META_MAX 3584u
#define PK_SFILE_PAYLOAD_OFFSET 4096u

struct pk_sfile;

/*
 * Create (or replace) dirfd/name with kind, a copy of meta and a zeroed
 * payload of payload_bytes, and map it.
 */
int pk_sfile_create(struct pk_sfile **out, int dirfd, const char *name,
		    uint32_t kind, const void *meta, size_t meta_len,
		    uint64_t payload_bytes);

/*
 * Open and map an existing record.  -ENOENT: none; -EBADMSG: not a
 * complete record of this kind (see above).
 */
int pk_sfile_open(struct pk_sfile **out, int dirfd, const char *name,
		  uint32_t kind);

/* The metadata given at creation (read-only) and its length. */
const void *pk_sfile_meta(const struct pk_sfile *f, size_t *len);
void *pk_sfile_payload(const struct pk_sfile *f);
uint64_t pk_sfile_payload_bytes(const struct pk_sfile *f);

/* Unmap; the file stays for the next daemon.  NULL is a no-op. */
void pk_sfile_close(struct pk_sfile *f);
/* Unmap and delete the file: the state it held is gone for good. */
void pk_sfile_remove(struct pk_sfile *f);

#endif
