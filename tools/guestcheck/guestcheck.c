/*
 * guestcheck.c - pk-guestcheck, the memory checker that runs inside a
 * real QEMU test guest.
 *
 * What: a guest process whose only job is to notice when the memory it
 * wrote is not the memory it reads back.  pagekeeper moves guest pages
 * behind the guest's back (shares them, swaps them to disk, lets the
 * balloon punch them), so the end-to-end tests need a witness inside the
 * guest that every page still holds its last write.  The lab guest
 * (pk-guestsim) is that witness for host processes; this is the one for
 * real kernels.
 *
 * How:
 *   1. map --mib MiB of anonymous memory and fill every 4 KiB page with
 *      the pattern of (page index, generation 0);
 *   2. each round, rewrite a random --rewrite fraction of the pages: the
 *      page's generation counter goes up by one and the page gets the
 *      pattern of its new generation;
 *   3. then verify every word of every page against the pattern of
 *      (page, generation); a page with any wrong word is one error, and
 *      the first few errors are printed with page, word, expected and
 *      actual values, and a bad page is rewritten (next generation), so
 *      one loss counts once and a later loss of the same page again;
 *   4. print one line per round and go on (--rounds 0: for ever).
 *
 * The pattern of word w of page p at generation g is
 *	mix64(seed, p, g) + w * golden
 * so a page read back at a stale generation, another page's content, a
 * zero page or a page shifted within itself all mismatch.  The generation
 * counters live in ordinary guest memory too; the checker trusts them.
 *
 * Output (stdout, line buffered: in the test guest it is the serial
 * console), every number with its unit:
 *   pkcheck: start mib 64 pages 16384 rewrite 0.100 seed 1 rounds 0
 *   pkcheck: filled mib 64 rate 512.0 MiB/s
 *   pkcheck: round 3 verified_mib 64 errors 0 rewritten_pages 1638
 *            rate 410.2 MiB/s mem_total_mib 231 mem_free_mib 120
 *            (one line)
 *   pkcheck: error round 4 page 77 word 12 expected 0x... actual 0x...
 *            generation 2 bad_words 1 (one line)
 *   pkcheck: done rounds 10 errors 0
 * "errors" is cumulative: the number of (round, page) pairs that failed.
 * Exit status: 0 no error, 1 errors, 2 usage, 3 no memory.
 *
 * Why so plain: it must be trusted more than the code it checks.  A test
 * proves that it can fail: --inject-error-after-round N (not in --help)
 * flips one bit of one page right before round N+1 verifies, behind the
 * checker's back, exactly like a lost write would look.
 *
 * --release-mib N (default 0) first fills N MiB of other anonymous memory
 * with unique non-zero page patterns and gives it back to the guest
 * kernel (munmap) before the checker starts: the guest then has N MiB of
 * free pages that still hold data in host RAM, which the host can evict
 * and the balloon can take (the managed balloon test needs such pages).
 * It prints
 *   pkcheck: released mib 176
 * and changes nothing else.
 *
 * It is linked statically so the test guest's initramfs needs no libc.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE_SIZE 4096UL
#define PAGE_WORDS (PAGE_SIZE / sizeof(uint64_t))
#define GOLDEN 0x9e3779b97f4a7c15ULL
#define MAX_ERROR_DETAILS 8

struct opts {
	unsigned long mib;
	double rewrite;
	unsigned long rounds;      /* 0: for ever */
	uint64_t seed;
	unsigned long interval_ms;
	unsigned long inject_after; /* 0: never */
	unsigned long release_mib; /* filled, then unmapped; 0: none */
};

struct checker {
	const struct opts *o;
	uint64_t *ram;
	uint32_t *gen;		   /* generation of each page */
	size_t pages;
	uint64_t rng;		   /* xorshift64* state */
	unsigned long long errors; /* cumulative (round, page) failures */
	unsigned details;	   /* error lines printed so far */
};

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static uint64_t page_base(const struct checker *c, size_t page, uint32_t gen)
{
	return mix64(mix64(c->o->seed + GOLDEN) ^ ((uint64_t)page << 32 | gen));
}

