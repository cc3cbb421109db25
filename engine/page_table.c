/*
 * page_table.c - the per-VM page-state table (see page_table.h).
 *
 * The array is an anonymous MAP_NORESERVE mapping: entries of pages the
 * guest never touches stay zero (PK_PAGE_UNTOUCHED) and cost no machine
 * memory until written, so a mostly idle 1 TiB guest does not make the
 * daemon allocate 2 GiB up front.  A VM's table normally lives in its
 * durable record instead (pk_page_table_attach, engine/state.c), a
 * MAP_SHARED file mapping with the same property.
 */
#include "engine/page_table.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

int pk_page_table_init(struct pk_page_table *pt, uint64_t n_pages)
{
	void *p;

	memset(pt, 0, sizeof(*pt));
	if (n_pages == 0)
		return -EINVAL;
	p = mmap(NULL, n_pages * sizeof(uint64_t), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	pt->entries = p;
	pt->n_pages = n_pages;
	pt->count[PK_PAGE_UNTOUCHED] = n_pages;
	return 0;
}

void pk_page_table_attach(struct pk_page_table *pt, uint64_t *entries,
			  uint64_t n_pages)
{
	memset(pt, 0, sizeof(*pt));
	pt->entries = entries;
	pt->n_pages = n_pages;
	pt->borrowed = 1;
	for (uint64_t i = 0; i < n_pages; i++) {
		if ((entries[i] & PK_PTE_STATE_MASK) >= PK_PAGE_NSTATES)
			entries[i] = PK_PAGE_POISONED;
		pt->count[entries[i] & PK_PTE_STATE_MASK]++;
	}
}

void pk_page_table_free(struct pk_page_table *pt)
{
	if (pt->entries && !pt->borrowed)
		munmap(pt->entries, pt->n_pages * sizeof(uint64_t));
	memset(pt, 0, sizeof(*pt));
}

void pk_page_set(struct pk_page_table *pt, uint64_t idx,
		 enum pk_page_state state, uint64_t payload)
{
	enum pk_page_state old = pk_page_state(pt, idx);

	pt->count[old]--;
	pt->count[state]++;
	pt->entries[idx] = (payload << PK_PTE_PAYLOAD_SHIFT) | (uint64_t)state;
}

void pk_page_set_range(struct pk_page_table *pt, uint64_t first, uint64_t n,
		       enum pk_page_state state)
{
	for (uint64_t i = first; i < first + n; i++)
		pk_page_set(pt, i, state, 0);
}

const char *pk_page_state_name(enum pk_page_state s)
{
	static const char *const names[PK_PAGE_NSTATES] = {
		"untouched", "resident", "zero",     "removed",
		"swapped",   "shared",	 "poisoned",
	};
	return (unsigned)s < PK_PAGE_NSTATES ? names[s] : "invalid";
}
