/*
 * test_state_file.c - unit tests for the mapped record files that outlive
 * the daemon (swapper/state_file.c).
 *
 * What: the contract of swapper/state_file.h.  A record made with
 * pk_sfile_create() opens again with its kind, metadata and payload size,
 * and stores into its payload mapping are in the file (read back with
 * pread, after close, and after the process that made them was
 * SIGKILLed); a 256 MiB payload costs no blocks until written; metadata
 * of 0 (also NULL, 0) to PK_SFILE_META_MAX bytes round-trips, more is
 * refused.  A missing record is -ENOENT; one of another kind, one with
 * any header byte flipped (every byte of the first 4 KiB tried: a flip
 * is either refused or changes nothing open returns) and one shorter
 * than its header says are -EBADMSG, and are left as they were; a
 * leftover NAME.new (a creation cut short) is never opened as NAME, and
 * pk_sfile_create() replaces it; pk_sfile_close() keeps the file,
 * pk_sfile_remove() deletes it.
 *
 * How: every case runs twice, in a mkdtemp directory under /dev/shm
 * (tmpfs: where the daemon's run directory lives) and one under /tmp
 * (ext4 on the CI machines).  Both directories are made once in the
 * parent (an unchecked fixture) and emptied and removed there after the
 * cases, even when one fails.  Real files, no mocks.
 *
 * Why: these records are what a restarted daemon trusts to find its
 * guests' swapped and merged pages; a record that opens with the wrong
 * bytes would hand a guest someone else's page.
 */
#include "swapper/state_file.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#define KIND 0x51u
#define OTHER_KIND 0x52u

static const char *const bases[2] = { "/dev/shm", "/tmp" };
static char dirs[2][4096];

static void setup(void)
{
	for (int i = 0; i < 2; i++) {
		snprintf(dirs[i], sizeof(dirs[i]), "%s/pk-sfile-XXXXXX", bases[i]);
		if (!mkdtemp(dirs[i])) {
			fprintf(stderr, "mkdtemp %s: %s\n", dirs[i], strerror(errno));
			abort();
		}
	}
}

