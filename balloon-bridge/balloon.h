/*
 * balloon.h - the balloon bridge: ask a guest's own OS for memory back.
 *
 * What: one small interface over three drivers, chosen per VM from what
 * its registration names (engine/PROTOCOL.md: balloon_kind, channel):
 *   PK_BLN_LAB      the lab guest (pk-guestsim --balloon), a UNIX stream
 *                   socket the guest listens on; the protocol is in
 *                   balloon-bridge/README.md;
 *   PK_BLN_QMP      QEMU's QMP monitor, a UNIX stream socket: balloon,
 *                   query-balloon, qom-set guest-stats-polling-interval,
 *                   qom-get guest-stats, the BALLOON_CHANGE event;
 *   PK_BLN_LIBVIRT  a libvirt domain, channel "URI|domain":
 *                   virDomainSetMemoryFlags(AFFECT_LIVE),
 *                   virDomainMemoryStats, virDomainSetMemoryStatsPeriod,
 *                   lifecycle events (no balloon change while migrating).
 * Sizes are the guest's logical size, as `virsh setmem` and QMP `balloon`
 * take them: target = what the guest should keep, actual = what it keeps
 * now (RAM minus the balloon).
 *
 * How: a bridge is a state machine the owner drives from its event loop.
 * It never blocks and never sleeps:
 *   - pk_balloon_fd() names the one fd to watch and for what (it may
 *     change after any call: the owner asks again after each);
 *   - pk_balloon_io() runs when that fd is ready, pk_balloon_tick() when
 *     the time it returned has come (stats polls, reconnects, a request
 *     that took too long);
 *   - what happened comes back through cfg.on_event, called only from
 *     inside pk_balloon_io() or pk_balloon_tick(), on the owner's thread.
 * QMP and the lab driver are non-blocking sockets (connect on a UNIX
 * socket does not wait); JSON goes through json-c.  libvirt's API blocks,
 * so that driver runs it on a thread of its own: requests go to the
 * thread through a queue, results come back through a queue and an
 * eventfd, which is the fd the owner watches.  The thread never touches
 * anything but its queues and its libvirt connection; every field of
 * struct pk_balloon_info is written on the owner's thread only.
 *
 * Why: the event loop that owns a bridge also serves page faults; a
 * balloon peer that hangs, floods or lies must cost the guests nothing.
 * A peer that sends garbage or closes mid-reply gets the channel closed
 * and reopened later (PK_BLN_EV_GONE, then PK_BLN_EV_UP); one that never
 * answers times the request out.  The bridge knows nothing of the engine:
 * it is a lower layer, like swapper/ and hashing/.
 *
 * Errors are negative errno values.
 */
#ifndef PK_BALLOON_H
#define PK_BALLOON_H

#include <stddef.h>
#include <stdint.h>

/* Numbered as engine/PROTOCOL.md's balloon_kind. */
enum pk_balloon_driver {
	PK_BLN_NONE = 0,
	PK_BLN_LAB = 1,
	PK_BLN_QMP = 2,
	PK_BLN_LIBVIRT = 3,
};

enum pk_balloon_link {
	PK_BLN_CONNECTING = 0, /* opening the channel, or waiting to retry */
	PK_BLN_READY,	       /* the guest's balloon driver answers */
	PK_BLN_NO_DRIVER,      /* the channel works, the guest has no balloon */
	PK_BLN_MIGRATING,      /* libvirt: the domain migrates; no changes */
};

/* An error's text: room for libvirt's messages with a 255-byte URI. */
#define PK_BALLOON_WHY_MAX 384

