/*
 * test_page_table.c - unit tests for the per-VM page-state table
 * (engine/page_table.c).
 *
 * Covers: init/free, n_pages == 0 rejected, state and payload set/get
 * (including the 56-bit payload maximum and that a set clears the flag
 * bits), the per-state counters staying equal to a reference model over
 * long random sequences of pk_page_set and pk_page_set_range (including
 * overwriting a page with its own state), and state names.  Tables over
 * a record's entries (pk_page_table_attach, a MAP_SHARED memfd standing
 * in for the state file): counts taken from the entries, invalid states
 * (7..15) counted and rewritten as poisoned in the record, valid entries
 * kept; free leaves borrowed entries mapped and unmaps its own.
 * The write marks (pk_page_set_written) and the cold-first victim
 * policy over them (engine/victim.h, pk_victim_cold): unmarked resident
 * pages first, then random ones, never busy or repeated ones.
 *
 * Why: the status report reads only the counters, and every memory
 * decision later (eviction, budget) trusts them; a counter that drifts
 * from the entries makes the daemon lie about guest memory.
 */
#include "engine/page_table.h"
#include "engine/victim.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Counts recomputed from the entries must equal the table's counters. */
static void assert_counts_match_entries(const struct pk_page_table *pt)
{
	uint64_t model[PK_PAGE_NSTATES] = { 0 }, total = 0;

	for (uint64_t i = 0; i < pt->n_pages; i++) {
		enum pk_page_state s = pk_page_state(pt, i);
		ck_assert_int_lt(s, PK_PAGE_NSTATES);
		model[s]++;
	}
	for (int s = 0; s < PK_PAGE_NSTATES; s++) {
		ck_assert_msg(model[s] == pt->count[s],
			      "state %s: entries hold %llu pages, counter says %llu",
			      pk_page_state_name(s), (unsigned long long)model[s],
			      (unsigned long long)pt->count[s]);
		total += pt->count[s];
	}
	ck_assert_uint_eq(total, pt->n_pages);
}

START_TEST(test_init_free)
{
	struct pk_page_table pt;

	ck_assert_int_eq(pk_page_table_init(&pt, 1000), 0);
	ck_assert_ptr_nonnull(pt.entries);
	ck_assert_uint_eq(pt.n_pages, 1000);
	ck_assert_uint_eq(pt.count[PK_PAGE_UNTOUCHED], 1000);
	for (int s = 1; s < PK_PAGE_NSTATES; s++)
		ck_assert_uint_eq(pt.count[s], 0);
	for (uint64_t i = 0; i < pt.n_pages; i++) {
		ck_assert_int_eq(pk_page_state(&pt, i), PK_PAGE_UNTOUCHED);
		ck_assert_uint_eq(pk_page_payload(&pt, i), 0);
	}
	assert_counts_match_entries(&pt);
	pk_page_table_free(&pt);
	ck_assert_ptr_null(pt.entries);
	ck_assert_uint_eq(pt.n_pages, 0);
	ck_assert_uint_eq(pt.count[PK_PAGE_UNTOUCHED], 0);
	pk_page_table_free(&pt); /* freeing twice is harmless */
}
END_TEST

START_TEST(test_init_zero_pages_rejected)
{
	struct pk_page_table pt;

	memset(&pt, 0xa5, sizeof(pt));
	ck_assert_int_eq(pk_page_table_init(&pt, 0), -EINVAL);
	ck_assert_ptr_null(pt.entries);
	ck_assert_uint_eq(pt.n_pages, 0);
	pk_page_table_free(&pt);
}
END_TEST

/* The table is a NORESERVE mapping: a huge, mostly untouched guest is cheap. */
START_TEST(test_init_large_sparse)
{
	struct pk_page_table pt;
	uint64_t n = 1ULL << 28; /* 1 TiB of guest, 2 GiB of table */

	ck_assert_int_eq(pk_page_table_init(&pt, n), 0);
	pk_page_set(&pt, n - 1, PK_PAGE_SWAPPED, 12345);
	ck_assert_int_eq(pk_page_state(&pt, n - 1), PK_PAGE_SWAPPED);
	ck_assert_uint_eq(pk_page_payload(&pt, n - 1), 12345);
	ck_assert_uint_eq(pt.count[PK_PAGE_UNTOUCHED], n - 1);
	ck_assert_uint_eq(pt.count[PK_PAGE_SWAPPED], 1);
	pk_page_table_free(&pt);
}
END_TEST

