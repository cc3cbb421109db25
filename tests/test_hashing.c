/*
 * test_hashing.c - unit tests for the sharing library (hashing/): page
 * hash, content index, canonical-copy store, scan cursor, rate limiter.
 *
 * Real memfds and real files (in a mkdtemp directory under
 * $PK_TEST_SCRATCH, else ".", removed at the end), no mocks.  Built
 * twice: 'hashing' with full 64-bit hashes and 'hashing_collide' with
 * -DPK_HASH_BITS=8 against a copy of hashing/ built the same way, where
 * pages collide on the hash constantly.
 *
 * Covers: the hash equals libxxhash's XXH3-64 (both compiled copies),
 * masked to PK_HASH_BITS, and tells pages one byte apart; the content
 * index against a reference model over 100k random operations with
 * hundreds of references under one hash, growth and shrinking; the
 * canonical store merges identical content only, never two pages that
 * share a hash but not content, frees at the last put (memory given back)
 * and reuses ids, with exact counters, also under a random model; in a
 * file (on the scratch dir and on tmpfs) the copies are at id * 4096,
 * and a file a previous store left opens in restore mode: the ids named
 * again have their bytes and references and are found by content, the
 * rest are free and their chunks punched out of the file; the
 * scan cursor visits exactly the data pages of a file with holes, zero
 * pages and punched pages, with the right offsets and content, allocates
 * nothing, resumes across small steps to the same sequence and counts
 * passes; scan + store end to end verifies every page; the rate limiter
 * is exact under injected time.
 *
 * Why: a merge of two different pages corrupts a guest silently; a scan
 * that allocates pages inflates the memory it is meant to save.
 */
#include "hashing/canonical_store.h"
#include "hashing/content_index.h"
#include "hashing/page_hash.h"
#include "hashing/page_hash_impl.h"
#include "hashing/page_zero.h"
#include "hashing/rate_limit.h"
#include "hashing/scan_cursor.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define PAGE PK_HASH_PAGE_SIZE

/*
 * In fork mode Check reports every passing ck_assert_* to the parent
 * through a pipe (one write(2) each), which made the million checks here
 * take a minute.  These only call into Check when they fail.  Operands
 * are compared with C's usual conversions.
 */
#define CMP(a, op, b)                                                          \
	do {                                                                   \
		__typeof__(a) a_ = (a);                                        \
		__typeof__(b) b_ = (b);                                        \
		_Pragma("GCC diagnostic push")                                 \
		_Pragma("GCC diagnostic ignored \"-Wsign-compare\"")          \
		bool ok_ = a_ op b_;                                           \
		_Pragma("GCC diagnostic pop")                                  \
		if (!ok_)                                                      \
			ck_abort_msg("%s:%d: (%s) %s (%s) failed: %lld vs %lld", \
				     __FILE__, __LINE__, #a, #op, #b,          \
				     (long long)a_, (long long)b_);            \
	} while (0)
