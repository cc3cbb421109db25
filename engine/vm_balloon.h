/*
 * vm_balloon.h - a VM's balloon: the balloon bridge (balloon-bridge/)
 * wired into the engine's event loop.
 *
 * What: a VM registered with a balloon kind (PROTOCOL.md: balloon_kind,
 * balloon_channel) gets one bridge, opened when it registers or when a
 * restarted daemon adopts it, closed when it goes.  The bridge's fd is
 * watched in the engine's loop, its timers run from the engine's loop
 * (pk_engine_run: the retry timer wakes it), and BALLOON requests set its
 * target.  Link changes are logged once each, never once per retry.
 *
 * Why here, in one file: vm.c, engine.c, control.c and status.c each get
 * one call; the bridge stays a lower layer that knows nothing of them.
 * Nothing here waits for the guest: every call returns at once.
 */
#ifndef PK_VM_BALLOON_H
#define PK_VM_BALLOON_H

#include <stddef.h>
#include <stdint.h>

#include "balloon-bridge/balloon.h"

struct pk_vm;

/*
 * Open vm's bridge if it registered a balloon kind (vm->balloon_kind);
 * a no-op otherwise.  Never fails the registration: a bridge that cannot
 * open is logged once and shown in status (link "unavailable", why).
 */
void pk_vm_balloon_open(struct pk_vm *vm);
/* Close it (joins the libvirt thread); a VM without one is accepted. */
void pk_vm_balloon_close(struct pk_vm *vm);

/*
 * Run the bridge's timers if they are due at now_ms (CLOCK_MONOTONIC);
 * lowers *next_due_ms to when they are due next.
 */
void pk_vm_balloon_tick(struct pk_vm *vm, uint64_t now_ms,
			uint64_t *next_due_ms);

/*
 * Ask the guest to keep bytes.  Returns at once: 0 (accepted; the
 * balloon moves later), or -ENODEV (no balloon channel registered, or no
 * balloon driver in the guest), -EOPNOTSUPP (the bridge could not open),
 * -EINVAL (a bad target), -EBUSY (migrating), each with why.  *actual is
 * the guest's size now (0: unknown yet).
 */
int pk_vm_balloon_set_target(struct pk_vm *vm, uint64_t bytes,
			     uint64_t *actual, char *why, size_t why_len);

/* What status shows of a VM's balloon (status.c). */
struct pk_vm_balloon_view {
	const char *link; /* link name, or "unavailable" (did not open) */
	const char *why;  /* the last error, "" if none */
	const struct pk_balloon_info *info; /* NULL: the bridge did not open */
	int have_rates;	  /* two stats with swap counters seen */
	double pageins_per_s, pageouts_per_s; /* guest pages (4 KiB) per s */
};
/* 0 with *view filled, or -ENOENT when vm has no balloon kind. */
int pk_vm_balloon_view(const struct pk_vm *vm, struct pk_vm_balloon_view *view);

#endif
