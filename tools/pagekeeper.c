/*
 * pagekeeper - command-line client of pagekeeperd.
 *
 *   pagekeeper [--socket PATH] status [--json]
 *   pagekeeper [--socket PATH] reclaim VM --mib N
 *   pagekeeper [--socket PATH] drain VM
 *   pagekeeper [--socket PATH] balloon VM --target SIZE [--no-wait]
 *                                         [--timeout SECONDS]
 *   pagekeeper [--socket PATH] top [-d SECONDS] [-n N]  (top.c)
 *   pagekeeper [--socket PATH] vm VM                     (top.c)
 *   pagekeeper lab [SCENARIO] [options]  (see lab/run.c; the demo: lab.c)
 *
 * Sends one request on a fresh control connection and prints the answer:
 * the daemon's JSON as is with --json, or a table with units otherwise.
 *
 * Exit status (also in --help), so scripts can tell why it failed:
 *   0 done, 1 the daemon refused or failed the request, 2 bad usage,
 *   3 no pagekeeperd answers at the socket (not running, wrong --socket,
 *   or it died before it replied); balloon only: 4 the balloon stalled
 *   short of the target, 5 the target was not reached by --timeout;
 *   6 no permission to use the socket (EACCES/EPERM).
 */
#include "engine/client/pagekeeper-client.h"
#include "engine/protocol.h"
#include "tools/cli.h"
#include "tools/common/size_parse.h"

#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define STATUS_REPLY_MAX (1 << 20)

/* The exit codes (PK_EXIT_*) are in tools/cli.h (issue 18: top, vm). */

#define BALLOON_TIMEOUT_DEFAULT_S 60

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pagekeeper [--socket PATH] status [--json]\n"
		"       pagekeeper [--socket PATH] reclaim VM --mib N\n"
		"       pagekeeper [--socket PATH] drain VM\n"
		"       pagekeeper [--socket PATH] balloon VM --target SIZE [--no-wait]\n"
		"                  [--timeout SECONDS]\n"
		"       pagekeeper [--socket PATH] set VM [--shares N] [--min SIZE]\n"
		"                  [--max SIZE] [--balloon on|off]\n"
		"       pagekeeper [--socket PATH] top [-d SECONDS] [-n N]\n"
		"       pagekeeper [--socket PATH] vm VM\n"
		"       pagekeeper lab [SCENARIO] [--out DIR] [--short] [--policy P]\n"
		"                      [--budget SIZE|PCT] [--seed N]\n"
		"       pagekeeper lab [--guests N] [--size SIZE] [--duration SECONDS]\n"
		"                      [--workload KIND] [--anon]\n"
		"  status       per-VM memory: configured, resident, zero, shared,\n"
		"               swapped and ballooned MiB, and faults/s\n"
		"  --json       print the daemon's JSON document\n"
		"  --socket     control socket (default %s)\n"
		"  reclaim      evict N MiB of the VM to the swap file (random\n"
		"               victims, as ESX); prints what was evicted\n"
		"  drain        bring every swapped and merged page of the VM back\n"
		"               into it, and evict or merge none from then on\n"
		"               (before detaching it or uninstalling pagekeeper)\n"
		"  balloon      ask the VM's guest, through its balloon channel, to\n"
		"               keep SIZE (512M, 2G: K/M/G/T, powers of 1024); prints\n"
		"               the accepted target, then the guest's size once a\n"
		"               second until it reaches SIZE, the balloon stalls or\n"
		"               --timeout SECONDS (default %d) pass; --no-wait: stop\n"
		"               once the daemon accepted the target\n"
		"  set          the VM's allocation for the memory-state policy:\n"
		"               --shares N (1..1000000, default 1000), --min SIZE\n"
		"               (reservation; 0: none), --max SIZE (limit; 0: its\n"
		"               size), --balloon off (the policy never balloons it,\n"
		"               it swaps it instead); others stay as they are\n"
		"  top          live per-VM view refreshed every -d SECONDS (default\n"
		"               2): state, free %%, budget, faults/s, swap-ins/s,\n"
		"               swap-outs/s, and each VM's granted, active, target,\n"
		"               ballooned, swapped and shared MiB; q quits; -n N\n"
		"               stops after N frames; not on a terminal: one plain\n"
		"               frame per interval\n"
		"  vm           every status figure of one VM, with its unit\n"
		"  lab          run a lab scenario (default case-study) with a private\n"
		"               daemon and lab guests: a baseline, then each policy,\n"
		"               a table of run times and stretch; the second form is\n"
		"               the quick live demo; `pagekeeper lab --help`\n"
		"Exit status: 0 done, 1 the daemon refused or failed the request,\n"
		"2 bad usage, 3 no pagekeeperd answers at the socket (not running,\n"
		"another --socket, or it died before replying); balloon also: 4 the\n"
		"balloon stalled short of the target (locked guest pages), 5 the\n"
		"guest had not reached the target when --timeout passed; every\n"
		"command: 6 no permission to use the socket (not in its group).\n",
		PK_DEFAULT_SOCKET, BALLOON_TIMEOUT_DEFAULT_S);
}