#define EQ(a, b) CMP(a, ==, b)
#define NE(a, b) CMP(a, !=, b)
#define LT(a, b) CMP(a, <, b)
#define LE(a, b) CMP(a, <=, b)
#define GT(a, b) CMP(a, >, b)
#define GE(a, b) CMP(a, >=, b)
#define OK(c)                                                                  \
	do {                                                                   \
		if (!(c))                                                      \
			ck_abort_msg("%s:%d: %s failed", __FILE__, __LINE__,   \
				     #c);                                      \
	} while (0)

static char dir[4096], path[4200];
/* The canonical store's files also go to tmpfs, the run dir's home. */
static char shm_dir[4096];
static const char *const canon_files[] = { "canon-empty", "canon-restore" };

static void setup(void)
{
	const char *base = getenv("PK_TEST_SCRATCH");

	snprintf(dir, sizeof(dir), "%s/hashtest-XXXXXX",
		 base && *base ? base : ".");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ram", dir);
	snprintf(shm_dir, sizeof(shm_dir), "/dev/shm/hashtest-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(shm_dir));
}

static void teardown(void)
{
	char p[4200];

	for (unsigned i = 0; i < 2 * sizeof(canon_files) / sizeof(*canon_files); i++) {
		snprintf(p, sizeof(p), "%s/%s", i & 1 ? shm_dir : dir,
			 canon_files[i / 2]);
		unlink(p);
	}
	unlink(path);
	rmdir(dir);
	rmdir(shm_dir);
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* A page of pseudo-random content for seed: never all zeros.  page may
 * be unaligned (the hash takes any alignment), hence memcpy. */
static void fill(void *page, uint64_t seed)
{
	uint64_t st = (seed + 1) * 0x9e3779b97f4a7c15ULL;
	unsigned char *b = page;

	for (unsigned i = 0; i < PAGE / 8; i++) {
		uint64_t w = xorshift(&st);
		memcpy(b + 8 * i, &w, sizeof(w));
	}
	b[0] |= 1;
}

static void *page_alloc(size_t pages)
{
	void *p = aligned_alloc(PAGE, pages * PAGE);

	ck_assert_ptr_nonnull(p);
	return p;
}

static int has_avx2(void)
{
	return __builtin_cpu_supports("avx2");
}

/* ---- page hash ---------------------------------------------------------- */

START_TEST(test_hash_is_masked_xxh3)
{
	unsigned char *buf = page_alloc(3);
	uint64_t all_bits = 0;

	for (uint64_t seed = 0; seed < 1000; seed++) {
		/* Aligned and unaligned pages. */
		unsigned char *p = buf + (seed % 7 == 0 ? 1 : 0) + (seed % 2) * PAGE;
		uint64_t ref;

		fill(p, seed);
		ref = XXH3_64bits(p, PAGE);
		EQ(pk_page_xxh3_sse2(p), ref);
		if (has_avx2())
			EQ(pk_page_xxh3_avx2(p), ref);
		EQ(pk_page_hash(p), ref & PK_HASH_MASK);
		EQ(pk_page_hash(p), pk_page_hash(p));
		EQ(pk_page_hash(p) & ~PK_HASH_MASK, 0);
		all_bits |= pk_page_hash(p);
	}
	/* Every allowed bit shows up, none above PK_HASH_BITS. */
	EQ(all_bits, PK_HASH_MASK);
	memset(buf, 0, PAGE);
	EQ(pk_page_hash(buf), XXH3_64bits(buf, PAGE) & PK_HASH_MASK);
	ck_assert_str_eq(pk_page_hash_impl(), has_avx2() ? "avx2" : "sse2");
	free(buf);
}
END_TEST

START_TEST(test_hash_one_byte_apart)
{
	unsigned char *p = page_alloc(1);
	uint64_t base, *seen = calloc(PAGE / 4 + 1, sizeof(*seen));
	size_t n = 0, same = 0;

	fill(p, 77);
	base = pk_page_hash(p);
	seen[n++] = base;
	/* One byte changed at every 4th position, first and last included. */
	for (unsigned pos = 0; pos < PAGE; pos += 4) {
		unsigned at = pos ? pos + 3 : 0;
		unsigned char old = p[at];

		p[at] ^= (unsigned char)(1u << (pos % 8));
		seen[n++] = pk_page_hash(p);
		p[at] = old;
	}
	EQ(pk_page_hash(p), base);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			same += seen[i] == seen[j];
#if PK_HASH_BITS == 64
	EQ(same, 0);
#else
	/* 1025 hashes in 2^PK_HASH_BITS values: the point of this build. */
	if (PK_HASH_BITS <= 16)
		GT(same, 0);
#endif
	free(seen);
	free(p);
}
END_TEST

START_TEST(test_zero_pages)
{
	unsigned char *p = page_alloc(1);

	memset(p, 0, PAGE);
	OK(pk_page_is_zero(p, PAGE));
	p[PAGE - 1] = 1;
	OK(!pk_page_is_zero(p, PAGE));
	free(p);
}
END_TEST

/* ---- content index ------------------------------------------------------- */

START_TEST(test_index_basics)
{
	struct pk_content_index *idx;
	struct pk_index_iter it;
	uint64_t ref;
	int got[4] = { 0 };

	EQ(pk_index_create(&idx), 0);
	OK(!pk_index_first(idx, 5, &it, &ref));
	EQ(pk_index_insert(idx, 5, PK_INDEX_REF_INVALID), -EINVAL);
	EQ(pk_index_insert(idx, 5, 0), 0);
	EQ(pk_index_insert(idx, 5, 1), 0);
	EQ(pk_index_insert(idx, 5, 3), 0);
	EQ(pk_index_insert(idx, 0, 2), 0);
	EQ(pk_index_insert(idx, 5, 1), -EEXIST);
	EQ(pk_index_entries(idx), 4);
	EQ(pk_index_contains(idx, 5, 3), 1);
	EQ(pk_index_contains(idx, 6, 3), 0);
	EQ(pk_index_contains(idx, 5, PK_INDEX_REF_INVALID), 0);
	for (bool ok = pk_index_first(idx, 5, &it, &ref); ok;
	     ok = pk_index_next(idx, &it, &ref)) {
		LT(ref, 4);
		got[ref]++;
	}
	EQ(got[0], 1);
	EQ(got[1], 1);
	EQ(got[2], 0);
	EQ(got[3], 1);
	OK(pk_index_first(idx, 0, &it, &ref));
	EQ(ref, 2);
	OK(!pk_index_next(idx, &it, &ref));
	EQ(pk_index_remove(idx, 5, 2), -ENOENT);
	EQ(pk_index_remove(idx, 5, 1), 0);
	EQ(pk_index_remove(idx, 5, 1), -ENOENT);
	EQ(pk_index_contains(idx, 5, 0), 1);
	EQ(pk_index_contains(idx, 5, 3), 1);
	EQ(pk_index_entries(idx), 3);
	GE(pk_index_bytes(idx), pk_index_slots(idx) * 16);
	LT(pk_index_bytes(idx), pk_index_slots(idx) * 16 + 64);
	pk_index_destroy(idx);
}
END_TEST

/*
 * The model: NH hashes (some tiny integers, some random, hash 0 is "hot"
 * and gets half of all operations) x NR refs, a presence bit per pair.
 */
#define NH 48
#define NR 2048

START_TEST(test_index_random_model)
{
	static unsigned char present[NH][NR];
	static unsigned char seen[NR];
	uint64_t hashes[NH], st = 12345, n = 0, max_run = 0;
	struct pk_content_index *idx;

	memset(present, 0, sizeof(present));
	for (int h = 0; h < NH; h++)
		hashes[h] = h < 16 ? (uint64_t)h : xorshift(&st);
	EQ(pk_index_create(&idx), 0);
	for (int op = 0; op < 100000; op++) {
		uint64_t r = xorshift(&st);
		int h = (r & 1) ? 0 : (int)((r >> 1) % NH);
		uint64_t ref = (r >> 20) % NR;
		int kind = (int)((r >> 40) % 8);

		if (kind < 4) {
			int rc = pk_index_insert(idx, hashes[h], ref);

			EQ(rc, present[h][ref] ? -EEXIST : 0);
			if (!rc) {
				present[h][ref] = 1;
				n++;
			}
		} else if (kind < 7) {
			int rc = pk_index_remove(idx, hashes[h], ref);

			EQ(rc, present[h][ref] ? 0 : -ENOENT);
			if (!rc) {
				present[h][ref] = 0;
				n--;
			}
		} else {
			struct pk_index_iter it;
			uint64_t got, count = 0, want = 0;

			memset(seen, 0, sizeof(seen));
			for (bool ok = pk_index_first(idx, hashes[h], &it, &got);
			     ok; ok = pk_index_next(idx, &it, &got)) {
				LT(got, NR);
				OK(present[h][got]);
				OK(!seen[got]);
				seen[got] = 1;
				count++;
			}
			for (int i = 0; i < NR; i++)
				want += present[h][i];
			EQ(count, want);
			if (count > max_run)
				max_run = count;
		}
		EQ(pk_index_entries(idx), n);
		LT(pk_index_entries(idx), pk_index_slots(idx));
	}
	/* The hot hash really held hundreds of references at once. */
	GT(max_run, 500);
	for (int h = 0; h < NH; h++)
		for (int i = 0; i < NR; i++)
			EQ(pk_index_contains(idx, hashes[h], (uint64_t)i),
					 present[h][i]);
	pk_index_destroy(idx);
}
END_TEST

START_TEST(test_index_growth)
{
	const uint64_t N = 300000;
	struct pk_content_index *idx;
	uint64_t st = 99, s0;

	EQ(pk_index_create(&idx), 0);
	EQ(pk_index_slots(idx), 16);
	s0 = st;
	for (uint64_t i = 0; i < N; i++) {
		/* Two refs per hash: one collision for every hash. */
		uint64_t h = xorshift(&st);

		EQ(pk_index_insert(idx, h, 2 * i), 0);
		EQ(pk_index_insert(idx, h, 2 * i + 1), 0);
		if (i > 1000) {
			double per = (double)pk_index_bytes(idx) / (double)pk_index_entries(idx);

			OK(per >= 16.0 && per <= 28.0);
		}
	}
	EQ(pk_index_entries(idx), 2 * N);
	GE(pk_index_slots(idx), 2 * N * 8 / 7);
	printf("content index: %llu entries in %llu slots, %.1f bytes/entry\n",
	       (unsigned long long)pk_index_entries(idx),
	       (unsigned long long)pk_index_slots(idx),
	       (double)pk_index_bytes(idx) / (double)pk_index_entries(idx));
	st = s0;
	for (uint64_t i = 0; i < N; i++) {
		uint64_t h = xorshift(&st);

		EQ(pk_index_contains(idx, h, 2 * i), 1);
		EQ(pk_index_remove(idx, h, 2 * i + 1), 0);
	}
	st = s0;
	for (uint64_t i = 0; i < N; i++) {
		uint64_t h = xorshift(&st);

		EQ(pk_index_contains(idx, h, 2 * i + 1), 0);
		EQ(pk_index_remove(idx, h, 2 * i), 0);
	}
	EQ(pk_index_entries(idx), 0);
	EQ(pk_index_slots(idx), 16);
	pk_index_destroy(idx);
}
END_TEST

/*
 * A reserve grows the table once, to the size the inserts would have
 * grown it to, so they then insert without a growth; the floor keeps
 * removals from shrinking it until it is lifted, and lifting it lets the
 * next removal shrink the table again.  Everything stays findable.
 */
START_TEST(test_index_reserve)
{
	const uint64_t N = 50000;
	struct pk_content_index *idx, *plain;
	uint64_t st = 7, s0 = st;
	size_t slots;

	EQ(pk_index_create(&idx), 0);
	EQ(pk_index_create(&plain), 0);
	EQ(pk_index_insert(idx, 1, 1), 0);
	EQ(pk_index_reserve(idx, N + 1), 0);
	slots = pk_index_slots(idx);
	GE(slots, (N + 1) * 8 / 7);
	for (uint64_t i = 0; i < N; i++) {
		uint64_t h = xorshift(&st);
		EQ(pk_index_insert(idx, h, i + 2), 0);
		EQ(pk_index_insert(plain, h, i + 2), 0);
		/* No growth: the reserve made room for them all. */
		EQ(pk_index_slots(idx), slots);
	}
	EQ(pk_index_insert(plain, 1, 1), 0);
	EQ(pk_index_slots(idx), pk_index_slots(plain));
	/* Removals down to a few entries: the floor holds the size. */
	st = s0;
	for (uint64_t i = 0; i < N - 10; i++)
		EQ(pk_index_remove(idx, xorshift(&st), i + 2), 0);
	EQ(pk_index_slots(idx), slots);
	EQ(pk_index_contains(idx, 1, 1), 1);
	/* Lifted: the next removal shrinks it. */
	EQ(pk_index_reserve(idx, 0), 0);
	EQ(pk_index_remove(idx, 1, 1), 0);
	LT(pk_index_slots(idx), slots);
	for (uint64_t i = N - 10; i < N; i++)
		EQ(pk_index_contains(idx, xorshift(&st), i + 2), 1);
	/* A reserve that fits sets only the floor. */
	slots = pk_index_slots(idx);
	EQ(pk_index_reserve(idx, 5), 0);
	EQ(pk_index_slots(idx), slots);
	pk_index_destroy(idx);
	pk_index_destroy(plain);
}
END_TEST

static bool sweep_keep_alive(void *arg, uint64_t hash, uint64_t ref)
{
	const unsigned char *dead = arg;
	(void)hash;
	return !dead[ref];
}

/*
 * Sweeping expires entries a few slots at a time: chunks of odd sizes
 * that add up to the table's slots remove every dead entry and no live
 * one, also in the clusters a hot hash makes; when most entries die the
 * table shrinks between calls, and further calls still converge.
 */
START_TEST(test_index_sweep)
{
	enum { N = 120000 };
	static unsigned char dead[N];
	static uint64_t hash[N];
	struct pk_content_index *idx;
	uint64_t st = 4242, alive = 0;
	size_t cursor = 12345, slots, visited = 0, removed = 0;

	EQ(pk_index_create(&idx), 0);
	for (uint64_t i = 0; i < N; i++) { /* every 8th on one hot hash */
		hash[i] = i % 8 ? xorshift(&st) : 7;
		EQ(pk_index_insert(idx, hash[i], i), 0);
	}
	for (uint64_t i = 0; i < N; i++) {
		dead[i] = xorshift(&st) % 10 < 3;
		alive += !dead[i];
	}
	slots = pk_index_slots(idx);
	while (visited < slots) {
		size_t chunk = 1 + xorshift(&st) % 5000;
		if (chunk > slots - visited)
			chunk = slots - visited;
		removed += pk_index_sweep(idx, &cursor, chunk, sweep_keep_alive, dead);
		visited += chunk;
		LT(cursor, pk_index_slots(idx));
	}
	EQ(pk_index_slots(idx), slots); /* 70% alive: no shrink */
	EQ(removed, N - alive);
	EQ(pk_index_entries(idx), alive);
	for (uint64_t i = 0; i < N; i++)
		EQ(pk_index_contains(idx, hash[i], i), !dead[i]);
	/* Now nine in ten of the rest die: the table shrinks as it goes. */
	for (uint64_t i = 0; i < N; i++)
		if (!dead[i] && xorshift(&st) % 10) {
			dead[i] = 1;
			alive--;
		}
	for (int calls = 0; pk_index_entries(idx) != alive; calls++) {
		LT(calls, 1000);
		pk_index_sweep(idx, &cursor, 1000, sweep_keep_alive, dead);
	}
	LT(pk_index_slots(idx), slots / 4);
	for (uint64_t i = 0; i < N; i++)
		EQ(pk_index_contains(idx, hash[i], i), !dead[i]);
	pk_index_destroy(idx);
}
END_TEST

/* ---- canonical store ----------------------------------------------------- */

static void check_stats(struct pk_canon_store *s, uint64_t frames, uint64_t refs)
{
	struct pk_canon_stats st;

	pk_canon_stats(s, &st);
	EQ(st.frames, frames);
	EQ(st.refs, refs);
	EQ(st.page_bytes, (frames + st.held) * PAGE);
	GT(st.meta_bytes, 0);
	EQ(st.bytes, st.page_bytes + st.meta_bytes);
}

START_TEST(test_canon_identical_content_shares)
{
	struct pk_canon_store *s;
	unsigned char *a = page_alloc(2), *a2 = a + PAGE;
	uint64_t id, id2;
	bool is_new;

	fill(a, 1);
	memcpy(a2, a, PAGE);
	EQ(pk_canon_store_create(&s), 0);
	check_stats(s, 0, 0);
	EQ(pk_canon_get(s, a, pk_page_hash(a), &id), -ENOENT);
	EQ(pk_canon_get_or_add(s, a, pk_page_hash(a), &id, &is_new), 0);
	OK(is_new);
	EQ(pk_canon_refs(s, id), 1);
	EQ(pk_canon_get_or_add(s, a2, pk_page_hash(a2), &id2, &is_new), 0);
	OK(!is_new);
	EQ(id2, id);
	EQ(pk_canon_refs(s, id), 2);
	EQ(pk_canon_get(s, a2, pk_page_hash(a2), &id2), 0);
	EQ(id2, id);
	EQ(pk_canon_ref(s, id), 0);
	EQ(pk_canon_refs(s, id), 4);
	check_stats(s, 1, 4);
	ck_assert_ptr_nonnull(pk_canon_data(s, id));
	EQ((uintptr_t)pk_canon_data(s, id) % PAGE, 0);
	EQ(memcmp(pk_canon_data(s, id), a, PAGE), 0);
	LT(id, PK_CANON_ID_LIMIT);
	pk_canon_store_destroy(s);
	free(a);
}
END_TEST

START_TEST(test_canon_collision_never_merged)
{
	struct pk_canon_store *s;
	unsigned char *p = page_alloc(4);
	uint64_t ids[4];
	bool is_new;

	EQ(pk_canon_store_create(&s), 0);
	/* Three different pages, one forced hash; a fourth one bit apart. */
	for (int i = 0; i < 3; i++)
		fill(p + i * PAGE, 100 + i);
	memcpy(p + 3 * PAGE, p, PAGE);
	p[3 * PAGE + 4095] ^= 0x80;
	for (int i = 0; i < 4; i++) {
		EQ(pk_canon_get_or_add(s, p + i * PAGE, 42, &ids[i], &is_new), 0);
		OK(is_new);
		for (int j = 0; j < i; j++)
			NE(ids[i], ids[j]);
	}
	check_stats(s, 4, 4);
	for (int i = 0; i < 4; i++) {
		uint64_t id;

		EQ(memcmp(pk_canon_data(s, ids[i]), p + i * PAGE, PAGE), 0);
		/* Each content finds its own copy, whatever its position. */
		EQ(pk_canon_get(s, p + i * PAGE, 42, &id), 0);
		EQ(id, ids[i]);
		EQ(pk_canon_refs(s, ids[i]), 2);
	}
	/* A fifth content under the same hash is not found... */
	fill(p, 999);
	EQ(pk_canon_get(s, p, 42, &ids[0]), -ENOENT);
	/* ...and content stored under another hash is not found either: the
	 * hash is a hint, a wrong one costs sharing, never correctness. */
	EQ(pk_canon_get(s, p + PAGE, 43, &ids[0]), -ENOENT);
	check_stats(s, 4, 8);
	pk_canon_store_destroy(s);
	free(p);
}
END_TEST

static int resident(const void *addr)
{
	unsigned char v = 0;

	EQ(mincore((void *)addr, PAGE, &v), 0);
	return v & 1;
}

START_TEST(test_canon_put_frees_and_reuses)
{
	struct pk_canon_store *s;
	struct pk_canon_stats st;
	unsigned char *p = page_alloc(4);
	uint64_t ids[4], id;
	const void *old;
	bool is_new;

	EQ(pk_canon_store_create(&s), 0);
	for (int i = 0; i < 3; i++) {
		fill(p + i * PAGE, 200 + i);
		EQ(pk_canon_get_or_add(s, p + i * PAGE, pk_page_hash(p + i * PAGE),
						     &ids[i], &is_new), 0);
		EQ(ids[i], (uint64_t)i); /* dense from 0 */
	}
	EQ(pk_canon_ref(s, ids[1]), 0);
	check_stats(s, 3, 4);
	old = pk_canon_data(s, ids[1]);
	OK(resident(old));
	EQ(pk_canon_put(s, ids[1]), 1);
	EQ(pk_canon_put(s, ids[1]), 0);
	check_stats(s, 2, 2);
	ck_assert_ptr_null(pk_canon_data(s, ids[1]));
	EQ(pk_canon_refs(s, ids[1]), 0);
	EQ(pk_canon_put(s, ids[1]), -ENOENT);
	EQ(pk_canon_ref(s, ids[1]), -ENOENT);
	EQ(pk_canon_ref(s, 12345), -ENOENT);
	ck_assert_ptr_null(pk_canon_data(s, 12345));
	/* Memory goes back a whole chunk at a time: the freed copy's page
	 * stays, and is counted, while its chunk holds other copies. */
	pk_canon_stats(s, &st);
	EQ(st.held, PK_CANON_CHUNK_PAGES - 2);
	EQ(st.page_bytes, PK_CANON_CHUNK_PAGES * PAGE);
	EQ(pk_canon_release_freed(s), 0);
	OK(resident(old));
	/* Its content is no longer found; the others are. */
	EQ(pk_canon_get(s, p + PAGE, pk_page_hash(p + PAGE), &id), -ENOENT);
	EQ(pk_canon_get(s, p, pk_page_hash(p), &id), 0);
	EQ(pk_canon_put(s, id), 1);
	/* The freed id is the next one handed out. */
	fill(p + 3 * PAGE, 300);
	EQ(pk_canon_get_or_add(s, p + 3 * PAGE, pk_page_hash(p + 3 * PAGE),
					     &ids[3], &is_new), 0);
	OK(is_new);
	EQ(ids[3], ids[1]);
	EQ(memcmp(pk_canon_data(s, ids[3]), p + 3 * PAGE, PAGE), 0);
	check_stats(s, 3, 3);
	/* A freed id reused before the release keeps its new content. */
	EQ(pk_canon_put(s, ids[3]), 0);
	fill(p + 3 * PAGE, 301);
	EQ(pk_canon_get_or_add(s, p + 3 * PAGE, pk_page_hash(p + 3 * PAGE),
					     &ids[3], &is_new), 0);
	EQ(ids[3], ids[1]);
	EQ(pk_canon_release_freed(s), 0);
	EQ(memcmp(pk_canon_data(s, ids[3]), p + 3 * PAGE, PAGE), 0);
	check_stats(s, 3, 3);
	for (int i = 0; i < 4; i++)
		if (i != 1)
			EQ(pk_canon_put(s, ids[i]), 0);
	check_stats(s, 0, 0);
	/* The chunk holds no copy now: all of it goes back, once. */
	EQ(pk_canon_release_freed(s), PK_CANON_CHUNK_PAGES);
	EQ(pk_canon_release_freed(s), 0);
	OK(!resident(old));
	pk_canon_stats(s, &st);
	EQ(st.page_bytes, 0);
	EQ(st.held, 0);
	/* Its ids are handed out again, and the chunk is backed again. */
	fill(p + 3 * PAGE, 302);
	EQ(pk_canon_get_or_add(s, p + 3 * PAGE, pk_page_hash(p + 3 * PAGE),
					     &id, &is_new), 0);
	OK(is_new);
	EQ(id, ids[3]); /* the most recently freed */
	EQ(memcmp(pk_canon_data(s, id), p + 3 * PAGE, PAGE), 0);
	check_stats(s, 1, 1);
	pk_canon_stats(s, &st);
	EQ(st.page_bytes, PK_CANON_CHUNK_PAGES * PAGE);
	EQ(pk_canon_put(s, id), 0);
	pk_canon_store_destroy(s);
	free(p);
}
END_TEST

/*
 * Random model: NC contents (some identical pairs), references taken and
 * dropped at random; the store's copies, counts and counters must match.
 */
#define NC 600

START_TEST(test_canon_random_model)
{
	struct pk_canon_store *s;
	unsigned char *pages = page_alloc(NC);
	uint64_t hashes[NC], ids[NC], refs[NC] = { 0 }, st = 4242;
	uint64_t frames = 0, total = 0, peak = 0, max_id = 0;

	for (int c = 0; c < NC; c++) {
		/* Contents c and c + 1 (c % 10 == 0) are identical. */
		fill(pages + (size_t)c * PAGE, c % 10 == 1 ? (uint64_t)c - 1 : (uint64_t)c);
		hashes[c] = pk_page_hash(pages + (size_t)c * PAGE);
	}
	EQ(pk_canon_store_create(&s), 0);
	for (int op = 0; op < 40000; op++) {
		uint64_t r = xorshift(&st);
		int c = (int)(r % NC);
		int rep = c % 10 == 1 ? c - 1 : c; /* the model's key */
		const unsigned char *pg = pages + (size_t)c * PAGE;

		if ((r >> 32) % 3 != 0) {
			uint64_t id;
			bool is_new;

			EQ(pk_canon_get_or_add(s, pg, hashes[c], &id, &is_new), 0);
			EQ(is_new, refs[rep] == 0);
			if (refs[rep])
				EQ(id, ids[rep]);
			else
				frames++;
			ids[rep] = id;
			refs[rep]++;
			total++;
			if (id > max_id)
				max_id = id;
		} else if (refs[rep]) {
			EQ(pk_canon_put(s, ids[rep]), (int64_t)refs[rep] - 1);
			refs[rep]--;
			total--;
			frames -= refs[rep] == 0;
		}
		if (frames > peak)
			peak = frames;
		check_stats(s, frames, total);
		if (op % 1000 == 0)
			for (int k = 0; k < NC; k++) {
				uint64_t id;
				/* Found exactly while held (the store's filter
				 * must never hide a copy). */
				if (k % 10 != 1)
					EQ(pk_canon_find(s, pages + (size_t)k * PAGE,
							 hashes[k], &id),
					   refs[k] ? 0 : -ENOENT);
				if (refs[k]) {
					EQ(id, ids[k]);
					EQ(pk_canon_refs(s, ids[k]), refs[k]);
					EQ(memcmp(pk_canon_data(s, ids[k]),
								pages + (size_t)k * PAGE, PAGE), 0);
				}
			}
	}
	/* Ids stay dense: never above the most copies ever held at once. */
	LT(max_id, peak);
	pk_canon_store_destroy(s);
	free(pages);
}
END_TEST

/*
 * Thousands of distinct pages and their duplicates: in the 8-bit build
 * hundreds share each hash, and every page must still get exactly the
 * copy whose content it has.
 */
START_TEST(test_canon_every_page_verifies)
{
	const int N = 3000;
	struct pk_canon_store *s;
	unsigned char *p = page_alloc(1);
	uint64_t *ids = calloc((size_t)N, sizeof(*ids));
	unsigned char *hash_seen = calloc(1u << 16, 1);
	int collisions = 0;

	EQ(pk_canon_store_create(&s), 0);
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < N; i++) {
			uint64_t id, h;
			bool is_new;

			fill(p, (uint64_t)i + 5000);
			h = pk_page_hash(p);
			if (round == 0 && PK_HASH_BITS <= 16)
				collisions += hash_seen[h]++ > 0;
			EQ(pk_canon_get_or_add(s, p, h, &id, &is_new), 0);
			EQ(is_new, round == 0);
			if (round)
				EQ(id, ids[i]);
			ids[i] = id;
			EQ(memcmp(pk_canon_data(s, id), p, PAGE), 0);
		}
	check_stats(s, (uint64_t)N, 2 * (uint64_t)N);
	if (PK_HASH_BITS <= 16) {
		printf("canonical store: %d of %d distinct pages collided on the hash\n",
		       collisions, N);
		GT(collisions, N / 2);
	}
	pk_canon_store_destroy(s);
	free(hash_seen);
	free(ids);
	free(p);
}
END_TEST

/* ---- scan cursor ---------------------------------------------------------- */

#define NPAGES 320

enum kind { HOLE, ZERO, DATA, PUNCHED };

/* The test file's layout: holes (a run longer than a chunk), zero pages,
 * data pages, pages written then punched; the last page holds data. */
static enum kind kind_of(int i)
{
	if (i < 2 || (i >= 40 && i < 140) || i % 13 == 7)
		return HOLE;
	if (i == NPAGES - 1)
		return DATA;
	if (i % 11 == 3)
		return PUNCHED;
	if (i % 5 == 0)
		return ZERO;
	return DATA;
}

static void make_file(int fd)
{
	unsigned char *p = page_alloc(1);

	EQ(ftruncate(fd, (off_t)NPAGES * PAGE), 0);
	for (int i = 0; i < NPAGES; i++) {
		enum kind k = kind_of(i);

		if (k == HOLE)
			continue;
		if (k == ZERO)
			memset(p, 0, PAGE);
		else
			fill(p, (uint64_t)i);
		EQ(pwrite(fd, p, PAGE, (off_t)i * PAGE), PAGE);
	}
	EQ(fsync(fd), 0);
	for (int i = 0; i < NPAGES; i++)
		if (kind_of(i) == PUNCHED)
			EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
						   (off_t)i * PAGE, PAGE), 0);
	free(p);
}

