/*
 * scan.h - what the sharing scanner keeps in a RESIDENT page's entry.
 *
 * The payload of a RESIDENT page-table entry (56 bits) is the scanner's
 * memory of the page, so tracking stability costs nothing beyond the
 * 8-byte entry:
 *
 *   bits  0-7   stamp: the pass that last read the page (pass % 255 + 1;
 *               0: never read since the page became resident)
 *   bits  8-11  stable: consecutive passes, up to 15, the page kept hash
 *   bit   12    candidate: the domain's candidate index holds the page
 *               under this hash (share.c), so later passes need not look
 *               for partners again: a partner that shows up finds it
 *   bits 13-55  the low 43 bits of its hash (0 for an all-zero page)
 *
 * Every other path that makes a page resident writes payload 0, which
 * restarts its stability from scratch: a page the guest wrote back in is
 * never taken for a stable one, nor for a candidate.
 */
#ifndef PK_SCAN_H
#define PK_SCAN_H

#include <stdint.h>

#define PK_SCAN_STAMP_BITS 8
#define PK_SCAN_STABLE_BITS 4
#define PK_SCAN_CANDIDATE_BIT (PK_SCAN_STAMP_BITS + PK_SCAN_STABLE_BITS)
#define PK_SCAN_HASH_SHIFT (PK_SCAN_CANDIDATE_BIT + 1)
#define PK_SCAN_HASH_BITS 43
#define PK_SCAN_STABLE_MAX ((1u << PK_SCAN_STABLE_BITS) - 1)
#define PK_SCAN_CANDIDATE (UINT64_C(1) << PK_SCAN_CANDIDATE_BIT)

static inline uint64_t pk_scan_payload(uint64_t hash, unsigned stable,
				       unsigned stamp)
{
	return (hash & ((UINT64_C(1) << PK_SCAN_HASH_BITS) - 1))
		       << PK_SCAN_HASH_SHIFT |
	       (uint64_t)stable << PK_SCAN_STAMP_BITS | stamp;
}

/* The index key of a page hash: the bits a payload keeps of it. */
static inline uint64_t pk_scan_key(uint64_t hash)
{
	return hash & ((UINT64_C(1) << PK_SCAN_HASH_BITS) - 1);
}

static inline int pk_scan_payload_candidate(uint64_t payload)
{
	return (payload & PK_SCAN_CANDIDATE) != 0;
}

static inline uint64_t pk_scan_payload_hash(uint64_t payload)
{
	return payload >> PK_SCAN_HASH_SHIFT;
}

static inline unsigned pk_scan_payload_stable(uint64_t payload)
{
	return (unsigned)(payload >> PK_SCAN_STAMP_BITS) & PK_SCAN_STABLE_MAX;
}

static inline unsigned pk_scan_payload_stamp(uint64_t payload)
{
	return (unsigned)payload & ((1u << PK_SCAN_STAMP_BITS) - 1);
}

/* The stamp of pass number pass (never 0). */
static inline unsigned pk_scan_stamp(uint64_t pass)
{
	return (unsigned)(pass % 255) + 1;
}

#endif