/* Connect to the daemon: the fd, or -PK_EXIT_USAGE / -PK_EXIT_UNREACHABLE
 * with a message (unless quiet). */
static int connect_daemon(const char *path, int quiet)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (!*path) {
		fprintf(stderr, "pagekeeper: empty socket path\n");
		return -PK_EXIT_USAGE;
	}
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "pagekeeper: socket path too long (%zu bytes, at "
			"most %zu): %s\n", strlen(path), sizeof(sa.sun_path) - 1,
			path);
		return -PK_EXIT_USAGE;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = errno;
		/* Issue 18: absent and not allowed are told apart. */
		int denied = err == EACCES || err == EPERM;
		if (!quiet && denied)
			fprintf(stderr, "pagekeeper: no permission to use "
				"pagekeeperd's socket %s: %s (its group, "
				"--socket-group, may use it)\n", path,
				strerror(err));
		else if (!quiet)
			fprintf(stderr,
				"pagekeeper: cannot reach pagekeeperd at %s: %s%s\n",
				path, strerror(err),
				err == ENOENT ? " (is pagekeeperd running? "
						"another --socket?)"
				: err == ECONNREFUSED ? " (pagekeeperd is not "
							"running: a stale socket)"
						      : "");
		if (fd >= 0)
			close(fd);
		return denied ? -PK_EXIT_DENIED : -PK_EXIT_UNREACHABLE;
	}
	return fd;
}

/* One request; 0 with the reply in *reply, or an exit status. */
static int request(const char *path, uint16_t type, char **reply, size_t *len,
		   int quiet)
{
	struct pk_msg_header hdr;
	struct timeval tv = { .tv_sec = 10 };
	char *buf;
	ssize_t n = -1;
	int fd = connect_daemon(path, quiet);

	if (fd < 0)
		return -fd;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	pk_msg_header_init(&hdr, type, sizeof(hdr));
	buf = malloc(STATUS_REPLY_MAX);
	if (!buf) {
		fprintf(stderr, "pagekeeper: out of memory\n");
		close(fd);
		return PK_EXIT_FAILED;
	}
	errno = 0;
	if (send(fd, &hdr, sizeof(hdr), MSG_NOSIGNAL) != sizeof(hdr) ||
	    (n = recv(fd, buf, STATUS_REPLY_MAX, 0)) <= 0) {
		if (!quiet)
			fprintf(stderr, "pagekeeper: no answer from pagekeeperd at "
				"%s: %s\n", path,
				n == 0 || !errno ? "it closed the connection"
						 : strerror(errno));
		free(buf);
		close(fd);
		return PK_EXIT_UNREACHABLE;
	}
	close(fd);
	*reply = buf;
	*len = (size_t)n;
	return 0;
}

static double num(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_double(v)
						     : 0.0;
}

static const char *str(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v)
						     : "?";
}

/*
 * Sharing per VM, then in total: saved is net of the canonical store
 * (its pages, metadata and candidate index); a VM's frames and store
 * cost are its part of its domain's, by the references it holds.
 */
static void print_sharing(json_object *vms, json_object *sh)
{
	size_t n = json_object_array_length(vms);

	printf("\n%-16s %-16s %10s %9s %11s %10s %11s %10s\n", "NAME",
	       "SHARE DOMAIN", "SHARED MiB", "ZERO MiB", "CANON PAGES",
	       "SAVED MiB", "SCAN MiB/s", "SCAN CPU %");
	for (size_t i = 0; i < n; i++) {
		json_object *vm = json_object_array_get_idx(vms, i);
		const char *dom = str(vm, "share_domain");
		printf("%-16s %-16s %10.1f %9.1f %11.0f %10.1f %11.1f %10.1f\n",
		       str(vm, "name"), dom[0] ? dom : "(itself)",
		       num(vm, "shared_mib"), num(vm, "zero_mib"),
		       num(vm, "canonical_frames"), num(vm, "saved_mib"),
		       num(vm, "scan_mib_per_s"), num(vm, "scan_cpu_percent"));
	}
	printf("sharing: %.1f MiB saved net = %.1f MiB zero + %.1f MiB shared "
	       "- %.1f MiB store (%.0f canonical pages)\n",
	       num(sh, "saved_mib"), num(sh, "zero_mib"), num(sh, "shared_mib"),
	       num(sh, "store_mib"), num(sh, "canonical_frames"));
}

/* A figure that may be null (absent): 1 with *v, or 0. */
static int figure(json_object *o, const char *key, double *v)
{
	json_object *x;

	if (!json_object_object_get_ex(o, key, &x) || !x)
		return 0;
	*v = json_object_get_double(x);
	return 1;
}

/* A figure into buf with its unit, "-" when absent. */
static const char *fig(char *buf, size_t len, json_object *o, const char *key,
		       const char *unit)
{
	double v;

	if (!figure(o, key, &v))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1f %s", v, unit);
	return buf;
}

