/*
 * protocol.h - the pagekeeper control-socket wire format (version 1).
 *
 * The contract is documented for humans in engine/PROTOCOL.md; this header
 * is its single machine-readable definition, shared by the daemon, the
 * client library and the CLI.
 *
 * The socket is AF_UNIX SOCK_SEQPACKET, so every message arrives whole or
 * not at all and its true length is known: truncation and oversize are
 * detected by comparing the received length with the header's.  All
 * integers are host-endian (the peers are on one machine).
 *
 * Every function returns 0 or a negative errno.  Decoders also fill a
 * human-readable reason, which the daemon sends back verbatim.
 */
#ifndef PK_PROTOCOL_H
#define PK_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#define PK_PROTO_MAGIC 0x504b4550u /* "PEKP" little-endian */
#define PK_PROTO_VERSION 1
#define PK_PROTO_MAX_MSG (64 * 1024) /* largest message either side sends */
#define PK_PROTO_MAX_REGIONS 64
#define PK_PROTO_NAME_MAX 64       /* VM name, NUL included */
#define PK_PROTO_CHANNEL_MAX 256   /* balloon channel, NUL included */
#define PK_PROTO_REASON_MAX 256    /* error text in replies, NUL included */
#define PK_PROTO_MAX_REGION_BYTES (1ULL << 42) /* 4 TiB: absurd beyond */
#define PK_PAGE_SIZE 4096u

enum pk_msg_type {
	PK_MSG_REGISTER = 1,	  /* client -> daemon, carries fds */
	PK_MSG_REGISTER_REPLY = 2, /* daemon -> client */
	PK_MSG_STATUS = 3,	  /* CLI -> daemon */
	PK_MSG_STATUS_REPLY = 4,   /* daemon -> CLI: JSON text follows */
	PK_MSG_ERROR_REPLY = 5,	  /* daemon -> anyone: a request failed */
	PK_MSG_RECLAIM = 6,	  /* CLI -> daemon: evict N bytes of a VM */
	PK_MSG_RECLAIM_REPLY = 7, /* daemon -> CLI, when the reclaim ends */
	PK_MSG_DRAIN = 8,	  /* CLI -> daemon: bring every page of a VM back */
	PK_MSG_DRAIN_REPLY = 9,	  /* daemon -> CLI, when the drain ends */
	PK_MSG_BALLOON = 10,	  /* CLI -> daemon: set a VM's balloon target */
	PK_MSG_BALLOON_REPLY = 11, /* daemon -> CLI, at once */
	PK_MSG_SET = 12,	  /* CLI -> daemon: a VM's shares, min, max */
	PK_MSG_SET_REPLY = 13,	  /* daemon -> CLI: a struct pk_reply_msg */
};

enum pk_balloon_kind {
	PK_BALLOON_NONE = 0,
	PK_BALLOON_LAB = 1,	/* channel: path of the lab guest's socket */
	PK_BALLOON_QMP = 2,	/* channel: path of QEMU's QMP socket */
	PK_BALLOON_LIBVIRT = 3, /* channel: "URI|domain" */
};

/* Register flags. */
#define PK_REG_ANON 0x1u /* private anonymous RAM: no backing fd is sent */
#define PK_REG_SETTINGS 0x2u /* a struct pk_register_settings follows the regions */
#define PK_REG_KNOWN_FLAGS (PK_REG_ANON | PK_REG_SETTINGS)

/* Limits of the allocation settings, REGISTER's and SET's alike. */
#define PK_PROTO_SHARES_MAX 1000000u
#define PK_PROTO_SHARES_DEFAULT 1000u /* what shares 0 means */

/* pk_register_settings.flags */
#define PK_REGSET_NO_BALLOON 0x1u /* never balloon it: reclaim by swap */
#define PK_REGSET_KNOWN_FLAGS PK_REGSET_NO_BALLOON

struct pk_msg_header {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t length; /* whole message, header included */
	uint32_t reserved;
};

struct pk_region_desc {
	uint64_t host_addr;   /* guest RAM address in the client */
	uint64_t length;      /* bytes, a multiple of page_size */
	uint64_t file_offset; /* offset in the backing fd (0 for anon) */
	uint32_t page_size;   /* 4096 in version 1 */
	uint32_t reserved;
};