/* What the guest reported; -1 for a figure it does not report. */
struct pk_balloon_info {
	enum pk_balloon_link link;
	char why[PK_BALLOON_WHY_MAX]; /* the last error, "" if none */
	uint64_t target_bytes;	/* last target asked (0: none yet) */
	uint64_t actual_bytes;	/* the guest's size now (0: unknown yet) */
	int64_t total_bytes;	/* guest MemTotal */
	int64_t free_bytes;	/* guest MemFree */
	int64_t available_bytes; /* guest MemAvailable */
	int64_t swap_in_bytes;	/* cumulative, the guest's own paging */
	int64_t swap_out_bytes;
	int64_t major_faults;	/* cumulative */
	int64_t minor_faults;
	int64_t oom_kills;
	int64_t alloc_stalls;
	uint64_t stats_ms;	/* monotonic ms of the last stats, 0: never */
	/* The lab guest only: its balloon stopped short of the target
	 * (locked pages), and by how much. */
	int stalled;
	uint64_t shortfall_bytes;
};

enum pk_balloon_event {
	PK_BLN_EV_UP,	    /* channel open, the guest's driver answers */
	PK_BLN_EV_NO_DRIVER, /* channel open, no balloon in the guest */
	PK_BLN_EV_GONE,	    /* channel lost or broken; info.why says why */
	PK_BLN_EV_CHANGED,  /* actual_bytes moved */
	PK_BLN_EV_STATS,    /* fresh stats */
	PK_BLN_EV_FAILED,   /* a set_target was refused; info.why says why */
	PK_BLN_EV_STALLED,  /* the balloon stopped short of its target */
	PK_BLN_EV_MIGRATION, /* link moved to or from PK_BLN_MIGRATING */
};

struct pk_balloon;

typedef void pk_balloon_event_fn(struct pk_balloon *b,
				 enum pk_balloon_event ev, void *data);

struct pk_balloon_cfg {
	enum pk_balloon_driver driver;
	const char *channel;	 /* as registered */
	/* Lab and QMP, when check_owner: the channel must be a socket of
	 * uid owner, checked at every connect on the inode connected to
	 * (json_lines.h): the daemon connects as root to a path a user
	 * named. */
	int check_owner;
	unsigned owner;
	uint64_t ram_bytes;	 /* the guest's RAM: targets above are refused */
	unsigned stats_period_ms; /* 0: 2000 */
	unsigned timeout_ms;	 /* a request unanswered this long: 0: 5000 */
	pk_balloon_event_fn *on_event;
	void *data;
};

/*
 * A bridge for one VM.  Starts connecting at once; never waits.  -EINVAL
 * with err filled for a channel that cannot be right (empty, no '|' for
 * libvirt, a path too long), -ENOMEM.
 */
int pk_balloon_open(struct pk_balloon **out, const struct pk_balloon_cfg *cfg,
		    char *err, size_t err_len);
/* Close the channel (joins the libvirt thread); NULL is accepted. */
void pk_balloon_close(struct pk_balloon *b);

/* The fd to watch and its epoll events in *events, or -1 for none now. */
int pk_balloon_fd(const struct pk_balloon *b, uint32_t *events);
/* The fd pk_balloon_fd() named is ready with events. */
void pk_balloon_io(struct pk_balloon *b, uint32_t events);
/* Timers due at now_ms; returns when to call again (monotonic ms). */
uint64_t pk_balloon_tick(struct pk_balloon *b, uint64_t now_ms);

/*
 * Ask the guest to keep bytes (a multiple of 4096, 1 MiB at least, at
 * most cfg.ram_bytes: else -EINVAL with why).  Never waits: sent now if
 * the channel is ready, else kept and sent once it is.  -ENODEV when the
 * guest has no balloon driver, -EBUSY while it migrates (libvirt), each
 * with why.  Progress comes as PK_BLN_EV_CHANGED, a refusal by the peer
 * as PK_BLN_EV_FAILED.
 */
int pk_balloon_set_target(struct pk_balloon *b, uint64_t bytes, char *why,
			  size_t why_len);

const struct pk_balloon_info *pk_balloon_info(const struct pk_balloon *b);
const char *pk_balloon_driver_name(enum pk_balloon_driver d);
const char *pk_balloon_link_name(enum pk_balloon_link l);

#endif