START_TEST(test_set_get_state_and_payload)
{
	struct pk_page_table pt;

	ck_assert_int_eq(pk_page_table_init(&pt, 16), 0);
	for (int s = 0; s < PK_PAGE_NSTATES; s++) {
		pk_page_set(&pt, (uint64_t)s, (enum pk_page_state)s,
			    (uint64_t)s * 1000 + 7);
		ck_assert_int_eq(pk_page_state(&pt, (uint64_t)s), s);
		ck_assert_uint_eq(pk_page_payload(&pt, (uint64_t)s),
				  (uint64_t)s * 1000 + 7);
	}
	/* Neighbours untouched. */
	for (uint64_t i = PK_PAGE_NSTATES; i < 16; i++) {
		ck_assert_int_eq(pk_page_state(&pt, i), PK_PAGE_UNTOUCHED);
		ck_assert_uint_eq(pk_page_payload(&pt, i), 0);
	}
	assert_counts_match_entries(&pt);
	pk_page_table_free(&pt);
}
END_TEST

START_TEST(test_payload_max)
{
	struct pk_page_table pt;

	ck_assert_uint_eq(PK_PTE_PAYLOAD_MAX, (1ULL << 56) - 1);
	ck_assert_int_eq(pk_page_table_init(&pt, 4), 0);
	pk_page_set(&pt, 1, PK_PAGE_SHARED, PK_PTE_PAYLOAD_MAX);
	ck_assert_uint_eq(pk_page_payload(&pt, 1), PK_PTE_PAYLOAD_MAX);
	ck_assert_int_eq(pk_page_state(&pt, 1), PK_PAGE_SHARED);
	/* Largest state value with the largest payload: no bleed either way. */
	pk_page_set(&pt, 2, PK_PAGE_POISONED, PK_PTE_PAYLOAD_MAX);
	ck_assert_int_eq(pk_page_state(&pt, 2), PK_PAGE_POISONED);
	ck_assert_uint_eq(pk_page_payload(&pt, 2), PK_PTE_PAYLOAD_MAX);
	ck_assert_int_eq(pk_page_state(&pt, 1), PK_PAGE_SHARED);
	ck_assert_int_eq(pk_page_state(&pt, 3), PK_PAGE_UNTOUCHED);
	assert_counts_match_entries(&pt);
	pk_page_table_free(&pt);
}
END_TEST

/* The scanner's setter: the payload changes, the state, the busy flag and
 * write tracking's marks stay, the counts too. */
START_TEST(test_set_payload_keeps_flags)
{
	struct pk_page_table pt;

	ck_assert_int_eq(pk_page_table_init(&pt, 3), 0);
	pk_page_set(&pt, 1, PK_PAGE_RESIDENT, 5);
	pk_page_set_busy(&pt, 1, 1);
	ck_assert_int_eq(pk_page_set_written(&pt, 1), 1);
	pt.entries[1] |= PK_PTE_FLAG_WRITTEN_PREV;
	pk_page_set_payload(&pt, 1, PK_PTE_PAYLOAD_MAX);
	ck_assert_uint_eq(pk_page_payload(&pt, 1), PK_PTE_PAYLOAD_MAX);
	ck_assert_int_eq(pk_page_state(&pt, 1), PK_PAGE_RESIDENT);
	ck_assert(pk_page_busy(&pt, 1));
	ck_assert_uint_eq(pt.entries[1] & PK_PTE_FLAGS_WRITTEN,
			  PK_PTE_FLAGS_WRITTEN);
	pk_page_set_payload(&pt, 1, 7);
	ck_assert_uint_eq(pk_page_payload(&pt, 1), 7);
	ck_assert(pk_page_busy(&pt, 1) && pk_page_written(&pt, 1));
	/* Its neighbours are left alone. */
	ck_assert_uint_eq(pt.entries[0], 0);
	ck_assert_uint_eq(pt.entries[2], 0);
	ck_assert_uint_eq(pt.count[PK_PAGE_RESIDENT], 1);
	assert_counts_match_entries(&pt);
	pk_page_table_free(&pt);
}
END_TEST

