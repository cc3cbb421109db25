/*
 * ksm_ctl.c - KSM's knobs and counters under /sys/kernel/mm/ksm, and ksmd.
 *
 * What/how/why: see ksm_ctl.h.
 */
#include "ksm_ctl.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* "[none] scan-time" -> "none"; trailing whitespace dropped. */
static void reduce(char *v)
{
	char *open = strchr(v, '['), *close = open ? strchr(open, ']') : NULL;
	size_t n;

	if (open && close) {
		n = (size_t)(close - open - 1);
		memmove(v, open + 1, n);
		v[n] = '\0';
	}
	n = strlen(v);
	while (n && isspace((unsigned char)v[n - 1]))
		v[--n] = '\0';
}

int ksm_read(const char *name, char *buf, size_t len)
{
	char path[KSM_NAME_MAX + sizeof(KSM_DIR) + 2];
	int fd, e;

	snprintf(path, sizeof(path), "%s/%s", KSM_DIR, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, len - 1);
	e = n < 0 ? -errno : 0;
	close(fd);
	if (e)
		return e;
	buf[n] = '\0';
	reduce(buf);
	return 0;
}

int ksm_write(const char *name, const char *value)
{
	char path[KSM_NAME_MAX + sizeof(KSM_DIR) + 2];
	size_t len = strlen(value);
	int fd, e = 0;

	snprintf(path, sizeof(path), "%s/%s", KSM_DIR, name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, value, len) != (ssize_t)len)
		e = errno ? -errno : -EIO;
	close(fd);
	return e;
}

int ksm_check(char *err, size_t err_len)
{
	struct stat st;

	if (stat(KSM_DIR, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, err_len, "%s is missing: this kernel has no KSM "
			 "(CONFIG_KSM), so the KSM baselines cannot run", KSM_DIR);
		return -ENOENT;
	}
	if (access(KSM_DIR "/run", W_OK) < 0) {
		int e = -errno;
		snprintf(err, err_len, "%s/run is not writable: %s (run as root)", KSM_DIR,
			 strerror(errno));
		return e;
	}
	return 0;
}

static int cmp_setting(const void *a, const void *b)
{
	return strcmp(((const struct ksm_setting *)a)->name,
		      ((const struct ksm_setting *)b)->name);
}

int ksm_read_settings(struct ksm_settings *out)
{
	DIR *d = opendir(KSM_DIR);
	struct dirent *de;
	int e = 0;

	out->n = 0;
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char path[KSM_NAME_MAX + sizeof(KSM_DIR) + 2];
		size_t len = strlen(de->d_name);
		struct stat st;

		if (de->d_name[0] == '.' || len >= KSM_NAME_MAX)
			continue;
		/* memcpy, not snprintf: the length is checked just above. */
		memcpy(path, KSM_DIR "/", sizeof(KSM_DIR));
		memcpy(path + sizeof(KSM_DIR), de->d_name, len + 1);
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || !(st.st_mode & S_IWUSR))
			continue;
		if (out->n == KSM_MAX_SETTINGS) {
			e = -E2BIG;
			break;
		}
		struct ksm_setting *s = &out->s[out->n];
		memcpy(s->name, de->d_name, len + 1);
		if ((e = ksm_read(s->name, s->value, sizeof(s->value))) < 0)
			break;
		out->n++;
	}
	closedir(d);
	qsort(out->s, out->n, sizeof(out->s[0]), cmp_setting);
	return e;
}

bool ksm_settings_equal(const struct ksm_settings *a, const struct ksm_settings *b,
			char *diff, size_t diff_len)
{
	size_t used = 0;
	bool same = true;

	if (diff_len)
		diff[0] = '\0';
	for (unsigned i = 0; i < a->n; i++) {
		const struct ksm_setting *m = NULL;
		for (unsigned j = 0; j < b->n && !m; j++)
			if (!strcmp(a->s[i].name, b->s[j].name))
				m = &b->s[j];
		if (m && !strcmp(m->value, a->s[i].value))
			continue;
		same = false;
		int w = snprintf(diff + used, diff_len - used, "%s%s", used ? "," : "",
				 a->s[i].name);
		if (w > 0 && (size_t)w < diff_len - used)
			used += (size_t)w;
	}
	return same;
}

static int read_u64(const char *name, uint64_t *out)
{
	char buf[64], *end;
	int e = ksm_read(name, buf, sizeof(buf));

	if (e < 0)
		return e;
	errno = 0;
	*out = strtoull(buf, &end, 10);
	return errno || end == buf ? -EINVAL : 0;
}

int ksm_read_counters(struct ksm_counters *c)
{
	int e;

	memset(c, 0, sizeof(*c));
	if ((e = read_u64("pages_sharing", &c->pages_sharing)) < 0 ||
	    (e = read_u64("pages_shared", &c->pages_shared)) < 0 ||
	    (e = read_u64("pages_unshared", &c->pages_unshared)) < 0 ||
	    (e = read_u64("pages_volatile", &c->pages_volatile)) < 0 ||
	    (e = read_u64("full_scans", &c->full_scans)) < 0)
		return e;
	c->has_pages_scanned = read_u64("pages_scanned", &c->pages_scanned) == 0;
	char buf[64];
	if (ksm_read("general_profit", buf, sizeof(buf)) == 0) {
		c->general_profit = strtoll(buf, NULL, 10);
		c->has_general_profit = true;
	}
	return 0;
}

pid_t ksmd_pid(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t found = -ESRCH;

	if (!d)
		return -errno;
	while ((de = readdir(d)) && found < 0) {
		char path[300], comm[32];
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, comm, sizeof(comm) - 1);
		close(fd);
		if (n <= 0)
			continue;
		comm[n] = '\0';
		if (!strcmp(comm, "ksmd\n"))
			found = (pid_t)atoi(de->d_name);
	}
	closedir(d);
	return found;
}