static int expected_pages(int *zero)
{
	int n = 0;

	*zero = 0;
	for (int i = 0; i < NPAGES; i++) {
		n += kind_of(i) == ZERO || kind_of(i) == DATA;
		*zero += kind_of(i) == ZERO;
	}
	return n;
}

struct visit {
	uint64_t off, hash;
	bool zero;
};

struct visits {
	struct visit v[4 * NPAGES];
	int n;
	int stop_after; /* return 1 after this many visits (0: never) */
	int fail_at;	/* return -EIO at this visit (1-based, 0: never) */
};

static int record(void *arg, uint64_t off, const void *page, uint64_t hash,
		  bool is_zero)
{
	struct visits *vs = arg;
	unsigned char want[PAGE] __attribute__((aligned(64)));
	int i = (int)(off / PAGE);

	EQ(off % PAGE, 0);
	LT(i, NPAGES);
	if (kind_of(i) == ZERO)
		memset(want, 0, PAGE);
	else
		fill(want, (uint64_t)i);
	EQ(memcmp(page, want, PAGE), 0);
	EQ(is_zero, pk_page_is_zero(want, PAGE));
	EQ(hash, is_zero ? 0 : pk_page_hash(want));
	LT(vs->n, 4 * NPAGES);
	vs->v[vs->n++] = (struct visit){ off, hash, is_zero };
	if (vs->fail_at && vs->n == vs->fail_at)
		return -EIO;
	if (vs->stop_after && vs->n == vs->stop_after)
		return 1;
	return 0;
}

