/*
 * backend.c - map a shared mapping QEMU makes to its memory backend, and
 * name it for the daemon (see backend.h for the matching rules).
 *
 * Naming: a VM with one managed RAM backend (the usual
 * "-machine memory-backend=ram") is registered under its QEMU name; a VM
 * with several (NUMA nodes, DIMMs) registers each backend as its own VM
 * named NAME-ID, because the protocol carries one RAM fd per
 * registration.  The daemon only accepts [A-Za-z0-9._-], so anything
 * else becomes '_'.
 */
#include "engine/preload/backend.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int path_is(const char *path, size_t len, const char *want)
{
	return want && strlen(want) == len && !strncmp(path, want, len);
}

/* dir/qemu_back_mem.*: the file QEMU makes in a mem-path directory. */
static int in_dir(const char *path, size_t len, const char *dir)
{
	size_t d;

	if (!dir || !dir[0])
		return 0;
	d = strlen(dir);
	while (d > 1 && dir[d - 1] == '/')
		d--;
	return len > d && !strncmp(path, dir, d) && path[d] == '/' &&
	       !strncmp(path + d + 1, "qemu_back_mem.", 14) &&
	       !memchr(path + d + 1, '/', len - d - 1);
}

int pk_backend_match(const struct pk_qemu_cmdline *c,
		     const char *const mem_paths[], const char *link,
		     uint64_t *used)
{
	static const char deleted[] = " (deleted)";
	int memfd = !strncmp(link, PK_MEMFD_LINK, strlen(PK_MEMFD_LINK)) &&
		    (link[strlen(PK_MEMFD_LINK)] == '\0' ||
		     link[strlen(PK_MEMFD_LINK)] == ' ');
	size_t len = strlen(link);

	if (len > strlen(deleted) &&
	    !strcmp(link + len - strlen(deleted), deleted))
		len -= strlen(deleted);
	for (unsigned i = 0; i < c->n_backends && i < 64; i++) {
		const struct pk_qc_backend *b = &c->backends[i];
		const char *mp = mem_paths && mem_paths[i] ? mem_paths[i]
							   : b->mem_path;
		int hit;

		if (*used & (1ULL << i))
			continue;
		if (memfd)
			hit = b->type == PK_QC_BE_MEMFD;
		else
			hit = b->type == PK_QC_BE_FILE &&
			      (path_is(link, len, mp) || in_dir(link, len, mp));
		if (hit) {
			*used |= 1ULL << i;
			return (int)i;
		}
	}
	return -ENOENT;
}

static int name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
}

int pk_backend_sanitize(const char *raw, char *out, size_t out_len)
{
	size_t n = 0;

	if (!out_len)
		return -EINVAL;
	for (; raw[n] && n + 1 < out_len; n++)
		out[n] = name_char(raw[n]) ? raw[n] : '_';
	out[n] = '\0';
	return n ? 0 : -EINVAL;
}

int pk_backend_vm_name(const char *base, const char *id, int several,
		       char *out, size_t out_len)
{
	char b[128], i[128];
	size_t keep;

	if (pk_backend_sanitize(base, b, sizeof(b)) < 0)
		return -EINVAL;
	if (!several)
		return pk_backend_sanitize(b, out, out_len);
	if (pk_backend_sanitize(id, i, sizeof(i)) < 0 ||
	    strlen(i) + 3 > out_len)
		return -EINVAL;
	/* Shorten the base, never the id: the id is what tells them apart. */
	keep = out_len - 2 - strlen(i);
	if (strlen(b) < keep)
		keep = strlen(b);
	snprintf(out, out_len, "%.*s-%s", (int)keep, b, i);
	return 0;
}

const char *pk_backend_refusal(const struct pk_qc_backend *b,
			       unsigned long nlink)
{
	if (!b->ram)
		return "it is not guest RAM (ivshmem or another shared region)";
	if (!b->share)
		return "it is not share=on";
	if (b->type == PK_QC_BE_FILE && nlink > 0 && !b->discard_data)
		return "its mem-path file outlives QEMU and would keep holes "
		       "where pages were evicted (give mem-path a directory, "
		       "use discard-data=on, or use memory-backend-memfd)";
	return NULL;
}
