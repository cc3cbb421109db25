/*
 * mem_source.c - read how much memory is free: a budget, a memory cgroup
 * (v1 or v2), or the host; and memory PSI.
 *
 * What and why: see mem_source.h.  How:
 *
 *  - Budget: nothing to read but PSI; the caller says what is used.
 *  - Cgroup: pk_mem_source_open resolves the name once to a directory
 *    (statfs tells v1 from v2; a directory counts only if the memory
 *    controller is there), then every read takes the limit, the usage
 *    and memory.stat again, because an admin may change the limit at
 *    run time.  A v1 cgroup's effective limit is the smaller of its own
 *    memory.limit_in_bytes and hierarchical_memory_limit (an ancestor's
 *    limit binds it too; v1 reports it, v2 would need a walk up and does
 *    not: name the cgroup that carries the limit).  "No limit" is
 *    v2's "max" and v1's PAGE_COUNTER_MAX pages (anything >= 2^62 here):
 *    a cgroup without a limit says nothing about free memory, so open
 *    fails with -ENODATA rather than report a free % of nonsense.
 *  - Host: /proc/meminfo MemTotal and MemAvailable (the kernel's own
 *    estimate of what can be had without swapping).
 *  - PSI: the "some avg10=" field of the first line of memory.pressure
 *    (the cgroup's if it has one, else /proc/pressure/memory); an
 *    unreadable PSI file gives -1, never an error, because PSI only
 *    adds to the decision.
 *
 * Single-value files are read into a small stack buffer (a longer file
 * is -EOVERFLOW, not a truncated number); memory.stat and meminfo line
 * by line with getline.  Every path is built with a length check
 * (-ENAMETOOLONG).  Errors are negative errno with s->err saying which
 * file and why.
 */
#include "engine/mem_source.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#define CGROUP_SUPER_MAGIC_V1 0x27e0ebL
#define CGROUP2_SUPER_MAGIC_V2 0x63677270L
/* v1's "no limit" is PAGE_COUNTER_MAX pages, about 2^63 bytes. */
#define NO_LIMIT_BYTES (1ULL << 62)
#define MIB (1024.0 * 1024.0)

__attribute__((format(printf, 2, 3))) static void
seterr(struct pk_mem_source *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
}

static int join(char *out, size_t len, const char *dir, const char *name)
{
	int n = snprintf(out, len, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* The whole file into buf (NUL-terminated); -EOVERFLOW if it is longer. */
static int read_small(const char *path, char *buf, size_t len)
{
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, buf + got, len - 1 - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			n = -errno;
			close(fd);
			return (int)n;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == len - 1) {
			char c;
			n = read(fd, &c, 1);
			close(fd);
			buf[got] = '\0';
			return n == 0 ? 0 : -EOVERFLOW;
		}
	}
	close(fd);
	buf[got] = '\0';
	return 0;
}

/* A file holding one number, or "max" (*is_max = 1). */
static int read_u64(struct pk_mem_source *s, const char *dir,
		    const char *name, uint64_t *v, int *is_max)
{
	char path[PATH_MAX], buf[64], *end;
	unsigned long long x;
	int rc = join(path, sizeof(path), dir, name);

	if (rc < 0) {
		seterr(s, "%s/%s: path too long", dir, name);
		return rc;
	}
	rc = read_small(path, buf, sizeof(buf));
	if (rc < 0) {
		seterr(s, "read %s: %s", path, strerror(-rc));
		return rc;
	}
	buf[strcspn(buf, "\n")] = '\0';
	if (is_max)
		*is_max = !strcmp(buf, "max");
	if (is_max && *is_max) {
		*v = UINT64_MAX;
		return 0;
	}
	errno = 0;
	x = strtoull(buf, &end, 10);
	if (end == buf || *end || errno || buf[0] == '-') {
		seterr(s, "%s: \"%s\" is not a byte count", path, buf);
		return -EINVAL;
	}
	*v = x;
	return 0;
}