START_TEST(test_set_clears_flags)
{
	struct pk_page_table pt;

	ck_assert_int_eq(pk_page_table_init(&pt, 2), 0);
	pk_page_set(&pt, 0, PK_PAGE_RESIDENT, 5);
	pt.entries[0] |= PK_PTE_FLAG_BUSY | PK_PTE_FLAGS_WRITTEN;
	ck_assert_int_eq(pk_page_state(&pt, 0), PK_PAGE_RESIDENT);
	ck_assert_uint_eq(pk_page_payload(&pt, 0), 5);
	pk_page_set(&pt, 0, PK_PAGE_SWAPPED, 9);
	ck_assert_uint_eq(pt.entries[0] & (PK_PTE_FLAG_BUSY | PK_PTE_FLAGS_WRITTEN), 0);
	ck_assert_uint_eq(pk_page_payload(&pt, 0), 9);
	assert_counts_match_entries(&pt);
	pk_page_table_free(&pt);
}
END_TEST

START_TEST(test_overwrite_same_state)
{
	struct pk_page_table pt;

	ck_assert_int_eq(pk_page_table_init(&pt, 8), 0);
	pk_page_set(&pt, 3, PK_PAGE_RESIDENT, 0);
	pk_page_set(&pt, 3, PK_PAGE_RESIDENT, 0);
	pk_page_set(&pt, 3, PK_PAGE_RESIDENT, 1);
	ck_assert_uint_eq(pt.count[PK_PAGE_RESIDENT], 1);
	ck_assert_uint_eq(pt.count[PK_PAGE_UNTOUCHED], 7);
	pk_page_set(&pt, 4, PK_PAGE_UNTOUCHED, 0); /* untouched -> untouched */
	ck_assert_uint_eq(pt.count[PK_PAGE_UNTOUCHED], 7);
	pk_page_set_range(&pt, 0, 8, PK_PAGE_ZERO);
	pk_page_set_range(&pt, 0, 8, PK_PAGE_ZERO);
	ck_assert_uint_eq(pt.count[PK_PAGE_ZERO], 8);
	ck_assert_uint_eq(pk_page_payload(&pt, 3), 0); /* range clears payload */
	assert_counts_match_entries(&pt);
	pk_page_table_free(&pt);
}
END_TEST

START_TEST(test_set_range_bounds)
{
	struct pk_page_table pt;

	ck_assert_int_eq(pk_page_table_init(&pt, 100), 0);
	pk_page_set_range(&pt, 10, 0, PK_PAGE_RESIDENT); /* empty range */
	ck_assert_uint_eq(pt.count[PK_PAGE_UNTOUCHED], 100);
	pk_page_set_range(&pt, 90, 10, PK_PAGE_REMOVED); /* up to the end */
	pk_page_set_range(&pt, 0, 1, PK_PAGE_RESIDENT);
	ck_assert_int_eq(pk_page_state(&pt, 89), PK_PAGE_UNTOUCHED);
	ck_assert_int_eq(pk_page_state(&pt, 90), PK_PAGE_REMOVED);
	ck_assert_int_eq(pk_page_state(&pt, 99), PK_PAGE_REMOVED);
	ck_assert_int_eq(pk_page_state(&pt, 0), PK_PAGE_RESIDENT);
	ck_assert_int_eq(pk_page_state(&pt, 1), PK_PAGE_UNTOUCHED);
	ck_assert_uint_eq(pt.count[PK_PAGE_REMOVED], 10);
	ck_assert_uint_eq(pt.count[PK_PAGE_RESIDENT], 1);
	ck_assert_uint_eq(pt.count[PK_PAGE_UNTOUCHED], 89);
	assert_counts_match_entries(&pt);
	pk_page_table_free(&pt);
}
END_TEST

/* Random sets and ranges against a reference model of states and payloads. */
START_TEST(test_counters_random_model)
{
	enum { N = 4096, OPS = 20000 };
	struct pk_page_table pt;
	unsigned char *state = calloc(N, 1);
	uint64_t *payload = calloc(N, sizeof(*payload));
	unsigned seed = 12345u + (unsigned)_i;

	ck_assert_ptr_nonnull(state);
	ck_assert_ptr_nonnull(payload);
	ck_assert_int_eq(pk_page_table_init(&pt, N), 0);
	for (int op = 0; op < OPS; op++) {
		enum pk_page_state s = (enum pk_page_state)(rand_r(&seed) %
							   PK_PAGE_NSTATES);
		if (rand_r(&seed) % 3) {
			uint64_t i = (uint64_t)rand_r(&seed) % N;
			uint64_t p = ((uint64_t)rand_r(&seed) << 31 ^
				      (uint64_t)rand_r(&seed)) & PK_PTE_PAYLOAD_MAX;
			pk_page_set(&pt, i, s, p);
			state[i] = (unsigned char)s;
			payload[i] = p;
		} else {
			uint64_t first = (uint64_t)rand_r(&seed) % N;
			uint64_t n = (uint64_t)rand_r(&seed) % (N - first + 1);
			if (n > 300)
				n %= 300;
			pk_page_set_range(&pt, first, n, s);
			for (uint64_t i = first; i < first + n; i++) {
				state[i] = (unsigned char)s;
				payload[i] = 0;
			}
		}
		if (op % 1000 == 0)
			assert_counts_match_entries(&pt);
	}
	for (uint64_t i = 0; i < N; i++) {
		ck_assert_int_eq(pk_page_state(&pt, i), state[i]);
		ck_assert_uint_eq(pk_page_payload(&pt, i), payload[i]);
	}
	assert_counts_match_entries(&pt);
	pk_page_table_free(&pt);
	free(state);
	free(payload);
}
END_TEST

