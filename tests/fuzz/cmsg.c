/*
 * cmsg.c - fuzz target: the ancillary data of a control-socket message
 * (tests/fuzz/fuzz.h), as pk_proto_cmsg_fds() walks it for the daemon.
 *
 * The kernel writes this buffer, so today its headers are well formed;
 * the walk must still never read outside msg_controllen, never loop, and
 * hand every fd past the limit to drop() (the daemon closes them: a fd
 * neither kept nor closed would leak).  The bytes are the control buffer
 * (copied to an aligned one, as recvmsg's is); the fds are numbers only,
 * never closed here.
 */
#include "tests/fuzz/fuzz.h"
#include "engine/protocol.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_FDS 4 /* engine/control.c's PK_MAX_RX_FDS */

static size_t dropped;

static void drop(int fd)
{
	(void)fd;
	dropped++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msghdr mh;
	int fds[MAX_FDS];
	size_t room = size ? size : 1;
	void *cbuf;
	int n;

	if (size > 65536)
		return 0;
	cbuf = aligned_alloc(sizeof(struct cmsghdr),
			     (room + sizeof(struct cmsghdr) - 1) /
				     sizeof(struct cmsghdr) * sizeof(struct cmsghdr));
	if (!cbuf)
		abort();
	memcpy(cbuf, data, size);
	memset(&mh, 0, sizeof(mh));
	mh.msg_control = size ? cbuf : NULL;
	mh.msg_controllen = size;
	dropped = 0;
	n = pk_proto_cmsg_fds(&mh, fds, MAX_FDS, drop);
	/* Every fd taken or dropped came from inside the buffer. */
	if (n < 0 || n > MAX_FDS ||
	    ((size_t)n + dropped) * sizeof(int) > size)
		abort();
	free(cbuf);
	return 0;
}