/*
 * The balloons: per VM with a balloon channel, its link, target and the
 * guest's own figures as its balloon driver reports them ("-": not
 * reported yet, or not by this kind of balloon).
 */
static void print_balloons(json_object *vms)
{
	size_t n = json_object_array_length(vms);
	int header = 0;

	for (size_t i = 0; i < n; i++) {
		json_object *vm = json_object_array_get_idx(vms, i), *x;
		char t[32], a[32], tot[32], fr[32], av[32], pi[32], po[32], sh[32];
		double stalled;

		if (!strcmp(str(vm, "balloon"), "none"))
			continue;
		if (!header++)
			printf("\n%-16s %-8s %-12s %12s %12s %12s %12s %12s "
			       "%13s %13s %s\n", "NAME", "BALLOON", "LINK",
			       "TARGET", "ACTUAL", "GUEST TOTAL", "GUEST FREE",
			       "GUEST AVAIL", "PAGE-INS", "PAGE-OUTS",
			       "STALLED");
		if (figure(vm, "balloon_stalled", &stalled) && stalled)
			fig(sh, sizeof(sh), vm, "balloon_shortfall_mib",
			    "MiB short");
		else
			snprintf(sh, sizeof(sh), "%s",
				 figure(vm, "balloon_stalled", &stalled) ? "no"
									 : "-");
		printf("%-16s %-8s %-12s %12s %12s %12s %12s %12s %13s %13s %s\n",
		       str(vm, "name"), str(vm, "balloon"),
		       str(vm, "balloon_link"),
		       fig(t, sizeof(t), vm, "balloon_target_mib", "MiB"),
		       fig(a, sizeof(a), vm, "balloon_actual_mib", "MiB"),
		       fig(tot, sizeof(tot), vm, "guest_total_mib", "MiB"),
		       fig(fr, sizeof(fr), vm, "guest_free_mib", "MiB"),
		       fig(av, sizeof(av), vm, "guest_available_mib", "MiB"),
		       fig(pi, sizeof(pi), vm, "guest_pageins_per_s",
			   "pages/s"),
		       fig(po, sizeof(po), vm, "guest_pageouts_per_s",
			   "pages/s"),
		       sh);
		/* The bridge's last error, while it still matters: the
		 * link is not up, or the balloon stalled. */
		if (json_object_object_get_ex(vm, "balloon_why", &x) && x &&
		    json_object_get_string(x)[0] &&
		    (strcmp(str(vm, "balloon_link"), "ready") ||
		     (figure(vm, "balloon_stalled", &stalled) && stalled)))
			printf("  %s: %s\n", str(vm, "name"),
			       json_object_get_string(x));
	}
}

static void print_table(json_object *root)
{
	json_object *vms;
	size_t n;

	if (!json_object_object_get_ex(root, "vms", &vms) ||
	    !json_object_is_type(vms, json_type_array)) {
		fprintf(stderr, "pagekeeper: status has no VM list\n");
		return;
	}
	n = json_object_array_length(vms);
	printf("%zu VM(s); page table %d bytes per guest page\n", n,
	       (int)num(root, "page_table_bytes_per_page"));
	printf("%-16s %8s %11s %11s %9s %9s %10s %12s %10s %12s %11s\n", "NAME",
	       "PID", "CONFIG MiB", "RESIDENT MiB", "ZERO MiB", "SHARED MiB",
	       "SWAPPED MiB", "BALLOONED MiB", "FAULTS/s", "FAULTS",
	       "SWAPINS/s");
	for (size_t i = 0; i < n; i++) {
		json_object *vm = json_object_array_get_idx(vms, i);
		printf("%-16s %8.0f %11.1f %12.1f %9.1f %10.1f %11.1f %13.1f %10.0f %12.0f %11.0f\n",
		       str(vm, "name"), num(vm, "pid"), num(vm, "configured_mib"),
		       num(vm, "resident_mib"), num(vm, "zero_mib"),
		       num(vm, "shared_mib"), num(vm, "swapped_mib"),
		       num(vm, "ballooned_mib"), num(vm, "faults_per_s"),
		       num(vm, "faults_total"), num(vm, "swapins_per_s"));
	}
	print_balloons(vms);
	json_object *o, *direct;
	if (json_object_object_get_ex(root, "waiting_vms", &o) &&
	    json_object_array_length(o) > 0) {
		printf("waiting for their guests to reconnect after a restart:\n");
		for (size_t i = 0; i < json_object_array_length(o); i++) {
			json_object *w = json_object_array_get_idx(o, i);
			json_object *x;
			if (json_object_object_get_ex(w, "expired", &x) &&
			    json_object_get_boolean(x))
				printf("  %-16s pid %.0f: grace over, %.1f MiB "
				       "lost (memory errors if it comes back)\n",
				       str(w, "name"), num(w, "pid"),
				       num(w, "lost_mib"));
			else
				printf("  %-16s pid %.0f: %.1f MiB swapped, %.1f "
				       "MiB merged, kept %.0f s more\n",
				       str(w, "name"), num(w, "pid"),
				       num(w, "swapped_mib"), num(w, "shared_mib"),
				       num(w, "grace_left_s"));
		}
	}
	if (json_object_object_get_ex(root, "swap", &o))
		printf("swap file: %.0f of %.0f slots in use (%.1f of %.1f MiB), "
		       "%.0f more pages deduplicated onto them, %s I/O\n",
		       num(o, "slots_used"), num(o, "slots_total"),
		       num(o, "slots_used") / 256, num(o, "slots_total") / 256,
		       num(o, "slot_extra_refs"),
		       json_object_object_get_ex(o, "direct_io", &direct) &&
				       json_object_get_boolean(direct)
			       ? "O_DIRECT"
			       : "buffered");
	if (json_object_object_get_ex(root, "scan", &o))
		printf("sharing scanner: %.1f MiB/s (limit now %.0f MiB/s, "
		       "%.0f-%.0f MiB/s), %.1f %% of one CPU (limit %.0f %%)\n",
		       num(o, "mib_per_s"), num(o, "rate_now_mib_per_s"),
		       num(o, "rate_limit_mib_per_s"),
		       num(o, "rate_max_mib_per_s"), num(o, "cpu_percent"),
		       num(o, "cpu_limit_percent"));
	if (json_object_object_get_ex(root, "sharing", &o))
		print_sharing(vms, o);
}

