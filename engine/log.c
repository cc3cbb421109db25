/*
 * log.c - the daemon's log lines (log.h): a prefix, the text, a newline,
 * one fflush, so a line is never split between two writers and journald
 * sees each as it happens; the <N> priority prefix only when the stream
 * is the journal's, found once at pk_log_init() from JOURNAL_STREAM.
 */
#include "engine/log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>

int pk_log_is_journal(FILE *f)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	return f && js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
	       fstat(fileno(f), &st) == 0 && (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

void pk_log_init(struct pk_log *l, FILE *f)
{
	l->f = f;
	l->journal = pk_log_is_journal(f);
}

static void vlog(struct pk_log *l, int prio, const char *fmt, va_list ap)
{
	if (!l->f)
		return;
	if (l->journal)
		fprintf(l->f, "<%d>", prio);
	fputs("pagekeeperd: ", l->f);
	vfprintf(l->f, fmt, ap);
	fputc('\n', l->f);
	fflush(l->f);
}

void pk_log(struct pk_log *l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(l, LOG_INFO, fmt, ap);
	va_end(ap);
}

void pk_log_prio(struct pk_log *l, int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(l, prio, fmt, ap);
	va_end(ap);
}
