/*
 * test_protocol.c - unit tests for the control-socket wire format
 * (engine/protocol.c): encode/decode round trips, the header check and
 * every validation rule of pk_msg_check_header and pk_register_decode.
 *
 * Why: the daemon trusts nothing but these checks before it touches a
 * client's fds and memory, and it sends the reason text back verbatim.
 * Each rule gets its own test that starts from a valid message, breaks
 * exactly one thing and asserts both the negative errno and a substring
 * of the reason that only that rule produces, so a rule that silently
 * stops firing (or fires for the wrong reason) is caught.
 */
#include "engine/protocol.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* 8-byte aligned scratch, larger than any legal message. */
static uint64_t raw[(PK_PROTO_MAX_MSG + 4096) / sizeof(uint64_t)];
#define MSG ((struct pk_register_msg *)raw)

#define BASE_ADDR 0x7f0000000000ULL
#define REGION_LEN (64 * 4096ULL)

/* A valid REGISTER with n regions laid out apart in address and file. */
static size_t build(uint32_t n)
{
	struct pk_region_desc r[PK_PROTO_MAX_REGIONS];
	struct pk_registration reg = {
		.vm_name = "guest-1.test_A",
		.share_domain = "pool",
		.balloon_kind = PK_BALLOON_QMP,
		.balloon_channel = "/run/qmp.sock",
		.flags = 0,
		.n_regions = n,
		.regions = r,
	};
	int len;

	memset(r, 0, sizeof(r));
	for (uint32_t i = 0; i < n; i++) {
		r[i].host_addr = BASE_ADDR + i * 2 * REGION_LEN;
		r[i].length = REGION_LEN;
		r[i].file_offset = i * REGION_LEN;
		r[i].page_size = PK_PAGE_SIZE;
	}
	memset(raw, 0, sizeof(raw));
	len = pk_register_encode(raw, sizeof(raw), &reg);
	ck_assert_int_eq(len, (int)pk_register_msg_size(n));
	return (size_t)len;
}

static void expect_header_reject(size_t received, int err, const char *substr)
{
	char reason[PK_PROTO_REASON_MAX] = "";
	uint16_t type = 0xffff;
	int rc = pk_msg_check_header(raw, received, &type, reason,
				     sizeof(reason));

	ck_assert_msg(rc == err, "pk_msg_check_header: got %d (%s), want %d",
		      rc, reason, err);
	ck_assert_msg(strstr(reason, substr), "reason '%s' lacks '%s'", reason,
		      substr);
	ck_assert_uint_eq(type, 0xffff); /* not written on failure */
}

static void expect_reject(size_t len, int err, const char *substr)
{
	char reason[PK_PROTO_REASON_MAX] = "";
	struct pk_registration out;
	int rc = pk_register_decode(raw, len, &out, reason, sizeof(reason));

	ck_assert_msg(rc == err, "pk_register_decode: got %d (%s), want %d",
		      rc, reason, err);
	ck_assert_msg(strstr(reason, substr), "reason '%s' lacks '%s'", reason,
		      substr);
}

static void expect_accept(size_t len)
{
	char reason[PK_PROTO_REASON_MAX] = "";
	struct pk_registration out;
	uint16_t type;
	int rc = pk_msg_check_header(raw, len, &type, reason, sizeof(reason));

	ck_assert_msg(rc == 0, "header rejected: %s", reason);
	rc = pk_register_decode(raw, len, &out, reason, sizeof(reason));
	ck_assert_msg(rc == 0, "decode rejected: %s", reason);
}

/* ---- encode / decode ---- */

