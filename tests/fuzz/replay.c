/*
 * replay.c - the default suite's run of a fuzz target (tests/fuzz/fuzz.h):
 * every file of the target's checked-in corpus, PK_FUZZ_CORPUS (a
 * directory, set by tests/fuzz/meson.build), through the target's
 * LLVMFuzzerTestOneInput, built with the project's compiler (and so
 * under ASan + UBSan in that build).  Each file is its own Check test
 * run in a forked child, so a crash names the file.  A corpus that is
 * missing or empty fails: a replay of nothing proves nothing.
 */
#include "tests/fuzz/fuzz.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef PK_FUZZ_CORPUS
#error "PK_FUZZ_CORPUS: the corpus directory (tests/fuzz/meson.build)"
#endif
#ifndef PK_FUZZ_TARGET
#error "PK_FUZZ_TARGET: the target's name (tests/fuzz/meson.build)"
#endif

#define MAX_FILES 1024

static char *files[MAX_FILES];
static int n_files;

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_corpus(void)
{
	DIR *d = opendir(PK_FUZZ_CORPUS);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)) && n_files < MAX_FILES)
		if (de->d_name[0] != '.')
			files[n_files++] = strdup(de->d_name);
	closedir(d);
	qsort(files, (size_t)n_files, sizeof(files[0]), by_name);
}

START_TEST(corpus_file)
{
	char path[4096];
	struct stat st;
	uint8_t *buf;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", PK_FUZZ_CORPUS, files[_i]);
	f = fopen(path, "rb");
	ck_assert_msg(f, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(fstat(fileno(f), &st), 0);
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	ck_assert(buf);
	ck_assert_msg(fread(buf, 1, (size_t)st.st_size, f) == (size_t)st.st_size,
		      "%s: short read", path);
	fclose(f);
	/* A heap copy of exactly the file's size, as libFuzzer passes it;
	 * the file is named first, so a crash's log says which. */
	printf("replay %s (%lld bytes)\n", path, (long long)st.st_size);
	fflush(stdout);
	LLVMFuzzerTestOneInput(buf, (size_t)st.st_size);
	free(buf);
}
END_TEST

START_TEST(corpus_present)
{
	ck_assert_msg(n_files > 0, "no corpus files in %s (target %s)",
		      PK_FUZZ_CORPUS, PK_FUZZ_TARGET);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fuzz_corpus_" PK_FUZZ_TARGET);
	TCase *tc = tcase_create("replay");
	SRunner *sr;
	int failed;

	list_corpus();
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, corpus_present);
	tcase_add_loop_test(tc, corpus_file, 0, n_files);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	for (int i = 0; i < n_files; i++)
		free(files[i]);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
