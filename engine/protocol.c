/*
 * protocol.c - encode, decode and validate control-socket messages.
 *
 * Validation is pure: it looks only at the bytes, so every rule can be
 * unit-tested without a daemon.  Rules that need the fds (is it a
 * userfaultfd? is the backing file large enough?) or the registry
 * (duplicate names) live in vm_registry.c.
 *
 * Each rule rejects with a distinct, stable reason so a client sees what
 * was wrong and the tests can tell the rules apart.
 */
#include "engine/protocol.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int reject(char *reason, size_t reason_len, int err, const char *fmt,
		  ...)
{
	if (reason && reason_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(reason, reason_len, fmt, ap);
		va_end(ap);
	}
	return err;
}

void pk_msg_header_init(struct pk_msg_header *hdr, uint16_t type,
			uint32_t length)
{
	memset(hdr, 0, sizeof(*hdr));
	hdr->magic = PK_PROTO_MAGIC;
	hdr->version = PK_PROTO_VERSION;
	hdr->type = type;
	hdr->length = length;
}

int pk_msg_check_header(const void *buf, size_t received, uint16_t *type,
			char *reason, size_t reason_len)
{
	struct pk_msg_header hdr;

	if (received > PK_PROTO_MAX_MSG)
		return reject(reason, reason_len, -EMSGSIZE,
			      "oversized message: %zu bytes, limit %u",
			      received, PK_PROTO_MAX_MSG);
	if (received < sizeof(hdr))
		return reject(reason, reason_len, -EBADMSG,
			      "truncated message: %zu bytes, header needs %zu",
			      received, sizeof(hdr));
	memcpy(&hdr, buf, sizeof(hdr));
	if (hdr.magic != PK_PROTO_MAGIC)
		return reject(reason, reason_len, -EBADMSG,
			      "bad magic 0x%08x", hdr.magic);
	if (hdr.version != PK_PROTO_VERSION)
		return reject(reason, reason_len, -EPROTONOSUPPORT,
			      "unsupported protocol version %u (daemon speaks %u)",
			      hdr.version, PK_PROTO_VERSION);
	if (hdr.length > PK_PROTO_MAX_MSG)
		return reject(reason, reason_len, -EMSGSIZE,
			      "oversized message: header says %u bytes, limit %u",
			      hdr.length, PK_PROTO_MAX_MSG);
	if (hdr.length != received)
		return reject(reason, reason_len, -EBADMSG,
			      "truncated message: header says %u bytes, %zu arrived",
			      hdr.length, received);
	*type = hdr.type;
	return 0;
}

size_t pk_register_msg_size(uint32_t n_regions)
{
	return sizeof(struct pk_register_msg) +
	       (size_t)n_regions * sizeof(struct pk_region_desc);
}

size_t pk_register_msg_size_flags(uint32_t n_regions, uint32_t flags)
{
	return pk_register_msg_size(n_regions) +
	       ((flags & PK_REG_SETTINGS) ? sizeof(struct pk_register_settings)
					  : 0);
}

static int copy_string(char *dst, size_t dst_len, const char *src)
{
	size_t n = src ? strlen(src) : 0;

	if (n >= dst_len)
		return -ENAMETOOLONG;
	memset(dst, 0, dst_len);
	if (n)
		memcpy(dst, src, n);
	return 0;
}

int pk_register_encode(void *buf, size_t buf_len,
		       const struct pk_registration *reg)
{
	size_t len = pk_register_msg_size_flags(reg->n_regions, reg->flags);
	struct pk_register_msg *msg = buf;

	if (reg->n_regions > PK_PROTO_MAX_REGIONS || len > PK_PROTO_MAX_MSG)
		return -E2BIG;
	if (buf_len < len)
		return -ENOBUFS;
	memset(msg, 0, len);
	pk_msg_header_init(&msg->hdr, PK_MSG_REGISTER, (uint32_t)len);
	if (copy_string(msg->vm_name, sizeof(msg->vm_name), reg->vm_name) ||
	    copy_string(msg->share_domain, sizeof(msg->share_domain),
			reg->share_domain) ||
	    copy_string(msg->balloon_channel, sizeof(msg->balloon_channel),
			reg->balloon_channel))
		return -ENAMETOOLONG;
	msg->balloon_kind = reg->balloon_kind;
	msg->flags = reg->flags;
	msg->n_regions = reg->n_regions;
	memcpy(msg->regions, reg->regions,
	       (size_t)reg->n_regions * sizeof(struct pk_region_desc));
	if (reg->flags & PK_REG_SETTINGS)
		memcpy(&msg->regions[reg->n_regions], &reg->settings,
		       sizeof(reg->settings));
	return (int)len;
}