START_TEST(test_roundtrip)
{
	size_t len = build(3);
	struct pk_registration out;
	char reason[PK_PROTO_REASON_MAX] = "";
	uint16_t type = 0;

	ck_assert_int_eq(pk_msg_check_header(raw, len, &type, reason,
					     sizeof(reason)), 0);
	ck_assert_uint_eq(type, PK_MSG_REGISTER);
	ck_assert_uint_eq(MSG->hdr.magic, PK_PROTO_MAGIC);
	ck_assert_uint_eq(MSG->hdr.version, PK_PROTO_VERSION);
	ck_assert_uint_eq(MSG->hdr.length, len);
	ck_assert_int_eq(pk_register_decode(raw, len, &out, reason,
					    sizeof(reason)), 0);
	ck_assert_str_eq(out.vm_name, "guest-1.test_A");
	ck_assert_str_eq(out.share_domain, "pool");
	ck_assert_str_eq(out.balloon_channel, "/run/qmp.sock");
	ck_assert_uint_eq(out.balloon_kind, PK_BALLOON_QMP);
	ck_assert_uint_eq(out.flags, 0);
	ck_assert_uint_eq(out.n_regions, 3);
	for (uint32_t i = 0; i < 3; i++) {
		ck_assert_uint_eq(out.regions[i].host_addr,
				  BASE_ADDR + i * 2 * REGION_LEN);
		ck_assert_uint_eq(out.regions[i].length, REGION_LEN);
		ck_assert_uint_eq(out.regions[i].file_offset, i * REGION_LEN);
		ck_assert_uint_eq(out.regions[i].page_size, PK_PAGE_SIZE);
	}
	/* Decoded strings point into the message, not copies. */
	ck_assert_ptr_eq(out.vm_name, MSG->vm_name);
	ck_assert_ptr_eq(out.regions, MSG->regions);
}
END_TEST

START_TEST(test_roundtrip_limits)
{
	char name[PK_PROTO_NAME_MAX];
	size_t len;

	/* The most regions allowed, adjacent (touching is not overlapping). */
	len = build(PK_PROTO_MAX_REGIONS);
	for (uint32_t i = 0; i < PK_PROTO_MAX_REGIONS; i++) {
		MSG->regions[i].host_addr = BASE_ADDR + i * REGION_LEN;
		MSG->regions[i].file_offset = i * REGION_LEN;
	}
	expect_accept(len);
	/* A name of the maximum length; the largest legal region. */
	len = build(1);
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	memcpy(MSG->vm_name, name, sizeof(name));
	MSG->regions[0].host_addr = 1ULL << 44;
	MSG->regions[0].length = PK_PROTO_MAX_REGION_BYTES;
	expect_accept(len);
	/* Anonymous RAM: every region at file offset 0 is not an overlap. */
	len = build(4);
	MSG->flags = PK_REG_ANON;
	for (uint32_t i = 0; i < 4; i++)
		MSG->regions[i].file_offset = 0;
	expect_accept(len);
}
END_TEST

START_TEST(test_encode_errors)
{
	struct pk_region_desc r = { .host_addr = BASE_ADDR, .length = 4096,
				    .page_size = PK_PAGE_SIZE };
	struct pk_registration reg = { .vm_name = "a", .n_regions = 1,
				       .regions = &r };
	char long_name[PK_PROTO_NAME_MAX + 1];

	ck_assert_int_eq(pk_register_encode(raw, pk_register_msg_size(1) - 1,
					    &reg), -ENOBUFS);
	reg.n_regions = PK_PROTO_MAX_REGIONS + 1;
	ck_assert_int_eq(pk_register_encode(raw, sizeof(raw), &reg), -E2BIG);
	reg.n_regions = 1;
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	reg.vm_name = long_name;
	ck_assert_int_eq(pk_register_encode(raw, sizeof(raw), &reg),
			 -ENAMETOOLONG);
	long_name[PK_PROTO_NAME_MAX - 1] = '\0'; /* 63 chars + NUL: fits */
	ck_assert_int_eq(pk_register_encode(raw, sizeof(raw), &reg),
			 (int)pk_register_msg_size(1));
	ck_assert_uint_eq(pk_register_msg_size(0), sizeof(struct pk_register_msg));
	ck_assert_uint_eq(pk_register_msg_size(2) - pk_register_msg_size(1),
			  sizeof(struct pk_region_desc));
}
END_TEST

