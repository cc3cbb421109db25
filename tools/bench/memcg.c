/*
 * memcg.c - a fresh child memory cgroup for the kernel swap-in variant.
 *
 * What/how/why: see memcg.h.
 */
#include "memcg.h"
#include "sys_guard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Mount point of the first mount of fstype whose options hold opt. */
static int find_mount(const char *fstype, const char *opt, char *out, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096];
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		char mnt[PATH_MAX], type[64], super[1024];
		const char *sep = strstr(line, " - ");
		if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
		    sscanf(sep + 3, "%63s %*s %1023s", type, super) != 2)
			continue;
		if (strcmp(type, fstype))
			continue;
		if (opt) {
			char *tok, *save = NULL;
			int has = 0;
			for (tok = strtok_r(super, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
				has |= !strcmp(tok, opt);
			if (!has)
				continue;
		}
		found = (size_t)snprintf(out, len, "%s", mnt) < len;
	}
	fclose(f);
	return found;
}

/* Our path in the hierarchy whose /proc/self/cgroup controllers == want. */
static int own_path(int v2, char *out, size_t len)
{
	FILE *f = fopen("/proc/self/cgroup", "r");
	char line[4096];
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		char *ctl = c1 + 1, *path = c2 + 1;
		path[strcspn(path, "\n")] = '\0';
		if (v2 ? (!strcmp(line, "0") && !*ctl) : !!strstr(ctl, "memory")) {
			/* v1 list "memory" or "...,memory,..." */
			found = (size_t)snprintf(out, len, "%s", path) < len;
		}
	}
	fclose(f);
	return found;
}

static int read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, len - 1);
	int e = n < 0 ? -errno : 0;
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return e;
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, s, strlen(s));
	int e = n < 0 ? -errno : 0;
	close(fd);
	return e;
}

static int has_word(const char *list, const char *w)
{
	char buf[1024], *tok, *save = NULL;

	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save))
		if (!strcmp(tok, w))
			return 1;
	return 0;
}

/* mount point + cgroup path ("/" adds nothing); "" when too long */
static void join(char *out, size_t len, const char *mnt, const char *path)
{
	size_t a = strlen(mnt), b = strcmp(path, "/") ? strlen(path) : 0;

	out[0] = '\0';
	if (a + b >= len)
		return;
	memcpy(out, mnt, a);
	memcpy(out + a, path, b);
	out[a + b] = '\0';
}

int memcg_find(struct memcg *m, char *err, size_t err_len)
{
	char mnt[PATH_MAX], path[PATH_MAX], file[PATH_MAX + 32], buf[1024];

	memset(m, 0, sizeof(*m));
	if (find_mount("cgroup2", NULL, mnt, sizeof(mnt)) && own_path(1, path, sizeof(path))) {
		join(m->parent, sizeof(m->parent), mnt, path);
		snprintf(file, sizeof(file), "%s/cgroup.controllers", m->parent);
		if (read_small(file, buf, sizeof(buf)) == 0 && has_word(buf, "memory")) {
			m->version = 2;
			return 0;
		}
	}
	if (find_mount("cgroup", "memory", mnt, sizeof(mnt)) && own_path(0, path, sizeof(path))) {
		join(m->parent, sizeof(m->parent), mnt, path);
		snprintf(file, sizeof(file), "%s/memory.force_empty", m->parent);
		if (access(file, W_OK) == 0) {
			m->version = 1;
			return 0;
		}
	}
	snprintf(err, err_len, "no usable memory cgroup: neither a cgroup2 hierarchy "
		 "with the memory controller for our cgroup nor a cgroup v1 memory "
		 "hierarchy with memory.force_empty (see /proc/self/cgroup)");
	return -ENOENT;
}

const char *memcg_describe(const struct memcg *m, char *buf, size_t len)
{
	snprintf(buf, len, "cgroup v%d, child of %s (drop: %s)", m->version, m->parent,
		 m->version == 1 ? "memory.force_empty" : "memory.reclaim");
	return buf;
}

/* v2: children get memory.* files only with "memory" in subtree_control. */
static int enable_subtree(struct memcg *m, char *err, size_t err_len)
{
	char file[PATH_MAX + 32], buf[1024];
	int r;

	snprintf(file, sizeof(file), "%s/cgroup.subtree_control", m->parent);
	if ((r = read_small(file, buf, sizeof(buf))) < 0) {
		snprintf(err, err_len, "read %s: %s", file, strerror(-r));
		return r;
	}
	if (has_word(buf, "memory"))
		return 0;
	guard_subtree(file); /* before the write: restored whatever happens */
	if ((r = write_str(file, "+memory")) < 0) {
		snprintf(err, err_len, "enable the memory controller in %s: %s%s", file,
			 strerror(-r), r == -EBUSY ? " (our cgroup holds processes: "
			 "cgroup v2 forbids controllers for children then; run from a "
			 "leaf-free cgroup or the root)" : "");
		return r;
	}
	m->enabled_subtree = true;
	fprintf(stderr, "bench: enabled the memory controller in %s (restored at exit)\n",
		file);
	return 0;
}