/* Fetch the status; returns the JSON text inside *reply, or NULL with the
 * exit status in *rc. */
static const char *status_text(const char *sock, char **reply, int quiet,
			       int *rc)
{
	char reason[PK_PROTO_REASON_MAX];
	size_t len = 0;
	uint16_t type;

	*reply = NULL;
	*rc = request(sock, PK_MSG_STATUS, reply, &len, quiet);
	if (*rc)
		return NULL;
	*rc = PK_EXIT_FAILED;
	if (pk_msg_check_header(*reply, len, &type, reason, sizeof(reason)) < 0 ||
	    type != PK_MSG_STATUS_REPLY || (*reply)[len - 1] != '\0') {
		struct pk_reply_msg err;
		if (pk_reply_decode(*reply, len, &err) == 0)
			fprintf(stderr, "pagekeeper: daemon error: %s\n", err.reason);
		else
			fprintf(stderr, "pagekeeper: malformed status reply\n");
		free(*reply);
		*reply = NULL;
		return NULL;
	}
	return *reply + sizeof(struct pk_msg_header);
}

/* The parsed status, or NULL with the exit status in *rc. */
static json_object *status_root(const char *sock, int quiet, int *rc)
{
	char *reply;
	const char *json = status_text(sock, &reply, quiet, rc);
	json_object *root = json ? json_tokener_parse(json) : NULL;

	if (json && !root) {
		fprintf(stderr, "pagekeeper: status reply is not JSON\n");
		*rc = PK_EXIT_FAILED;
	}
	free(reply);
	return root;
}

json_object *pk_cli_status(const char *sock, int quiet)
{
	int rc;
	return status_root(sock, quiet, &rc);
}

json_object *pk_cli_status_rc(const char *sock, int quiet, int *rc)
{
	return status_root(sock, quiet, rc);
}

static int cmd_status(const char *sock, int as_json)
{
	char *reply;
	json_object *root;
	int rc;

	if (as_json) {
		const char *json = status_text(sock, &reply, 0, &rc);
		if (json)
			printf("%s\n", json);
		free(reply);
		return json ? PK_EXIT_OK : rc;
	}
	root = status_root(sock, 0, &rc);
	if (!root)
		return rc;
	print_table(root);
	json_object_put(root);
	return PK_EXIT_OK;
}

/*
 * Send a request whose reply comes when the work ends (RECLAIM, DRAIN) and
 * wait for it, calling progress (if any) once a second meanwhile.  The
 * reply's length, or -PK_EXIT_UNREACHABLE / -PK_EXIT_USAGE after a message.
 */
static ssize_t long_request(const char *sock, const void *msg, size_t len,
			    char *buf, size_t buf_len,
			    void (*progress)(const char *sock, const char *vm),
			    const char *vm, const char *doing)
{
	struct pollfd p = { .events = POLLIN };
	ssize_t n = -1;
	int fd = connect_daemon(sock, 0), k = 1;

	if (fd < 0)
		return fd;
	fprintf(stderr, "pagekeeper: %s ...\n", doing);
	p.fd = fd;
	errno = 0;
	if (send(fd, msg, len, MSG_NOSIGNAL) == (ssize_t)len) {
		while ((k = poll(&p, 1, progress ? 1000 : -1)) == 0)
			progress(sock, vm);
		if (k > 0)
			n = recv(fd, buf, buf_len, 0);
	}
	if (n <= 0) {
		fprintf(stderr, "pagekeeper: no answer from pagekeeperd at %s: "
			"%s\n", sock, n == 0 || !errno ? "it closed the connection"
						      : strerror(errno));
		n = -PK_EXIT_UNREACHABLE;
	}
	close(fd);
	return n;
}