/* A fixed-size string field must hold a NUL; returns its length or -1. */
static int field_strlen(const char *field, size_t size)
{
	const char *nul = memchr(field, '\0', size);
	return nul ? (int)(nul - field) : -1;
}

static int valid_name_chars(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' ||
		      *s == '.'))
			return 0;
	return 1;
}

int pk_proto_name_valid(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n < PK_PROTO_NAME_MAX && valid_name_chars(s);
}

static int region_cmp_addr(const void *a, const void *b)
{
	const struct pk_region_desc *x = *(const struct pk_region_desc *const *)a;
	const struct pk_region_desc *y = *(const struct pk_region_desc *const *)b;
	return x->host_addr < y->host_addr ? -1 : x->host_addr > y->host_addr;
}

static int region_cmp_offset(const void *a, const void *b)
{
	const struct pk_region_desc *x = *(const struct pk_region_desc *const *)a;
	const struct pk_region_desc *y = *(const struct pk_region_desc *const *)b;
	return x->file_offset < y->file_offset ? -1
					       : x->file_offset > y->file_offset;
}

/*
 * Overlap check on a sorted copy: O(n log n) and leaves the caller's table
 * in its order.  by_offset checks file ranges instead of address ranges:
 * two regions backed by the same file pages would alias one page state.
 */
static int regions_overlap(const struct pk_region_desc *r, uint32_t n,
			   int by_offset, uint32_t *bad)
{
	const struct pk_region_desc *sorted[PK_PROTO_MAX_REGIONS];
	uint32_t i;

	for (i = 0; i < n; i++)
		sorted[i] = &r[i];
	qsort(sorted, n, sizeof(sorted[0]),
	      by_offset ? region_cmp_offset : region_cmp_addr);
	for (i = 1; i < n; i++) {
		uint64_t prev_start = by_offset ? sorted[i - 1]->file_offset
						: sorted[i - 1]->host_addr;
		uint64_t start = by_offset ? sorted[i]->file_offset
					   : sorted[i]->host_addr;
		if (prev_start + sorted[i - 1]->length > start) {
			*bad = (uint32_t)(sorted[i] - r);
			return 1;
		}
	}
	return 0;
}

static int check_region(const struct pk_region_desc *rg, uint32_t i,
			uint32_t flags, char *reason, size_t reason_len)
{
	if (rg->page_size != PK_PAGE_SIZE)
		return reject(reason, reason_len, -EINVAL,
			      "region %u: page size %u unsupported (only %u)", i,
			      rg->page_size, PK_PAGE_SIZE);
	if (rg->length == 0)
		return reject(reason, reason_len, -EINVAL,
			      "region %u: zero length", i);
	if (rg->length > PK_PROTO_MAX_REGION_BYTES)
		return reject(reason, reason_len, -E2BIG,
			      "region %u: absurd length %llu bytes (limit %llu)",
			      i, (unsigned long long)rg->length,
			      (unsigned long long)PK_PROTO_MAX_REGION_BYTES);
	if (rg->host_addr % rg->page_size || rg->length % rg->page_size ||
	    rg->file_offset % rg->page_size)
		return reject(reason, reason_len, -EINVAL,
			      "region %u: unaligned (address 0x%llx, length %llu, "
			      "offset %llu must be multiples of %u)",
			      i, (unsigned long long)rg->host_addr,
			      (unsigned long long)rg->length,
			      (unsigned long long)rg->file_offset, rg->page_size);
	if (rg->host_addr == 0 || rg->host_addr + rg->length < rg->host_addr ||
	    rg->host_addr + rg->length > (1ULL << 57))
		return reject(reason, reason_len, -EINVAL,
			      "region %u: address range 0x%llx+%llu is not a "
			      "user address range",
			      i, (unsigned long long)rg->host_addr,
			      (unsigned long long)rg->length);
	if ((flags & PK_REG_ANON) && rg->file_offset)
		return reject(reason, reason_len, -EINVAL,
			      "region %u: anonymous RAM cannot have a file offset",
			      i);
	if (rg->file_offset + rg->length < rg->file_offset)
		return reject(reason, reason_len, -EINVAL,
			      "region %u: file range wraps", i);
	return 0;
}

/*
 * The settings trailer: shares as SET takes them, whole pages, min at
 * most max and at most the regions' size; a max above that size is no
 * limit, so it is clamped to 0 (the VM's size) rather than refused.
 */