/* Whatever a failed case left behind goes too. */
static void teardown(void)
{
	for (int i = 0; i < 2; i++) {
		DIR *d = opendir(dirs[i]);
		struct dirent *de;

		if (!d)
			continue;
		while ((de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				(void)unlinkat(dirfd(d), de->d_name, 0);
		closedir(d);
		rmdir(dirs[i]);
	}
}

/* The directory of loop iteration i (0: tmpfs, 1: /tmp). */
static int open_dir(int i)
{
	struct statfs sfs;
	int fd = open(dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstatfs(fd, &sfs), 0);
	fprintf(stderr, "state files in %s (%s)\n", dirs[i],
		sfs.f_type == 0x01021994 ? "tmpfs"
		: sfs.f_type == 0xEF53	  ? "ext4"
					  : "other fs");
	return fd;
}

static int exists(int dfd, const char *name)
{
	return faccessat(dfd, name, F_OK, 0) == 0;
}

static off_t size_of(int dfd, const char *name)
{
	struct stat st;

	ck_assert_int_eq(fstatat(dfd, name, &st, 0), 0);
	return st.st_size;
}

/* Metadata of len bytes made from seed. */
static void make_meta(unsigned char *m, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		m[i] = (unsigned char)(seed * 31 + i * 7 + (i >> 8));
}

/* The payload word at i for seed: never 0. */
static uint64_t word(uint64_t i, uint64_t seed)
{
	return (i + 1) * 0x9e3779b97f4a7c15ULL ^ seed;
}

static void pread_all(int dfd, const char *name, void *buf, size_t len,
		      off_t off)
{
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

static void flip_byte(int dfd, const char *name, off_t off)
{
	int fd = openat(dfd, name, O_RDWR | O_CLOEXEC);
	unsigned char b;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &b, 1, off), 1);
	b ^= 0x10;
	ck_assert_int_eq(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

/* Open must give exactly this record. */
static struct pk_sfile *open_expect(int dfd, const char *name,
				    const void *meta, size_t meta_len,
				    uint64_t payload_bytes)
{
	struct pk_sfile *f;
	const void *m;
	size_t len;

	ck_assert_int_eq(pk_sfile_open(&f, dfd, name, KIND), 0);
	ck_assert_ptr_nonnull(f);
	m = pk_sfile_meta(f, &len);
	ck_assert_uint_eq(len, meta_len);
	if (meta_len)
		ck_assert_mem_eq(m, meta, meta_len);
	ck_assert_uint_eq(pk_sfile_payload_bytes(f), payload_bytes);
	return f;
}

/* A payload that is not a whole number of pages: 3 pages and 3 words. */
#define PAYLOAD (3 * 4096 + 24)
#define NWORDS (PAYLOAD / 8)

START_TEST(test_create_open_roundtrip)
{
	int dfd = open_dir(_i);
	unsigned char meta[200], back[4096];
	struct pk_sfile *f;
	uint64_t *p;
	const void *m;
	size_t len;

	make_meta(meta, sizeof(meta), 1);
	ck_assert_int_eq(pk_sfile_create(&f, dfd, "vm-a", KIND, meta,
					 sizeof(meta), PAYLOAD), 0);
	ck_assert_ptr_nonnull(f);
	m = pk_sfile_meta(f, &len);
	ck_assert_uint_eq(len, sizeof(meta));
	ck_assert_mem_eq(m, meta, sizeof(meta));
	ck_assert_uint_eq(pk_sfile_payload_bytes(f), PAYLOAD);
	p = pk_sfile_payload(f);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq((uintptr_t)p % 8, 0);
	for (unsigned i = 0; i < NWORDS; i++) /* zeroed */
		ck_assert_uint_eq(p[i], 0);
	ck_assert(!exists(dfd, "vm-a.new"));
	ck_assert_int_ge(size_of(dfd, "vm-a"), PK_SFILE_PAYLOAD_OFFSET + PAYLOAD);

	/* Stores into the mapping are in the file at once: no close, no
	 * msync (the page cache outlives the process). */
	for (unsigned i = 0; i < NWORDS; i++)
		p[i] = word(i, 1);
	pread_all(dfd, "vm-a", back, sizeof(back), PK_SFILE_PAYLOAD_OFFSET);
	ck_assert_mem_eq(back, p, sizeof(back));
	pread_all(dfd, "vm-a", back, 24, PK_SFILE_PAYLOAD_OFFSET + 3 * 4096);
	ck_assert_mem_eq(back, p + 3 * 512, 24);
	pk_sfile_close(f);
	pk_sfile_close(NULL);
	ck_assert(exists(dfd, "vm-a"));

	/* Through the file: a new mapping sees them, and takes new ones. */
	f = open_expect(dfd, "vm-a", meta, sizeof(meta), PAYLOAD);
	p = pk_sfile_payload(f);
	for (unsigned i = 0; i < NWORDS; i++)
		ck_assert_uint_eq(p[i], word(i, 1));
	p[NWORDS - 1] = 77;
	p[0] = 78;
	pk_sfile_close(f);
	f = open_expect(dfd, "vm-a", meta, sizeof(meta), PAYLOAD);
	p = pk_sfile_payload(f);
	ck_assert_uint_eq(p[0], 78);
	ck_assert_uint_eq(p[NWORDS - 1], 77);
	ck_assert_uint_eq(p[1], word(1, 1));
	pk_sfile_remove(f);
	close(dfd);
}
END_TEST

/* Metadata of 0 and of PK_SFILE_META_MAX bytes; more is refused. */
START_TEST(test_meta_sizes)
{
	int dfd = open_dir(_i);
	static unsigned char meta[PK_SFILE_META_MAX + 1];
	struct pk_sfile *f = (void *)1;

	make_meta(meta, sizeof(meta), 2);
	ck_assert_int_eq(pk_sfile_create(&f, dfd, "max", KIND, meta,
					 PK_SFILE_META_MAX, 8), 0);
	pk_sfile_close(f);
	f = open_expect(dfd, "max", meta, PK_SFILE_META_MAX, 8);
	pk_sfile_remove(f);

	ck_assert_int_eq(pk_sfile_create(&f, dfd, "none", KIND, meta, 0, 4096),
			 0);
	pk_sfile_close(f);
	f = open_expect(dfd, "none", NULL, 0, 4096);
	pk_sfile_remove(f);

	f = (void *)1;
	ck_assert_int_lt(pk_sfile_create(&f, dfd, "over", KIND, meta,
					 PK_SFILE_META_MAX + 1, 8), 0);
	ck_assert_ptr_null(f);
	ck_assert(!exists(dfd, "over"));
	ck_assert(!exists(dfd, "over.new"));
	close(dfd);
}
END_TEST

/* No metadata at all: (NULL, 0), the usual C spelling of "nothing". */
START_TEST(test_meta_null_empty)
{
	int dfd = open_dir(_i);
	struct pk_sfile *f;

	ck_assert_int_eq(pk_sfile_create(&f, dfd, "null", KIND, NULL, 0, 64), 0);
	pk_sfile_close(f);
	f = open_expect(dfd, "null", NULL, 0, 64);
	pk_sfile_remove(f);
	close(dfd);
}
END_TEST

/* An idle 1 TiB guest must not cost 2 GiB of table up front. */
START_TEST(test_payload_sparse)
{
	int dfd = open_dir(_i);
	const uint64_t bytes = 256ull << 20;
	struct pk_sfile *f;
	struct stat st;
	uint64_t *p;

	ck_assert_int_eq(pk_sfile_create(&f, dfd, "big", KIND, "m", 1, bytes), 0);
	p = pk_sfile_payload(f);
	p[bytes / 8 - 1] = 5; /* the last word is there */
	p[12345] = 6;
	ck_assert_int_eq(fstatat(dfd, "big", &st, 0), 0);
	ck_assert_int_ge(st.st_size, (off_t)(PK_SFILE_PAYLOAD_OFFSET + bytes));
	ck_assert_msg((uint64_t)st.st_blocks * 512 <= 1u << 20,
		      "a 256 MiB payload with 2 words written takes %llu KiB",
		      (unsigned long long)st.st_blocks / 2);
	pk_sfile_close(f);
	f = open_expect(dfd, "big", "m", 1, bytes);
	p = pk_sfile_payload(f);
	ck_assert_uint_eq(p[bytes / 8 - 1], 5);
	ck_assert_uint_eq(p[12345], 6);
	ck_assert_uint_eq(p[12346], 0);
	pk_sfile_remove(f);
	close(dfd);
}
END_TEST

/* A daemon killed mid-run leaves every store it made in the file. */
START_TEST(test_stores_survive_sigkill)
{
	int dfd = open_dir(_i);
	struct pk_sfile *f;
	uint64_t *p;
	pid_t pid;
	int status;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (pk_sfile_create(&f, dfd, "killed", KIND, "k", 1, PAYLOAD))
			_exit(3);
		p = pk_sfile_payload(f);
		for (unsigned i = 0; i < NWORDS; i++)
			p[i] = word(i, 9);
		raise(SIGKILL);
		_exit(4);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		      "the child did not die of SIGKILL (status 0x%x)", status);
	f = open_expect(dfd, "killed", "k", 1, PAYLOAD);
	p = pk_sfile_payload(f);
	for (unsigned i = 0; i < NWORDS; i++)
		ck_assert_uint_eq(p[i], word(i, 9));
	pk_sfile_remove(f);
	close(dfd);
}
END_TEST

START_TEST(test_open_missing_and_other_kind)
{
	int dfd = open_dir(_i);
	struct pk_sfile *f = (void *)1;
	unsigned char meta[40];

	ck_assert_int_eq(pk_sfile_open(&f, dfd, "nothing", KIND), -ENOENT);
	ck_assert_ptr_null(f);

	make_meta(meta, sizeof(meta), 3);
	ck_assert_int_eq(pk_sfile_create(&f, dfd, "rec", KIND, meta,
					 sizeof(meta), 64), 0);
	((uint64_t *)pk_sfile_payload(f))[7] = 42;
	pk_sfile_close(f);
	f = (void *)1;
	ck_assert_int_eq(pk_sfile_open(&f, dfd, "rec", OTHER_KIND), -EBADMSG);
	ck_assert_ptr_null(f);
	ck_assert_int_eq(pk_sfile_open(&f, dfd, "rec", 0), -EBADMSG);
	/* Refusing it changed nothing: it opens as its own kind. */
	f = open_expect(dfd, "rec", meta, sizeof(meta), 64);
	ck_assert_uint_eq(((uint64_t *)pk_sfile_payload(f))[7], 42);
	pk_sfile_remove(f);

	/* Not a record at all: an empty file, a file of text. */
	int fd = openat(dfd, "junk", O_RDWR | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pk_sfile_open(&f, dfd, "junk", KIND), -EBADMSG);
	char text[8192];
	memset(text, 'x', sizeof(text));
	ck_assert_int_eq(write(fd, text, sizeof(text)), (ssize_t)sizeof(text));
	close(fd);
	ck_assert_int_eq(pk_sfile_open(&f, dfd, "junk", KIND), -EBADMSG);
	ck_assert_ptr_null(f);
	ck_assert_int_eq(unlinkat(dfd, "junk", 0), 0);
	close(dfd);
}
END_TEST

/*
 * Every byte of the header page flipped in turn: open either refuses the
 * file (-EBADMSG) or returns exactly the record that was written.  The
 * bytes the header must cover (magic, version, kind, payload size, the
 * metadata: at least 24 + meta bytes) must all be refused.
 */
START_TEST(test_header_flip_refused)
{
	int dfd = open_dir(_i);
	unsigned char meta[300];
	struct pk_sfile *f;
	unsigned refused = 0, accepted = 0;
	int first_accepted = -1;

	make_meta(meta, sizeof(meta), 4);
	ck_assert_int_eq(pk_sfile_create(&f, dfd, "flip", KIND, meta,
					 sizeof(meta), 4096), 0);
	((uint64_t *)pk_sfile_payload(f))[0] = 99;
	pk_sfile_close(f);

	for (int off = 0; off < (int)PK_SFILE_PAYLOAD_OFFSET; off++) {
		int r;

		flip_byte(dfd, "flip", off);
		f = (void *)1;
		r = pk_sfile_open(&f, dfd, "flip", KIND);
		if (r == 0) {
			const void *m;
			size_t len;

			accepted++;
			if (first_accepted < 0)
				first_accepted = off;
			m = pk_sfile_meta(f, &len);
			ck_assert_msg(len == sizeof(meta) &&
					      memcmp(m, meta, len) == 0 &&
					      pk_sfile_payload_bytes(f) == 4096,
				      "header byte %d flipped: opened with other "
				      "metadata or payload size", off);
			pk_sfile_close(f);
		} else {
			ck_assert_msg(r == -EBADMSG,
				      "header byte %d flipped: open returned %d",
				      off, r);
			ck_assert_ptr_null(f);
			refused++;
		}
		flip_byte(dfd, "flip", off); /* back */
	}
	fprintf(stderr, "header flips: %u refused, %u harmless (first at %d)\n",
		refused, accepted, first_accepted);
	ck_assert_uint_ge(refused, 24 + sizeof(meta));
	f = open_expect(dfd, "flip", meta, sizeof(meta), 4096);
	ck_assert_uint_eq(((uint64_t *)pk_sfile_payload(f))[0], 99);
	pk_sfile_remove(f);
	close(dfd);
}
END_TEST

/* Shorter than its header says (a torn extension, a copied stub). */
START_TEST(test_truncated_refused)
{
	int dfd = open_dir(_i);
	struct pk_sfile *f;
	const off_t full = PK_SFILE_PAYLOAD_OFFSET + PAYLOAD;
	const off_t cuts[] = { full - 1, PK_SFILE_PAYLOAD_OFFSET + 4096,
			       PK_SFILE_PAYLOAD_OFFSET, 100, 20, 0 };

	ck_assert_int_eq(pk_sfile_create(&f, dfd, "cut", KIND, "meta", 4,
					 PAYLOAD), 0);
	pk_sfile_close(f);
	/* Exactly as long as the header says is enough. */
	int fd = openat(dfd, "cut", O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, full), 0);
	f = open_expect(dfd, "cut", "meta", 4, PAYLOAD);
	pk_sfile_close(f);
	for (unsigned k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
		ck_assert_int_eq(ftruncate(fd, cuts[k]), 0);
		f = (void *)1;
		ck_assert_msg(pk_sfile_open(&f, dfd, "cut", KIND) == -EBADMSG,
			      "a record cut to %lld bytes (of %lld) was not "
			      "refused", (long long)cuts[k], (long long)full);
		ck_assert_ptr_null(f);
	}
	close(fd);
	ck_assert_int_eq(unlinkat(dfd, "cut", 0), 0);
	close(dfd);
}
END_TEST

/*
 * A creation cut short leaves NAME.new: it is never opened as NAME
 * (whether NAME exists or not), and the next create replaces it.
 */
START_TEST(test_torn_creation)
{
	int dfd = open_dir(_i);
	struct pk_sfile *f;
	uint64_t *p;

	/* A complete record, but only under the temporary name. */
	ck_assert_int_eq(pk_sfile_create(&f, dfd, "staged", KIND, "new", 3, 64),
			 0);
	((uint64_t *)pk_sfile_payload(f))[0] = 1111;
	pk_sfile_close(f);
	ck_assert_int_eq(renameat(dfd, "staged", dfd, "vm.new"), 0);
	f = (void *)1;
	ck_assert_int_eq(pk_sfile_open(&f, dfd, "vm", KIND), -ENOENT);
	ck_assert_ptr_null(f);

	/* With NAME there too, NAME is what opens. */
	ck_assert_int_eq(pk_sfile_create(&f, dfd, "old", KIND, "old", 3, 64), 0);
	((uint64_t *)pk_sfile_payload(f))[0] = 2222;
	pk_sfile_close(f);
	ck_assert_int_eq(renameat(dfd, "old", dfd, "vm"), 0);
	f = open_expect(dfd, "vm", "old", 3, 64);
	ck_assert_uint_eq(((uint64_t *)pk_sfile_payload(f))[0], 2222);
	pk_sfile_close(f);
	ck_assert(exists(dfd, "vm.new"));

	/* Create replaces both the leftover and the old record. */
	ck_assert_int_eq(pk_sfile_create(&f, dfd, "vm", KIND, "fresh", 5, 128),
			 0);
	p = pk_sfile_payload(f);
	ck_assert_uint_eq(p[0], 0);
	p[15] = 3333;
	pk_sfile_close(f);
	ck_assert(!exists(dfd, "vm.new"));
	f = open_expect(dfd, "vm", "fresh", 5, 128);
	p = pk_sfile_payload(f);
	ck_assert_uint_eq(p[0], 0);
	ck_assert_uint_eq(p[15], 3333);
	pk_sfile_close(f);

	/* A leftover that is not even a record (torn header) goes too. */
	int fd = openat(dfd, "vm2.new", O_RDWR | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "PKST", 4), 4);
	close(fd);
	ck_assert_int_eq(pk_sfile_open(&f, dfd, "vm2", KIND), -ENOENT);
	ck_assert_int_eq(pk_sfile_create(&f, dfd, "vm2", KIND, "x", 1, 8), 0);
	pk_sfile_close(f);
	ck_assert(!exists(dfd, "vm2.new"));
	f = open_expect(dfd, "vm2", "x", 1, 8);
	pk_sfile_remove(f);
	f = open_expect(dfd, "vm", "fresh", 5, 128);
	pk_sfile_remove(f);
	close(dfd);
}
END_TEST