/* The daemon's ERROR_REPLY instead of the reply: say why. */
static int refused(const char *what, const char *buf, ssize_t n)
{
	struct pk_reply_msg err;

	if (pk_reply_decode(buf, (size_t)n, &err) == 0)
		fprintf(stderr, "pagekeeper: %s refused: %s\n", what, err.reason);
	else
		fprintf(stderr, "pagekeeper: malformed %s reply\n", what);
	return PK_EXIT_FAILED;
}

static int cmd_reclaim(const char *sock, const char *vm, uint64_t mib)
{
	struct pk_reclaim_msg m;
	char buf[sizeof(struct pk_reclaim_reply) + 16];
	struct pk_reclaim_reply r;
	char doing[PK_PROTO_NAME_MAX + 64];
	uint16_t type;
	ssize_t n;

	if (strlen(vm) >= sizeof(m.vm_name)) {
		fprintf(stderr, "pagekeeper: reclaim: VM name longer than %zu "
			"bytes: %s\n", sizeof(m.vm_name) - 1, vm);
		return PK_EXIT_USAGE;
	}
	memset(&m, 0, sizeof(m));
	pk_msg_header_init(&m.hdr, PK_MSG_RECLAIM, sizeof(m));
	strcpy(m.vm_name, vm);
	m.bytes = mib << 20;
	snprintf(doing, sizeof(doing), "evicting %llu MiB of %s",
		 (unsigned long long)mib, vm);
	n = long_request(sock, &m, sizeof(m), buf, sizeof(buf), NULL, vm,
			 doing);
	if (n < 0)
		return (int)-n;
	if (pk_msg_check_header(buf, (size_t)n, &type, NULL, 0) == 0 &&
	    type == PK_MSG_RECLAIM_REPLY && n == sizeof(r)) {
		memcpy(&r, buf, sizeof(r));
		double ms = (double)r.elapsed_us / 1000.0;
		double mib_done = (double)(r.pages_swapped + r.pages_zero) / 256.0;
		printf("%s: %.1f MiB evicted in %.1f ms (%.0f MiB/s): %.1f MiB "
		       "written to swap, %.1f MiB zero pages, %.1f MiB kept "
		       "(written by the guest meanwhile)\n",
		       vm, mib_done, ms, ms > 0 ? mib_done / (ms / 1000.0) : 0.0,
		       (double)r.pages_swapped / 256.0,
		       (double)r.pages_zero / 256.0,
		       (double)r.pages_aborted / 256.0);
		if (r.status) {
			fprintf(stderr, "pagekeeper: reclaim stopped early: %s\n",
				r.reason);
			return PK_EXIT_FAILED;
		}
		return PK_EXIT_OK;
	}
	return refused("reclaim", buf, n);
}

/* One line of drain progress from the status: what is left, in MiB. */
static void drain_progress(const char *sock, const char *vm)
{
	json_object *root = pk_cli_status(sock, 1), *vms;

	if (!root)
		return;
	if (json_object_object_get_ex(root, "vms", &vms))
		for (size_t i = 0; i < json_object_array_length(vms); i++) {
			json_object *v = json_object_array_get_idx(vms, i);
			if (strcmp(str(v, "name"), vm) == 0)
				fprintf(stderr, "pagekeeper: %s: %.1f MiB swapped "
					"and %.1f MiB merged left\n", vm,
					num(v, "swapped_mib"),
					num(v, "shared_mib"));
		}
	json_object_put(root);
}

static int cmd_drain(const char *sock, const char *vm)
{
	struct pk_drain_msg m;
	char buf[sizeof(struct pk_drain_reply) + 16];
	struct pk_drain_reply r;
	char doing[PK_PROTO_NAME_MAX + 64];
	uint16_t type;
	ssize_t n;

	if (strlen(vm) >= sizeof(m.vm_name)) {
		fprintf(stderr, "pagekeeper: drain: VM name longer than %zu "
			"bytes: %s\n", sizeof(m.vm_name) - 1, vm);
		return PK_EXIT_USAGE;
	}
	memset(&m, 0, sizeof(m));
	pk_msg_header_init(&m.hdr, PK_MSG_DRAIN, sizeof(m));
	strcpy(m.vm_name, vm);
	snprintf(doing, sizeof(doing), "draining %s", vm);
	n = long_request(sock, &m, sizeof(m), buf, sizeof(buf), drain_progress,
			 vm, doing);
	if (n < 0)
		return (int)-n;
	if (pk_msg_check_header(buf, (size_t)n, &type, NULL, 0) == 0 &&
	    type == PK_MSG_DRAIN_REPLY && n == sizeof(r)) {
		memcpy(&r, buf, sizeof(r));
		printf("%s: %.1f MiB swapped in and %.1f MiB unshared in %.1f ms; "
		       "%.1f MiB lost (unreadable: the guest gets memory errors "
		       "there)\n", vm, (double)r.pages_swapped_in / 256.0,
		       (double)r.pages_unshared / 256.0,
		       (double)r.elapsed_us / 1000.0,
		       (double)r.pages_poisoned / 256.0);
		if (r.status) {
			fprintf(stderr, "pagekeeper: drain stopped early: %s\n",
				r.reason);
			return PK_EXIT_FAILED;
		}
		return r.pages_poisoned ? PK_EXIT_FAILED : PK_EXIT_OK;
	}
	return refused("drain", buf, n);
}