static uint64_t rng_next(struct checker *c)
{
	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	return c->rng * 0x2545f4914f6cdd1dULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void write_page(struct checker *c, size_t page)
{
	uint64_t *w = c->ram + page * PAGE_WORDS;
	uint64_t base = page_base(c, page, c->gen[page]);

	for (size_t i = 0; i < PAGE_WORDS; i++)
		w[i] = base + i * GOLDEN;
}

/* Checks every word of one page; reports and counts a failure. */
static void verify_page(struct checker *c, size_t page, unsigned long round)
{
	const volatile uint64_t *w = c->ram + page * PAGE_WORDS;
	uint64_t base = page_base(c, page, c->gen[page]);
	size_t bad = 0, first = 0;
	uint64_t first_val = 0;

	for (size_t i = 0; i < PAGE_WORDS; i++) {
		uint64_t v = w[i];
		if (v != base + i * GOLDEN) {
			if (!bad++) {
				first = i;
				first_val = v;
			}
		}
	}
	if (!bad)
		return;
	c->errors++;
	if (c->details < MAX_ERROR_DETAILS) {
		printf("pkcheck: error round %lu page %zu word %zu expected "
		       "0x%016" PRIx64 " actual 0x%016" PRIx64
		       " generation %" PRIu32 " bad_words %zu\n",
		       round, page, first, (uint64_t)(base + first * GOLDEN),
		       first_val, c->gen[page], bad);
		if (++c->details == MAX_ERROR_DETAILS)
			printf("pkcheck: more errors are counted, not shown\n");
	}
	/* Heal it, so that one loss counts once and a new loss again. */
	c->gen[page]++;
	write_page(c, page);
}

/* MemTotal and MemFree in MiB (-1 when /proc is not there). */
static void meminfo_mib(long *total, long *free_)
{
	char line[128];
	FILE *f = fopen("/proc/meminfo", "r");
	long kib;

	*total = *free_ = -1;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "MemTotal: %ld kB", &kib) == 1)
			*total = kib / 1024;
		else if (sscanf(line, "MemFree: %ld kB", &kib) == 1)
			*free_ = kib / 1024;
	}
	fclose(f);
}

/* The hidden test aid: one flipped bit the checker was not told about. */
static void inject_error(struct checker *c)
{
	size_t page = rng_next(c) % c->pages;
	size_t word = rng_next(c) % PAGE_WORDS;

	c->ram[page * PAGE_WORDS + word] ^= 1ULL << (rng_next(c) % 64);
	printf("pkcheck: injected corruption page %zu word %zu\n", page, word);
}

static void run_round(struct checker *c, unsigned long round)
{
	const struct opts *o = c->o;
	size_t n_rewrite = (size_t)(o->rewrite * c->pages + 0.5);
	long total, free_;
	double t0, dt;

	for (size_t i = 0; i < n_rewrite; i++) {
		size_t page = rng_next(c) % c->pages;
		c->gen[page]++;
		write_page(c, page);
	}
	if (o->inject_after && round == o->inject_after + 1)
		inject_error(c);
	t0 = now_s();
	for (size_t p = 0; p < c->pages; p++)
		verify_page(c, p, round);
	dt = now_s() - t0;
	meminfo_mib(&total, &free_);
	printf("pkcheck: round %lu verified_mib %lu errors %llu rewritten_pages "
	       "%zu rate %.1f MiB/s mem_total_mib %ld mem_free_mib %ld\n",
	       round, o->mib, c->errors, n_rewrite,
	       dt > 0 ? o->mib / dt : 0.0, total, free_);
	fflush(stdout);
}

/*
 * --release-mib: fill mib MiB with patterns no checked page has (page
 * indexes after the checker's own) and unmap it again.
 */