/* One pass's visits must be exactly the data and zero pages, in order. */
static void check_pass(const struct visit *v, int n)
{
	int j = 0;

	for (int i = 0; i < NPAGES; i++) {
		enum kind k = kind_of(i);

		if (k != ZERO && k != DATA)
			continue;
		LT(j, n);
		EQ(v[j].off, (uint64_t)i * PAGE);
		EQ(v[j].zero, k == ZERO);
		j++;
	}
	EQ(j, n);
}

static blkcnt_t blocks_of(int fd)
{
	struct stat sb;

	EQ(fstat(fd, &sb), 0);
	return sb.st_blocks;
}

static void scan_file_full_pass(int fd, bool exact_blocks)
{
	static struct visits vs;
	struct pk_scan_cursor *c;
	struct pk_scan_stats st;
	int zero, want = expected_pages(&zero);
	blkcnt_t before;

	make_file(fd);
	before = blocks_of(fd);
	if (exact_blocks) /* tmpfs: exactly the written pages are allocated */
		EQ(before, (blkcnt_t)want * (PAGE / 512));
	memset(&vs, 0, sizeof(vs));
	EQ(pk_scan_cursor_create(fd, 0, &c), 0);
	EQ(pk_scan_step(c, 100000, record, &vs), want);
	check_pass(vs.v, vs.n);
	pk_scan_stats(c, &st);
	EQ(st.pass_pages, (uint64_t)want);
	EQ(st.pass_zero_pages, (uint64_t)zero);
	EQ(st.passes, 0);
	/* Holes are skipped, not read: only present pages were copied. */
	EQ(st.bytes_read, (uint64_t)want * PAGE);
	EQ(pk_scan_step(c, 100000, record, &vs), 0);
	EQ(pk_scan_passes(c), 1);
	pk_scan_stats(c, &st);
	EQ(st.last_pass_pages, (uint64_t)want);
	EQ(st.last_pass_zero_pages, (uint64_t)zero);
	EQ(st.pass_pages, 0);
	EQ(st.offset, 0);
	/* A second pass sees the same. */
	vs.n = 0;
	EQ(pk_scan_step(c, 100000, record, &vs), want);
	check_pass(vs.v, vs.n);
	EQ(pk_scan_step(c, 100000, record, &vs), 0);
	EQ(pk_scan_passes(c), 2);
	EQ(blocks_of(fd), before);
	EQ(pk_scan_step(c, 0, record, &vs), -EINVAL);
	pk_scan_cursor_destroy(c);
}

