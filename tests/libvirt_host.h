/*
 * libvirt_host.h - host-side plumbing for tests that run QEMU through
 * embedded libvirt as an unprivileged user (test_libvirt_embed.c):
 * temporary /dev/userfaultfd access for that user, finding and killing
 * the processes that belong to one scratch directory, removing a tree,
 * and a cleaner process that undoes all of it when the test dies.
 *
 * Why /dev/userfaultfd: QEMU runs as that user and the client library
 * needs a userfaultfd that also catches the kernel's own accesses to
 * guest RAM (a syscall reading a missing page).  userfaultfd(2) needs
 * vm.unprivileged_userfaultfd=1 for that, or gives only a
 * UFFD_USER_MODE_ONLY fd; /dev/userfaultfd gives a full one but is root's,
 * mode 0600.  The least invasive grant is a POSIX ACL entry for the one
 * user (what hosts doing postcopy migration as non-root configure), set
 * as the system.posix_acl_access xattr (no acl tools needed) and undone
 * exactly: the previous xattr (usually none) and mode are put back.  An
 * exclusive flock on the device node serialises concurrent runs, so one
 * run's restore never takes access away from another's QEMU and no run
 * saves another's grant as the "original".
 *
 * Functions return 0 or a negative errno, with a reason in err.
 */
#ifndef PK_TEST_LIBVIRT_HOST_H
#define PK_TEST_LIBVIRT_HOST_H

#include <stddef.h>
#include <sys/types.h>

#define LV_UFFD_DEV "/dev/userfaultfd"

struct lv_uffd_acl {
	int lock_fd;		/* the flock'ed device, -1 when not held */
	int changed;		/* 1 while our grant is in place */
	mode_t mode;		/* the device's permission bits before */
	char old_acl[1024];	/* its system.posix_acl_access before */
	ssize_t old_len;	/* -1: it had none */
};

/*
 * Lock the device (waiting up to wait_ms for another run) and grant uid
 * read-write through an ACL entry, keeping any ACL it had.  Nothing is
 * changed when uid can already open it read-write through the ACL.
 */
int lv_uffd_acl_grant(struct lv_uffd_acl *a, uid_t uid, int wait_ms,
		      char *err, size_t err_len);

/*
 * Put the ACL and mode back, check that they are what they were, and
 * release the lock.  Idempotent; safe in a forked cleaner.
 */
int lv_uffd_acl_restore(struct lv_uffd_acl *a, char *err, size_t err_len);

/*
 * Processes (other than the caller) whose command line, environment or
 * open files mention needle, e.g. a unique scratch directory: QEMU
 * started by libvirt for a domain under it, a helper with HOME there, or
 * a child libvirt forked that has not exec'd QEMU yet.  Up to max pids in
 * out; returns how many were found (may exceed max).
 */
int lv_procs_using(const char *needle, pid_t *out, int max);

/* SIGKILL them (by pid, re-checked) until none is left or timeout_ms. */
int lv_kill_procs_using(const char *needle, int timeout_ms);

/* rm -rf path (no symlinks followed).  0 if it is gone. */
int lv_rmtree(const char *path);

/*
 * A cleaner in its own process group: when the starter goes away
 * without lv_cleaner_done() (a failed assertion's _exit, a timeout's
 * SIGKILL), it kills what still uses scratch, prints the tails of the
 * *.log files under scratch, restores the ACL and removes scratch.
 */
struct lv_cleaner {
	int fd; /* write end of its pipe, -1 if none */
	pid_t pid;
};

int lv_cleaner_start(struct lv_cleaner *c, const char *scratch,
		     struct lv_uffd_acl *acl);

/* Everything is cleaned up: tell the cleaner to do nothing, reap it. */
void lv_cleaner_done(struct lv_cleaner *c);

#endif