START_TEST(test_reply_roundtrip)
{
	struct pk_reply_msg m, out;

	pk_reply_encode(&m, PK_MSG_REGISTER_REPLY, -EEXIST, 7, "name taken");
	ck_assert_int_eq(pk_reply_decode(&m, sizeof(m), &out), 0);
	ck_assert_int_eq(out.status, -EEXIST);
	ck_assert_uint_eq(out.vm_id, 7);
	ck_assert_str_eq(out.reason, "name taken");
	ck_assert_uint_eq(out.hdr.type, PK_MSG_REGISTER_REPLY);

	pk_reply_encode(&m, PK_MSG_ERROR_REPLY, -EBADMSG, 0, NULL);
	ck_assert_int_eq(pk_reply_decode(&m, sizeof(m), &out), 0);
	ck_assert_str_eq(out.reason, "");
	/* A reply of another type or size is not a reply. */
	pk_reply_encode(&m, PK_MSG_STATUS_REPLY, 0, 0, "x");
	ck_assert_int_eq(pk_reply_decode(&m, sizeof(m), &out), -EBADMSG);
	pk_reply_encode(&m, PK_MSG_REGISTER_REPLY, 0, 0, "x");
	m.hdr.length = sizeof(m) - 4;
	ck_assert_int_eq(pk_reply_decode(&m, sizeof(m) - 4, &out), -EBADMSG);
	ck_assert_int_eq(pk_reply_decode(&m, sizeof(m), &out), -EBADMSG);
	/* Over-long reasons are cut and still NUL-terminated. */
	{
		char big[PK_PROTO_REASON_MAX * 2];
		memset(big, 'r', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		pk_reply_encode(&m, PK_MSG_ERROR_REPLY, -EINVAL, 0, big);
		ck_assert_int_eq(pk_reply_decode(&m, sizeof(m), &out), 0);
		ck_assert_uint_eq(strlen(out.reason), PK_PROTO_REASON_MAX - 1);
	}
}
END_TEST

/* ---- pk_msg_check_header rules ---- */

START_TEST(test_header_ok)
{
	struct pk_msg_header *h = (struct pk_msg_header *)raw;
	uint16_t type = 0;

	pk_msg_header_init(h, PK_MSG_STATUS, sizeof(*h));
	ck_assert_uint_eq(h->reserved, 0);
	ck_assert_int_eq(pk_msg_check_header(raw, sizeof(*h), &type, NULL, 0), 0);
	ck_assert_uint_eq(type, PK_MSG_STATUS);
	/* Exactly the limit is fine. */
	pk_msg_header_init(h, PK_MSG_STATUS, PK_PROTO_MAX_MSG);
	ck_assert_int_eq(pk_msg_check_header(raw, PK_PROTO_MAX_MSG, &type, NULL, 0),
			 0);
}
END_TEST

START_TEST(test_header_truncated_short)
{
	build(1);
	expect_header_reject(0, -EBADMSG, "truncated message: 0 bytes");
	expect_header_reject(sizeof(struct pk_msg_header) - 1, -EBADMSG,
			     "header needs");
}
END_TEST

START_TEST(test_header_truncated_length)
{
	size_t len = build(1);

	/* Header claims more than arrived. */
	expect_header_reject(len - 8, -EBADMSG, "truncated message: header says");
	/* ... and less than arrived: the lengths must agree exactly. */
	MSG->hdr.length = (uint32_t)len - 8;
	expect_header_reject(len, -EBADMSG, "arrived");
}
END_TEST

START_TEST(test_header_oversized)
{
	struct pk_msg_header *h = (struct pk_msg_header *)raw;

	pk_msg_header_init(h, PK_MSG_REGISTER, PK_PROTO_MAX_MSG + 1);
	expect_header_reject(PK_PROTO_MAX_MSG + 1, -EMSGSIZE,
			     "oversized message: 65537 bytes");
	/* The header alone may claim too much, whatever arrived. */
	pk_msg_header_init(h, PK_MSG_REGISTER, 0x7fffffff);
	expect_header_reject(sizeof(*h), -EMSGSIZE,
			     "oversized message: header says");
}
END_TEST

START_TEST(test_header_bad_magic)
{
	size_t len = build(1);

	MSG->hdr.magic = 0x50454b50; /* byte-swapped */
	expect_header_reject(len, -EBADMSG, "bad magic 0x50454b50");
}
END_TEST

START_TEST(test_header_unknown_version)
{
	size_t len = build(1);

	MSG->hdr.version = 2;
	expect_header_reject(len, -EPROTONOSUPPORT,
			     "unsupported protocol version 2");
	MSG->hdr.version = 0;
	expect_header_reject(len, -EPROTONOSUPPORT,
			     "unsupported protocol version 0");
}
END_TEST

/* ---- pk_register_decode rules ---- */

START_TEST(test_reg_truncated)
{
	build(1);
	expect_reject(sizeof(struct pk_register_msg) - 1, -EBADMSG,
		      "truncated register message");
}
END_TEST

START_TEST(test_reg_zero_regions)
{
	build(1);
	MSG->n_regions = 0;
	expect_reject(pk_register_msg_size(0), -EINVAL,
		      "register message has no regions");
}
END_TEST

START_TEST(test_reg_too_many_regions)
{
	size_t len = build(PK_PROTO_MAX_REGIONS);

	MSG->n_regions = PK_PROTO_MAX_REGIONS + 1;
	expect_reject(len + sizeof(struct pk_region_desc), -E2BIG,
		      "too many regions: 65");
	MSG->n_regions = 0xffffffffu; /* no overflow in the size arithmetic */
	expect_reject(len, -E2BIG, "too many regions");
}
END_TEST

START_TEST(test_reg_count_length_mismatch)
{
	size_t len = build(2);

	MSG->n_regions = 3; /* claims more regions than carried */
	expect_reject(len, -EBADMSG, "3 regions need");
	MSG->n_regions = 1; /* claims fewer: trailing bytes */
	expect_reject(len, -EBADMSG, "1 regions need");
}
END_TEST

START_TEST(test_reg_unsupported_page_size)
{
	size_t len = build(2);

	MSG->regions[1].page_size = 2 * 1024 * 1024;
	expect_reject(len, -EINVAL, "region 1: page size 2097152 unsupported");
	MSG->regions[1].page_size = 0;
	expect_reject(len, -EINVAL, "page size 0 unsupported");
}
END_TEST

START_TEST(test_reg_zero_length)
{
	size_t len = build(2);

	MSG->regions[1].length = 0;
	expect_reject(len, -EINVAL, "region 1: zero length");
}
END_TEST

START_TEST(test_reg_absurd_length)
{
	size_t len = build(1);

	MSG->regions[0].length = PK_PROTO_MAX_REGION_BYTES + PK_PAGE_SIZE;
	expect_reject(len, -E2BIG, "region 0: absurd length");
	MSG->regions[0].length = ~0ULL & ~0xfffULL;
	expect_reject(len, -E2BIG, "absurd length");
}
END_TEST

START_TEST(test_reg_unaligned_address)
{
	size_t len = build(1);

	MSG->regions[0].host_addr += 512;
	expect_reject(len, -EINVAL, "region 0: unaligned");
}
END_TEST

START_TEST(test_reg_unaligned_length)
{
	size_t len = build(1);

	MSG->regions[0].length += 1;
	expect_reject(len, -EINVAL, "region 0: unaligned");
}
END_TEST

START_TEST(test_reg_unaligned_offset)
{
	size_t len = build(2);

	MSG->regions[1].file_offset += 100;
	expect_reject(len, -EINVAL, "region 1: unaligned");
}
END_TEST

START_TEST(test_reg_not_user_address)
{
	size_t len = build(1);

	MSG->regions[0].host_addr = 0;
	expect_reject(len, -EINVAL, "is not a user address range");
	MSG->regions[0].host_addr = (1ULL << 57) - PK_PAGE_SIZE;
	expect_reject(len, -EINVAL, "is not a user address range");
	MSG->regions[0].host_addr = ~0ULL & ~0xfffULL; /* wraps */
	expect_reject(len, -EINVAL, "is not a user address range");
}
END_TEST

START_TEST(test_reg_overlapping_addresses)
{
	size_t len = build(3);

	/* Region 2 starts inside region 0 (not adjacent in table order). */
	MSG->regions[2].host_addr = MSG->regions[0].host_addr + 4096;
	expect_reject(len, -EINVAL, "overlaps another region's addresses");
	/* Identical ranges. */
	len = build(2);
	MSG->regions[1].host_addr = MSG->regions[0].host_addr;
	expect_reject(len, -EINVAL, "overlaps another region's addresses");
	/* A big region swallowing a later small one. */
	len = build(3);
	MSG->regions[0].length = 8 * REGION_LEN;
	MSG->regions[0].file_offset = 16 * REGION_LEN;
	expect_reject(len, -EINVAL, "overlaps another region's addresses");
}
END_TEST

START_TEST(test_reg_overlapping_file_ranges)
{
	size_t len = build(3);

	MSG->regions[2].file_offset = MSG->regions[0].file_offset + 4096;
	expect_reject(len, -EINVAL, "region 2 overlaps another region's file range");
}
END_TEST

START_TEST(test_reg_file_range_wraps)
{
	size_t len = build(1);

	MSG->regions[0].file_offset = ~0ULL & ~0xfffULL;
	expect_reject(len, -EINVAL, "file range wraps");
}
END_TEST

START_TEST(test_reg_empty_name)
{
	size_t len = build(1);

	memset(MSG->vm_name, 0, sizeof(MSG->vm_name));
	expect_reject(len, -EINVAL, "empty VM name");
}
END_TEST

START_TEST(test_reg_name_not_terminated)
{
	size_t len = build(1);

	memset(MSG->vm_name, 'a', sizeof(MSG->vm_name));
	expect_reject(len, -EINVAL, "VM name is not NUL-terminated");
}
END_TEST

START_TEST(test_reg_bad_name_chars)
{
	static const char *const bad[] = { "a/b", "a b", "../x", "vm\n",
					   "x;rm", "\xc3\xa9t\xc3\xa9", "a\"b" };

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = build(1);
		memset(MSG->vm_name, 0, sizeof(MSG->vm_name));
		strcpy(MSG->vm_name, bad[i]);
		expect_reject(len, -EINVAL, "VM name may hold only letters");
	}
}
END_TEST

