/*
 * log.h - the daemon's log: one line per event, "pagekeeperd: ..." on a
 * stream (stderr, or nothing), written at once and never blocking.
 *
 * When the stream is the journal's (JOURNAL_STREAM names its device and
 * inode: systemd.exec(5)), each line starts with a <N> syslog priority
 * that journald takes as the line's level; pk_log() is LOG_INFO,
 * pk_log_prio() says which.  A unit of its own: a piece that logs needs
 * a struct pk_log (the engine's is e->log) and this header, nothing more.
 *
 * The event loop logs, so a log stream that does not drain (journald
 * stalled, a pipe nobody reads) must not stop it: a line the stream
 * cannot take now waits in a bounded buffer (PK_LOG_PENDING_MAX), sent
 * by the next line or pk_log_flush() (the engine's 1 s tick); past the
 * bound lines are dropped and counted, and the count is logged once the
 * stream drains.  pk_log_fini() sends what waits (a bounded wait) and
 * frees it; lines after it are written blocking, as at start-up.
 */
#ifndef PK_LOG_H
#define PK_LOG_H

#include <stdio.h>
#include <syslog.h>

#include <stddef.h>
#include <stdint.h>

#define PK_LOG_PENDING_MAX (64 * 1024) /* bytes waiting for the stream */

struct pk_log {
	FILE *f;     /* NULL: log nothing */
	int journal; /* f is the journal's stream: <N> prefixes */
	int fd;	     /* f's, written without blocking; -1: through f */
	int sock;    /* fd is a socket (journald's): send(MSG_DONTWAIT) */
	int own_fd;  /* fd is our non-blocking reopen of f's pipe or tty */
	char *pending;	     /* what the stream could not take yet */
	size_t pending_len;
	uint64_t dropped;    /* lines lost to a full pending buffer */
};

/* Log to f (NULL: nowhere); finds out whether f is the journal. */
void pk_log_init(struct pk_log *l, FILE *f);
/* Send what waits, without blocking (the engine's tick). */
void pk_log_flush(struct pk_log *l);
/* Send what waits (at most timeout_ms), free it; blocking from now on. */
void pk_log_fini(struct pk_log *l, int timeout_ms);
void pk_log(struct pk_log *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void pk_log_prio(struct pk_log *l, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Is f the journal's stream (JOURNAL_STREAM)?  1 or 0. */
int pk_log_is_journal(FILE *f);

#endif