START_TEST(test_scan_memfd_pass)
{
	int fd = memfd_create("pk-scan", MFD_CLOEXEC);

	GE(fd, 0);
	scan_file_full_pass(fd, true);
	close(fd);
}
END_TEST

START_TEST(test_scan_real_file_pass)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	GE(fd, 0);
	scan_file_full_pass(fd, false);
	close(fd);
}
END_TEST

START_TEST(test_scan_resume_small_steps)
{
	static struct visits full, vs;
	static const unsigned steps[] = { 1, 2, 3, 7, 64, 65, 100 };
	static const unsigned chunks[] = { 1, 4, 64 };
	int fd = memfd_create("pk-scan", MFD_CLOEXEC), zero;
	int want = expected_pages(&zero);
	blkcnt_t before;

	GE(fd, 0);
	make_file(fd);
	before = blocks_of(fd);
	for (unsigned ci = 0; ci < sizeof(chunks) / sizeof(chunks[0]); ci++)
		for (unsigned si = 0; si < sizeof(steps) / sizeof(steps[0]); si++) {
			struct pk_scan_cursor *c;

			EQ(pk_scan_cursor_create(fd, chunks[ci], &c), 0);
			for (uint64_t pass = 1; pass <= 3; pass++) {
				int r, zeros = 0;

				memset(&vs, 0, sizeof(vs));
				while ((r = pk_scan_step(c, steps[si], record, &vs)) > 0) {
					LE(r, (int)steps[si]);
					EQ(pk_scan_passes(c), pass - 1);
				}
				EQ(r, 0);
				EQ(pk_scan_passes(c), pass);
				check_pass(vs.v, vs.n);
				EQ(vs.n, want);
				for (int i = 0; i < vs.n; i++)
					zeros += vs.v[i].zero;
				EQ(zeros, zero);
				if (ci == 0 && si == 0 && pass == 1)
					full = vs;
				for (int i = 0; i < vs.n; i++)
					EQ(vs.v[i].hash, full.v[i].hash);
			}
			pk_scan_cursor_destroy(c);
		}
	EQ(blocks_of(fd), before);
	close(fd);
}
END_TEST

/* Extents from the caller: pages [4, 7) and [8, 9) only (data or zero
 * pages in make_file's layout, among others that are data too). */
static int two_runs(void *arg, uint64_t from, uint64_t *start, uint64_t *end)
{
	static const uint64_t runs[2][2] = { { 4, 7 }, { 8, 9 } };

	(*(int *)arg)++;
	for (int i = 0; i < 2; i++)
		if (from < runs[i][1] * PAGE) {
			*start = from > runs[i][0] * PAGE ? from : runs[i][0] * PAGE;
			*end = runs[i][1] * PAGE;
			return 1;
		}
	return 0;
}

START_TEST(test_scan_caller_extents)
{
	static struct visits vs;
	struct pk_scan_cursor *c;
	int fd = memfd_create("pk-scan", MFD_CLOEXEC), calls = 0, r;

	GE(fd, 0);
	make_file(fd);
	EQ(pk_scan_cursor_create(fd, 4, &c), 0);
	pk_scan_cursor_set_extents(c, two_runs, &calls);
	for (int pass = 1; pass <= 2; pass++) {
		memset(&vs, 0, sizeof(vs));
		while ((r = pk_scan_step(c, 2, record, &vs)) > 0)
			;
		EQ(r, 0);
		EQ(vs.n, 4);
		for (int i = 0; i < 3; i++)
			EQ(vs.v[i].off, (uint64_t)(4 + i) * PAGE);
		EQ(vs.v[3].off, 8 * PAGE);
	}
	/* Two runs and the end, per pass: the cursor asks once per run. */
	EQ(calls, 6);
	/* Back to lseek: every present page again. */
	pk_scan_cursor_set_extents(c, NULL, NULL);
	memset(&vs, 0, sizeof(vs));
	while ((r = pk_scan_step(c, 64, record, &vs)) > 0)
		;
	EQ(r, 0);
	GT(vs.n, 4);
	pk_scan_cursor_destroy(c);
	close(fd);
}
END_TEST