/*
 * REGISTER.  Ancillary data: SCM_RIGHTS with the userfaultfd first and,
 * unless PK_REG_ANON, the RAM backing fd second.
 */
struct pk_register_msg {
	struct pk_msg_header hdr;
	char vm_name[PK_PROTO_NAME_MAX];
	char share_domain[PK_PROTO_NAME_MAX]; /* "" = the VM alone */
	uint32_t balloon_kind;
	uint32_t flags;
	char balloon_channel[PK_PROTO_CHANNEL_MAX];
	uint32_t n_regions;
	uint32_t reserved;
	struct pk_region_desc regions[]; /* n_regions entries */
};

/*
 * The trailer of a REGISTER with PK_REG_SETTINGS, right after the last
 * region: the guest's own allocation settings (policy.h), which the
 * admin's [vm NAME] section and `pagekeeper set` override.  A client
 * that does not set the flag sends the version-1 message unchanged.
 */
struct pk_register_settings {
	uint32_t shares;    /* 1..PK_PROTO_SHARES_MAX; 0: the default */
	uint32_t flags;	    /* PK_REGSET_* */
	uint64_t min_bytes; /* reservation; 0: none */
	uint64_t max_bytes; /* limit; 0 (or above the VM's size): its size */
};

/* REGISTER_REPLY and ERROR_REPLY share one shape. */
struct pk_reply_msg {
	struct pk_msg_header hdr;
	int32_t status; /* 0 or negative errno */
	uint32_t vm_id; /* REGISTER_REPLY on success */
	char reason[PK_PROTO_REASON_MAX];
};

/* STATUS: header only.  STATUS_REPLY: header + NUL-terminated JSON. */

/* RECLAIM: evict this many bytes of the VM with the current policy. */
struct pk_reclaim_msg {
	struct pk_msg_header hdr;
	char vm_name[PK_PROTO_NAME_MAX];
	uint64_t bytes;
};

struct pk_reclaim_reply {
	struct pk_msg_header hdr;
	int32_t status;		/* 0, or negative errno (partial work counted) */
	uint32_t reserved;
	uint64_t pages_swapped;	/* written to the swap file and punched */
	uint64_t pages_zero;	/* found all-zero: punched, nothing written */
	uint64_t pages_aborted;	/* written by the guest meanwhile: kept */
	uint64_t elapsed_us;
	char reason[PK_PROTO_REASON_MAX];
};

/*
 * DRAIN: swap every page of the VM back in and unshare its merged pages,
 * and evict or merge none of its pages from then on (an admin about to
 * detach it or uninstall pagekeeper).
 */
struct pk_drain_msg {
	struct pk_msg_header hdr;
	char vm_name[PK_PROTO_NAME_MAX];
};

struct pk_drain_reply {
	struct pk_msg_header hdr;
	int32_t status;		 /* 0, or negative errno (partial work counted) */
	uint32_t reserved;
	uint64_t pages_swapped_in; /* read back from the swap file */
	uint64_t pages_unshared;   /* copied from canonical copies */
	uint64_t pages_poisoned;   /* lost (unreadable slot): memory errors */
	uint64_t elapsed_us;
	char reason[PK_PROTO_REASON_MAX];
};

/*
 * BALLOON: ask the VM's guest, through its balloon channel, to keep
 * target_bytes (its logical size, as `virsh setmem` takes it).  The reply
 * comes at once, before the guest has moved: the balloon's progress is in
 * the status (balloon_actual_mib).
 */
struct pk_balloon_msg {
	struct pk_msg_header hdr;
	char vm_name[PK_PROTO_NAME_MAX];
	uint64_t target_bytes;
};

struct pk_balloon_reply {
	struct pk_msg_header hdr;
	int32_t status;		/* 0 accepted, or negative errno */
	uint32_t reserved;
	uint64_t target_bytes;	/* the target accepted (0 when refused) */
	uint64_t actual_bytes;	/* the guest's size now (0: not known yet) */
	char reason[PK_PROTO_REASON_MAX];
};

