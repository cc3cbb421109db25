/*
 * pagekeeperd - the pagekeeper daemon.
 *
 *   pagekeeperd [--socket PATH] [--state-dir DIR] [--budget SIZE]
 *               [--swap-size SIZE] [--swap-readahead PAGES] [--scan-rate SIZE]
 *               [--scan-rate-max SIZE] [--scan-cpu PERCENT]
 *               [--share-stable-scans N]
 *               [--share-domain VM=DOMAIN ...]
 *               [--fault-around PAGES] [--foreground] [--quiet]
 *               [--metrics-listen ADDR:PORT|unix:PATH]
 *
 *   pagekeeperd --check-config FILE
 *
 * Reads the configuration file (--config FILE, else the default one when
 * it exists), its flags over it (tools/daemon_config.h: one key per
 * flag), prepares the state directory and runs the engine.  Without
 * --foreground it forks, and the parent exits 0 only once the child
 * listens on the socket, so `pagekeeperd && pagekeeper status` never
 * races.
 *
 * Under systemd (pagekeeperd.service, Type=notify, --foreground) it
 * says READY=1 once the socket listens and the run dir is replayed,
 * keeps STATUS= up to date, and pings WATCHDOG=1 from the engine's 1 s
 * tick: a loop that hangs misses the pings and systemd restarts the
 * daemon, which loses no guest page (state.h).  Without NOTIFY_SOCKET
 * none of that happens.  With --metrics-listen (issue 18) it serves GET
 * /metrics from the engine's loop (engine/metrics.h).  SIGHUP reads the
 * file again: the state thresholds, idle tax, victims, swap-write budget
 * and [vm NAME] sections change live; every other changed key is logged
 * as needing a restart.
 */
