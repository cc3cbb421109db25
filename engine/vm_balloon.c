/*
 * vm_balloon.c - a VM's balloon bridge, driven by the engine's loop.
 *
 * What: struct pk_vm_balloon hangs off struct pk_vm (vm->balloon) for a
 * VM registered with a balloon kind.  It owns the bridge
 * (balloon-bridge/balloon.h), the loop's watch on the bridge's fd, when
 * the bridge's timers are due, what was logged last, and the guest's
 * paging rates derived from consecutive stats.
 *
 * How: the bridge is a state machine that never blocks.  After every call
 * into it (io, tick, set_target) its fd is asked for again and the watch
 * set up anew: a driver may close its socket and reconnect inside one
 * call, and a new socket can get the old number, which epoll forgot with
 * the old file, so "same number, same events" does not prove the watch
 * still works.  Calls are rare (a stats poll every 2 s, a reply, a
 * request), so two epoll_ctl per call cost nothing.  pk_balloon_tick()
 * returns when it wants to run again; pk_engine_run() asks
 * pk_vm_balloon_tick() every round and arms the engine's retry timer for
 * the earliest.  After io or a request the tick is due at once, so a
 * timeout the driver just started is known before the loop sleeps.
 *
 * Why: the loop that runs the bridge also serves page faults; a peer that
 * never answers costs one timer, not a wait.  Link changes are logged
 * once each (up, no driver, gone with why), never once per reconnect.
 */
#include "engine/vm_balloon.h"
#include "engine/engine.h"
#include "engine/vm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1024.0 * 1024.0)

/* What was logged last of the link, so each change is logged once. */
enum logged_link {
	LOGGED_NOTHING = 0,
	LOGGED_UP,
	LOGGED_NO_DRIVER,
	LOGGED_GONE,
	LOGGED_MIGRATING,
};

struct pk_vm_balloon {
	struct pk_vm *vm;
	struct pk_balloon *b;	 /* NULL: the bridge did not open (why) */
	char why[PK_BALLOON_WHY_MAX]; /* why it did not open */
	struct pk_watch *watch;	 /* on the bridge's fd, or NULL */
	uint64_t due_ms;	 /* its tick's next time; 0: at once */
	enum logged_link logged;
	/* The previous stats, for the guest's paging rates. */
	uint64_t prev_stats_ms;
	int64_t prev_swap_in, prev_swap_out;
	int have_rates;
	double pageins_per_s, pageouts_per_s;
};

static void on_io(struct pk_event_loop *loop, struct pk_watch *w,
		  uint32_t events, void *data);

/* Watch what the bridge wants watched now (see the top of the file). */
static void rewatch(struct pk_vm_balloon *vb)
{
	struct pk_event_loop *loop = vb->vm->engine->loop;
	uint32_t events = 0;
	int fd = pk_balloon_fd(vb->b, &events);

	pk_watch_del(loop, vb->watch);
	vb->watch = NULL;
	if (fd < 0 || !events)
		return;
	vb->watch = pk_watch_add(loop, fd, events, on_io, vb);
	if (!vb->watch)
		/* The tick comes back within a second and tries again. */
		pk_log_prio(&vb->vm->engine->log, LOG_WARNING, "vm %s: cannot watch its balloon "
		       "channel: %s", vb->vm->name, strerror(errno));
}

static void on_io(struct pk_event_loop *loop, struct pk_watch *w,
		  uint32_t events, void *data)
{
	struct pk_vm_balloon *vb = data;
	(void)loop, (void)w;

	pk_balloon_io(vb->b, events);
	vb->due_ms = 0;
	rewatch(vb);
}

/* Guest pages per second between two cumulative byte counts. */
static double page_rate(int64_t now, int64_t prev, uint64_t ms)
{
	return now >= prev ? (double)(now - prev) / 4096.0 * 1000.0 / (double)ms
			   : 0.0;
}