START_TEST(test_reg_bad_share_domain)
{
	size_t len = build(1);

	strcpy(MSG->share_domain, "po/ol");
	expect_reject(len, -EINVAL, "bad sharing domain name");
	memset(MSG->share_domain, 'p', sizeof(MSG->share_domain));
	expect_reject(len, -EINVAL, "bad sharing domain name");
}
END_TEST

START_TEST(test_reg_channel_not_terminated)
{
	size_t len = build(1);

	memset(MSG->balloon_channel, 'c', sizeof(MSG->balloon_channel));
	expect_reject(len, -EINVAL, "balloon channel is not NUL-terminated");
}
END_TEST

START_TEST(test_reg_unknown_flags)
{
	size_t len = build(1);

	MSG->flags = 0x4;
	expect_reject(len, -EINVAL, "unknown register flags 0x4");
	MSG->flags = PK_REG_ANON | 0x80000000u;
	expect_reject(len, -EINVAL, "unknown register flags 0x80000001");
}
END_TEST

START_TEST(test_reg_unknown_balloon_kind)
{
	size_t len = build(1);

	MSG->balloon_kind = PK_BALLOON_LIBVIRT + 1;
	expect_reject(len, -EINVAL, "unknown balloon kind 4");
}
END_TEST

START_TEST(test_reg_anon_with_offset)
{
	size_t len = build(2);

	MSG->flags = PK_REG_ANON;
	MSG->regions[0].file_offset = 0;
	MSG->regions[1].file_offset = 8192;
	expect_reject(len, -EINVAL,
		      "region 1: anonymous RAM cannot have a file offset");
}
END_TEST