#include "engine/engine.h"
#include "engine/policy.h"
#include "engine/state.h"
#include "engine/client/pagekeeper-client.h"
#include "engine/protocol.h"
#include "tools/common/size_parse.h"
#include "tools/daemon_config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#define DEFAULT_STATE_DIR "/var/lib/pagekeeper"
#ifndef PK_DEFAULT_CONFIG
#define PK_DEFAULT_CONFIG "/etc/pagekeeper/pagekeeper.conf"
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pagekeeperd [--config FILE] [--socket PATH] [--state-dir DIR]\n"
		"                   [--run-dir DIR]\n"
		"                   [--restart-grace SECONDS] [--volatile-state]\n"
		"                   [--budget SIZE | --cgroup NAME] [--policy KIND]\n"
		"                   [--state-thresholds S,H,L,HYST] [--idle-tax TAU]\n"
		"                   [--victims random|cold] [--swap-write-budget SIZE/PERIOD]\n"
		"                   [--swap-size SIZE] [--swap-readahead PAGES]\n"
		"                   [--scan-rate SIZE] [--scan-rate-max SIZE]\n"
		"                   [--scan-cpu PERCENT] [--share-stable-scans N]\n"
		"                   [--share-domain VM=DOMAIN ...]\n"
		"                   [--vm NAME:KEY=VALUE[,...] ...]\n"
		"                   [--fault-around PAGES] [--foreground] [--quiet]\n"
		"                   [--metrics-listen ADDR:PORT|unix:PATH]\n"
		"       pagekeeperd --check-config FILE\n"
		"  --config FILE         read the settings from this INI file;\n"
		"                        every flag below is a key there, and a\n"
		"                        flag overrides it (default: %s,\n"
		"                        when it exists)\n"
		"  --check-config FILE   check FILE and exit: 0 when it is good,\n"
		"                        %d naming FILE:LINE and the key when it\n"
		"                        is not, %d when it cannot be read\n"
		"  --socket PATH         control socket (default %s)\n"
		"  --state-dir DIR       the swap file, on disk (default %s)\n"
		"  --run-dir DIR         VM records and canonical copies, best\n"
		"                        on tmpfs; they outlive the daemon, so a\n"
		"                        restart loses no guest page (default:\n"
		"                        the socket's directory)\n"
		"  --restart-grace SECONDS  after a restart, how long the pages of\n"
		"                        a VM whose guest has not reconnected are\n"
		"                        kept, 1..86400 (default %u)\n"
		/* issue 17: VM name reservations (engine/state.h) */
		"  --name-reserve SECONDS  how long a VM's name stays its\n"
		"                        owner's after the VM went, so no other\n"
		"                        uid takes it, 0..2592000 (default 3600)\n"
		"  --volatile-state      keep VM records and canonical copies in\n"
		"                        this process's memory: a restart loses\n"
		"                        every swapped and merged page (the\n"
		"                        benchmarks' anchor; not for production)\n"
		"  --budget SIZE         machine memory for guests, K/M/G suffix:\n"
		"                        free = SIZE - the guests' resident pages\n"
		"                        - the daemon's own memory (the lab)\n"
		"  --cgroup NAME         without --budget: free memory is the\n"
		"                        limit - usage of this memory cgroup (v1\n"
		"                        or v2, e.g. machine.slice); default: the\n"
		"                        host's MemAvailable\n"
		"  --policy KIND         esx (default: balloon in soft, swap random\n"
		"                        pages in hard, stall in low), swap-only,\n"
		"                        balloon-only (MoM's rules), manual (only\n"
		"                        pagekeeper reclaim / balloon act)\n"
		"  --state-thresholds S,H,L,HYST  free %% below which the state is\n"
		"                        soft, hard, low, and the hysteresis %% to\n"
		"                        go back up (default 6,4,2,1)\n"
		"  --idle-tax TAU        idle memory tax rate, 0 <= TAU < 1\n"
		"                        (default 0.75)\n"
		"  --victims random|cold  which pages host swapping takes: random,\n"
		"                        as ESX (default), or cold: pages the guest\n"
		"                        has not written for 2-4 s first (writes are\n"
		"                        tracked while a VM may be evicted, one\n"
		"                        extra fault per page written per 2 s; a page\n"
		"                        only read counts as cold); a reload\n"
		"                        applies a change\n"
		"  --swap-write-budget SIZE/PERIOD  most bytes the policy evicts\n"
		"                        per period (s, m, h or d), e.g. 550M/d;\n"
		"                        then it prefers balloon and stall\n"
		"  --swap-size SIZE      swap file in the state dir (default 2G;\n"
		"                        0: no host swapping)\n"
		"  --swap-readahead PAGES  most pages read per swap-in fault when\n"
		"                        the guest reads sequentially, 1..%u\n"
		"                        (default %u; 1: no readahead)\n"
		"  --scan-rate SIZE      sharing scanner: bytes of guest RAM read\n"
		"                        per second, K/M/G (default %lluM; 0: off)\n"
		"  --scan-rate-max SIZE  its rate while it finds pages it has not\n"
		"                        seen yet (new or just stable), reached\n"
		"                        by doubling each second (default %lluM;\n"
		"                        at least --scan-rate)\n"
		"  --scan-cpu PERCENT    the scanner's share of one core, on\n"
		"                        average, 1..100 (default %u)\n"
		"  --share-stable-scans N  scans (>= 1 s apart) a page must keep\n"
		"                        its content before it is merged or\n"
		"                        zero-reclaimed, 0..%u (default %u)\n"
		"  --share-domain VM=DOMAIN  put VM in sharing DOMAIN whatever it\n"
		"                        registers with (repeatable); non-zero\n"
		"                        pages merge only within a domain, and a\n"
		"                        VM with no domain shares only with itself\n"
		"  --vm NAME:KEY=VALUE[,...]  the admin's settings for VM NAME,\n"
		"                        applied when it registers (repeatable):\n"
		"                        shares=N (1..1000000), min=SIZE,\n"
		"                        max=SIZE, balloon=on|off; in the file,\n"
		"                        a [vm NAME] section; they override what\n"
		"                        the guest registers with, pagekeeper set\n"
		"                        overrides them (across restarts too) until\n"
		"                        a reload or start changes the section\n"
		"  --fault-around PAGES  pages resolved per sequential first-touch\n"
		"                        fault, 1..%u (default %u)\n"
		"  --test-swap-eio KIND:AFTER:COUNT  tests only: after AFTER good\n"
		"                        pages, COUNT pages of swap I/O of KIND\n"
		"                        (write, read or any) fail with EIO, a\n"
		"                        stand-in for a failing disk\n"
		"  --test-kill-on-remove  tests only: SIGKILL itself right\n"
		"                        after reading a guest's REMOVE event,\n"
		"                        before recording it (a window no outside\n"
		"                        kill can hit on purpose)\n"
		"  --foreground          do not fork; log to stderr (and, under\n"
		"                        systemd, tell it READY=1 and WATCHDOG=1)\n"
		"  --socket-group NAME   the control socket's group: mode 0660\n"
		"                        (default pagekeeper when that group\n"
		"                        exists, else root's group)\n"
		"  --admin-group NAME    its members, like root, may act on every\n"
		"                        VM; others only on their own (default:\n"
		"                        root only)\n"
		"  --share-domain-allow DOMAIN:UID[,...]  let uid's VMs join\n"
		"                        sharing DOMAIN as named; otherwise a\n"
		"                        user's DOMAIN is its own, u<UID>.DOMAIN\n"
		"  --quiet               log nothing but errors at start-up\n"
		"  --metrics-listen ADDR:PORT|unix:PATH  serve Prometheus\n"
		"                        metrics at GET /metrics on a loopback\n"
		"                        TCP port (127.0.0.1:9187, [::1]:9187)\n"
		"                        or a UNIX socket (mode 0660 with the\n"
		"                        admin group, else 0600); [metrics]\n"
		"                        listen in the file (default: none)\n",
		PK_DEFAULT_CONFIG, PK_EXIT_CONFIG, PK_EXIT_CONFIG_READ,
		PK_DEFAULT_SOCKET, DEFAULT_STATE_DIR, PK_RESTART_GRACE_DEFAULT_S,
		PK_SWAP_READAHEAD_LIMIT,
		PK_SWAP_READAHEAD_DEFAULT,
		(unsigned long long)(PK_SCAN_DEFAULT_BYTES_PER_S >> 20),
		(unsigned long long)(PK_SCAN_DEFAULT_MAX_BYTES_PER_S >> 20),
		PK_SCAN_CPU_DEFAULT,
		PK_SHARE_STABLE_LIMIT, PK_SHARE_STABLE_DEFAULT,
		PK_FAULT_AROUND_LIMIT,
		PK_FAULT_AROUND_DEFAULT);
}