START_TEST(test_state_names)
{
	static const char *const expect[PK_PAGE_NSTATES] = {
		"untouched", "resident", "zero",     "removed",
		"swapped",   "shared",	 "poisoned",
	};

	for (int s = 0; s < PK_PAGE_NSTATES; s++) {
		ck_assert_str_eq(pk_page_state_name((enum pk_page_state)s),
				 expect[s]);
		for (int t = 0; t < s; t++)
			ck_assert_str_ne(pk_page_state_name((enum pk_page_state)s),
					 pk_page_state_name((enum pk_page_state)t));
	}
	ck_assert_str_eq(pk_page_state_name(PK_PAGE_NSTATES), "invalid");
	ck_assert_str_eq(pk_page_state_name((enum pk_page_state)15), "invalid");
	ck_assert_str_eq(pk_page_state_name((enum pk_page_state)-1), "invalid");
}
END_TEST

START_TEST(test_zero_fill_states)
{
	ck_assert(pk_page_state_is_zero_fill(PK_PAGE_UNTOUCHED));
	ck_assert(pk_page_state_is_zero_fill(PK_PAGE_ZERO));
	ck_assert(pk_page_state_is_zero_fill(PK_PAGE_REMOVED));
	ck_assert(!pk_page_state_is_zero_fill(PK_PAGE_RESIDENT));
	ck_assert(!pk_page_state_is_zero_fill(PK_PAGE_SWAPPED));
	ck_assert(!pk_page_state_is_zero_fill(PK_PAGE_SHARED));
	ck_assert(!pk_page_state_is_zero_fill(PK_PAGE_POISONED));
}
END_TEST

/* ---- tables over a VM record's entries (pk_page_table_attach) ------------ */