/*
 * SET: a VM's allocation settings for the memory-state policy (policy.h).
 * A figure of -1 stays as it is.  The reply is a pk_reply_msg of type
 * SET_REPLY: 0, -ENOENT (no such VM) or -EINVAL with the reason.
 */
struct pk_set_msg {
	struct pk_msg_header hdr;
	char vm_name[PK_PROTO_NAME_MAX];
	int64_t shares;	    /* 1..1000000 */
	int64_t min_bytes;  /* reservation; 0: none */
	int64_t max_bytes;  /* limit; 0: the VM's size */
	int32_t no_balloon; /* 1: the policy never balloons it; 0: it may */
	uint32_t reserved;
};

/* SET for vm_name; -1 leaves a figure (-ENAMETOOLONG past 63 bytes). */
int pk_set_msg_encode(struct pk_set_msg *msg, const char *vm_name,
		      int64_t shares, int64_t min_bytes, int64_t max_bytes,
		      int32_t no_balloon);

/* Decoded, validated registration (points into the caller's buffer). */
struct pk_registration {
	const char *vm_name;
	const char *share_domain;
	uint32_t balloon_kind;
	const char *balloon_channel;
	uint32_t flags;
	uint32_t n_regions;
	const struct pk_region_desc *regions;
	/* Valid with PK_REG_SETTINGS in flags (max_bytes clamped: 0 when it
	 * was above the regions' size). */
	struct pk_register_settings settings;
	/* Not on the wire: the daemon's, from the peer (engine/control.c).
	 * The VM's owner, and whether the peer was an admin (whose balloon
	 * channel may be anyone's socket). */
	uint32_t owner_uid;
	int owner_admin;
};

void pk_msg_header_init(struct pk_msg_header *hdr, uint16_t type,
			uint32_t length);

/*
 * Check a received message's header against the number of bytes that
 * arrived: magic, version, declared length.  On success *type is set.
 */
int pk_msg_check_header(const void *buf, size_t received, uint16_t *type,
			char *reason, size_t reason_len);

/* Size of a REGISTER message with n regions (no settings trailer). */
size_t pk_register_msg_size(uint32_t n_regions);
/* ... and with the trailer when flags has PK_REG_SETTINGS. */
size_t pk_register_msg_size_flags(uint32_t n_regions, uint32_t flags);

/*
 * Build a REGISTER message into buf (at least pk_register_msg_size(n)
 * bytes).  Returns the message length or a negative errno.
 */
/* Is s a valid VM or domain name: 1-63 of [A-Za-z0-9._-]?  (1 / 0) */
int pk_proto_name_valid(const char *s);

int pk_register_encode(void *buf, size_t buf_len,
		       const struct pk_registration *reg);

/*
 * Validate a REGISTER message that passed pk_msg_check_header: sizes,
 * strings, flags, and the region table (page size, alignment, zero and
 * absurd lengths, overlaps in address and in file offset).
 */
int pk_register_decode(const void *buf, size_t len,
		       struct pk_registration *out, char *reason,
		       size_t reason_len);

void pk_reply_encode(struct pk_reply_msg *msg, uint16_t type, int status,
		     uint32_t vm_id, const char *reason);

int pk_reply_decode(const void *buf, size_t len, struct pk_reply_msg *out);

/*
 * The fds that a received message's SCM_RIGHTS headers carry (mh as
 * recvmsg() filled it in), in order: the first max into fds; each one
 * past max is handed to drop() (the daemon closes it).  Returns how many
 * are in fds.  Only whole fds inside msg_controllen and inside their
 * header's cmsg_len are taken; a header shorter than a header or running
 * past the buffer ends the walk.  (issue 17: tests/fuzz/cmsg.c)
 */
struct msghdr;
int pk_proto_cmsg_fds(const struct msghdr *mh, int *fds, int max,
		      void (*drop)(int fd));

/* BALLOON for vm_name (-ENAMETOOLONG past 63 bytes). */
int pk_balloon_msg_encode(struct pk_balloon_msg *msg, const char *vm_name,
			  uint64_t target_bytes);
/* A BALLOON_REPLY, whole (-EBADMSG for another type or length). */
int pk_balloon_reply_decode(const void *buf, size_t len,
			    struct pk_balloon_reply *out);

#endif