/* ---- the settings trailer (PK_REG_SETTINGS) ---- */

/* build(n) with the trailer: 2 regions are 2 * REGION_LEN bytes. */
static struct pk_register_settings *build_set(uint32_t n, size_t *len)
{
	struct pk_register_settings *t;

	*len = build(n) + sizeof(*t);
	MSG->flags |= PK_REG_SETTINGS;
	MSG->hdr.length = (uint32_t)*len;
	t = (struct pk_register_settings *)(void *)&MSG->regions[n];
	*t = (struct pk_register_settings){ .shares = 500,
					    .flags = PK_REGSET_NO_BALLOON,
					    .min_bytes = 4 * 4096,
					    .max_bytes = REGION_LEN };
	return t;
}

START_TEST(test_settings_roundtrip)
{
	struct pk_region_desc r = { .host_addr = BASE_ADDR,
				    .length = REGION_LEN, .page_size = 4096 };
	struct pk_registration reg = {
		.vm_name = "set-1", .share_domain = "", .balloon_channel = "",
		.flags = PK_REG_SETTINGS, .n_regions = 1, .regions = &r,
		.settings = { .shares = 7, .flags = PK_REGSET_NO_BALLOON,
			      .min_bytes = 8192, .max_bytes = 65536 },
	};
	struct pk_registration out;
	char reason[PK_PROTO_REASON_MAX] = "";
	int len = pk_register_encode(raw, sizeof(raw), &reg);

	ck_assert_int_eq(len, (int)(pk_register_msg_size(1) +
				    sizeof(struct pk_register_settings)));
	ck_assert_int_eq(len, (int)pk_register_msg_size_flags(1, PK_REG_SETTINGS));
	expect_accept((size_t)len);
	ck_assert_int_eq(pk_register_decode(raw, (size_t)len, &out, reason,
					    sizeof(reason)), 0);
	ck_assert_uint_eq(out.flags, PK_REG_SETTINGS);
	ck_assert_uint_eq(out.settings.shares, 7);
	ck_assert_uint_eq(out.settings.flags, PK_REGSET_NO_BALLOON);
	ck_assert_uint_eq(out.settings.min_bytes, 8192);
	ck_assert_uint_eq(out.settings.max_bytes, 65536);
	/* Without the flag: the old message, no settings decoded. */
	reg.flags = 0;
	len = pk_register_encode(raw, sizeof(raw), &reg);
	ck_assert_int_eq(len, (int)pk_register_msg_size(1));
	ck_assert_int_eq(pk_register_decode(raw, (size_t)len, &out, reason,
					    sizeof(reason)), 0);
	ck_assert_uint_eq(out.settings.shares, 0);
	ck_assert_uint_eq(out.settings.max_bytes, 0);
}
END_TEST

