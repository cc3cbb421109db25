/*
 * page_zero.c - zero-page detection.
 *
 * OR 64 bytes at a time and test once per cache line: the compiler
 * vectorises the inner loop, and most non-zero pages are rejected within
 * the first line.
 */
#include "hashing/page_zero.h"

#include <stdint.h>

int pk_page_is_zero(const void *page, size_t len)
{
	const uint64_t *w = page;

	for (size_t i = 0; i < len / 8; i += 8) {
		uint64_t acc = w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] |
			       w[i + 5] | w[i + 6] | w[i + 7];
		if (acc)
			return 0;
	}
	return 1;
}
