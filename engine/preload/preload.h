/*
 * preload.h - the inside of libpagekeeper-preload.so (not installed).
 *
 * The shim is one state struct (struct pk_preload, in preload.c: an
 * LD_PRELOAD library has no caller to hand it a context, so the wrapped
 * mmap()/munmap() must find it somewhere static) and four parts:
 *   preload.c  init at load time: is this a QEMU to manage, and how
 *              (command line, environment); the log line;
 *   ram.c      the RAM backends QEMU maps: match, attach, detach, and
 *              the worker thread that defers (-incoming) and retries
 *              (daemon absent);
 *   wrap.c     the interposed libc entry points;
 *   procfs.c   small /proc readers.
 * Every function returns 0 (or a count) or a negative errno.
 */
#ifndef PK_PRELOAD_H
#define PK_PRELOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/client/pagekeeper-client.h"
#include "engine/preload/cmdline.h"
#include "engine/protocol.h"

#define PK_LOG_PREFIX "pagekeeper-preload: "
#define PK_RETRY_MS 1000     /* daemon absent: try again this often */
#define PK_DEFER_POLL_MS 100 /* -incoming: look for the migration's end */

enum pk_ram_state {
	PK_RAM_PENDING,	 /* waiting: -incoming, or the daemon is absent */
	PK_RAM_ATTACHED, /* managed by the daemon */
	PK_RAM_REFUSED,	 /* not managed, for good (reason logged) */
	PK_RAM_GONE,	 /* QEMU unmapped it */
};

/* One guest RAM backend QEMU mapped. */
struct pk_ram {
	int fd;		     /* our O_CLOEXEC dup of QEMU's RAM fd */
	void *addr;	     /* the MAP_SHARED mapping */
	size_t len;
	uint64_t offset;     /* of addr in the file */
	int backend;	     /* index in cmd.backends */
	char name[PK_PROTO_NAME_MAX]; /* the daemon's VM name */
	int balloon;	     /* carries the VM's balloon channel */
	int state;	     /* enum pk_ram_state */
	int busy;	     /* an attach runs outside the lock */
	int said_retry;      /* "retrying" was logged once */
	struct pk_client *client;
};

struct pk_preload {
	int active; /* a QEMU with guest RAM to manage */
	struct pk_qemu_cmdline cmd;
	char *mem_paths[PK_QC_MAX_BACKENDS]; /* realpath of each mem-path */
	uint64_t used;			     /* backends matched to a mapping */
	int several;			     /* more than one managed backend */
	int balloon_backend;		     /* backend index with the channel */
	char socket[108];
	char name[PK_QC_NAME_MAX]; /* sanitized base VM name */
	char share_domain[PK_PROTO_NAME_MAX];
	int balloon_kind; /* enum pk_balloon_kind */
	char balloon_channel[PK_PROTO_CHANNEL_MAX];
	/* PAGEKEEPER_SHARES, _MIN, _MAX, _NO_BALLOON (preload.c): sent with
	 * the balloon backend's registration when any is set. */
	int has_settings;
	struct pk_client_settings settings;
	int deferred;			    /* -incoming: not attached yet */
	bool (*runstate_is_running)(void); /* QEMU's, for -incoming */

	pthread_mutex_t lock; /* guards everything below */
	struct pk_ram ram[PK_QC_MAX_BACKENDS];
	unsigned n_ram;
	int worker; /* the worker thread runs */
	atomic_uint n_live; /* rams not GONE: munmap's fast path */
};

struct pk_preload *pk_preload_state(void);

/* One line on stderr, prefixed: the shim's only output. */
void pk_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ram.c */
void pk_ram_mapped(void *addr, size_t len, int fd, uint64_t offset);
void pk_ram_unmapping(void *addr, size_t len);

/* procfs.c */
int pk_proc_cmdline(char **buf, size_t *len);
int pk_proc_fd_link(int fd, char *out, size_t out_len);
int pk_proc_exe_is_qemu(void);
int pk_proc_uffd_count(void);
int pk_proc_can_connect(const char *sock_path);
char *pk_proc_abs_path(const char *path);

#endif