static int check_settings(const struct pk_register_msg *msg,
			  struct pk_register_settings *s, char *reason,
			  size_t reason_len)
{
	uint64_t size = 0;

	memcpy(s, &msg->regions[msg->n_regions], sizeof(*s));
	for (uint32_t i = 0; i < msg->n_regions; i++)
		size += msg->regions[i].length;
	if (s->flags & ~PK_REGSET_KNOWN_FLAGS)
		return reject(reason, reason_len, -EINVAL,
			      "unknown settings flags 0x%x", s->flags);
	if (s->shares > PK_PROTO_SHARES_MAX)
		return reject(reason, reason_len, -EINVAL,
			      "shares must be 1 to %u (0: the default), not %u",
			      PK_PROTO_SHARES_MAX, s->shares);
	if (s->min_bytes % PK_PAGE_SIZE || s->max_bytes % PK_PAGE_SIZE)
		return reject(reason, reason_len, -EINVAL,
			      "settings: min and max must be multiples of %u "
			      "bytes", PK_PAGE_SIZE);
	if (s->max_bytes > size)
		s->max_bytes = 0;
	if (s->min_bytes > size)
		return reject(reason, reason_len, -EINVAL,
			      "settings: min %llu bytes is above the VM's size "
			      "(%llu bytes)", (unsigned long long)s->min_bytes,
			      (unsigned long long)size);
	if (s->max_bytes && s->min_bytes > s->max_bytes)
		return reject(reason, reason_len, -EINVAL,
			      "settings: min %llu bytes is above max %llu bytes",
			      (unsigned long long)s->min_bytes,
			      (unsigned long long)s->max_bytes);
	return 0;
}

int pk_register_decode(const void *buf, size_t len,
		       struct pk_registration *out, char *reason,
		       size_t reason_len)
{
	const struct pk_register_msg *msg = buf;
	uint32_t i, bad;
	int n;

	if (len < sizeof(*msg))
		return reject(reason, reason_len, -EBADMSG,
			      "truncated register message: %zu bytes, need %zu",
			      len, sizeof(*msg));
	if (msg->n_regions == 0)
		return reject(reason, reason_len, -EINVAL,
			      "register message has no regions");
	if (msg->n_regions > PK_PROTO_MAX_REGIONS)
		return reject(reason, reason_len, -E2BIG,
			      "too many regions: %u (limit %u)", msg->n_regions,
			      PK_PROTO_MAX_REGIONS);
	if (len != pk_register_msg_size_flags(msg->n_regions, msg->flags))
		return reject(reason, reason_len, -EBADMSG,
			      "register message is %zu bytes but %u regions%s "
			      "need %zu", len, msg->n_regions,
			      (msg->flags & PK_REG_SETTINGS) ? " and settings"
							     : "",
			      pk_register_msg_size_flags(msg->n_regions,
							 msg->flags));
	n = field_strlen(msg->vm_name, sizeof(msg->vm_name));
	if (n <= 0)
		return reject(reason, reason_len, -EINVAL,
			      n == 0 ? "empty VM name"
				     : "VM name is not NUL-terminated");
	if (!valid_name_chars(msg->vm_name))
		return reject(reason, reason_len, -EINVAL,
			      "VM name may hold only letters, digits, '-', '_' and '.'");
	n = field_strlen(msg->share_domain, sizeof(msg->share_domain));
	if (n < 0 || !valid_name_chars(msg->share_domain))
		return reject(reason, reason_len, -EINVAL,
			      "bad sharing domain name");
	if (field_strlen(msg->balloon_channel, sizeof(msg->balloon_channel)) < 0)
		return reject(reason, reason_len, -EINVAL,
			      "balloon channel is not NUL-terminated");
	if (msg->balloon_kind > PK_BALLOON_LIBVIRT)
		return reject(reason, reason_len, -EINVAL,
			      "unknown balloon kind %u", msg->balloon_kind);
	if (msg->flags & ~PK_REG_KNOWN_FLAGS)
		return reject(reason, reason_len, -EINVAL,
			      "unknown register flags 0x%x", msg->flags);
	for (i = 0; i < msg->n_regions; i++) {
		int err = check_region(&msg->regions[i], i, msg->flags, reason,
				       reason_len);
		if (err)
			return err;
	}
	if (regions_overlap(msg->regions, msg->n_regions, 0, &bad))
		return reject(reason, reason_len, -EINVAL,
			      "region %u overlaps another region's addresses", bad);
	if (!(msg->flags & PK_REG_ANON) &&
	    regions_overlap(msg->regions, msg->n_regions, 1, &bad))
		return reject(reason, reason_len, -EINVAL,
			      "region %u overlaps another region's file range", bad);

	memset(&out->settings, 0, sizeof(out->settings));
	if (msg->flags & PK_REG_SETTINGS) {
		int err = check_settings(msg, &out->settings, reason,
					 reason_len);
		if (err)
			return err;
	}
	out->vm_name = msg->vm_name;
	out->share_domain = msg->share_domain;
	out->balloon_kind = msg->balloon_kind;
	out->balloon_channel = msg->balloon_channel;
	out->flags = msg->flags;
	out->n_regions = msg->n_regions;
	out->regions = msg->regions;
	return 0;
}