/* mkdir -p with mode 0700 for the last component. */
static int make_dirs(const char *path, mode_t mode)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static char *dir_of(const char *path)
{
	char *d = strdup(path);
	char *slash = d ? strrchr(d, '/') : NULL;

	if (slash && slash != d)
		*slash = '\0';
	else if (slash)
		slash[1] = '\0';
	else if (d)
		strcpy(d, ".");
	return d;
}

/* What pagekeeperd keeps between main() and its hooks. */
struct daemon {
	struct pk_daemon_config conf;
	const char *config_path; /* NULL: no file */
	int argc;
	char **argv;
	struct option opts[PK_DCFG_MAX_KEYS + 8];
	int notify;		/* NOTIFY_SOCKET is set: systemd listens */
	int watchdog;		/* WATCHDOG_USEC: ping every tick */
	char status[160];	/* the last STATUS= sent */
};

enum { OPT_CONFIG = 1, OPT_CHECK, OPT_FOREGROUND, OPT_HELP };

/*
 * getopt over argv.  pass 1 takes the options main() handles and leaves
 * the table's; pass 2 (after the file is read, and again on each reload)
 * applies the table's flags over conf.  Returns 0, or an exit code.
 */
static int parse_args(struct daemon *d, struct pk_daemon_config *conf,
		      int pass, const char **config, const char **check,
		      int *foreground)
{
	int c;

	optind = 0; /* GNU: start over */
	opterr = pass == 1;
	while ((c = getopt_long(d->argc, d->argv, "", d->opts, NULL)) != -1) {
		if (pass == 2) {
			if (c >= PK_DCFG_OPT_BASE &&
			    pk_dcfg_set_flag(conf, c, optarg) < 0)
				return PK_EXIT_USAGE;
			continue;
		}
		switch (c) {
		case OPT_CONFIG: *config = optarg; break;
		case OPT_CHECK: *check = optarg; break;
		case OPT_FOREGROUND: *foreground = 1; break;
		case OPT_HELP: usage(stdout); exit(0);
		default:
			if (c >= PK_DCFG_OPT_BASE)
				break;
			usage(stderr);
			return PK_EXIT_USAGE;
		}
	}
	if (optind != d->argc) {
		fprintf(stderr, "pagekeeperd: unexpected argument '%s'\n",
			d->argv[optind]);
		usage(stderr);
		return PK_EXIT_USAGE;
	}
	return 0;
}

/* The file, then the flags over it, then the checks: 0 or an exit code. */
static int build_config(struct daemon *d, struct pk_daemon_config *conf,
			char *err, size_t errlen)
{
	int r;

	pk_dcfg_init(conf);
	err[0] = '\0';
	if (d->config_path &&
	    (r = pk_dcfg_read_file(conf, d->config_path, err, errlen)) < 0)
		return r == -EINVAL ? PK_EXIT_CONFIG : PK_EXIT_CONFIG_READ;
	if ((r = parse_args(d, conf, 2, NULL, NULL, NULL)) != 0)
		return r;
	if (pk_dcfg_finish(conf, err, errlen) < 0)
		return d->config_path ? PK_EXIT_CONFIG : PK_EXIT_USAGE;
	return 0;
}

