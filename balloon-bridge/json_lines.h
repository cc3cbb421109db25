/*
 * json_lines.h - newline-delimited JSON over a non-blocking stream socket.
 *
 * What: the framing QMP and the lab balloon protocol share: an input
 * buffer that yields one json-c object per line (a line longer than the
 * limit is an error, never a reallocation), an output queue written as
 * far as the socket takes it, and the non-blocking connect to a UNIX
 * socket path that both drivers start from.
 *
 * How: pk_jl_read() takes what the socket has now (one recv), then
 * pk_jl_next() hands out the complete lines one by one, each parsed with
 * a json_tokener: the whole line must be one JSON object (surrounding
 * white space, "\r" included, is allowed; blank lines are skipped).
 * pk_jl_send() queues an object and writes what it can; pk_jl_flush()
 * writes more when the socket is writable again.  Nothing here blocks,
 * sleeps or keeps a global: the state is the struct the caller owns.
 *
 * Why: a peer that floods, sends half a line and stops, or sends garbage
 * must cost the caller's event loop one bounded recv and a clear error,
 * and the parsing is json-c's, never by hand.
 *
 * Errors are negative errno values with a readable reason in why:
 * -EPROTO (not one JSON object), -EMSGSIZE (line over the limit),
 * -EPIPE (the peer closed; -ECONNRESET as the kernel says), -ENOBUFS
 * (output queue full).
 */
#ifndef PK_BALLOON_JSON_LINES_H
#define PK_BALLOON_JSON_LINES_H

#include <json-c/json.h>
#include <stddef.h>

struct pk_json_lines {
	int fd;			/* -1: none */
	size_t max_line;	/* longest line accepted, without '\n' */
	char *in;		/* max_line + 1 bytes */
	size_t in_len;
	char *out;		/* queued output */
	size_t out_len, out_off, out_cap;
	int eof;		/* the peer closed its side */
	struct json_tokener *tok;
};

/* Set up (no fd yet): -ENOMEM. */
int pk_jl_init(struct pk_json_lines *jl, size_t max_line);
/* Close the fd (if any) and free everything; idempotent. */
void pk_jl_free(struct pk_json_lines *jl);
/* Close the fd, drop buffered input and output; the buffers stay. */
void pk_jl_close(struct pk_json_lines *jl);
/* Use fd (non-blocking, connected) from now on, with empty buffers. */
void pk_jl_attach(struct pk_json_lines *jl, int fd);

/*
 * Start a non-blocking connect to the UNIX stream socket at path:
 * 0 with *fd connected, 1 with *fd still connecting (wait for EPOLLOUT,
 * then pk_jl_connected()), or a negative errno with why filled.
 * owner >= 0: the socket must be that uid's (checked on the very inode
 * connected to, never a symbolic link): else -EPERM, nothing connected.
 */
int pk_jl_connect_unix(const char *path, long owner, int *fd, char *why,
		       size_t why_len);
/* After EPOLLOUT on a connecting fd: 0, or the connect's negative errno. */
int pk_jl_connected(int fd, char *why, size_t why_len);

/*
 * One recv into the input buffer: the number of bytes read (> 0), 0 when
 * nothing is there now (EAGAIN) or the buffer is full (call pk_jl_next()
 * first), -EPIPE once the peer closed (jl->eof set; buffered lines can
 * still be taken), other negative errno on error.
 */
int pk_jl_read(struct pk_json_lines *jl, char *why, size_t why_len);

/*
 * The next complete line, parsed: 1 with *obj (a new reference, always a
 * JSON object), 0 when no complete line is buffered, -EPROTO for a line
 * that is not one JSON object, -EMSGSIZE when the buffer is full and
 * holds no newline (a line over the limit).  why says which and quotes
 * the start of the line.
 */
int pk_jl_next(struct pk_json_lines *jl, json_object **obj, char *why,
	       size_t why_len);

/* Bytes of an incomplete line buffered now. */
size_t pk_jl_pending_in(const struct pk_json_lines *jl);

/* Queue obj as one line and write what the socket takes: 0 or -errno. */
int pk_jl_send(struct pk_json_lines *jl, json_object *obj, char *why,
	       size_t why_len);
/* Write queued output: 0 when all is written, 1 when some is left. */
int pk_jl_flush(struct pk_json_lines *jl, char *why, size_t why_len);
/* 1 if output is waiting for the socket to be writable. */
int pk_jl_want_write(const struct pk_json_lines *jl);

#endif