void pk_reply_encode(struct pk_reply_msg *msg, uint16_t type, int status,
		     uint32_t vm_id, const char *reason)
{
	memset(msg, 0, sizeof(*msg));
	pk_msg_header_init(&msg->hdr, type, sizeof(*msg));
	msg->status = status;
	msg->vm_id = vm_id;
	if (reason)
		snprintf(msg->reason, sizeof(msg->reason), "%s", reason);
}

int pk_reply_decode(const void *buf, size_t len, struct pk_reply_msg *out)
{
	uint16_t type;
	int err = pk_msg_check_header(buf, len, &type, NULL, 0);

	if (err)
		return err;
	if ((type != PK_MSG_REGISTER_REPLY && type != PK_MSG_ERROR_REPLY &&
	     type != PK_MSG_SET_REPLY) ||
	    len != sizeof(*out))
		return -EBADMSG;
	memcpy(out, buf, sizeof(*out));
	out->reason[sizeof(out->reason) - 1] = '\0';
	return 0;
}

int pk_set_msg_encode(struct pk_set_msg *msg, const char *vm_name,
		      int64_t shares, int64_t min_bytes, int64_t max_bytes,
		      int32_t no_balloon)
{
	if (strlen(vm_name) >= sizeof(msg->vm_name))
		return -ENAMETOOLONG;
	memset(msg, 0, sizeof(*msg));
	pk_msg_header_init(&msg->hdr, PK_MSG_SET, sizeof(*msg));
	strcpy(msg->vm_name, vm_name);
	msg->shares = shares;
	msg->min_bytes = min_bytes;
	msg->max_bytes = max_bytes;
	msg->no_balloon = no_balloon;
	return 0;
}

int pk_balloon_msg_encode(struct pk_balloon_msg *msg, const char *vm_name,
			  uint64_t target_bytes)
{
	if (strlen(vm_name) >= sizeof(msg->vm_name))
		return -ENAMETOOLONG;
	memset(msg, 0, sizeof(*msg));
	pk_msg_header_init(&msg->hdr, PK_MSG_BALLOON, sizeof(*msg));
	strcpy(msg->vm_name, vm_name);
	msg->target_bytes = target_bytes;
	return 0;
}

int pk_balloon_reply_decode(const void *buf, size_t len,
			    struct pk_balloon_reply *out)
{
	uint16_t type;
	int err = pk_msg_check_header(buf, len, &type, NULL, 0);

	if (err)
		return err;
	if (type != PK_MSG_BALLOON_REPLY || len != sizeof(*out))
		return -EBADMSG;
	memcpy(out, buf, sizeof(*out));
	out->reason[sizeof(out->reason) - 1] = '\0';
	return 0;
}

int pk_proto_cmsg_fds(const struct msghdr *mh, int *fds, int max,
		      void (*drop)(int fd))
{
	const unsigned char *p = mh->msg_control;
	size_t len = p ? mh->msg_controllen : 0, off = 0;
	int n = 0;

	/* By hand, with every bound explicit: the buffer is the kernel's
	 * today, but a cmsg_len past the buffer or below a header would
	 * read past it (or loop), and a fuzzer feeds this directly. */
	while (len - off >= sizeof(struct cmsghdr)) {
		struct cmsghdr h;
		memcpy(&h, p + off, sizeof(h));
		if (h.cmsg_len < CMSG_LEN(0) || h.cmsg_len > len - off)
			break;
		if (h.cmsg_level == SOL_SOCKET && h.cmsg_type == SCM_RIGHTS) {
			size_t k = (h.cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int fd;
				memcpy(&fd, p + off + CMSG_LEN(0) + i * sizeof(int),
				       sizeof(int));
				if (n < max)
					fds[n++] = fd;
				else if (drop)
					drop(fd);
			}
		}
		if (CMSG_ALIGN(h.cmsg_len) >= len - off)
			break;
		off += CMSG_ALIGN(h.cmsg_len);
	}
	return n;
}
