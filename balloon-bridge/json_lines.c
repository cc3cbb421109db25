/*
 * json_lines.c - newline-delimited JSON over a non-blocking stream socket.
 *
 * What: the framing the QMP and lab drivers share (json_lines.h): a fixed
 * input buffer of max_line + 1 bytes cut into lines, each line parsed by
 * json-c into one object; a growing output queue (capped) written as far
 * as the socket accepts; a non-blocking connect to a UNIX socket path
 * (optionally only to a socket a given uid owns: owned_socket()).
 *
 * How: input is kept contiguous; after each taken line the rest moves to
 * the front (at most max_line bytes: the lines are short).  A full buffer
 * without a newline is a line over the limit.  Every recv and send is
 * MSG_DONTWAIT (MSG_NOSIGNAL for sends), so a socket left blocking still
 * cannot stall the caller.
 *
 * Why: a peer that lies or hangs must cost one bounded syscall and give a
 * clear error; JSON is json-c's job (no hand parsing).
 */
#include "balloon-bridge/json_lines.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Output larger than this means the peer stopped reading. */
#define JL_OUT_MAX (256u * 1024u)

static void say(char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!why || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

int pk_jl_init(struct pk_json_lines *jl, size_t max_line)
{
	memset(jl, 0, sizeof(*jl));
	jl->fd = -1;
	jl->max_line = max_line;
	jl->in = malloc(max_line + 1);
	jl->tok = json_tokener_new();
	if (!jl->in || !jl->tok) {
		pk_jl_free(jl);
		return -ENOMEM;
	}
	return 0;
}

void pk_jl_close(struct pk_json_lines *jl)
{
	if (jl->fd >= 0)
		close(jl->fd);
	jl->fd = -1;
	jl->in_len = 0;
	jl->out_len = jl->out_off = 0;
	jl->eof = 0;
}

void pk_jl_free(struct pk_json_lines *jl)
{
	pk_jl_close(jl);
	free(jl->in);
	free(jl->out);
	if (jl->tok)
		json_tokener_free(jl->tok);
	jl->in = jl->out = NULL;
	jl->tok = NULL;
	jl->out_cap = 0;
}

void pk_jl_attach(struct pk_json_lines *jl, int fd)
{
	pk_jl_close(jl);
	jl->fd = fd;
}

/*
 * The socket at path, held by an O_PATH fd, if it is owner's: -EPERM
 * with why otherwise.  Why an O_PATH fd and not a check of the path
 * before the connect: the path is the user's (a directory it can write),
 * and whoever registered it can swap the file between a check and a
 * connect (for a symbolic link to root's socket, or another user's).
 * The fd pins the inode that was checked, and the connect goes through
 * /proc/self/fd/N to exactly that inode.  Checking the listener
 * (SO_PEERCRED) after connecting would work too, but would first connect
 * to whatever the path names: a peer that is not the user's would see a
 * connection from root before the check refuses it.
 */
static int owned_socket(const char *path, long owner, int *pfd, char *why,
			size_t why_len)
{
	struct stat st;
	/* O_PATH | O_NOFOLLOW opens a symbolic link itself: refused below
	 * (it may name anyone's socket). */
	int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC), e;

	if (fd < 0) {
		e = errno;
		say(why, why_len, "%s: %s", path, strerror(e));
		return -e;
	}
	if (fstat(fd, &st) < 0) {
		e = errno;
		close(fd);
		say(why, why_len, "%s: %s", path, strerror(e));
		return -e;
	}
	if (S_ISLNK(st.st_mode)) {
		close(fd);
		say(why, why_len, "%s is a symbolic link (name the socket "
		    "itself): not connected", path);
		return -EPERM;
	}
	if (!S_ISSOCK(st.st_mode) || (long)st.st_uid != owner) {
		close(fd);
		say(why, why_len, "%s is %s of uid %u, not a socket of uid %ld: "
		    "not connected", path, S_ISSOCK(st.st_mode) ? "a socket"
		    : "a file", (unsigned)st.st_uid, owner);
		return -EPERM;
	}
	*pfd = fd;
	return 0;
}

int pk_jl_connect_unix(const char *path, long owner, int *fd, char *why,
		       size_t why_len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s, e, pfd = -1;

	*fd = -1;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		say(why, why_len, "socket path too long (%zu bytes, at most %zu)",
		    strlen(path), sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (owner >= 0) {
		if ((e = owned_socket(path, owner, &pfd, why, why_len)) < 0)
			return e;
		snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d",
			 pfd);
	}
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0) {
		e = errno;
		if (pfd >= 0)
			close(pfd);
		say(why, why_len, "socket: %s", strerror(e));
		return -e;
	}
	e = connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : errno;
	if (pfd >= 0)
		close(pfd);
	if (e == 0) {
		*fd = s;
		return 0;
	}
	if (e == EINPROGRESS) {
		*fd = s;
		return 1;
	}
	close(s);
	say(why, why_len, "connect to %s: %s", path, strerror(e));
	return -e;
}

int pk_jl_connected(int fd, char *why, size_t why_len)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		say(why, why_len, "connect: %s", strerror(err));
		return -err;
	}
	return 0;
}

