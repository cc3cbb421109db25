/*
 * size_parse.h - parse a size argument such as "256M" for every tool.
 *
 * Accepts a decimal number with an optional K, M, G or T suffix (powers of
 * 1024, either case), optionally followed by "B" or "iB".
 */
#ifndef PK_SIZE_PARSE_H
#define PK_SIZE_PARSE_H

#include <stdint.h>

/* NULL on success, else a short reason ("bad size suffix ..."). */
const char *pk_size_parse(const char *s, uint64_t *out);

#endif