int memcg_create(struct memcg *m, const char *name, char *err, size_t err_len)
{
	int r;

	if (m->version == 2 && !m->enabled_subtree && (r = enable_subtree(m, err, err_len)) < 0)
		return r;
	if ((size_t)snprintf(m->dir, sizeof(m->dir), "%s/%s", m->parent, name) >= sizeof(m->dir)) {
		snprintf(err, err_len, "cgroup path too long");
		m->dir[0] = '\0';
		return -ENAMETOOLONG;
	}
	guard_cgroup(m->dir);
	if (mkdir(m->dir, 0755) < 0) {
		r = -errno;
		snprintf(err, err_len, "mkdir %s: %s", m->dir, strerror(errno));
		m->dir[0] = '\0';
		return r;
	}
	return 0;
}

int memcg_add_pid(struct memcg *m, pid_t pid, char *err, size_t err_len)
{
	char file[PATH_MAX + 32], num[32];
	int r;

	snprintf(file, sizeof(file), "%s/cgroup.procs", m->dir);
	snprintf(num, sizeof(num), "%d", (int)pid);
	if ((r = write_str(file, num)) < 0)
		snprintf(err, err_len, "move pid %d into %s: %s", (int)pid, m->dir, strerror(-r));
	return r;
}

int memcg_set_limit(struct memcg *m, uint64_t bytes, char *err, size_t err_len)
{
	char file[PATH_MAX + 32], num[32];
	int r;

	snprintf(file, sizeof(file), "%s/%s", m->dir,
		 m->version == 1 ? "memory.limit_in_bytes" : "memory.max");
	snprintf(num, sizeof(num), "%llu", (unsigned long long)bytes);
	if ((r = write_str(file, num)) < 0)
		snprintf(err, err_len, "write %s to %s: %s", num, file, strerror(-r));
	return r;
}

long long memcg_usage(const struct memcg *m)
{
	char file[PATH_MAX + 32], num[64];

	snprintf(file, sizeof(file), "%s/%s", m->dir,
		 m->version == 1 ? "memory.usage_in_bytes" : "memory.current");
	return read_small(file, num, sizeof(num)) == 0 ? atoll(num) : -1;
}

int memcg_drop_cache(struct memcg *m, size_t bytes, char *err, size_t err_len)
{
	char file[PATH_MAX + 32], num[32];
	int r;

	if (m->version == 1) {
		snprintf(file, sizeof(file), "%s/memory.force_empty", m->dir);
		r = write_str(file, "0");
	} else {
		snprintf(file, sizeof(file), "%s/memory.reclaim", m->dir);
		snprintf(num, sizeof(num), "%zu", bytes);
		r = write_str(file, num);
		if (r == -EAGAIN) /* reclaimed less than asked: all there was */
			r = 0;
	}
	if (r < 0)
		snprintf(err, err_len, "write %s: %s", file, strerror(-r));
	return r;
}

static long long stat_key(const char *text, const char *key)
{
	size_t kl = strlen(key);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, key, kl) && p[kl] == ' ')
			return atoll(p + kl + 1);
	return -1;
}

void memcg_read_stat(const struct memcg *m, struct memcg_stat *st)
{
	static char text[16384];
	char file[PATH_MAX + 32];

	st->anon_bytes = st->swapcached_bytes = st->swap_bytes = -1;
	snprintf(file, sizeof(file), "%s/memory.stat", m->dir);
	if (read_small(file, text, sizeof(text)) < 0)
		return;
	st->anon_bytes = stat_key(text, m->version == 1 ? "rss" : "anon");
	st->swapcached_bytes = stat_key(text, "swapcached");
	if (m->version == 1) {
		st->swap_bytes = stat_key(text, "swap");
	} else {
		char num[64];
		snprintf(file, sizeof(file), "%s/memory.swap.current", m->dir);
		if (read_small(file, num, sizeof(num)) == 0)
			st->swap_bytes = atoll(num);
	}
}

int memcg_remove(struct memcg *m)
{
	int r = 0;

	if (m->dir[0])
		r = guard_release_cgroup();
	m->dir[0] = '\0';
	return r;
}
