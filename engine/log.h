/*
 * log.h - the daemon's log: one line per event, "pagekeeperd: ..." on a
 * stream (stderr, or nothing), written and flushed at once.
 *
 * When the stream is the journal's (JOURNAL_STREAM names its device and
 * inode: systemd.exec(5)), each line starts with a <N> syslog priority
 * that journald takes as the line's level; pk_log() is LOG_INFO,
 * pk_log_prio() says which.  A unit of its own: a piece that logs needs
 * a struct pk_log (the engine's is e->log) and this header, nothing more.
 */
#ifndef PK_LOG_H
#define PK_LOG_H

#include <stdio.h>
#include <syslog.h>

struct pk_log {
	FILE *f;     /* NULL: log nothing */
	int journal; /* f is the journal's stream: <N> prefixes */
};

/* Log to f (NULL: nowhere); finds out whether f is the journal. */
void pk_log_init(struct pk_log *l, FILE *f);
void pk_log(struct pk_log *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void pk_log_prio(struct pk_log *l, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Is f the journal's stream (JOURNAL_STREAM)?  1 or 0. */
int pk_log_is_journal(FILE *f);

#endif