START_TEST(test_close_keeps_remove_deletes)
{
	int dfd = open_dir(_i);
	struct pk_sfile *f, *g;

	ck_assert_int_eq(pk_sfile_create(&f, dfd, "keep", KIND, "a", 1, 64), 0);
	((uint64_t *)pk_sfile_payload(f))[3] = 12;
	pk_sfile_close(f);
	ck_assert(exists(dfd, "keep"));
	f = open_expect(dfd, "keep", "a", 1, 64);
	ck_assert_uint_eq(((uint64_t *)pk_sfile_payload(f))[3], 12);

	/* Two mappings of one record share its payload. */
	g = open_expect(dfd, "keep", "a", 1, 64);
	((uint64_t *)pk_sfile_payload(g))[4] = 13;
	ck_assert_uint_eq(((uint64_t *)pk_sfile_payload(f))[4], 13);
	pk_sfile_close(g);

	pk_sfile_remove(f);
	pk_sfile_remove(NULL);
	ck_assert(!exists(dfd, "keep"));
	ck_assert(!exists(dfd, "keep.new"));
	f = (void *)1;
	ck_assert_int_eq(pk_sfile_open(&f, dfd, "keep", KIND), -ENOENT);
	ck_assert_ptr_null(f);
	close(dfd);
}
END_TEST

static Suite *sfile_suite(void)
{
	Suite *s = suite_create("state_file");
	TCase *tc = tcase_create("core");

	/* Unchecked: made once in the parent, removed there after the cases
	 * even when one fails. */
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	/* 0: /dev/shm (tmpfs), 1: /tmp. */
	tcase_add_loop_test(tc, test_create_open_roundtrip, 0, 2);
	tcase_add_loop_test(tc, test_meta_sizes, 0, 2);
	tcase_add_loop_test(tc, test_meta_null_empty, 0, 2);
	tcase_add_loop_test(tc, test_payload_sparse, 0, 2);
	tcase_add_loop_test(tc, test_stores_survive_sigkill, 0, 2);
	tcase_add_loop_test(tc, test_open_missing_and_other_kind, 0, 2);
	tcase_add_loop_test(tc, test_header_flip_refused, 0, 2);
	tcase_add_loop_test(tc, test_truncated_refused, 0, 2);
	tcase_add_loop_test(tc, test_torn_creation, 0, 2);
	tcase_add_loop_test(tc, test_close_keeps_remove_deletes, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sfile_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