static int release_memory(struct checker *c, unsigned long mib)
{
	size_t pages = mib * (1024 * 1024 / PAGE_SIZE);
	uint64_t *m = mmap(NULL, pages * PAGE_SIZE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		return -1;
	for (size_t p = 0; p < pages; p++) {
		uint64_t base = page_base(c, c->pages + p, 0);
		for (size_t i = 0; i < PAGE_WORDS; i++)
			m[p * PAGE_WORDS + i] = base + i * GOLDEN;
	}
	munmap(m, pages * PAGE_SIZE);
	printf("pkcheck: released mib %lu\n", mib);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pk-guestcheck [--mib N] [--rewrite FRACTION] [--rounds N]\n"
		"                     [--seed N] [--interval-ms N]\n"
		"  --mib N            memory to check, MiB (default 64)\n"
		"  --rewrite F        fraction of pages rewritten each round, 0..1\n"
		"                     (default 0.1)\n"
		"  --rounds N         verification rounds, 0 = for ever (default 0)\n"
		"  --seed N           pattern and page choice seed (default 1)\n"
		"  --interval-ms N    pause between rounds (default 0)\n"
		"  --release-mib N    first fill N MiB more and free it again, so\n"
		"                     the guest has free pages holding data\n"
		"                     (default 0)\n");
}

static int parse_ulong(const char *s, unsigned long *v)
{
	char *end;

	errno = 0;
	*v = strtoul(s, &end, 0);
	return errno || end == s || *end || *s == '-' ? -1 : 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {
		{ "mib", required_argument, NULL, 'm' },
		{ "rewrite", required_argument, NULL, 'r' },
		{ "rounds", required_argument, NULL, 'n' },
		{ "seed", required_argument, NULL, 's' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "inject-error-after-round", required_argument, NULL, 'X' },
		{ "release-mib", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long seed;
	char *end;
	int c;

	*o = (struct opts){ .mib = 64, .rewrite = 0.1, .seed = 1 };
	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		int bad = 0;
		switch (c) {
		case 'm': bad = parse_ulong(optarg, &o->mib) || !o->mib; break;
		case 'n': bad = parse_ulong(optarg, &o->rounds); break;
		case 'i': bad = parse_ulong(optarg, &o->interval_ms); break;
		case 'X': bad = parse_ulong(optarg, &o->inject_after) ||
				!o->inject_after; break;
		case 'R': bad = parse_ulong(optarg, &o->release_mib); break;
		case 's':
			bad = parse_ulong(optarg, &seed);
			o->seed = seed;
			break;
		case 'r':
			o->rewrite = strtod(optarg, &end);
			bad = end == optarg || *end || !(o->rewrite >= 0) ||
			      o->rewrite > 1;
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
		if (bad) {
			const struct option *l = longs;
			while (l->val != c)
				l++;
			fprintf(stderr, "pk-guestcheck: bad value '%s' for --%s\n",
				optarg, l->name);
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pk-guestcheck: unexpected argument '%s'\n",
			argv[optind]);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct checker c = { .o = &o };
	double t0, dt;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (parse_opts(argc, argv, &o) < 0)
		return 2;
	c.pages = o.mib * (1024 * 1024 / PAGE_SIZE);
	c.rng = mix64(o.seed ^ 0x5eed) | 1;
	c.ram = mmap(NULL, c.pages * PAGE_SIZE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	c.gen = calloc(c.pages, sizeof(*c.gen));
	if (c.ram == MAP_FAILED || !c.gen) {
		printf("pkcheck: cannot allocate %lu MiB: %s\n", o.mib,
		       strerror(errno));
		return 3;
	}
	printf("pkcheck: start mib %lu pages %zu rewrite %.3f seed %" PRIu64
	       " rounds %lu\n", o.mib, c.pages, o.rewrite, o.seed, o.rounds);
	if (o.release_mib && release_memory(&c, o.release_mib) < 0) {
		printf("pkcheck: cannot allocate %lu MiB to release: %s\n",
		       o.release_mib, strerror(errno));
		return 3;
	}
	t0 = now_s();
	for (size_t p = 0; p < c.pages; p++)
		write_page(&c, p);
	dt = now_s() - t0;
	printf("pkcheck: filled mib %lu rate %.1f MiB/s\n", o.mib,
	       dt > 0 ? o.mib / dt : 0.0);
	for (unsigned long r = 1; !o.rounds || r <= o.rounds; r++) {
		run_round(&c, r);
		if (o.interval_ms)
			usleep(o.interval_ms * 1000);
	}
	printf("pkcheck: done rounds %lu errors %llu\n", o.rounds, c.errors);
	return c.errors ? 1 : 0;
}