START_TEST(test_scan_callback_stops_and_errors)
{
	static struct visits vs;
	struct pk_scan_cursor *c;
	int fd = memfd_create("pk-scan", MFD_CLOEXEC), zero;
	int want = expected_pages(&zero);

	GE(fd, 0);
	make_file(fd);
	EQ(pk_scan_cursor_create(fd, 0, &c), 0);
	memset(&vs, 0, sizeof(vs));
	vs.stop_after = 5;
	vs.fail_at = 9;
	EQ(pk_scan_step(c, 1000, record, &vs), 5);
	EQ(pk_scan_step(c, 1000, record, &vs), -EIO);
	EQ(vs.n, 9);
	/* Both pages counted as visited: the walk resumes after them. */
	EQ(pk_scan_step(c, 1000, record, &vs), want - 9);
	check_pass(vs.v, vs.n);
	EQ(pk_scan_step(c, 1000, record, &vs), 0);
	EQ(pk_scan_step(c, 1000, NULL, &vs), -EINVAL);
	pk_scan_cursor_destroy(c);
	EQ(pk_scan_cursor_create(-1, 0, &c), -EINVAL);
	EQ(pk_scan_cursor_create(fd, 1u << 20, &c), -EINVAL);
	close(fd);
}
END_TEST

static int count_cb(void *arg, uint64_t off, const void *page, uint64_t hash,
		    bool is_zero)
{
	(void)off, (void)page, (void)hash, (void)is_zero;
	++*(int *)arg;
	return 0;
}

START_TEST(test_scan_file_changes)
{
	struct pk_scan_cursor *c;
	unsigned char *p = page_alloc(1);
	int fd = memfd_create("pk-scan", MFD_CLOEXEC), n = 0;

	GE(fd, 0);
	EQ(pk_scan_cursor_create(fd, 4, &c), 0);
	/* Empty: every step ends a pass. */
	EQ(pk_scan_step(c, 10, count_cb, &n), 0);
	EQ(pk_scan_step(c, 10, count_cb, &n), 0);
	EQ(pk_scan_passes(c), 2);
	/* Only holes. */
	EQ(ftruncate(fd, 64 * PAGE), 0);
	EQ(pk_scan_step(c, 10, count_cb, &n), 0);
	EQ(n, 0);
	/* Pages written and punched between steps of one pass. */
	fill(p, 1);
	for (int i = 0; i < 64; i += 2)
		EQ(pwrite(fd, p, PAGE, (off_t)i * PAGE), PAGE);
	EQ(pk_scan_step(c, 10, count_cb, &n), 10); /* 0..18 */
	EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   20 * PAGE, 20 * PAGE), 0);
	EQ(pwrite(fd, p, PAGE, 21 * PAGE), PAGE);
	n = 0;
	while (pk_scan_step(c, 10, count_cb, &n) > 0)
		;
	EQ(n, 1 + 12); /* 21, then 40..62 */
	/* The file shrinks mid-pass, to a partial last page with data. */
	EQ(pk_scan_step(c, 5, count_cb, &n), 5); /* 0..8 */
	EQ(pwrite(fd, p, PAGE, 30 * PAGE), PAGE);
	EQ(ftruncate(fd, 30 * PAGE + 100), 0);
	n = 0;
	while (pk_scan_step(c, 10, count_cb, &n) > 0)
		;
	EQ(n, 6); /* 10..18 and 21; partial page 30 is not */
	EQ(pk_scan_passes(c), 5);
	pk_scan_cursor_destroy(c);
	free(p);
	close(fd);
}
END_TEST

/* ---- scan + store: the sharing flow in miniature ---------------------------- */

struct share_ctx {
	struct pk_canon_store *store;
	uint64_t ids[NPAGES];
	int content[NPAGES]; /* which of the distinct contents page i holds */
	int zero_pages, shared_pages;
};

static int share_cb(void *arg, uint64_t off, const void *page, uint64_t hash,
		    bool is_zero)
{
	struct share_ctx *x = arg;
	uint64_t i = off / PAGE;
	bool is_new;

	if (is_zero) {
		x->zero_pages++;
		return 0;
	}
	EQ(pk_canon_get_or_add(x->store, page, hash, &x->ids[i], &is_new), 0);
	EQ(memcmp(pk_canon_data(x->store, x->ids[i]), page, PAGE), 0);
	x->shared_pages++;
	return 0;
}

START_TEST(test_scan_and_share)
{
	static struct share_ctx x;
	struct pk_canon_store *s;
	struct pk_scan_cursor *c;
	unsigned char *p = page_alloc(1);
	int fd = memfd_create("pk-share", MFD_CLOEXEC), r;
	const int NCONT = 40;

	memset(&x, 0, sizeof(x));
	GE(fd, 0);
	EQ(ftruncate(fd, (off_t)NPAGES * PAGE), 0);
	for (int i = 0; i < NPAGES; i++) {
		x.content[i] = -1;
		if (i % 9 == 4)
			continue; /* hole */
		if (i % 7 == 0) {
			memset(p, 0, PAGE);
		} else {
			x.content[i] = (i * 7) % NCONT;
			fill(p, (uint64_t)x.content[i]);
		}
		EQ(pwrite(fd, p, PAGE, (off_t)i * PAGE), PAGE);
	}
	EQ(pk_canon_store_create(&s), 0);
	x.store = s;
	EQ(pk_scan_cursor_create(fd, 0, &c), 0);
	while ((r = pk_scan_step(c, 17, share_cb, &x)) > 0)
		;
	EQ(r, 0);
	/* One copy per distinct content; same content <=> same copy. */
	check_stats(s, (uint64_t)NCONT, (uint64_t)x.shared_pages);
	for (int i = 0; i < NPAGES; i++)
		for (int j = i + 1; j < NPAGES; j++)
			if (x.content[i] >= 0 && x.content[j] >= 0)
				EQ(x.ids[i] == x.ids[j],
						 x.content[i] == x.content[j]);
	GT(x.zero_pages, 0);
	pk_scan_cursor_destroy(c);
	pk_canon_store_destroy(s);
	free(p);
	close(fd);
}
END_TEST

/* ---- rate limiter ------------------------------------------------------- */

#define MS 1000000ULL
#define SEC 1000000000ULL

START_TEST(test_rate_exact)
{
	struct pk_rate_limit rl;
	const uint64_t rate = 1 << 20, burst = 256 << 10;

	EQ(pk_rate_limit_init(&rl, rate, 0, 0), -EINVAL);
	EQ(pk_rate_limit_init(&rl, rate, burst, 5 * SEC), 0);
	/* Starts full. */
	EQ(pk_rate_limit_available(&rl, 5 * SEC), burst);
	EQ(pk_rate_limit_take(&rl, 1 << 30, PAGE, 5 * SEC), burst);
	EQ(pk_rate_limit_available(&rl, 5 * SEC), 0);
	/* 1 ms at 1 MiB/s: 1048.576 bytes. */
	EQ(pk_rate_limit_available(&rl, 5 * SEC + MS), 1048);
	EQ(pk_rate_limit_take(&rl, 1 << 30, PAGE, 5 * SEC + MS), 0);
	/* 4096 - 1048.576 bytes more take exactly 2,906,250 ns. */
	EQ(pk_rate_limit_wait_ns(&rl, PAGE, 5 * SEC + MS), 2906250);
	EQ(pk_rate_limit_take(&rl, PAGE, PAGE, 5 * SEC + MS + 2906249), 0);
	EQ(pk_rate_limit_take(&rl, PAGE, PAGE, 5 * SEC + MS + 2906250), PAGE);
	EQ(pk_rate_limit_available(&rl, 5 * SEC + MS + 2906250), 0);
	/* Never above burst, however long idle. */
	EQ(pk_rate_limit_available(&rl, 1000 * SEC), burst);
	/* Time going backwards adds nothing. */
	EQ(pk_rate_limit_take(&rl, 1000, 1, 1000 * SEC), 1000);
	EQ(pk_rate_limit_available(&rl, 1 * SEC), burst - 1000);
	/* Refunds are capped at burst. */
	pk_rate_limit_refund(&rl, 5000);
	EQ(pk_rate_limit_available(&rl, 1000 * SEC), burst);
	EQ(pk_rate_limit_take(&rl, burst, PAGE, 1000 * SEC), burst);
	pk_rate_limit_refund(&rl, 3 * PAGE);
	EQ(pk_rate_limit_available(&rl, 1000 * SEC), 3 * PAGE);
	EQ(pk_rate_limit_wait_ns(&rl, burst + 1, 1000 * SEC), UINT64_MAX);
	EQ(pk_rate_limit_wait_ns(&rl, 3 * PAGE, 1000 * SEC), 0);
}
END_TEST

