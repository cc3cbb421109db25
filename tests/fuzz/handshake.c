/*
 * handshake.c - fuzz target: the daemon's replies as a client reads them
 * (tests/fuzz/fuzz.h): the client library's REGISTER_REPLY (and the
 * ERROR_REPLY and SET_REPLY of the same shape) through pk_reply_decode(),
 * and the CLI's BALLOON_REPLY through pk_balloon_reply_decode().  A reply
 * decoded is used as the client uses it: its reason printed (read to its
 * NUL, which decode must guarantee inside the struct).
 */
#include "tests/fuzz/fuzz.h"
#include "engine/protocol.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pk_reply_msg r;
	struct pk_balloon_reply b;
	void *buf = malloc(size ? size : 1);

	if (!buf)
		abort();
	memcpy(buf, data, size);
	if (pk_reply_decode(buf, size, &r) == 0 &&
	    strnlen(r.reason, sizeof(r.reason)) == sizeof(r.reason))
		abort();
	if (pk_balloon_reply_decode(buf, size, &b) == 0 &&
	    strnlen(b.reason, sizeof(b.reason)) == sizeof(b.reason))
		abort();
	free(buf);
	return 0;
}