/* The VM's object in a status (a reference into root), or NULL. */
static json_object *status_vm(json_object *root, const char *vm)
{
	json_object *vms;

	if (!json_object_object_get_ex(root, "vms", &vms))
		return NULL;
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		json_object *v = json_object_array_get_idx(vms, i);
		if (strcmp(str(v, "name"), vm) == 0)
			return v;
	}
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Follow the balloon once a second from the status until the guest's
 * size is the target (within one page), its balloon reports it stalled,
 * or timeout_s pass: the exit status.
 */
static int balloon_wait(const char *sock, const char *vm, uint64_t target,
			unsigned timeout_s)
{
	double target_mib = (double)target / 1048576.0, t0 = now_s();

	for (;;) {
		int rc;
		json_object *root = status_root(sock, 0, &rc), *v;
		double actual = 0, stalled, shortfall = 0;
		int have;

		if (!root)
			return rc;
		v = status_vm(root, vm);
		if (!v) {
			fprintf(stderr, "pagekeeper: balloon: VM %s went away\n",
				vm);
			json_object_put(root);
			return PK_EXIT_FAILED;
		}
		have = figure(v, "balloon_actual_mib", &actual);
		if (figure(v, "balloon_stalled", &stalled) && stalled)
			figure(v, "balloon_shortfall_mib", &shortfall);
		else
			stalled = 0;
		json_object_put(root);
		if (have)
			printf("%s: %.1f MiB now, target %.1f MiB (%.0f s)\n", vm,
			       actual, target_mib, now_s() - t0);
		else
			printf("%s: size not reported yet, target %.1f MiB "
			       "(%.0f s)\n", vm, target_mib, now_s() - t0);
		fflush(stdout);
		if (have && (actual - target_mib) * 1048576.0 <= 4096.0 &&
		    (target_mib - actual) * 1048576.0 <= 4096.0) {
			printf("%s: reached the target, %.1f MiB\n", vm, actual);
			return PK_EXIT_OK;
		}
		if (stalled) {
			fprintf(stderr, "pagekeeper: balloon: %s stalled at %.1f "
				"MiB, %.1f MiB short of the target %.1f MiB "
				"(the guest cannot give more: locked pages)\n",
				vm, actual, shortfall, target_mib);
			return PK_EXIT_STALLED;
		}
		double left = t0 + timeout_s - now_s();
		if (left <= 0) {
			fprintf(stderr, "pagekeeper: balloon: %s not at the "
				"target %.1f MiB after %u s (%s)\n", vm,
				target_mib, timeout_s,
				have ? "still moving, or the guest is slow"
				     : "its size was never reported");
			return PK_EXIT_TIMEOUT;
		}
		usleep((useconds_t)((left < 1.0 ? left : 1.0) * 1e6));
	}
}

static int cmd_balloon(const char *sock, const char *vm, uint64_t target,
		       int wait, unsigned timeout_s)
{
	struct pk_balloon_msg m;
	struct pk_balloon_reply r;
	char buf[sizeof(struct pk_balloon_reply) + 16];
	char doing[PK_PROTO_NAME_MAX + 64];
	ssize_t n;

	if (pk_balloon_msg_encode(&m, vm, target) < 0) {
		fprintf(stderr, "pagekeeper: balloon: VM name longer than %zu "
			"bytes: %s\n", sizeof(m.vm_name) - 1, vm);
		return PK_EXIT_USAGE;
	}
	snprintf(doing, sizeof(doing), "balloon target of %s: %.1f MiB", vm,
		 (double)target / 1048576.0);
	n = long_request(sock, &m, sizeof(m), buf, sizeof(buf), NULL, vm,
			 doing);
	if (n < 0)
		return (int)-n;
	if (pk_balloon_reply_decode(buf, (size_t)n, &r) != 0)
		return refused("balloon", buf, n);
	if (r.status) {
		fprintf(stderr, "pagekeeper: balloon refused: %s (%s)\n",
			r.reason, strerror(-r.status));
		return PK_EXIT_FAILED;
	}
	if (r.actual_bytes)
		printf("%s: balloon target %.1f MiB accepted; the guest is %.1f "
		       "MiB now\n", vm, (double)r.target_bytes / 1048576.0,
		       (double)r.actual_bytes / 1048576.0);
	else
		printf("%s: balloon target %.1f MiB accepted; the guest's size "
		       "is not known yet\n", vm,
		       (double)r.target_bytes / 1048576.0);
	fflush(stdout);
	return wait ? balloon_wait(sock, vm, r.target_bytes, timeout_s)
		    : PK_EXIT_OK;
}