int pk_jl_read(struct pk_json_lines *jl, char *why, size_t why_len)
{
	size_t room = jl->max_line + 1 - jl->in_len;
	ssize_t n;

	if (jl->eof)
		return -EPIPE;
	if (!room)
		return 0;
	n = recv(jl->fd, jl->in + jl->in_len, room, MSG_DONTWAIT);
	if (n > 0) {
		jl->in_len += (size_t)n;
		return (int)n;
	}
	if (n == 0) {
		jl->eof = 1;
		say(why, why_len, "the peer closed the connection");
		return -EPIPE;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	n = errno;
	say(why, why_len, "recv: %s", strerror((int)n));
	return -(int)n;
}

size_t pk_jl_pending_in(const struct pk_json_lines *jl)
{
	return jl->in_len;
}

/* The start of a bad line, printable, for an error message. */
static void quote(char *dst, size_t dst_len, const char *src, size_t n)
{
	size_t j = 0;

	for (size_t i = 0; i < n && j + 1 < dst_len && i < 24; i++)
		dst[j++] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
	dst[j] = '\0';
}

static int blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

int pk_jl_next(struct pk_json_lines *jl, json_object **obj, char *why,
	       size_t why_len)
{
	char q[48];

	*obj = NULL;
	for (;;) {
		char *nl = memchr(jl->in, '\n', jl->in_len);
		size_t n, end;
		json_object *o;
		enum json_tokener_error err;

		if (!nl) {
			if (jl->in_len > jl->max_line) {
				quote(q, sizeof(q), jl->in, jl->in_len);
				say(why, why_len, "a line over %zu bytes "
				    "(\"%s...\")", jl->max_line, q);
				return -EMSGSIZE;
			}
			return 0;
		}
		n = (size_t)(nl - jl->in);
		if (blank(jl->in, n)) {
			jl->in_len -= n + 1;
			memmove(jl->in, nl + 1, jl->in_len);
			continue;
		}
		json_tokener_reset(jl->tok);
		o = json_tokener_parse_ex(jl->tok, jl->in, (int)n);
		err = json_tokener_get_error(jl->tok);
		end = json_tokener_get_parse_end(jl->tok);
		if (!o || err != json_tokener_success ||
		    !blank(jl->in + end, n - end) ||
		    !json_object_is_type(o, json_type_object)) {
			quote(q, sizeof(q), jl->in, n);
			say(why, why_len, "not a JSON object: \"%s\"%s (%s)",
			    q, n > 24 ? "..." : "",
			    o && err == json_tokener_success ?
			    (json_object_is_type(o, json_type_object) ?
			     "text after the object" : "not an object") :
			    json_tokener_error_desc(err == json_tokener_success
						    ? json_tokener_continue
						    : err));
			json_object_put(o);
			return -EPROTO;
		}
		jl->in_len -= n + 1;
		memmove(jl->in, nl + 1, jl->in_len);
		*obj = o;
		return 1;
	}
}

int pk_jl_flush(struct pk_json_lines *jl, char *why, size_t why_len)
{
	while (jl->out_off < jl->out_len) {
		ssize_t n = send(jl->fd, jl->out + jl->out_off,
				 jl->out_len - jl->out_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			int e = errno;
			if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR)
				return 1;
			say(why, why_len, "send: %s", strerror(e));
			return -e;
		}
		jl->out_off += (size_t)n;
	}
	jl->out_off = jl->out_len = 0;
	return 0;
}

int pk_jl_send(struct pk_json_lines *jl, json_object *obj, char *why,
	       size_t why_len)
{
	const char *s = json_object_to_json_string_ext(obj,
						       JSON_C_TO_STRING_PLAIN);
	size_t n = strlen(s);

	if (jl->fd < 0) {
		say(why, why_len, "not connected");
		return -ENOTCONN;
	}
	if (jl->out_off) {
		memmove(jl->out, jl->out + jl->out_off,
			jl->out_len - jl->out_off);
		jl->out_len -= jl->out_off;
		jl->out_off = 0;
	}
	if (jl->out_len + n + 1 > JL_OUT_MAX) {
		say(why, why_len, "the peer does not read (%zu bytes queued)",
		    jl->out_len);
		return -ENOBUFS;
	}
	if (jl->out_len + n + 1 > jl->out_cap) {
		size_t cap = jl->out_cap ? jl->out_cap : 1024;
		char *p;

		while (cap < jl->out_len + n + 1)
			cap *= 2;
		p = realloc(jl->out, cap);
		if (!p) {
			say(why, why_len, "out of memory");
			return -ENOMEM;
		}
		jl->out = p;
		jl->out_cap = cap;
	}
	memcpy(jl->out + jl->out_len, s, n);
	jl->out[jl->out_len + n] = '\n';
	jl->out_len += n + 1;
	int rc = pk_jl_flush(jl, why, why_len);
	return rc < 0 ? rc : 0;
}

int pk_jl_want_write(const struct pk_json_lines *jl)
{
	return jl->out_off < jl->out_len;
}
