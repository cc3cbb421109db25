/*
 * pagekeeper-client.h - attach a process's guest RAM to pagekeeperd.
 *
 * Contract:
 *  - pk_client_attach() creates a userfaultfd in the calling process,
 *    registers every region on it (MISSING and WP modes), connects to the
 *    daemon's control socket and sends the uffd, the RAM fd and the region
 *    table.  From then on the daemon resolves every fault in those regions.
 *  - The library keeps its own copy of the uffd for the life of the
 *    attachment.  If the daemon dies, faults block (they never read
 *    zeros); a background thread reconnects and registers again when a
 *    daemon listens on the socket once more.
 *  - pk_client_detach() ends management: it unregisters the regions, after
 *    which the kernel serves faults as for any memory.
 *  - All functions return 0 or a negative errno.  When the daemon refuses
 *    a registration its reason is copied into err.
 *  - Thread-safe for one attachment per handle; handles are independent.
 */
#ifndef PAGEKEEPER_CLIENT_H
#define PAGEKEEPER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PK_DEFAULT_SOCKET "/run/pagekeeper/pagekeeper.sock"

struct pk_client;

struct pk_client_region {
	void *addr;	      /* page-aligned start of the mapping */
	size_t length;	      /* bytes, page multiple */
	uint64_t file_offset; /* offset of addr in ram_fd; 0 for anon */
};

struct pk_client_opts {
	const char *socket_path;   /* NULL: PK_DEFAULT_SOCKET */
	const char *vm_name;	   /* unique among attached VMs */
	int ram_fd;		   /* memfd or /dev/shm fd; -1: private anon */
	const struct pk_client_region *regions;
	unsigned n_regions;
	const char *share_domain;  /* NULL or "": the VM alone */
	int balloon_kind;	   /* enum pk_balloon_kind, 0 = none */
	const char *balloon_channel;
	int reconnect;		   /* nonzero: re-register after daemon restart */
};

int pk_client_attach(const struct pk_client_opts *opts,
		     struct pk_client **out, char *err, size_t err_len);

/*
 * The VM's own allocation settings, sent with its registration (and each
 * re-registration).  The admin's [vm NAME] section overrides them, and
 * `pagekeeper set` overrides both.  A client that is not root or in the
 * daemon's admin group may only lower its claim: shares above the
 * default, a min, or no_balloon get -EPERM (engine/PROTOCOL.md).
 */
struct pk_client_settings {
	uint32_t shares;    /* 1..1000000; 0: the daemon's default (1000) */
	uint64_t min_bytes; /* reservation, page multiple; 0: none */
	uint64_t max_bytes; /* limit, page multiple; 0: the VM's size */
	int no_balloon;	    /* nonzero: never balloon it, swap instead */
};

/* pk_client_attach() with settings (NULL: none, as pk_client_attach). */
int pk_client_attach_settings(const struct pk_client_opts *opts,
			      const struct pk_client_settings *settings,
			      struct pk_client **out, char *err,
			      size_t err_len);

/* Daemon's id for this VM (changes after a reconnect). */
uint32_t pk_client_vm_id(const struct pk_client *c);

/* Number of successful registrations, 1 after attach; grows on reconnect. */
unsigned pk_client_generation(const struct pk_client *c);

void pk_client_detach(struct pk_client *c);

#ifdef __cplusplus
}
#endif
#endif
