/*
 * backend.h - which QEMU memory backend a shared mapping is, what the
 * daemon should call it, and whether pagekeeper may manage it.
 *
 * The shim sees QEMU map a file MAP_SHARED.  The file's /proc/self/fd
 * link says what it is: "/memfd:memory-backend-memfd (deleted)" for a
 * memory-backend-memfd (QEMU names every such memfd that), or the path of
 * a memory-backend-file ("/dev/shm/qemu_back_mem.ID.XXXXXX (deleted)"
 * when mem-path is a directory, the file itself otherwise).  QEMU creates
 * memory backends in command-line order, so the k-th memfd QEMU maps is
 * the k-th memory-backend-memfd on the command line; a file backend is
 * found by its path.  Pure string work: unit tested.
 */
#ifndef PK_PRELOAD_BACKEND_H
#define PK_PRELOAD_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "engine/preload/cmdline.h"

#define PK_MEMFD_LINK "/memfd:memory-backend-memfd"

/*
 * The backend that a mapping of a file whose /proc/self/fd link is
 * `link` belongs to, skipping backends whose bit is set in *used (and
 * setting the chosen one's).  mem_paths[i] is backend i's mem-path made
 * absolute (realpath) by the caller, or NULL to use it as written.
 * Returns the index, or -ENOENT (not a backend: another memfd, a file
 * no backend names, or more mappings than backends).
 */
int pk_backend_match(const struct pk_qemu_cmdline *c,
		     const char *const mem_paths[], const char *link,
		     uint64_t *used);

/*
 * Replace every character the daemon does not accept in a VM name
 * ([A-Za-z0-9._-]) by '_', truncating to out_len - 1.  -EINVAL if the
 * result is empty.
 */
int pk_backend_sanitize(const char *raw, char *out, size_t out_len);

/*
 * The VM name the daemon gets for backend id: base alone when the VM has
 * one managed RAM backend (several == 0), else "base-id", base shortened
 * so the whole fits in out_len - 1.  Both parts are sanitized.
 */
int pk_backend_vm_name(const char *base, const char *id, int several,
		       char *out, size_t out_len);

/*
 * Whether a matched backend may be managed, before any system call:
 * NULL when it may; otherwise why not, in words for the log line.
 * nlink is the file's link count (0 for memfds and unlinked files).
 */
const char *pk_backend_refusal(const struct pk_qc_backend *b,
			       unsigned long nlink);

#endif