/* n entries in a MAP_SHARED memfd mapping, as a state file's payload. */
static uint64_t *shared_entries(uint64_t n, int *fd)
{
	void *p;

	*fd = memfd_create("pk-test-pt", MFD_CLOEXEC);
	ck_assert_int_ge(*fd, 0);
	ck_assert_int_eq(ftruncate(*fd, (off_t)(n * sizeof(uint64_t))), 0);
	p = mmap(NULL, n * sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED,
		 *fd, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

static int mapped(void *p, size_t len)
{
	return msync(p, len, MS_ASYNC) == 0;
}

/*
 * Entries a previous daemon left: every state value 0..15 with random
 * payloads and flags.  Attach counts them; the invalid states (7..15)
 * count as poisoned and are rewritten so, in the record itself; valid
 * entries keep their state and payload.
 */
START_TEST(test_attach_counts_and_poisons)
{
	enum { N = 5000 };
	struct pk_page_table pt;
	uint64_t want[PK_PAGE_NSTATES] = { 0 }, orig[N], word;
	unsigned seed = 777, invalid = 0;
	int fd;
	uint64_t *e = shared_entries(N, &fd);

	for (uint64_t i = 0; i < N; i++) {
		uint64_t state = i < 16 ? i : (uint64_t)rand_r(&seed) % 16;
		uint64_t payload = ((uint64_t)rand_r(&seed) << 31 ^
				    (uint64_t)rand_r(&seed)) & PK_PTE_PAYLOAD_MAX;
		uint64_t flags = (uint64_t)rand_r(&seed) &
				 (PK_PTE_FLAG_BUSY | PK_PTE_FLAGS_WRITTEN);

		e[i] = orig[i] = payload << PK_PTE_PAYLOAD_SHIFT | flags | state;
		if (state < PK_PAGE_NSTATES) {
			want[state]++;
		} else {
			want[PK_PAGE_POISONED]++;
			invalid++;
		}
	}
	pk_page_table_attach(&pt, e, N);
	ck_assert_ptr_eq(pt.entries, e);
	ck_assert_uint_eq(pt.n_pages, N);
	for (int st = 0; st < PK_PAGE_NSTATES; st++)
		ck_assert_msg(pt.count[st] == want[st],
			      "state %s: %llu pages counted, the entries hold %llu",
			      pk_page_state_name(st),
			      (unsigned long long)pt.count[st],
			      (unsigned long long)want[st]);
	for (uint64_t i = 0; i < N; i++) {
		uint64_t state = orig[i] & PK_PTE_STATE_MASK;

		if (state < PK_PAGE_NSTATES) {
			ck_assert_int_eq(pk_page_state(&pt, i), state);
			ck_assert_uint_eq(pk_page_payload(&pt, i),
					  orig[i] >> PK_PTE_PAYLOAD_SHIFT);
		} else {
			ck_assert_msg(pk_page_state(&pt, i) == PK_PAGE_POISONED,
				      "entry %llu: invalid state %llu left as %d",
				      (unsigned long long)i,
				      (unsigned long long)state,
				      (int)pk_page_state(&pt, i));
		}
	}
	/* Rewritten in the record, not in a copy. */
	ck_assert_int_eq(pread(fd, &word, sizeof(word), 9 * sizeof(word)),
			 (ssize_t)sizeof(word));
	ck_assert_uint_eq(word & PK_PTE_STATE_MASK, PK_PAGE_POISONED);
	ck_assert_uint_ge(invalid, 9);
	assert_counts_match_entries(&pt);

	/* A table like any other from here on. */
	pk_page_set(&pt, 3, PK_PAGE_RESIDENT, 0);
	pk_page_set_range(&pt, 100, 50, PK_PAGE_ZERO);
	assert_counts_match_entries(&pt);
	pk_page_table_free(&pt);
	munmap(e, N * sizeof(uint64_t));
	close(fd);
}
END_TEST

/* An all-zero record (a new VM's) counts as all untouched. */
START_TEST(test_attach_zeroed)
{
	enum { N = 1 << 16 };
	struct pk_page_table pt;
	int fd;
	uint64_t *e = shared_entries(N, &fd);

	pk_page_table_attach(&pt, e, N);
	ck_assert_uint_eq(pt.count[PK_PAGE_UNTOUCHED], N);
	pk_page_set(&pt, N - 1, PK_PAGE_SWAPPED, 42);
	ck_assert_uint_eq(e[N - 1] >> PK_PTE_PAYLOAD_SHIFT, 42);
	assert_counts_match_entries(&pt);
	pk_page_table_free(&pt);
	munmap(e, N * sizeof(uint64_t));
	close(fd);
}
END_TEST

/*
 * Free leaves borrowed entries mapped and as they were (they are the
 * record's), and still unmaps a table of its own.
 */
START_TEST(test_free_borrowed_and_owned)
{
	enum { N = 4096 };
	struct pk_page_table pt;
	uint64_t *own;
	int fd;
	uint64_t *e = shared_entries(N, &fd);

	e[7] = (5ULL << PK_PTE_PAYLOAD_SHIFT) | PK_PAGE_SWAPPED;
	pk_page_table_attach(&pt, e, N);
	pk_page_set(&pt, 8, PK_PAGE_SHARED, 6);
	pk_page_table_free(&pt);
	ck_assert_ptr_null(pt.entries);
	ck_assert_uint_eq(pt.n_pages, 0);
	ck_assert_uint_eq(pt.count[PK_PAGE_UNTOUCHED], 0);
	ck_assert_msg(mapped(e, N * sizeof(uint64_t)),
		      "pk_page_table_free unmapped entries it borrowed");
	ck_assert_uint_eq(e[7], (5ULL << PK_PTE_PAYLOAD_SHIFT) | PK_PAGE_SWAPPED);
	ck_assert_uint_eq(e[8], (6ULL << PK_PTE_PAYLOAD_SHIFT) | PK_PAGE_SHARED);
	pk_page_table_free(&pt); /* twice: harmless */
	ck_assert(mapped(e, N * sizeof(uint64_t)));

	/* Attached again, the same counts come back. */
	pk_page_table_attach(&pt, e, N);
	ck_assert_uint_eq(pt.count[PK_PAGE_SWAPPED], 1);
	ck_assert_uint_eq(pt.count[PK_PAGE_SHARED], 1);
	ck_assert_uint_eq(pt.count[PK_PAGE_UNTOUCHED], N - 2);
	pk_page_table_free(&pt);
	ck_assert(mapped(e, N * sizeof(uint64_t)));
	munmap(e, N * sizeof(uint64_t));
	close(fd);

	ck_assert_int_eq(pk_page_table_init(&pt, N), 0);
	own = pt.entries;
	own[0] = 1;
	ck_assert(mapped(own, N * sizeof(uint64_t)));
	pk_page_table_free(&pt);
	ck_assert_msg(!mapped(own, N * sizeof(uint64_t)),
		      "pk_page_table_free left its own entries mapped");
}
END_TEST

/*
 * pk_victim_cold: 4096 resident pages, the even ones marked written (this
 * period or the one before), a few cold ones busy.  A pick smaller than
 * the cold pages takes only cold, non-busy ones; a pick of every page
 * takes the cold ones and tops up with marked ones; never a busy page,
 * never one twice.
 */
START_TEST(test_victim_cold)
{
	enum { N = 4096, BUSY = 7 };
	struct pk_page_table pt;
	uint64_t out[N], rng = 12345;
	static unsigned char seen[N];
	unsigned n, cold = 0;

	ck_assert_int_eq(pk_page_table_init(&pt, N), 0);
	for (uint64_t i = 0; i < N; i++) {
		pk_page_set(&pt, i, PK_PAGE_RESIDENT, 0);
		if (i % 2 == 0 && i % 4 == 0)
			ck_assert_int_eq(pk_page_set_written(&pt, i), 1);
		else if (i % 2 == 0)
			pt.entries[i] |= PK_PTE_FLAG_WRITTEN_PREV;
	}
	ck_assert_int_eq(pk_page_set_written(&pt, 0), 0); /* marked already */
	for (uint64_t i = 1; i < 2 * BUSY; i += 2)
		pk_page_set_busy(&pt, i, 1);
	ck_assert(pk_page_written(&pt, 2) && pk_page_written(&pt, 4) &&
		  !pk_page_written(&pt, 3));

	n = pk_victim_cold(&pt, out, 256, &rng);
	ck_assert_uint_eq(n, 256);
	for (unsigned k = 0; k < n; k++) {
		ck_assert_msg(out[k] % 2 == 1 && !pk_page_busy(&pt, out[k]),
			      "pick %u: page %llu is written or busy", k,
			      (unsigned long long)out[k]);
		ck_assert_msg(!seen[out[k]]++, "page %llu picked twice",
			      (unsigned long long)out[k]);
	}
	memset(seen, 0, sizeof(seen));
	n = pk_victim_cold(&pt, out, N, &rng);
	ck_assert_uint_eq(n, N - BUSY);
	for (unsigned k = 0; k < n; k++) {
		ck_assert(!pk_page_busy(&pt, out[k]) && !seen[out[k]]++);
		if (k < N / 2 - BUSY)
			cold += out[k] % 2 == 1;
	}
	ck_assert_msg(cold == N / 2 - BUSY, "only %u of the first %u picks "
		      "cold", cold, N / 2 - BUSY);
	pk_page_table_free(&pt);
}
END_TEST

static Suite *page_table_suite(void)
{
	Suite *s = suite_create("page_table");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_init_free);
	tcase_add_test(tc, test_init_zero_pages_rejected);
	tcase_add_test(tc, test_init_large_sparse);
	tcase_add_test(tc, test_set_get_state_and_payload);
	tcase_add_test(tc, test_payload_max);
	tcase_add_test(tc, test_set_clears_flags);
	tcase_add_test(tc, test_set_payload_keeps_flags);
	tcase_add_test(tc, test_overwrite_same_state);
	tcase_add_test(tc, test_set_range_bounds);
	tcase_add_loop_test(tc, test_counters_random_model, 0, 3);
	tcase_add_test(tc, test_state_names);
	tcase_add_test(tc, test_zero_fill_states);
	tcase_add_test(tc, test_attach_counts_and_poisons);
	tcase_add_test(tc, test_attach_zeroed);
	tcase_add_test(tc, test_free_borrowed_and_owned);
	tcase_add_test(tc, test_victim_cold);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(page_table_suite());
	int failed;

	srunner_run_all(sr, CK_VERBOSE);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