START_TEST(test_reg_settings_length)
{
	size_t len = build(1);

	/* The flag without the 24 bytes, and the bytes without the flag. */
	MSG->flags = PK_REG_SETTINGS;
	expect_reject(len, -EBADMSG, "1 regions and settings need 472");
	build_set(1, &len);
	MSG->flags = 0;
	expect_reject(len, -EBADMSG, "472 bytes but 1 regions need 448");
}
END_TEST

START_TEST(test_reg_settings_rules)
{
	size_t len;
	struct pk_register_settings *t = build_set(2, &len);
	struct pk_registration out;
	char reason[PK_PROTO_REASON_MAX] = "";

	expect_accept(len);
	t->flags = 0x2;
	expect_reject(len, -EINVAL, "unknown settings flags 0x2");
	t->flags = 0;
	t->shares = PK_PROTO_SHARES_MAX + 1;
	expect_reject(len, -EINVAL, "shares must be 1 to 1000000 (0: the "
		      "default), not 1000001");
	t->shares = PK_PROTO_SHARES_MAX;
	expect_accept(len);
	t->min_bytes = 4096 + 1;
	expect_reject(len, -EINVAL, "min and max must be multiples of 4096");
	t->min_bytes = 2 * REGION_LEN + 4096;
	t->max_bytes = 0;
	expect_reject(len, -EINVAL, "min 528384 bytes is above the VM's size "
		      "(524288 bytes)");
	t->min_bytes = 8 * 4096;
	t->max_bytes = 4 * 4096;
	expect_reject(len, -EINVAL, "min 32768 bytes is above max 16384 bytes");
	/* A max above the VM's size: no limit, clamped to 0, not refused. */
	t->min_bytes = 2 * REGION_LEN;
	t->max_bytes = 2 * REGION_LEN + 4096;
	ck_assert_int_eq(pk_register_decode(raw, len, &out, reason,
					    sizeof(reason)), 0);
	ck_assert_uint_eq(out.settings.max_bytes, 0);
	ck_assert_uint_eq(out.settings.min_bytes, 2 * REGION_LEN);
	t->max_bytes = 2 * REGION_LEN; /* exactly the size: kept */
	ck_assert_int_eq(pk_register_decode(raw, len, &out, reason,
					    sizeof(reason)), 0);
	ck_assert_uint_eq(out.settings.max_bytes, 2 * REGION_LEN);
}
END_TEST

