/*
 * victim.h - choosing which guest pages to evict.
 *
 * A policy fills out[] with up to max page indexes of pages that are
 * resident and not busy, and returns how many it chose.  The engine calls
 * whichever policy is configured (--victims), so random and cold-first
 * victims can be compared without touching the eviction protocol.
 */
#ifndef PK_VICTIM_H
#define PK_VICTIM_H

#include <stdint.h>

#include "engine/page_table.h"

typedef unsigned pk_victim_policy_fn(const struct pk_page_table *pt,
				     uint64_t *out, unsigned max,
				     uint64_t *rng_state);

/*
 * Random, as in ESX: the host cannot see the guest's LRU order, and a
 * host-side LRU fights the guest's own paging.  Victims are taken in
 * short runs from random starting points, because write-protecting and
 * punching a run costs about the same as one page (TLB shootdowns).
 */
pk_victim_policy_fn pk_victim_random;

/*
 * Cold first (--victims cold): the same runs from random starting points,
 * but a run takes only pages without a write mark (PK_PTE_FLAGS_WRITTEN,
 * set by the engine's write tracking, engine/track.h): pages the guest
 * has not written for one to two tracking periods.  When there are not
 * enough of those, the rest are random resident pages, as
 * pk_victim_random picks them.  Write tracking sees writes only: a page
 * the guest only reads counts as cold.
 */
pk_victim_policy_fn pk_victim_cold;

#endif
