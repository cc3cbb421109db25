/*
 * page_zero.h - is a page all zeros?
 *
 * Zero pages are the largest part of what page sharing reclaims, and the
 * swapper never writes them: they become zero-state pages served back by
 * UFFDIO_ZEROPAGE.  The check runs at memory speed (~18 GB/s here).
 */
#ifndef PK_PAGE_ZERO_H
#define PK_PAGE_ZERO_H

#include <stddef.h>

/* page must be 8-byte aligned; len a multiple of 64. */
int pk_page_is_zero(const void *page, size_t len);

#endif
