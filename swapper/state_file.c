/*
 * state_file.c - mapped, self-describing record files (see state_file.h).
 *
 * How: creation writes the header with pwrite into NAME.new, sizes the
 * file with ftruncate (the payload reads as zeros: a hole), renames it to
 * NAME and maps the payload MAP_SHARED.
 */
#include "swapper/state_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define SFILE_MAGIC "PKSTATE"
#define SFILE_VERSION 1u

struct sfile_header {
	char magic[8];
	uint32_t version;
	uint32_t kind;
	uint64_t payload_bytes;
	uint32_t meta_len;
	uint32_t reserved;
	uint64_t sum; /* XXH3 of this header (sum = 0) and the metadata */
};

struct pk_sfile {
	int dirfd;
	char *name;
	void *payload;
	uint64_t payload_bytes;
	size_t map_len; /* payload_bytes rounded up to a page */
	size_t meta_len;
	unsigned char meta[PK_SFILE_META_MAX];
};

static uint64_t header_sum(const struct sfile_header *h, const void *meta)
{
	unsigned char buf[sizeof(*h) + PK_SFILE_META_MAX];
	struct sfile_header c = *h;

	c.sum = 0;
	memcpy(buf, &c, sizeof(c));
	if (h->meta_len)
		memcpy(buf + sizeof(c), meta, h->meta_len);
	return XXH3_64bits(buf, sizeof(c) + h->meta_len);
}

/*
 * Map the payload.  Not populated: as in the anonymous table it replaces,
 * a page of entries costs memory only once written, so an idle 1 TiB
 * guest does not cost 2 GiB up front.
 */
static int map_payload(struct pk_sfile *f, int fd)
{
	void *p;

	f->map_len = (f->payload_bytes + 4095) / 4096 * 4096;
	if (f->map_len == 0)
		return 0;
	p = mmap(NULL, f->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 PK_SFILE_PAYLOAD_OFFSET);
	if (p == MAP_FAILED)
		return -errno;
	f->payload = p;
	return 0;
}

static struct pk_sfile *sfile_new(int dirfd, const char *name)
{
	struct pk_sfile *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->dirfd = dirfd;
	f->name = strdup(name);
	if (!f->name) {
		free(f);
		return NULL;
	}
	return f;
}

static void sfile_free(struct pk_sfile *f)
{
	if (f->payload)
		munmap(f->payload, f->map_len);
	free(f->name);
	free(f);
}

int pk_sfile_create(struct pk_sfile **out, int dirfd, const char *name,
		    uint32_t kind, const void *meta, size_t meta_len,
		    uint64_t payload_bytes)
{
	struct sfile_header h = { .magic = SFILE_MAGIC };
	unsigned char head[sizeof(h) + PK_SFILE_META_MAX];
	char tmp[4096];
	struct pk_sfile *f;
	int fd, err;

	*out = NULL;
	if (meta_len > PK_SFILE_META_MAX ||
	    snprintf(tmp, sizeof(tmp), "%s.new", name) >= (int)sizeof(tmp))
		return -EINVAL;
	f = sfile_new(dirfd, name);
	if (!f)
		return -ENOMEM;
	h.version = SFILE_VERSION;
	h.kind = kind;
	h.payload_bytes = payload_bytes;
	h.meta_len = (uint32_t)meta_len;
	h.sum = header_sum(&h, meta);
	memcpy(head, &h, sizeof(h));
	if (meta_len) {
		memcpy(head + sizeof(h), meta, meta_len);
		memcpy(f->meta, meta, meta_len);
	}
	f->meta_len = meta_len;
	f->payload_bytes = payload_bytes;

	(void)unlinkat(dirfd, tmp, 0);
	fd = openat(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		err = -errno;
		goto fail;
	}
	errno = 0;
	if (pwrite(fd, head, sizeof(h) + meta_len, 0) !=
		    (ssize_t)(sizeof(h) + meta_len) ||
	    ftruncate(fd, (off_t)(PK_SFILE_PAYLOAD_OFFSET +
				  (payload_bytes + 4095) / 4096 * 4096)) < 0 ||
	    renameat(dirfd, tmp, dirfd, name) < 0) {
		err = errno ? -errno : -EIO;
		close(fd);
		(void)unlinkat(dirfd, tmp, 0);
		goto fail;
	}
	err = map_payload(f, fd);
	close(fd);
	if (err) {
		(void)unlinkat(dirfd, name, 0);
		goto fail;
	}
	*out = f;
	return 0;
fail:
	sfile_free(f);
	return err;
}

int pk_sfile_open(struct pk_sfile **out, int dirfd, const char *name,
		  uint32_t kind)
{
	struct sfile_header h;
	struct pk_sfile *f;
	struct stat st;
	int fd, err = -EBADMSG;

	*out = NULL;
	fd = openat(dirfd, name, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	f = sfile_new(dirfd, name);
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    memcmp(h.magic, SFILE_MAGIC, sizeof(h.magic)) != 0 ||
	    h.version != SFILE_VERSION || h.kind != kind ||
	    h.meta_len > PK_SFILE_META_MAX ||
	    pread(fd, f->meta, h.meta_len, sizeof(h)) != (ssize_t)h.meta_len ||
	    header_sum(&h, f->meta) != h.sum || fstat(fd, &st) < 0 ||
	    (uint64_t)st.st_size < PK_SFILE_PAYLOAD_OFFSET + h.payload_bytes)
		goto fail;
	f->meta_len = h.meta_len;
	f->payload_bytes = h.payload_bytes;
	err = map_payload(f, fd);
	if (err)
		goto fail;
	close(fd);
	*out = f;
	return 0;
fail:
	close(fd);
	sfile_free(f);
	return err;
}

const void *pk_sfile_meta(const struct pk_sfile *f, size_t *len)
{
	*len = f->meta_len;
	return f->meta;
}

void *pk_sfile_payload(const struct pk_sfile *f)
{
	return f->payload;
}

uint64_t pk_sfile_payload_bytes(const struct pk_sfile *f)
{
	return f->payload_bytes;
}

void pk_sfile_close(struct pk_sfile *f)
{
	if (f)
		sfile_free(f);
}

void pk_sfile_remove(struct pk_sfile *f)
{
	if (!f)
		return;
	(void)unlinkat(f->dirfd, f->name, 0);
	sfile_free(f);
}