/*
 * "key value" lines (memory.stat) or "Key: value kB" (meminfo): fill
 * vals[i] for keys[i] (keys include any ':'), found[i] = 1.
 */
static int read_fields(struct pk_mem_source *s, const char *path,
		       const char *const *keys, uint64_t *vals, int *found,
		       int n)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	int rc = 0;

	for (int i = 0; i < n; i++)
		found[i] = 0;
	if (!f) {
		rc = -errno;
		seterr(s, "read %s: %s", path, strerror(-rc));
		return rc;
	}
	while (getline(&line, &cap, f) > 0) {
		for (int i = 0; i < n; i++) {
			size_t kl = strlen(keys[i]);
			char *end;
			unsigned long long x;

			if (found[i] || strncmp(line, keys[i], kl) ||
			    (line[kl] != ' ' && line[kl] != '\t'))
				continue;
			errno = 0;
			x = strtoull(line + kl, &end, 10);
			if (end == line + kl || errno) {
				line[strcspn(line, "\n")] = '\0';
				seterr(s, "%s: bad line \"%.64s\"", path, line);
				rc = -EINVAL;
				goto out;
			}
			vals[i] = x;
			found[i] = 1;
		}
	}
	if (ferror(f)) {
		rc = -EIO;
		seterr(s, "read %s: %s", path, strerror(EIO));
	}
out:
	free(line);
	fclose(f);
	return rc;
}

/* "some avg10=X" of a PSI file; -1 when unreadable or malformed. */
static double read_psi(const char *path)
{
	char buf[512], *p, *end;
	double v;

	if (!path[0] || read_small(path, buf, sizeof(buf)) < 0)
		return -1.0;
	p = strstr(buf, "some avg10=");
	if (!p || (p != buf && p[-1] != '\n'))
		return -1.0;
	p += strlen("some avg10=");
	errno = 0;
	v = strtod(p, &end);
	if (end == p || errno || !(v >= 0.0) || v > 100.0)
		return -1.0;
	return v;
}

static int has_file(const char *dir, const char *name)
{
	char path[PATH_MAX];

	return join(path, sizeof(path), dir, name) == 0 &&
	       access(path, R_OK) == 0;
}

/*
 * Is dir a memory cgroup?  1 yes (*v2 set), 0 no (why says why, for the
 * error message), or -ENAMETOOLONG.
 */
static int memcg_dir(const char *dir, int want_v2, const char **why)
{
	struct statfs sf;

	if (strlen(dir) >= PATH_MAX)
		return -ENAMETOOLONG;
	if (statfs(dir, &sf) < 0) {
		*why = errno == ENOENT ? "not found" : strerror(errno);
		return 0;
	}
	if (want_v2 && (long)sf.f_type != CGROUP2_SUPER_MAGIC_V2) {
		*why = "not cgroup2";
		return 0;
	}
	if (!want_v2 && (long)sf.f_type != CGROUP_SUPER_MAGIC_V1) {
		*why = "not cgroup v1";
		return 0;
	}
	if (!has_file(dir, want_v2 ? "memory.max" : "memory.limit_in_bytes")) {
		*why = "no memory controller";
		return 0;
	}
	return 1;
}