static int cmd_set(const char *sock, const char *vm, int64_t shares,
		   int64_t min_bytes, int64_t max_bytes, int no_balloon)
{
	struct pk_set_msg m;
	struct pk_reply_msg r;
	char buf[sizeof(struct pk_reply_msg) + 16];
	char doing[PK_PROTO_NAME_MAX + 64];
	uint16_t type;
	ssize_t n;

	if (pk_set_msg_encode(&m, vm, shares, min_bytes, max_bytes,
			      no_balloon) < 0) {
		fprintf(stderr, "pagekeeper: set: VM name longer than %zu "
			"bytes: %s\n", sizeof(m.vm_name) - 1, vm);
		return PK_EXIT_USAGE;
	}
	snprintf(doing, sizeof(doing), "setting the allocation of %s", vm);
	n = long_request(sock, &m, sizeof(m), buf, sizeof(buf), NULL, vm,
			 doing);
	if (n < 0)
		return (int)-n;
	if (pk_msg_check_header(buf, (size_t)n, &type, NULL, 0) ||
	    type != PK_MSG_SET_REPLY || pk_reply_decode(buf, (size_t)n, &r))
		return refused("set", buf, n);
	if (r.status) {
		fprintf(stderr, "pagekeeper: set refused: %s (%s)\n", r.reason,
			strerror(-r.status));
		return PK_EXIT_FAILED;
	}
	printf("%s: allocation set; `pagekeeper status --json` shows it\n", vm);
	return PK_EXIT_OK;
}

/* --timeout SECONDS: a whole number from 1 to a day. */
static int parse_seconds(const char *s, unsigned *out)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v == 0 || v > 86400)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* --mib N: a positive whole number of MiB whose bytes fit in 64 bits. */
static int parse_mib(const char *s, uint64_t *mib)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*mib = strtoull(s, &end, 10);
	return errno || *end || *mib == 0 || *mib > (UINT64_MAX >> 20) ? -1 : 0;
}

