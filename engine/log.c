/*
 * log.c - the daemon's log lines (log.h): a prefix, the text, a newline,
 * written with one call so a line is never split between two writers and
 * journald sees each as it happens; the <N> priority prefix only when the
 * stream is the journal's, found once at pk_log_init() from
 * JOURNAL_STREAM.
 *
 * Never blocking: the line goes out with send(MSG_DONTWAIT) when the
 * stream is a socket (journald's stdout/stderr stream), or through a
 * second, O_NONBLOCK open of the same pipe or terminal
 * (/proc/self/fd/N: a file description of our own, so the shell's or
 * the service manager's is left as it was); a regular file never makes
 * a writer wait.  What the stream does not take waits in l->pending, at
 * most PK_LOG_PENDING_MAX bytes (the rest of a line already begun is
 * always kept: no torn lines); then whole lines are dropped, counted, and
 * the count logged once the stream takes lines again.
 */
#include "engine/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PK_LOG_LINE_MAX 1024

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
	struct stat st;
	char path[64];
	int fd;

	memset(l, 0, sizeof(*l));
	l->f = f;
	l->fd = -1;
	l->journal = pk_log_is_journal(f);
	if (!f || (fd = fileno(f)) < 0 || fstat(fd, &st) < 0)
		return;
	if (S_ISSOCK(st.st_mode)) {
		l->fd = fd;
		l->sock = 1;
	} else if (S_ISREG(st.st_mode)) {
		l->fd = fd;
	} else {
		/* A pipe, FIFO or terminal: never O_NONBLOCK on the shared
		 * description; else stay with stdio (blocking) as before. */
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		l->fd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		l->own_fd = l->fd >= 0;
	}
}

/* Bytes the stream took now (0 when it would block), or -1: gone. */
static ssize_t out(struct pk_log *l, const char *p, size_t n)
{
	ssize_t w = l->sock ? send(l->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL)
			    : write(l->fd, p, n);

	if (w >= 0)
		return w;
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
}

static int format(const struct pk_log *l, char *buf, size_t len, int prio,
		  const char *fmt, va_list ap)
{
	int n = l->journal ? snprintf(buf, len, "<%d>", prio) : 0;

	n += snprintf(buf + n, len - (size_t)n, "pagekeeperd: ");
	n += vsnprintf(buf + n, len - (size_t)n, fmt, ap);
	if ((size_t)n >= len - 1) { /* cut: say so */
		n = (int)len - 2;
		memcpy(buf + n - 3, "...", 3);
	}
	buf[n++] = '\n';
	return n;
}

static void queue(struct pk_log *l, const char *p, size_t n, int begun)
{
	char *q;

	if (!begun && l->pending_len + n > PK_LOG_PENDING_MAX) {
		l->dropped++;
		return;
	}
	if (!l->pending && !(l->pending = malloc(PK_LOG_PENDING_MAX +
						   PK_LOG_LINE_MAX))) {
		l->dropped++;
		return;
	}
	q = l->pending + l->pending_len;
	memcpy(q, p, n);
	l->pending_len += n;
}

static void dropped_line(struct pk_log *l)
{
	char buf[160];
	int n = snprintf(buf, sizeof(buf), "%spagekeeperd: %llu log lines "
			 "dropped: the log stream took nothing for a while\n",
			 l->journal ? "<4>" : "", (unsigned long long)l->dropped);

	l->dropped = 0;
	queue(l, buf, (size_t)n, 1);
}

void pk_log_flush(struct pk_log *l)
{
	while (l->fd >= 0 && l->pending_len) {
		ssize_t w = out(l, l->pending, l->pending_len);

		if (w < 0) {
			l->pending_len = 0; /* the stream is gone */
			break;
		}
		if (w == 0)
			return;
		memmove(l->pending, l->pending + w, l->pending_len - (size_t)w);
		l->pending_len -= (size_t)w;
		if (!l->pending_len && l->dropped)
			dropped_line(l);
	}
}

static void vlog(struct pk_log *l, int prio, const char *fmt, va_list ap)
{
	char buf[PK_LOG_LINE_MAX];
	ssize_t w = 0;
	int n;

	if (!l->f)
		return;
	n = format(l, buf, sizeof(buf), prio, fmt, ap);
	if (l->fd < 0) { /* stdio, blocking: at start-up and after fini */
		fwrite(buf, 1, (size_t)n, l->f);
		fflush(l->f);
		return;
	}
	pk_log_flush(l);
	if (!l->pending_len && (w = out(l, buf, (size_t)n)) == n)
		return;
	if (w < 0)
		return; /* the stream is gone: nowhere to log */
	queue(l, buf + w, (size_t)(n - w), w > 0);
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

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void pk_log_fini(struct pk_log *l, int timeout_ms)
{
	long end = now_ms() + timeout_ms;

	if (l->fd >= 0 && l->dropped && !l->pending_len)
		dropped_line(l);
	while (l->fd >= 0 && l->pending_len && now_ms() < end) {
		struct pollfd p = { .fd = l->fd, .events = POLLOUT };

		if (poll(&p, 1, (int)(end - now_ms())) <= 0)
			break;
		pk_log_flush(l);
	}
	free(l->pending);
	l->pending = NULL;
	l->pending_len = 0;
	if (l->own_fd)
		close(l->fd);
	l->fd = -1;
	l->own_fd = l->sock = 0;
}