static void on_stats(struct pk_vm_balloon *vb)
{
	const struct pk_balloon_info *in = pk_balloon_info(vb->b);

	if (!in->stats_ms || in->stats_ms == vb->prev_stats_ms)
		return;
	if (vb->prev_stats_ms && in->swap_in_bytes >= 0 &&
	    vb->prev_swap_in >= 0) {
		uint64_t ms = in->stats_ms - vb->prev_stats_ms;
		vb->pageins_per_s = page_rate(in->swap_in_bytes,
					      vb->prev_swap_in, ms);
		vb->pageouts_per_s = in->swap_out_bytes >= 0 &&
						     vb->prev_swap_out >= 0
					     ? page_rate(in->swap_out_bytes,
							 vb->prev_swap_out, ms)
					     : 0.0;
		vb->have_rates = 1;
	}
	vb->prev_stats_ms = in->stats_ms;
	vb->prev_swap_in = in->swap_in_bytes;
	vb->prev_swap_out = in->swap_out_bytes;
}

static void on_event(struct pk_balloon *b, enum pk_balloon_event ev,
		     void *data)
{
	struct pk_vm_balloon *vb = data;
	struct pk_vm *vm = vb->vm;
	struct pk_engine *e = vm->engine;
	const struct pk_balloon_info *in = pk_balloon_info(b);
	const char *kind = pk_balloon_driver_name(vm->balloon_kind);

	switch (ev) {
	case PK_BLN_EV_UP:
		if (vb->logged != LOGGED_UP)
			pk_log(&e->log, "vm %s: %s balloon up (%s): the guest is %.1f "
			       "MiB now", vm->name, kind, vm->balloon_channel,
			       (double)in->actual_bytes / MIB);
		vb->logged = LOGGED_UP;
		break;
	case PK_BLN_EV_NO_DRIVER:
		if (vb->logged != LOGGED_NO_DRIVER)
			pk_log(&e->log, "vm %s: %s balloon channel %s answers, but "
			       "the guest has no balloon driver%s%s", vm->name,
			       kind, vm->balloon_channel, in->why[0] ? ": " : "",
			       in->why);
		vb->logged = LOGGED_NO_DRIVER;
		break;
	case PK_BLN_EV_GONE:
		if (vb->logged != LOGGED_GONE)
			pk_log(&e->log, "vm %s: %s balloon channel %s %s: %s (retrying "
			       "quietly)", vm->name, kind, vm->balloon_channel,
			       vb->logged == LOGGED_NOTHING ? "not reachable"
							    : "gone",
			       in->why[0] ? in->why : "no reason given");
		vb->logged = LOGGED_GONE;
		break;
	case PK_BLN_EV_FAILED:
		pk_log_prio(&e->log, LOG_WARNING, "vm %s: the guest refused balloon target %.1f MiB: %s",
		       vm->name, (double)in->target_bytes / MIB, in->why);
		break;
	case PK_BLN_EV_STALLED:
		pk_log(&e->log, "vm %s: balloon stalled at %.1f MiB, %.1f MiB short of "
		       "its target %.1f MiB", vm->name,
		       (double)in->actual_bytes / MIB,
		       (double)in->shortfall_bytes / MIB,
		       (double)in->target_bytes / MIB);
		break;
	case PK_BLN_EV_MIGRATION:
		if (in->link == PK_BLN_MIGRATING && vb->logged != LOGGED_MIGRATING) {
			pk_log(&e->log, "vm %s: migrating: no balloon changes until it "
			       "ends", vm->name);
			vb->logged = LOGGED_MIGRATING;
		} else if (in->link != PK_BLN_MIGRATING &&
			   vb->logged == LOGGED_MIGRATING) {
			pk_log(&e->log, "vm %s: migration over: balloon %s", vm->name,
			       pk_balloon_link_name(in->link));
			vb->logged = in->link == PK_BLN_READY ? LOGGED_UP
							      : LOGGED_NOTHING;
		}
		break;
	case PK_BLN_EV_STATS:
		on_stats(vb);
		break;
	case PK_BLN_EV_CHANGED:
		break;
	}
}