START_TEST(test_rate_long_run)
{
	struct pk_rate_limit rl;
	const uint64_t rate = 300ULL << 20, burst = 64 * PAGE;
	uint64_t now = 0, taken = 0, st = 7;

	/* 10 s of steps at irregular intervals, each taking whole pages. */
	EQ(pk_rate_limit_init(&rl, rate, burst, 0), 0);
	while (now < 10 * SEC) {
		taken += pk_rate_limit_take(&rl, 1 << 30, PAGE, now);
		now += 1 + xorshift(&st) % 500000;
	}
	taken += pk_rate_limit_take(&rl, 1 << 30, PAGE, 10 * SEC);
	/* Exactly rate * 10 s + the initial burst, to within one page. */
	LE(taken, rate * 10 + burst);
	GE(taken, rate * 10 + burst - PAGE);
}
END_TEST

START_TEST(test_rate_unlimited)
{
	struct pk_rate_limit rl;

	EQ(pk_rate_limit_init(&rl, 0, 0, 0), 0);
	EQ(pk_rate_limit_available(&rl, 0), UINT64_MAX);
	EQ(pk_rate_limit_take(&rl, 10 * PAGE + 5, PAGE, 0), 10 * PAGE);
	EQ(pk_rate_limit_wait_ns(&rl, 1 << 30, 0), 0);
}
END_TEST

/*
 * Changing the rate keeps what was earned at the old one (up to the new
 * burst) and earns at the new one from then on.
 */
START_TEST(test_rate_change)
{
	struct pk_rate_limit rl;
	const uint64_t S = 1000000000ULL;

	EQ(pk_rate_limit_init(&rl, 1000, 500, 0), 0);
	EQ(pk_rate_limit_take(&rl, 500, 1, 0), 500);
	/* 0.2 s at 1000 B/s: 200 earned, then 8000 B/s. */
	EQ(pk_rate_limit_set(&rl, 8000, 4000, S / 5), 0);
	EQ(pk_rate_limit_available(&rl, S / 5), 200);
	EQ(pk_rate_limit_available(&rl, S / 5 + S / 4), 2200);
	EQ(pk_rate_limit_available(&rl, 2 * S), 4000); /* the new burst */
	/* Down again: the bucket shrinks to the new burst at once. */
	EQ(pk_rate_limit_set(&rl, 100, 50, 2 * S), 0);
	EQ(pk_rate_limit_available(&rl, 2 * S), 50);
	EQ(pk_rate_limit_take(&rl, 50, 1, 2 * S), 50);
	EQ(pk_rate_limit_available(&rl, 2 * S + S / 10), 10);
	EQ(pk_rate_limit_set(&rl, 100, 0, 3 * S), -EINVAL);
	/* From unlimited to limited: starts empty, earns from now. */
	EQ(pk_rate_limit_init(&rl, 0, 0, 0), 0);
	EQ(pk_rate_limit_set(&rl, 1000, 1000, 5 * S), 0);
	EQ(pk_rate_limit_available(&rl, 5 * S), 0);
	EQ(pk_rate_limit_available(&rl, 5 * S + S / 2), 500);
}
END_TEST

/* ---- canonical store in a file (pk_canon_store_open_file) --------------- */

#define CHUNK_BYTES ((off_t)PK_CANON_CHUNK_PAGES * PAGE)

/* canon_files[which] in the scratch dir (i == 0, ext4 here) or on tmpfs. */
static int canon_file(int i, unsigned which, char *p, size_t len, int flags)
{
	int fd;

	snprintf(p, len, "%s/%s", i ? shm_dir : dir, canon_files[which]);
	fd = open(p, O_RDWR | O_CLOEXEC | flags, 0600);
	OK(fd >= 0);
	return fd;
}

/* The copy of seed in a fresh page (the caller frees it). */
static unsigned char *page_of_seed(uint64_t seed)
{
	unsigned char *pg = page_alloc(1);

	fill(pg, seed);
	return pg;
}

static void expect_copy(struct pk_canon_store *s, uint64_t id, uint64_t seed,
			uint32_t refs)
{
	unsigned char *pg = page_of_seed(seed);
	const void *data = pk_canon_data(s, id);

	if (!data)
		ck_abort_msg("id %llu: no copy", (unsigned long long)id);
	if (memcmp(data, pg, PAGE) != 0)
		ck_abort_msg("id %llu: not the bytes of seed %llu",
			     (unsigned long long)id, (unsigned long long)seed);
	EQ(pk_canon_refs(s, id), refs);
	free(pg);
}

/*
 * An empty file: a normal store (ids from 0, duplicates share, puts
 * free) whose copies are in the file: after destroy (which closes the
 * fd it took) the file holds each copy at id * 4096.
 */
START_TEST(test_canon_file_empty)
{
	enum { N = 600 }; /* two chunks */
	struct pk_canon_store *s;
	unsigned char *pg = page_alloc(1), *back = page_alloc(1);
	char p[4200];
	struct stat sb;
	uint64_t id;
	bool is_new;
	int fd = canon_file(_i, 0, p, sizeof(p), O_CREAT | O_TRUNC);

	EQ(pk_canon_store_open_file(&s, fd), 0);
	EQ(pk_canon_restore_ref(s, 0), -ENOENT); /* nothing to restore */
	check_stats(s, 0, 0);
	for (uint64_t i = 0; i < N; i++) {
		fill(pg, 7000 + i);
		EQ(pk_canon_get_or_add(s, pg, pk_page_hash(pg), &id, &is_new), 0);
		OK(is_new);
		EQ(id, i);
	}
	fill(pg, 7005);
	EQ(pk_canon_get_or_add(s, pg, pk_page_hash(pg), &id, &is_new), 0);
	OK(!is_new);
	EQ(id, 5);
	EQ(pk_canon_put(s, 5), 1);
	fill(pg, 7006);
	EQ(pk_canon_get(s, pg, pk_page_hash(pg), &id), 0);
	EQ(id, 6);
	EQ(pk_canon_put(s, 6), 1);
	check_stats(s, N, N);
	expect_copy(s, 599, 7599, 1);
	pk_canon_store_destroy(s);
	errno = 0;
	EQ(fcntl(fd, F_GETFD), -1); /* the store's to close */
	EQ(errno, EBADF);

	fd = open(p, O_RDONLY | O_CLOEXEC);
	OK(fd >= 0);
	EQ(fstat(fd, &sb), 0);
	GE(sb.st_size, 2 * CHUNK_BYTES);
	for (uint64_t i = 0; i < N; i++) {
		EQ(pread(fd, back, PAGE, (off_t)(i * PAGE)), PAGE);
		fill(pg, 7000 + i);
		if (memcmp(back, pg, PAGE) != 0)
			ck_abort_msg("file offset %llu: not copy %llu's bytes",
				     (unsigned long long)(i * PAGE),
				     (unsigned long long)i);
	}
	close(fd);
	EQ(unlink(p), 0);
	free(pg);
	free(back);
}
END_TEST