static int resolve_cgroup(struct pk_mem_source *s, const char *cgroup)
{
	static const struct {
		const char *mount;
		int v2;
	} where[] = {
		{ PK_CGROUP_V2_MOUNT, 1 },
		{ PK_CGROUP_V2_HYBRID_MOUNT, 1 },
		{ PK_CGROUP_V1_MEMORY_MOUNT, 0 },
	};
	char tried[sizeof(s->err)] = "";
	size_t tl = 0;
	const char *why = "";
	int rc;

	if (cgroup[0] == '/') {
		struct statfs sf;

		if (strlen(cgroup) >= sizeof(s->cgroup_dir)) {
			seterr(s, "cgroup %.64s...: path too long", cgroup);
			return -ENAMETOOLONG;
		}
		if (statfs(cgroup, &sf) < 0) {
			rc = -errno;
			seterr(s, "cgroup %s: %s", cgroup, strerror(-rc));
			return rc;
		}
		s->cgroup_v2 = (long)sf.f_type == CGROUP2_SUPER_MAGIC_V2;
		if (!s->cgroup_v2 && (long)sf.f_type != CGROUP_SUPER_MAGIC_V1) {
			seterr(s, "cgroup %s: not on a cgroup file system",
			       cgroup);
			return -ENOTDIR;
		}
		if (memcg_dir(cgroup, s->cgroup_v2, &why) != 1) {
			seterr(s, "cgroup %s (v%d): %s", cgroup,
			       s->cgroup_v2 ? 2 : 1, why);
			return -ENOTDIR;
		}
		strcpy(s->cgroup_dir, cgroup);
		return 0;
	}
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		char dir[PATH_MAX];

		if (join(dir, sizeof(dir), where[i].mount, cgroup) < 0) {
			seterr(s, "cgroup %.64s...: name too long", cgroup);
			return -ENAMETOOLONG;
		}
		rc = memcg_dir(dir, where[i].v2, &why);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			strcpy(s->cgroup_dir, dir);
			s->cgroup_v2 = where[i].v2;
			return 0;
		}
		if (tl < sizeof(tried)) {
			int n = snprintf(tried + tl, sizeof(tried) - tl,
					 "%s%s (%s)", tl ? ", " : "", dir, why);
			tl += n > 0 ? (size_t)n : 0;
		}
	}
	seterr(s, "memory cgroup \"%s\" not found; tried %s", cgroup, tried);
	return -ENOENT;
}

int pk_mem_source_open(struct pk_mem_source *s, uint64_t budget_bytes,
		       const char *cgroup)
{
	struct pk_mem_reading r;
	char path[PATH_MAX];
	int rc;

	memset(s, 0, sizeof(*s));
	if (budget_bytes > 0) {
		s->kind = PK_MEM_BUDGET;
		s->budget_bytes = budget_bytes;
	} else if (cgroup && cgroup[0]) {
		s->kind = PK_MEM_CGROUP;
		rc = resolve_cgroup(s, cgroup);
		if (rc < 0)
			return rc;
		if (join(path, sizeof(path), s->cgroup_dir,
			 "memory.pressure") == 0 &&
		    read_psi(path) >= 0)
			strcpy(s->psi_path, path);
	} else {
		s->kind = PK_MEM_HOST;
	}
	if (!s->psi_path[0] && read_psi(PK_PSI_HOST_PATH) >= 0)
		strcpy(s->psi_path, PK_PSI_HOST_PATH);
	rc = pk_mem_source_read(s, 0, &r);
	return rc < 0 ? rc : 0;
}

static int read_cgroup(struct pk_mem_source *s, uint64_t *total,
		       uint64_t *used)
{
	const char *const v1_keys[] = { "total_inactive_file",
					"hierarchical_memory_limit" };
	const char *const v2_keys[] = { "inactive_file" };
	uint64_t limit, usage, vals[2] = { 0, UINT64_MAX };
	char stat[PATH_MAX];
	int found[2] = { 0, 0 }, is_max = 0, rc;

	rc = read_u64(s, s->cgroup_dir,
		      s->cgroup_v2 ? "memory.max" : "memory.limit_in_bytes",
		      &limit, &is_max);
	if (rc < 0)
		return rc;
	rc = read_u64(s, s->cgroup_dir,
		      s->cgroup_v2 ? "memory.current" : "memory.usage_in_bytes",
		      &usage, NULL);
	if (rc < 0)
		return rc;
	if (join(stat, sizeof(stat), s->cgroup_dir, "memory.stat") < 0) {
		seterr(s, "%s/memory.stat: path too long", s->cgroup_dir);
		return -ENAMETOOLONG;
	}
	rc = read_fields(s, stat, s->cgroup_v2 ? v2_keys : v1_keys, vals,
			 found, s->cgroup_v2 ? 1 : 2);
	if (rc < 0)
		return rc;
	if (!found[0]) {
		seterr(s, "%s: no %s", stat, s->cgroup_v2 ? v2_keys[0] :
							    v1_keys[0]);
		return -ENODATA;
	}
	if (!s->cgroup_v2 && found[1] && vals[1] < limit)
		limit = vals[1];
	if (is_max || limit >= NO_LIMIT_BYTES) {
		seterr(s, "cgroup v%d %s has no memory limit (%s is %s): "
		       "free memory would mean nothing; set one or name the "
		       "cgroup that has it", s->cgroup_v2 ? 2 : 1,
		       s->cgroup_dir,
		       s->cgroup_v2 ? "memory.max" : "memory.limit_in_bytes",
		       is_max ? "max" : "unlimited");
		return -ENODATA;
	}
	if (limit == 0) {
		seterr(s, "cgroup %s: memory limit is 0", s->cgroup_dir);
		return -ENODATA;
	}
	s->limit_bytes = limit;
	*total = limit;
	*used = usage - (vals[0] < usage ? vals[0] : usage);
	return 0;
}

