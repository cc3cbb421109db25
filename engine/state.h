/*
 * state.h - what survives the daemon: the locks, the VM records, replay.
 *
 * Contract:
 *  - pk_state_open() runs first in pk_engine_init(): it takes an
 *    exclusive lock on the state directory (swap file) and on the run
 *    directory (VM records, slot checksums, canonical copies), so a
 *    second daemon on either fails before it touches anything.
 *  - Every registered VM has a record in the run directory: its identity
 *    (name, pid and its start time, RAM file device and inode, regions)
 *    and its page-state table, which the fault path updates in place.
 *    The swap file's slot checksums are a record too, and each sharing
 *    domain's canonical copies are a file.  The order evict.c keeps
 *    (slot written and checksummed, then the page's entry, then the
 *    punch) makes every absent page's entry say where its bytes are.
 *  - A daemon that stops (SIGTERM, or an upgrade) leaves all of it as it
 *    is.  A daemon that starts replays it: each record becomes a VM
 *    waiting for its guest to reconnect, and the slots and copies those
 *    tables name are owned again; the rest are freed.
 *  - pk_state_adopt() gives a waiting VM back to its guest, after
 *    proving it is the same one (pid, pid start time, RAM file identity,
 *    regions): pages present in the RAM file are resident (their slot or
 *    copy is let go); absent ones keep their state; write protection
 *    left by an eviction that was cut short is lifted, and every range
 *    is woken so faults the dead daemon read are raised again.
 *  - A waiting VM whose process is gone is freed at once.  One whose
 *    guest does not reconnect within the grace period has its swapped
 *    and merged pages freed then, their entries poisoned, and waits on
 *    (its record is small) until its process exits: a guest that comes
 *    back late gets memory errors for what it lost, never zeros.  Both
 *    are logged with what they held.
 *
 * Functions return 0 or a negative errno and write a reason where asked.
 */
#ifndef PK_STATE_H
#define PK_STATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

struct pk_engine;
struct pk_vm;
struct pk_canon_store;
struct pk_registration;

/* How long a waiting VM's pages are kept for its guest to come back. */
#define PK_RESTART_GRACE_DEFAULT_S 120u

int pk_state_open(struct pk_engine *e);
/* Open (or replay) the swap file and its checksum record. */
int pk_state_swap_open(struct pk_engine *e);
/* Replay the VM records: after the swap store and the scanner are up. */
int pk_state_replay(struct pk_engine *e);
/* Free waiting VMs past their grace period (the 1 s tick). */
void pk_state_tick(struct pk_engine *e);
void pk_state_close(struct pk_engine *e);

/*
 * A new VM's record: its identity and a table of n_pages entries, which
 * vm->pages then uses.  ram: the RAM file's stat (NULL for anonymous
 * RAM).  Sets vm->pid_start.
 */
int pk_state_vm_record(struct pk_vm *vm, const struct stat *ram,
		       uint64_t n_pages);

/* A drain started: no eviction or merging, also after a restart. */
void pk_state_vm_drained(struct pk_vm *vm);

/*
 * The VM's run-time settings (vm->run_set and run_set_section: what
 * pagekeeper set gave) into its record, replacing the last, so that a
 * restarted daemon gives them back when the guest reconnects.  A record
 * of version 2 (no settings block) keeps none: logged once.
 */
void pk_state_vm_settings(struct pk_vm *vm);

/*
 * The waiting VM named like reg, if any.  Then pk_state_adopt() checks it
 * is the same guest: 0 with the VM (taken off the waiting list) in *out,
 * or -EEXIST with the reason when another guest claims the name of one
 * still alive.  A waiting VM whose guest is gone is freed, and adopt
 * returns -ENOENT: register the guest as new.
 */
int pk_state_adopt(struct pk_engine *e, const struct pk_registration *reg,
		   pid_t pid, const struct stat *ram, struct pk_vm **out,
		   char *reason, size_t reason_len);
/* After the adopted VM has its fds: restore page states, unprotect, wake. */
void pk_state_restore_pages(struct pk_vm *vm);

/* The canonical-copy store of a sharing domain, kept in the run dir. */
int pk_state_canon_open(struct pk_engine *e, const char *key,
			struct pk_canon_store **out);
void pk_state_canon_remove(struct pk_engine *e, const char *key);
/* Replay: delete the copies files no domain owns (no page names them). */
void pk_state_canon_sweep(struct pk_engine *e);

/*
 * VM name reservations (PROTOCOL.md, "Access control"): a name is its
 * owner's while its VM lives or waits, and for --name-reserve seconds
 * after the VM went (its guest died, detached, or never came back after
 * a restart), so that another uid cannot take it while the owner may
 * come back.  Kept as RUN/name-<hex of name>, the owner's uid as text,
 * its mtime the time the VM went; root frees one early by removing that
 * file, or by registering the name itself.
 *  - hold: the VM registered (or went: the clock starts again);
 *  - owner: 0 with the uid and the seconds left while a reservation
 *    holds, -ENOENT when there is none (an expired one is removed).
 * Replay also removes the expired ones of names no VM waits for.
 */
#define PK_NAME_RESERVE_DEFAULT_S 3600u
void pk_state_name_hold(struct pk_engine *e, const char *name, uid_t uid);
int pk_state_name_owner(struct pk_engine *e, const char *name, uid_t *uid,
			unsigned *left_s);

/* Waiting VMs: one line each for status. */
unsigned pk_state_n_waiting(const struct pk_engine *e);

#endif
