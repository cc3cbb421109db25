/*
 * proc_mem.c - machine memory and CPU time as /proc shows them.
 *
 * What/how/why: see proc_mem.h.
 */
#include "proc_mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int meminfo_read(struct meminfo *m)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	int found = 0;

	m->avail_kib = m->free_kib = m->total_kib = -1;
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		long long v;
		if (sscanf(line, "MemAvailable: %lld", &v) == 1)
			m->avail_kib = v, found++;
		else if (sscanf(line, "MemFree: %lld", &v) == 1)
			m->free_kib = v, found++;
		else if (sscanf(line, "MemTotal: %lld", &v) == 1)
			m->total_kib = v, found++;
	}
	fclose(f);
	if (found != 3)
		return -EBADMSG;
	/* every "count:" line of /proc/zoneinfo is one pageset's free pages */
	if (!(f = fopen("/proc/zoneinfo", "re")))
		return -errno;
	long long pages = 0;
	while (fgets(line, sizeof(line), f)) {
		long long v;
		if (sscanf(line, " count: %lld", &v) == 1)
			pages += v;
	}
	fclose(f);
	m->pcp_kib = pages * (sysconf(_SC_PAGESIZE) / 1024);
	return 0;
}

int proc_cpu_seconds(pid_t pid, double *out)
{
	char path[64], buf[1024];
	unsigned long long ut, st;
	int fd, e = 0;
	clockid_t cid;
	struct timespec ts;

	/* The process's CPU clock, all threads, in ns; /proc's utime and
	 * stime (clock ticks, 10 ms here) where it cannot be had. */
	if (clock_getcpuclockid(pid, &cid) == 0 && clock_gettime(cid, &ts) == 0) {
		*out = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		e = -errno;
	close(fd);
	if (e)
		return e;
	buf[n] = '\0';
	/* comm may hold spaces and parentheses: fields resume after the last ')' */
	const char *p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return -EBADMSG;
	*out = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	return 0;
}

int proc_pss_read(pid_t pid, struct proc_pss *out)
{
	char path[64], line[256];
	FILE *f;

	out->pss_kib = out->pss_anon_kib = out->pss_shmem_kib = 0;
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	int got = 0;
	while (fgets(line, sizeof(line), f)) {
		long long v;
		if (sscanf(line, "Pss: %lld", &v) == 1)
			out->pss_kib = v, got = 1;
		else if (sscanf(line, "Pss_Anon: %lld", &v) == 1)
			out->pss_anon_kib = v;
		else if (sscanf(line, "Pss_Shmem: %lld", &v) == 1)
			out->pss_shmem_kib = v;
	}
	fclose(f);
	return got ? 0 : -EBADMSG;
}

int proc_rss_anon(pid_t pid, int64_t *kib)
{
	char path[64], line[256];
	FILE *f;
	int e = -EBADMSG;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "re")))
		return -errno;
	while (e && fgets(line, sizeof(line), f)) {
		long long v;
		if (sscanf(line, "RssAnon: %lld", &v) == 1) {
			*kib = v;
			e = 0;
		}
	}
	fclose(f);
	return e;
}

int proc_mapping_read(pid_t pid, uint64_t length, struct proc_mapping *out)
{
	char path[64], line[512];
	bool in = false, done = false;
	FILE *f;

	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (!done && fgets(line, sizeof(line), f)) {
		unsigned long long a, b;
		char perms[8];
		long long v;
		/* a mapping's header: "start-end perms offset dev inode [name]" */
		if (sscanf(line, "%llx-%llx %7s ", &a, &b, perms) == 3 && strlen(perms) == 4 &&
		    (perms[3] == 'p' || perms[3] == 's')) {
			in = b - a == length;
			continue;
		}
		if (!in)
			continue;
		if (sscanf(line, "Pss: %lld", &v) == 1)
			out->pss_kib = v;
		else if (sscanf(line, "Rss: %lld", &v) == 1)
			out->rss_kib = v;
		else if (!strncmp(line, "VmFlags:", 8)) {
			out->mergeable = strstr(line, " mg") != NULL;
			done = true; /* VmFlags ends a mapping's block */
		}
	}
	fclose(f);
	return done ? 0 : -ENOENT;
}

int proc_memfd_bytes(pid_t pid, const char *name, uint64_t *out)
{
	char dirpath[64], want[300];
	struct dirent *de;
	int e = -ENOENT;
	DIR *d;

	snprintf(dirpath, sizeof(dirpath), "/proc/%d/fd", (int)pid);
	snprintf(want, sizeof(want), "/memfd:%s (deleted)", name);
	d = opendir(dirpath);
	if (!d)
		return -errno;
	while (e == -ENOENT && (de = readdir(d))) {
		char path[320], link[320];
		struct stat st;
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dirpath, de->d_name);
		ssize_t n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		if (strcmp(link, want))
			continue;
		if (stat(path, &st) < 0)
			e = -errno;
		else {
			*out = (uint64_t)st.st_blocks * 512u;
			e = 0;
		}
	}
	closedir(d);
	return e;
}
