/*
 * test_page_table.c - unit tests for the per-VM page-state table
 * (engine/page_table.c).
 *
 * Covers: init/free, n_pages == 0 rejected, state and payload set/get
 * (including the 56-bit payload maximum and that a set clears the flag
 * bits), the per-state counters staying equal to a reference model over
 * long random sequences of pk_page_set and pk_page_set_range (including
 * overwriting a page with its own state), and state names.
 *
 * Why: the status report reads only the counters, and every memory
 * decision later (eviction, budget) trusts them; a counter that drifts
 * from the entries makes the daemon lie about guest memory.
 */
#include "engine/page_table.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

START_TEST(test_set_clears_flags)
{
	struct pk_page_table pt;

	ck_assert_int_eq(pk_page_table_init(&pt, 2), 0);
	pk_page_set(&pt, 0, PK_PAGE_RESIDENT, 5);
	pt.entries[0] |= PK_PTE_FLAG_BUSY | PK_PTE_FLAG_RSVD;
	ck_assert_int_eq(pk_page_state(&pt, 0), PK_PAGE_RESIDENT);
	ck_assert_uint_eq(pk_page_payload(&pt, 0), 5);
	pk_page_set(&pt, 0, PK_PAGE_SWAPPED, 9);
	ck_assert_uint_eq(pt.entries[0] & (PK_PTE_FLAG_BUSY | PK_PTE_FLAG_RSVD), 0);
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
	tcase_add_test(tc, test_overwrite_same_state);
	tcase_add_test(tc, test_set_range_bounds);
	tcase_add_loop_test(tc, test_counters_random_model, 0, 3);
	tcase_add_test(tc, test_state_names);
	tcase_add_test(tc, test_zero_fill_states);
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
