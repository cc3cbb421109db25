/*
 * size_parse.c - the one size parser the daemon, CLI, lab guest and
 * benchmarks share, so "1G" means the same thing everywhere.
 */
#include "tools/common/size_parse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char *pk_size_parse(const char *s, uint64_t *out)
{
	unsigned shift = 0;
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return "not a number";
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return "too large";
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0)
		end += strlen(end);
	if (*end)
		return "bad size suffix (use K, M, G or T)";
	if (shift && v > (UINT64_MAX >> shift))
		return "too large";
	*out = (uint64_t)v << shift;
	return NULL;
}