int main(int argc, char **argv)
{
	const char *sock = PK_DEFAULT_SOCKET;
	int i = 1;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
			sock = argv[++i];
		} else if (strcmp(argv[i], "--socket") == 0) {
			fprintf(stderr, "pagekeeper: --socket needs a PATH\n");
			usage(stderr);
			return PK_EXIT_USAGE;
		} else if (strncmp(argv[i], "--socket=", 9) == 0) {
			sock = argv[i] + 9;
		} else if (strcmp(argv[i], "--help") == 0 ||
			   strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return PK_EXIT_OK;
		} else {
			fprintf(stderr, "pagekeeper: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return PK_EXIT_USAGE;
		}
	}
	if (i >= argc) {
		fprintf(stderr, "pagekeeper: missing command\n");
		usage(stderr);
		return PK_EXIT_USAGE;
	}
	if (strcmp(argv[i], "status") == 0) {
		int as_json = 0;
		for (i++; i < argc; i++) {
			if (strcmp(argv[i], "--json") == 0) {
				as_json = 1;
			} else {
				fprintf(stderr, "pagekeeper: status: unknown argument '%s'\n",
					argv[i]);
				usage(stderr);
				return PK_EXIT_USAGE;
			}
		}
		return cmd_status(sock, as_json);
	}
	if (strcmp(argv[i], "reclaim") == 0) {
		uint64_t mib = 0;
		const char *vm = NULL;
		for (i++; i < argc; i++) {
			if (strcmp(argv[i], "--mib") == 0 && i + 1 < argc) {
				if (parse_mib(argv[++i], &mib)) {
					fprintf(stderr, "pagekeeper: reclaim: --mib "
						"'%s': want a positive whole number "
						"of MiB, at most %llu\n", argv[i],
						(unsigned long long)(UINT64_MAX >> 20));
					return PK_EXIT_USAGE;
				}
			} else if (strcmp(argv[i], "--mib") == 0) {
				fprintf(stderr, "pagekeeper: reclaim: --mib needs a "
					"number of MiB\n");
				usage(stderr);
				return PK_EXIT_USAGE;
			} else if (!vm && argv[i][0] != '-') {
				vm = argv[i];
			} else {
				fprintf(stderr, "pagekeeper: reclaim: unexpected "
					"argument '%s'\n", argv[i]);
				usage(stderr);
				return PK_EXIT_USAGE;
			}
		}
		if (!vm || !mib) {
			fprintf(stderr, "pagekeeper: reclaim needs VM and --mib N\n");
			usage(stderr);
			return PK_EXIT_USAGE;
		}
		return cmd_reclaim(sock, vm, mib);
	}
	if (strcmp(argv[i], "drain") == 0) {
		if (i + 2 != argc || argv[i + 1][0] == '-') {
			fprintf(stderr, "pagekeeper: drain needs exactly one VM\n");
			usage(stderr);
			return PK_EXIT_USAGE;
		}
		return cmd_drain(sock, argv[i + 1]);
	}
	if (strcmp(argv[i], "balloon") == 0) {
		const char *vm = NULL, *size = NULL, *why;
		unsigned timeout_s = BALLOON_TIMEOUT_DEFAULT_S;
		uint64_t target = 0;
		int wait = 1;
		for (i++; i < argc; i++) {
			if (strcmp(argv[i], "--target") == 0 && i + 1 < argc) {
				size = argv[++i];
			} else if (strcmp(argv[i], "--timeout") == 0 &&
				   i + 1 < argc) {
				if (parse_seconds(argv[++i], &timeout_s)) {
					fprintf(stderr, "pagekeeper: balloon: "
						"--timeout '%s': want a whole "
						"number of seconds from 1 to "
						"86400\n", argv[i]);
					return PK_EXIT_USAGE;
				}
			} else if (strcmp(argv[i], "--no-wait") == 0) {
				wait = 0;
			} else if (!vm && argv[i][0] != '-') {
				vm = argv[i];
			} else {
				fprintf(stderr, "pagekeeper: balloon: unexpected "
					"argument '%s'%s\n", argv[i],
					!strcmp(argv[i], "--target") ||
							!strcmp(argv[i], "--timeout")
						? " (it needs a value)"
						: "");
				usage(stderr);
				return PK_EXIT_USAGE;
			}
		}
		if (!vm || !size) {
			fprintf(stderr, "pagekeeper: balloon needs VM and "
				"--target SIZE\n");
			usage(stderr);
			return PK_EXIT_USAGE;
		}
		why = pk_size_parse(size, &target);
		if (!why && target == 0)
			why = "a guest cannot keep 0 bytes";
		if (why) {
			fprintf(stderr, "pagekeeper: balloon: --target '%s': %s "
				"(want a size such as 512M or 2G: the memory "
				"the guest keeps)\n", size, why);
			return PK_EXIT_USAGE;
		}
		return cmd_balloon(sock, vm, target, wait, timeout_s);
	}
	if (strcmp(argv[i], "set") == 0) {
		const char *vm = NULL, *why;
		int64_t shares = -1, mn = -1, mx = -1;
		int no_balloon = -1, any = 0;
		for (i++; i < argc; i++) {
			const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
			uint64_t v;
			char *end;
			if (!strcmp(opt, "--shares") && val) {
				errno = 0;
				long long s = strtoll(val, &end, 10);
				if (errno || *end || end == val || s < 1 ||
				    s > PK_PROTO_SHARES_MAX) {
					fprintf(stderr, "pagekeeper: set: --shares "
						"'%s': want 1..%u\n", val,
						PK_PROTO_SHARES_MAX);
					return PK_EXIT_USAGE;
				}
				shares = s;
			} else if ((!strcmp(opt, "--min") || !strcmp(opt, "--max")) &&
				   val) {
				why = pk_size_parse(val, &v);
				if (!why && v % 4096)
					why = "not a whole number of 4 KiB pages";
				if (why || v > INT64_MAX) {
					fprintf(stderr, "pagekeeper: set: %s '%s': %s "
						"(want a size such as 512M, or 0)\n",
						opt, val, why ? why : "too large");
					return PK_EXIT_USAGE;
				}
				*(opt[3] == 'i' ? &mn : &mx) = (int64_t)v;
			} else if (!strcmp(opt, "--balloon") && val &&
				   (!strcmp(val, "on") || !strcmp(val, "off"))) {
				no_balloon = !strcmp(val, "off");
			} else if (!vm && opt[0] != '-') {
				vm = opt;
				continue;
			} else {
				fprintf(stderr, "pagekeeper: set: unexpected "
					"argument '%s'%s\n", opt,
					opt[0] == '-' && !val ? " (it needs a value)" :
					!strcmp(opt, "--balloon") ? " (want on or off)" : "");
				usage(stderr);
				return PK_EXIT_USAGE;
			}
			i++;
			any = 1;
		}
		if (!vm || !any) {
			fprintf(stderr, "pagekeeper: set needs VM and at least one of "
				"--shares, --min, --max, --balloon\n");
			usage(stderr);
			return PK_EXIT_USAGE;
		}
		return cmd_set(sock, vm, shares, mn, mx, no_balloon);
	}
	if (strcmp(argv[i], "lab") == 0)
		return pk_cli_lab(argc - i, argv + i);
	if (strcmp(argv[i], "advise") == 0)	/* issue 16 (advise.c) */
		return pk_cli_advise(sock, argc - i, argv + i);
	/* Issue 18: the live view and one VM in detail (top.c). */
	if (strcmp(argv[i], "top") == 0)
		return pk_cli_top(sock, argc - i, argv + i);
	if (strcmp(argv[i], "vm") == 0)
		return pk_cli_vm(sock, argc - i, argv + i);
	fprintf(stderr, "pagekeeper: unknown command '%s'\n", argv[i]);
	usage(stderr);
	return PK_EXIT_USAGE;
}