/* One line for systemctl status: the VMs and the memory state. */
static void status_line(struct pk_engine *e, char *buf, size_t len)
{
	const struct pk_policy *p = e->policy;

	snprintf(buf, len, "%u VMs, %u waiting for their guests; memory "
		 "state %s, %.0f%% free", e->n_vms, e->n_waiting,
		 p ? pk_mem_state_name(p->states.state) : "?",
		 p ? p->last.free_pct : 0.0);
}

/*
 * The engine's tick: WATCHDOG=1 (the loop turns, or systemd restarts the
 * daemon) and STATUS= when it changed.
 */
static void tick_hook(struct pk_engine *e, void *arg)
{
	struct daemon *d = arg;
	char st[sizeof(d->status)];
	int changed;

	if (!d->notify)
		return;
	status_line(e, st, sizeof(st));
	changed = strcmp(st, d->status) != 0;
	if (changed)
		memcpy(d->status, st, sizeof(st));
	if (d->watchdog || changed)
		sd_notifyf(0, "%s%s%s", d->watchdog ? "WATCHDOG=1\n" : "",
			   changed ? "STATUS=" : "", changed ? st : "");
}

static void log_line(void *arg, const char *line)
{
	pk_log_prio(arg, strstr(line, "needs a restart") ? LOG_NOTICE : LOG_INFO,
		    "%s", line); /* arg: the engine's struct pk_log */
}

/* "<3>" when stderr is the journal: an error's priority (engine.h). */
static const char *err_prio(void)
{
	return pk_log_is_journal(stderr) ? "<3>" : "";
}

/* SIGHUP: read the file again; apply what can change live. */
static void reload_hook(struct pk_engine *e, void *arg)
{
	struct daemon *d = arg;
	struct pk_daemon_config next;
	char err[512];
	int r, policy_changed;

	if (!d->config_path) {
		pk_log(&e->log, "SIGHUP: no configuration file; nothing to reload");
		return;
	}
	sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration");
	r = build_config(d, &next, err, sizeof(err));
	if (r) {
		pk_log_prio(&e->log, LOG_WARNING, "reload: %s; keeping the running "
			    "configuration", err[0] ? err : "bad flags");
	} else if (!pk_dcfg_apply_live(&d->conf, &next, &policy_changed,
				       log_line, &e->log)) {
		pk_log(&e->log, "reload: %s: nothing changed", d->config_path);
	} else if (policy_changed) {
		pk_policy_set_live(e, &d->conf.policy);
	}
	pk_dcfg_fini(&next);
	d->status[0] = '\0';
	sd_notify(0, "READY=1");
}