static int read_host(struct pk_mem_source *s, uint64_t *total,
		     uint64_t *used)
{
	const char *const keys[] = { "MemTotal:", "MemAvailable:" };
	uint64_t vals[2];
	int found[2], rc;

	rc = read_fields(s, "/proc/meminfo", keys, vals, found, 2);
	if (rc < 0)
		return rc;
	if (!found[0] || !found[1] || vals[0] == 0) {
		seterr(s, "/proc/meminfo: no %s", found[0] ? "MemAvailable" :
							    "MemTotal");
		return -ENODATA;
	}
	*total = vals[0] * 1024;
	*used = vals[1] < vals[0] ? (vals[0] - vals[1]) * 1024 : 0;
	return 0;
}

int pk_mem_source_read(struct pk_mem_source *s, uint64_t engine_used_bytes,
		       struct pk_mem_reading *r)
{
	uint64_t total = 0, used = 0;
	int rc = 0;

	switch (s->kind) {
	case PK_MEM_BUDGET:
		total = s->budget_bytes;
		used = engine_used_bytes;
		if (!total) {
			seterr(s, "budget of 0 bytes");
			rc = -EINVAL;
		}
		break;
	case PK_MEM_CGROUP:
		rc = read_cgroup(s, &total, &used);
		break;
	case PK_MEM_HOST:
		rc = read_host(s, &total, &used);
		break;
	default:
		seterr(s, "memory source not open");
		rc = -EINVAL;
	}
	if (rc < 0)
		return rc;
	r->total_bytes = total;
	r->used_bytes = used;
	r->free_bytes = used < total ? total - used : 0;
	r->free_pct = 100.0 * (double)r->free_bytes / (double)total;
	r->psi_some_avg10 = read_psi(s->psi_path);
	return 0;
}

static void mib(char *buf, size_t len, uint64_t bytes)
{
	if (bytes % (1024 * 1024) == 0)
		snprintf(buf, len, "%" PRIu64 " MiB", bytes >> 20);
	else
		snprintf(buf, len, "%.1f MiB", (double)bytes / MIB);
}

const char *pk_mem_source_describe(const struct pk_mem_source *s, char *buf,
				   size_t len)
{
	char size[48];

	if (!len)
		return buf;
	switch (s->kind) {
	case PK_MEM_BUDGET:
		mib(size, sizeof(size), s->budget_bytes);
		snprintf(buf, len, "budget %s", size);
		break;
	case PK_MEM_CGROUP:
		mib(size, sizeof(size), s->limit_bytes);
		snprintf(buf, len, "cgroup v%d %s (limit %s)",
			 s->cgroup_v2 ? 2 : 1, s->cgroup_dir, size);
		break;
	case PK_MEM_HOST:
		snprintf(buf, len, "host MemAvailable");
		break;
	default:
		snprintf(buf, len, "none");
	}
	return buf;
}
