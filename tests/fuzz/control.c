/*
 * control.c - fuzz target: a control-socket message as pagekeeperd
 * receives it (tests/fuzz/fuzz.h).
 *
 * The bytes are one SEQPACKET message, whole: the header check
 * (pk_msg_check_header with the number of bytes that arrived), then what
 * engine/control.c does by type: REGISTER is decoded and validated
 * (pk_register_decode: names, channel, flags, the region table), the
 * fixed requests are taken only at their exact size and their VM name
 * copied as the daemon copies it.  Every string a decode accepts is read
 * to its end, so one that is not NUL-terminated in the buffer shows
 * under ASan.
 */
#include "tests/fuzz/fuzz.h"
#include "engine/protocol.h"

#include <stdlib.h>
#include <string.h>

/* Read s to its NUL (ASan catches a read past the message). */
static size_t touch(const char *s)
{
	return strlen(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char reason[PK_PROTO_REASON_MAX], name[PK_PROTO_NAME_MAX];
	struct pk_registration reg;
	uint16_t type;
	void *buf;
	size_t sum = 0;

	if (size > PK_PROTO_MAX_MSG + 1)
		return 0; /* the daemon's recvmsg takes at most this */
	/* The daemon's receive buffer is aligned: so is this copy. */
	buf = malloc(size ? size : 1);
	if (!buf)
		abort();
	memcpy(buf, data, size);
	if (pk_msg_check_header(buf, size, &type, reason, sizeof(reason)) == 0) {
		switch (type) {
		case PK_MSG_REGISTER:
			if (pk_register_decode(buf, size, &reg, reason,
					       sizeof(reason)) == 0) {
				sum += touch(reg.vm_name) + touch(reg.share_domain) +
				       touch(reg.balloon_channel);
				if (!pk_proto_name_valid(reg.vm_name))
					abort(); /* decode accepted a bad name */
				for (uint32_t i = 0; i < reg.n_regions; i++)
					sum += reg.regions[i].length;
			}
			break;
		case PK_MSG_RECLAIM:
		case PK_MSG_DRAIN:
		case PK_MSG_BALLOON:
		case PK_MSG_SET: {
			size_t want = type == PK_MSG_RECLAIM ? sizeof(struct pk_reclaim_msg)
				      : type == PK_MSG_DRAIN ? sizeof(struct pk_drain_msg)
				      : type == PK_MSG_BALLOON ? sizeof(struct pk_balloon_msg)
				      : sizeof(struct pk_set_msg);
			if (size != want)
				break;
			/* vm_for(): the name field, cut at its last byte. */
			memcpy(name, (const char *)buf + sizeof(struct pk_msg_header),
			       sizeof(name));
			name[sizeof(name) - 1] = '\0';
			sum += touch(name);
			break;
		}
		default:
			break;
		}
	}
	sum += touch(reason) * 0;
	free(buf);
	return (int)(sum & 0);
}