void pk_vm_balloon_open(struct pk_vm *vm)
{
	struct pk_engine *e = vm->engine;
	struct pk_vm_balloon *vb;
	struct pk_balloon_cfg cfg = {
		.driver = (enum pk_balloon_driver)vm->balloon_kind,
		.channel = vm->balloon_channel,
		.ram_bytes = vm->configured_bytes,
		.on_event = on_event,
		/* A user's socket must stay the user's (PROTOCOL.md). */
		.check_owner = !vm->owner_admin,
		.owner = vm->owner_uid,
	};
	int err;

	if (vm->balloon_kind == PK_BALLOON_NONE || vm->balloon)
		return;
	vb = calloc(1, sizeof(*vb));
	if (!vb) {
		pk_log(&e->log, "vm %s: no memory for its balloon bridge", vm->name);
		return;
	}
	vb->vm = vm;
	vb->prev_swap_in = vb->prev_swap_out = -1;
	cfg.data = vb;
	vm->balloon = vb;
	if (cfg.driver == PK_BLN_LIBVIRT && strstr(vm->balloon_channel, ":///embed")) {
		/* An embedded libvirt lives inside the process that embeds it;
		 * a connection from here would start a second, empty driver
		 * on the same root (and libvirt leaks in that failure). */
		snprintf(vb->why, sizeof(vb->why), "an embedded libvirt "
			 "(qemu:///embed) can be driven only by the process "
			 "that embeds it");
		err = -EOPNOTSUPP;
	} else {
		err = pk_balloon_open(&vb->b, &cfg, vb->why, sizeof(vb->why));
	}
	if (err) {
		if (!vb->why[0])
			snprintf(vb->why, sizeof(vb->why), "%s", strerror(-err));
		pk_log(&e->log, "vm %s: %s balloon channel %s unavailable: %s",
		       vm->name, pk_balloon_driver_name(cfg.driver),
		       vm->balloon_channel, vb->why);
		vb->b = NULL;
		return;
	}
	rewatch(vb);
}

void pk_vm_balloon_close(struct pk_vm *vm)
{
	struct pk_vm_balloon *vb = vm->balloon;

	if (!vb)
		return;
	pk_watch_del(vm->engine->loop, vb->watch);
	pk_balloon_close(vb->b);
	free(vb);
	vm->balloon = NULL;
}

void pk_vm_balloon_tick(struct pk_vm *vm, uint64_t now_ms,
			uint64_t *next_due_ms)
{
	struct pk_vm_balloon *vb = vm->balloon;

	if (!vb || !vb->b)
		return;
	if (vb->due_ms <= now_ms) {
		vb->due_ms = pk_balloon_tick(vb->b, now_ms);
		if (vb->due_ms <= now_ms) /* a driver asking "again now" */
			vb->due_ms = now_ms + 1;
		rewatch(vb);
	}
	if (vb->due_ms < *next_due_ms)
		*next_due_ms = vb->due_ms;
}

int pk_vm_balloon_set_target(struct pk_vm *vm, uint64_t bytes,
			     uint64_t *actual, char *why, size_t why_len)
{
	struct pk_vm_balloon *vb = vm->balloon;
	int err;

	*actual = 0;
	if (vm->balloon_kind == PK_BALLOON_NONE) {
		snprintf(why, why_len, "VM '%s' registered no balloon channel",
			 vm->name);
		return -ENODEV;
	}
	if (!vb || !vb->b) {
		snprintf(why, why_len, "the %s balloon of VM '%s' is "
			 "unavailable: %s",
			 pk_balloon_driver_name(vm->balloon_kind), vm->name,
			 vb ? vb->why : "no memory for its bridge");
		return -EOPNOTSUPP;
	}
	err = pk_balloon_set_target(vb->b, bytes, why, why_len);
	*actual = pk_balloon_info(vb->b)->actual_bytes;
	vb->due_ms = 0;
	rewatch(vb);
	if (!err)
		pk_log(&vm->engine->log, "vm %s: balloon target %.1f MiB (the guest "
		       "is %.1f MiB now)", vm->name, (double)bytes / MIB,
		       (double)*actual / MIB);
	return err;
}

int pk_vm_balloon_view(const struct pk_vm *vm, struct pk_vm_balloon_view *view)
{
	const struct pk_vm_balloon *vb = vm->balloon;

	memset(view, 0, sizeof(*view));
	if (vm->balloon_kind == PK_BALLOON_NONE)
		return -ENOENT;
	if (!vb || !vb->b) {
		view->link = "unavailable";
		view->why = vb ? vb->why : "no memory for its bridge";
		return 0;
	}
	view->info = pk_balloon_info(vb->b);
	view->link = pk_balloon_link_name(view->info->link);
	view->why = view->info->why;
	view->have_rates = vb->have_rates;
	view->pageins_per_s = vb->pageins_per_s;
	view->pageouts_per_s = vb->pageouts_per_s;
	return 0;
}