static Suite *protocol_suite(void)
{
	Suite *s = suite_create("protocol");
	TCase *codec = tcase_create("codec");
	TCase *hdr = tcase_create("header");
	TCase *reg = tcase_create("register");

	tcase_add_test(codec, test_roundtrip);
	tcase_add_test(codec, test_roundtrip_limits);
	tcase_add_test(codec, test_encode_errors);
	tcase_add_test(codec, test_reply_roundtrip);
	suite_add_tcase(s, codec);

	tcase_add_test(hdr, test_header_ok);
	tcase_add_test(hdr, test_header_truncated_short);
	tcase_add_test(hdr, test_header_truncated_length);
	tcase_add_test(hdr, test_header_oversized);
	tcase_add_test(hdr, test_header_bad_magic);
	tcase_add_test(hdr, test_header_unknown_version);
	suite_add_tcase(s, hdr);

	tcase_add_test(reg, test_reg_truncated);
	tcase_add_test(reg, test_reg_zero_regions);
	tcase_add_test(reg, test_reg_too_many_regions);
	tcase_add_test(reg, test_reg_count_length_mismatch);
	tcase_add_test(reg, test_reg_unsupported_page_size);
	tcase_add_test(reg, test_reg_zero_length);
	tcase_add_test(reg, test_reg_absurd_length);
	tcase_add_test(reg, test_reg_unaligned_address);
	tcase_add_test(reg, test_reg_unaligned_length);
	tcase_add_test(reg, test_reg_unaligned_offset);
	tcase_add_test(reg, test_reg_not_user_address);
	tcase_add_test(reg, test_reg_overlapping_addresses);
	tcase_add_test(reg, test_reg_overlapping_file_ranges);
	tcase_add_test(reg, test_reg_file_range_wraps);
	tcase_add_test(reg, test_reg_empty_name);
	tcase_add_test(reg, test_reg_name_not_terminated);
	tcase_add_test(reg, test_reg_bad_name_chars);
	tcase_add_test(reg, test_reg_bad_share_domain);
	tcase_add_test(reg, test_reg_channel_not_terminated);
	tcase_add_test(reg, test_reg_unknown_flags);
	tcase_add_test(reg, test_reg_unknown_balloon_kind);
	tcase_add_test(reg, test_reg_anon_with_offset);
	tcase_add_test(reg, test_settings_roundtrip);
	tcase_add_test(reg, test_reg_settings_length);
	tcase_add_test(reg, test_reg_settings_rules);
	suite_add_tcase(s, reg);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(protocol_suite());
	int failed;

	srunner_run_all(sr, CK_VERBOSE);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