/*
 * A file with a previous daemon's 1100 copies (three chunks; copy 1 was
 * freed): restore mode.  The page tables name 0, 5 (twice), 1030 and
 * 1099, nothing in the second chunk; 1536 is beyond the file.  After
 * restore_done the named copies have their bytes and references and are
 * found by content; every other id is free (the next adds take 1, 2),
 * its old bytes never found; the unnamed chunk was punched out of the
 * file, and a chunk whose last copy goes is punched by release_freed.
 */
START_TEST(test_canon_file_restore)
{
	enum { N = 1100 };
	struct pk_canon_store *s;
	unsigned char *pg = page_alloc(1);
	char p[4200];
	blkcnt_t before, after;
	uint64_t id;
	bool is_new;
	int fd = canon_file(_i, 1, p, sizeof(p), O_CREAT | O_TRUNC);

	/* The previous daemon. */
	EQ(pk_canon_store_open_file(&s, fd), 0);
	for (uint64_t i = 0; i < N; i++) {
		fill(pg, 9000 + i);
		EQ(pk_canon_get_or_add(s, pg, pk_page_hash(pg), &id, &is_new), 0);
		EQ(id, i);
	}
	EQ(pk_canon_put(s, 1), 0);
	pk_canon_store_destroy(s);

	/* The restarted one. */
	fd = canon_file(_i, 1, p, sizeof(p), 0);
	EQ(pk_canon_store_open_file(&s, fd), 0);
	EQ(pk_canon_restore_ref(s, 0), 0);
	EQ(pk_canon_restore_ref(s, 5), 0);
	EQ(pk_canon_restore_ref(s, 1030), 0);
	EQ(pk_canon_restore_ref(s, 5), 0);
	EQ(pk_canon_restore_ref(s, 1099), 0);
	EQ(pk_canon_restore_ref(s, 3 * PK_CANON_CHUNK_PAGES), -ENOENT);
	EQ(pk_canon_restore_ref(s, UINT32_MAX), -ENOENT);
	before = blocks_of(fd);
	pk_canon_restore_done(s);
	after = blocks_of(fd);
	/* The second chunk, named by nobody, left the file. */
	if (before - after < CHUNK_BYTES / 512)
		ck_abort_msg("restore_done: file blocks %lld -> %lld, want the "
			     "unnamed chunk (%lld blocks) punched",
			     (long long)before, (long long)after,
			     (long long)(CHUNK_BYTES / 512));
	EQ(lseek(fd, CHUNK_BYTES, SEEK_HOLE), CHUNK_BYTES);
	EQ(lseek(fd, CHUNK_BYTES, SEEK_DATA), 2 * CHUNK_BYTES);

	expect_copy(s, 0, 9000, 1);
	expect_copy(s, 5, 9005, 2);
	expect_copy(s, 1030, 10030, 1);
	expect_copy(s, 1099, 10099, 1);
	check_stats(s, 4, 5);
	for (uint64_t i = 0; i < N; i++)
		if (i != 0 && i != 5 && i != 1030 && i != 1099) {
			if (pk_canon_data(s, i) || pk_canon_refs(s, i))
				ck_abort_msg("id %llu: named by nobody, still a "
					     "copy", (unsigned long long)i);
		}
	EQ(pk_canon_ref(s, 2), -ENOENT);
	EQ(pk_canon_put(s, 2), -ENOENT);
	/* Found by content: the restore hashed them again. */
	fill(pg, 9005);
	EQ(pk_canon_get(s, pg, pk_page_hash(pg), &id), 0);
	EQ(id, 5);
	EQ(pk_canon_put(s, 5), 2);
	fill(pg, 10099);
	EQ(pk_canon_find(s, pg, pk_page_hash(pg), &id), 0);
	EQ(id, 1099);
	fill(pg, 9000);
	EQ(pk_canon_get_or_add(s, pg, pk_page_hash(pg), &id, &is_new), 0);
	OK(!is_new);
	EQ(id, 0);
	EQ(pk_canon_put(s, 0), 1);
	/* Bytes still in the file under unnamed ids are not copies. */
	fill(pg, 9002);
	EQ(pk_canon_get(s, pg, pk_page_hash(pg), &id), -ENOENT);
	fill(pg, 9001);
	EQ(pk_canon_get(s, pg, pk_page_hash(pg), &id), -ENOENT);
	fill(pg, 9600);
	EQ(pk_canon_get(s, pg, pk_page_hash(pg), &id), -ENOENT);
	/* Unnamed ids are free, lowest first. */
	fill(pg, 12345);
	EQ(pk_canon_get_or_add(s, pg, pk_page_hash(pg), &id, &is_new), 0);
	OK(is_new);
	EQ(id, 1);
	fill(pg, 12346);
	EQ(pk_canon_get_or_add(s, pg, pk_page_hash(pg), &id, &is_new), 0);
	OK(is_new);
	EQ(id, 2);
	expect_copy(s, 1, 12345, 1);
	check_stats(s, 6, 7);
	EQ(pk_canon_restore_ref(s, 3), -ENOENT); /* restoring is over */

	/* The third chunk's last copies go: release_freed punches it. */
	EQ(pk_canon_put(s, 1030), 0);
	EQ(pk_canon_put(s, 1099), 0);
	before = blocks_of(fd);
	EQ(pk_canon_release_freed(s), PK_CANON_CHUNK_PAGES);
	after = blocks_of(fd);
	if (before - after < CHUNK_BYTES / 512)
		ck_abort_msg("release_freed: file blocks %lld -> %lld, want a "
			     "chunk (%lld blocks) punched", (long long)before,
			     (long long)after, (long long)(CHUNK_BYTES / 512));
	EQ(lseek(fd, 2 * CHUNK_BYTES, SEEK_HOLE), 2 * CHUNK_BYTES);
	expect_copy(s, 5, 9005, 2);
	check_stats(s, 4, 5);
	pk_canon_store_destroy(s);
	EQ(unlink(p), 0);
	free(pg);
}
END_TEST

static Suite *hashing_suite(void)
{
	Suite *s = suite_create("hashing");
	TCase *tc = tcase_create("core");

	/* Unchecked: made once in the parent and removed there after every
	 * test, even when one fails. */
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_hash_is_masked_xxh3);
	tcase_add_test(tc, test_hash_one_byte_apart);
	tcase_add_test(tc, test_zero_pages);
	tcase_add_test(tc, test_index_basics);
	tcase_add_test(tc, test_index_random_model);
	tcase_add_test(tc, test_index_growth);
	tcase_add_test(tc, test_index_reserve);
	tcase_add_test(tc, test_index_sweep);
	tcase_add_test(tc, test_canon_identical_content_shares);
	tcase_add_test(tc, test_canon_collision_never_merged);
	tcase_add_test(tc, test_canon_put_frees_and_reuses);
	tcase_add_test(tc, test_canon_random_model);
	tcase_add_test(tc, test_canon_every_page_verifies);
	/* 0: the scratch dir (ext4 here), 1: /dev/shm (tmpfs). */
	tcase_add_loop_test(tc, test_canon_file_empty, 0, 2);
	tcase_add_loop_test(tc, test_canon_file_restore, 0, 2);
	tcase_add_test(tc, test_scan_memfd_pass);
	tcase_add_test(tc, test_scan_real_file_pass);
	tcase_add_test(tc, test_scan_resume_small_steps);
	tcase_add_test(tc, test_scan_callback_stops_and_errors);
	tcase_add_test(tc, test_scan_caller_extents);
	tcase_add_test(tc, test_scan_file_changes);
	tcase_add_test(tc, test_scan_and_share);
	tcase_add_test(tc, test_rate_exact);
	tcase_add_test(tc, test_rate_long_run);
	tcase_add_test(tc, test_rate_unlimited);
	tcase_add_test(tc, test_rate_change);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(hashing_suite());
	int failed;

	printf("page hash: XXH3-64 (%s copy), %d bits\n", pk_page_hash_impl(),
	       PK_HASH_BITS);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