static int run(struct daemon *d, int foreground)
{
	struct pk_engine_config *cfg = &d->conf.cfg;
	struct pk_engine engine;
	int err = -ENOMEM, ready[2] = { -1, -1 };
	uint64_t wd_usec = 0;
	char *sock_dir = dir_of(cfg->socket_path);

	if (!cfg->run_dir)
		cfg->run_dir = sock_dir;
	if (!sock_dir || (err = make_dirs(sock_dir, 0755)) < 0 ||
	    (err = make_dirs(cfg->state_dir, 0700)) < 0 ||
	    (err = make_dirs(cfg->run_dir, 0700)) < 0) {
		fprintf(stderr, "%spagekeeperd: cannot create %s, %s or %s: "
			"%s\n", err_prio(), sock_dir ? sock_dir : "?", cfg->state_dir,
			cfg->run_dir ? cfg->run_dir : "?", strerror(-err));
		free(sock_dir);
		return 1;
	}

	if (!foreground) {
		if (pipe(ready) < 0) {
			perror("pagekeeperd: pipe");
			free(sock_dir);
			return 1;
		}
		pid_t pid = fork();
		if (pid < 0) {
			perror("pagekeeperd: fork");
			free(sock_dir);
			return 1;
		}
		if (pid > 0) {
			char ok = 0;
			close(ready[1]);
			free(sock_dir);
			if (read(ready[0], &ok, 1) == 1 && ok == 'R') {
				printf("pagekeeperd: running as pid %d on %s\n",
				       (int)pid, cfg->socket_path);
				return 0;
			}
			waitpid(pid, NULL, 0);
			return 1;
		}
		close(ready[0]);
		setsid();
	}

	d->notify = getenv("NOTIFY_SOCKET") != NULL;
	d->watchdog = sd_watchdog_enabled(0, &wd_usec) > 0;
	cfg->tick_hook = tick_hook;
	cfg->reload_hook = reload_hook;
	cfg->hook_arg = d;
	sd_notify(0, "STATUS=opening the state and replaying the VM records");
	err = pk_engine_init(&engine, cfg);
	if (err) {
		fprintf(stderr, "%spagekeeperd: cannot start on %s: %s\n",
			err_prio(), cfg->socket_path,
			err == -EADDRINUSE ? "another daemon is listening there"
			: err == -EBUSY	   ? "another daemon holds its directories"
					   : strerror(-err));
		sd_notifyf(0, "STATUS=cannot start on %s: %s\nERRNO=%d",
			   cfg->socket_path, strerror(-err), -err);
		pk_engine_fini(&engine);
		free(sock_dir);
		return 1;
	}
	/* Issue 18: GET /metrics on the engine's loop (engine/metrics.h). */
	if (cfg->metrics_listen &&
	    (err = pk_metrics_start(&engine, cfg->metrics_listen)) < 0) {
		fprintf(stderr, "%spagekeeperd: cannot serve metrics on %s: %s\n",
			err_prio(), cfg->metrics_listen, strerror(-err));
		pk_engine_fini(&engine);
		free(sock_dir);
		return 1;
	}
	if (!d->conf.quiet)
		pk_log(&engine.log, "listening on %s, state in %s and %s, "
		       "fault-around %u pages, swap readahead %u pages%s%s",
		       cfg->socket_path, cfg->state_dir, cfg->run_dir,
		       cfg->fault_around_max, cfg->swap_readahead_max,
		       d->config_path ? ", configuration " : "",
		       d->config_path ? d->config_path : "");
	if (d->watchdog && wd_usec < 2000000)
		pk_log_prio(&engine.log, LOG_WARNING, "systemd watchdog every %llu ms: below the "
		       "2000 ms two ticks need, expect restarts",
		       (unsigned long long)(wd_usec / 1000));
	/* The socket listens and the replay is done. */
	status_line(&engine, d->status, sizeof(d->status));
	sd_notifyf(0, "READY=1\nSTATUS=%s", d->status);
	if (ready[1] >= 0) {
		(void)!write(ready[1], "R", 1);
		close(ready[1]);
	}
	err = pk_engine_run(&engine);
	sd_notify(0, "STOPPING=1\nSTATUS=stopping: the VMs' state stays for "
		  "the next daemon");
	pk_metrics_stop(&engine); /* issue 18 */
	pk_engine_fini(&engine);
	free(sock_dir);
	return err ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option own[] = {
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "check-config", required_argument, NULL, OPT_CHECK },
		{ "foreground", no_argument, NULL, OPT_FOREGROUND },
		{ "help", no_argument, NULL, OPT_HELP },
	};
	static struct daemon d;
	const char *config = NULL, *check = NULL;
	char err[512], *abs = NULL;
	int foreground = 0, r;
	size_t n;

	d.argc = argc;
	d.argv = argv;
	n = pk_dcfg_options(d.opts, PK_DCFG_MAX_KEYS);
	memcpy(&d.opts[n], own, sizeof(own));
	r = parse_args(&d, NULL, 1, &config, &check, &foreground);
	if (r)
		return r;
	if (check) {
		/* Only the file: exit 0 when pagekeeperd would start on it. */
		struct pk_daemon_config c;
		pk_dcfg_init(&c);
		r = pk_dcfg_read_file(&c, check, err, sizeof(err));
		if (r == 0 && pk_dcfg_finish(&c, err, sizeof(err)) < 0) {
			fprintf(stderr, "pagekeeperd: %s: %s\n", check, err);
			pk_dcfg_fini(&c);
			return PK_EXIT_CONFIG;
		}
		pk_dcfg_fini(&c);
		if (r == 0) {
			printf("pagekeeperd: %s: ok\n", check);
			return 0;
		}
		fprintf(stderr, "pagekeeperd: %s\n", err);
		return r == -EINVAL ? PK_EXIT_CONFIG : PK_EXIT_CONFIG_READ;
	}
	/* The default file only when it is there; a given one must be. */
	if (!config && access(PK_DEFAULT_CONFIG, F_OK) == 0)
		config = PK_DEFAULT_CONFIG;
	if (config)
		d.config_path = abs = realpath(config, NULL);
	if (config && !abs)
		d.config_path = config; /* build_config says why */
	r = build_config(&d, &d.conf, err, sizeof(err));
	if (r) {
		if (err[0])
			fprintf(stderr, "%spagekeeperd: %s%s\n", err_prio(),
				r == PK_EXIT_USAGE ? "bad flags: " : "", err);
		pk_dcfg_fini(&d.conf);
		free(abs);
		return r;
	}
	r = run(&d, foreground);
	pk_dcfg_fini(&d.conf);
	free(abs);
	return r;
}
