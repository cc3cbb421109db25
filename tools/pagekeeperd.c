/*
 * pagekeeperd - the pagekeeper daemon.
 *
 *   pagekeeperd [--socket PATH] [--state-dir DIR] [--budget SIZE]
 *               [--swap-size SIZE] [--swap-readahead PAGES] [--scan-rate SIZE]
 *               [--scan-rate-max SIZE] [--scan-cpu PERCENT]
 *               [--share-stable-scans N]
 *               [--share-domain VM=DOMAIN ...]
 *               [--fault-around PAGES] [--foreground] [--quiet]
 *
 * Parses options, prepares the state directory and runs the engine.
 * Without --foreground it forks, and the parent exits 0 only once the
 * child listens on the socket, so `pagekeeperd && pagekeeper status`
 * never races.
 */
#include "engine/engine.h"
#include "engine/policy.h"
#include "engine/state.h"
#include "engine/client/pagekeeper-client.h"
#include "engine/protocol.h"
#include "tools/common/size_parse.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_STATE_DIR "/var/lib/pagekeeper"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pagekeeperd [--socket PATH] [--state-dir DIR] [--run-dir DIR]\n"
		"                   [--restart-grace SECONDS] [--volatile-state]\n"
		"                   [--budget SIZE | --cgroup NAME] [--policy KIND]\n"
		"                   [--state-thresholds S,H,L,HYST] [--idle-tax TAU]\n"
		"                   [--victims random|cold] [--swap-write-budget SIZE/PERIOD]\n"
		"                   [--swap-size SIZE] [--swap-readahead PAGES]\n"
		"                   [--scan-rate SIZE] [--scan-rate-max SIZE]\n"
		"                   [--scan-cpu PERCENT] [--share-stable-scans N]\n"
		"                   [--share-domain VM=DOMAIN ...]\n"
		"                   [--fault-around PAGES] [--foreground] [--quiet]\n"
		"  --socket PATH         control socket (default %s)\n"
		"  --state-dir DIR       the swap file, on disk (default %s)\n"
		"  --run-dir DIR         VM records and canonical copies, best\n"
		"                        on tmpfs; they outlive the daemon, so a\n"
		"                        restart loses no guest page (default:\n"
		"                        the socket's directory)\n"
		"  --restart-grace SECONDS  after a restart, how long the pages of\n"
		"                        a VM whose guest has not reconnected are\n"
		"                        kept, 1..86400 (default %u)\n"
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
		"                        as ESX (default; cold is not built yet)\n"
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
		"  --foreground          do not fork; log to stderr\n"
		"  --quiet               log nothing but errors at start-up\n",
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

/* "SIZE/PERIOD", PERIOD one of s, m, h, d (e.g. 550M/d): 0 or -EINVAL. */
static int swap_budget_parse(const char *s, uint64_t *bytes,
			     uint64_t *period_s)
{
	static const struct { char unit; uint64_t s; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
	};
	const char *slash = strchr(s, '/');
	char num[64];
	uint64_t b;

	if (!slash || slash == s || (size_t)(slash - s) >= sizeof(num) ||
	    strlen(slash + 1) != 1)
		return -EINVAL;
	memcpy(num, s, (size_t)(slash - s));
	num[slash - s] = '\0';
	if (pk_size_parse(num, &b) || !b)
		return -EINVAL;
	for (unsigned i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (slash[1] == units[i].unit) {
			*bytes = b;
			*period_s = units[i].s;
			return 0;
		}
	return -EINVAL;
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

/* --share-domain VM=DOMAIN: both valid names, each VM at most once. */
static int parse_share_domain(const char *arg, struct pk_share_override *ov,
			      struct pk_engine_config *cfg)
{
	const char *eq = strchr(arg, '=');
	struct pk_share_override o;

	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(o.vm) ||
	    strlen(eq + 1) >= sizeof(o.domain)) {
		fprintf(stderr, "pagekeeperd: bad --share-domain '%s': want "
			"VM=DOMAIN\n", arg);
		return -1;
	}
	memcpy(o.vm, arg, (size_t)(eq - arg));
	o.vm[eq - arg] = '\0';
	snprintf(o.domain, sizeof(o.domain), "%s", eq + 1);
	if (!pk_proto_name_valid(o.vm) || !pk_proto_name_valid(o.domain)) {
		fprintf(stderr, "pagekeeperd: bad --share-domain '%s': names "
			"are 1-63 of letters, digits, '-', '_' and '.'\n", arg);
		return -1;
	}
	for (unsigned i = 0; i < cfg->n_share_overrides; i++)
		if (strcmp(ov[i].vm, o.vm) == 0) {
			fprintf(stderr, "pagekeeperd: --share-domain: VM '%s' "
				"given twice\n", o.vm);
			return -1;
		}
	if (cfg->n_share_overrides == PK_SHARE_OVERRIDES_MAX) {
		fprintf(stderr, "pagekeeperd: --share-domain: at most %u VMs\n",
			PK_SHARE_OVERRIDES_MAX);
		return -1;
	}
	ov[cfg->n_share_overrides++] = o;
	cfg->share_overrides = ov;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "state-dir", required_argument, NULL, 'd' },
		{ "run-dir", required_argument, NULL, 'R' },
		{ "restart-grace", required_argument, NULL, 'G' },
		{ "volatile-state", no_argument, NULL, 'V' },
		{ "test-swap-eio", required_argument, NULL, 'E' },
		{ "test-kill-on-remove", no_argument, NULL, 'K' },
		{ "budget", required_argument, NULL, 'b' },
		{ "cgroup", required_argument, NULL, 'g' },
		{ "policy", required_argument, NULL, 'P' },
		{ "state-thresholds", required_argument, NULL, 't' },
		{ "idle-tax", required_argument, NULL, 'x' },
		{ "victims", required_argument, NULL, 'v' },
		{ "swap-write-budget", required_argument, NULL, 'W' },
		{ "fault-around", required_argument, NULL, 'a' },
		{ "swap-size", required_argument, NULL, 'w' },
		{ "swap-readahead", required_argument, NULL, 'r' },
		{ "scan-rate", required_argument, NULL, 'S' },
		{ "scan-rate-max", required_argument, NULL, 'M' },
		{ "share-stable-scans", required_argument, NULL, 'T' },
		{ "scan-cpu", required_argument, NULL, 'C' },
		{ "share-domain", required_argument, NULL, 'D' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct pk_engine_config cfg = {
		.socket_path = PK_DEFAULT_SOCKET,
		.state_dir = DEFAULT_STATE_DIR,
		.restart_grace_s = PK_RESTART_GRACE_DEFAULT_S,
		.fault_around_max = PK_FAULT_AROUND_DEFAULT,
		.swap_bytes = PK_SWAP_DEFAULT_BYTES,
		.swap_readahead_max = PK_SWAP_READAHEAD_DEFAULT,
		.scan_bytes_per_s = PK_SCAN_DEFAULT_BYTES_PER_S,
		.scan_bytes_per_s_max = PK_SCAN_DEFAULT_MAX_BYTES_PER_S,
		.share_stable_scans = PK_SHARE_STABLE_DEFAULT,
		.scan_cpu_percent = PK_SCAN_CPU_DEFAULT,
	};
	static struct pk_share_override overrides[PK_SHARE_OVERRIDES_MAX];
	struct pk_policy_config policy = { .kind = PK_POLICY_ESX, .tau = 0.75 };
	struct pk_engine engine;
	int foreground = 0, quiet = 0, c, err = -ENOMEM, ready[2] = { -1, -1 };
	int max_rate_set = 0;
	char *sock_dir;

	pk_mem_thresholds_default(&policy.th);
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': cfg.socket_path = optarg; break;
		case 'd': cfg.state_dir = optarg; break;
		case 'R': cfg.run_dir = optarg; break;
		case 'V': cfg.volatile_state = 1; break;
		case 'K': cfg.test_kill_on_remove = 1; break;
		case 'E': {
			char kind[8];
			unsigned long long after, count;
			struct pk_swap_inject *in = &cfg.swap_inject;
			if (sscanf(optarg, "%7[a-z]:%llu:%llu", kind, &after,
				   &count) != 3 || !count ||
			    (strcmp(kind, "write") && strcmp(kind, "read") &&
			     strcmp(kind, "any"))) {
				fprintf(stderr, "pagekeeperd: bad --test-swap-eio "
					"'%s': want write|read|any:AFTER:COUNT\n",
					optarg);
				return 2;
			}
			in->writes = strcmp(kind, "read") != 0;
			in->reads = strcmp(kind, "write") != 0;
			in->after = after;
			in->count = count;
			break;
		}
		case 'G': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || end == optarg || v < 1 || v > 86400) {
				fprintf(stderr, "pagekeeperd: bad --restart-grace "
					"'%s': want seconds, 1..86400\n", optarg);
				return 2;
			}
			cfg.restart_grace_s = (unsigned)v;
			break;
		}
		case 'b':
			if (pk_size_parse(optarg, &cfg.budget_bytes)) {
				fprintf(stderr, "pagekeeperd: bad --budget '%s': "
					"%s; want a size like 16G or 512M\n", optarg,
					pk_size_parse(optarg, &cfg.budget_bytes));
				return 2;
			}
			break;
		case 'g': policy.cgroup = optarg; break;
		case 'P':
			if (pk_policy_kind_parse(optarg, &policy.kind)) {
				fprintf(stderr, "pagekeeperd: bad --policy '%s': want "
					"esx, swap-only, balloon-only or manual\n",
					optarg);
				return 2;
			}
			break;
		case 't': {
			char why[160];
			if (pk_mem_thresholds_parse(optarg, &policy.th, why,
						    sizeof(why))) {
				fprintf(stderr, "pagekeeperd: bad --state-thresholds "
					"'%s': %s\n", optarg, why);
				return 2;
			}
			break;
		}
		case 'x': {
			char *end;
			double v = strtod(optarg, &end);
			if (*end || end == optarg || !(v >= 0 && v < 1)) {
				fprintf(stderr, "pagekeeperd: bad --idle-tax '%s': "
					"want a rate, 0 <= TAU < 1\n", optarg);
				return 2;
			}
			policy.tau = v;
			break;
		}
		case 'v':
			if (pk_victims_parse(optarg, &policy.victims)) {
				fprintf(stderr, "pagekeeperd: bad --victims '%s': "
					"want random or cold\n", optarg);
				return 2;
			}
			if (policy.victims == PK_VICTIMS_COLD) {
				fprintf(stderr, "pagekeeperd: --victims cold is "
					"not built yet; random is\n");
				return 2;
			}
			break;
		case 'W':
			if (swap_budget_parse(optarg, &policy.swap_write_budget,
					      &policy.swap_write_period_s)) {
				fprintf(stderr, "pagekeeperd: bad --swap-write-budget "
					"'%s': want SIZE/PERIOD, PERIOD one of s, m, "
					"h, d, like 550M/d\n", optarg);
				return 2;
			}
			break;
		case 'a': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > (long)PK_FAULT_AROUND_LIMIT) {
				fprintf(stderr, "pagekeeperd: bad --fault-around '%s': "
					"want 1..%u pages\n", optarg,
					PK_FAULT_AROUND_LIMIT);
				return 2;
			}
			cfg.fault_around_max = (unsigned)v;
			break;
		}
		case 'w':
			if (pk_size_parse(optarg, &cfg.swap_bytes) ||
			    cfg.swap_bytes % 4096) {
				fprintf(stderr, "pagekeeperd: bad --swap-size '%s': "
					"want a whole number of 4 KiB pages, like "
					"2G, or 0\n", optarg);
				return 2;
			}
			break;
		case 'r': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > (long)PK_SWAP_READAHEAD_LIMIT) {
				fprintf(stderr, "pagekeeperd: bad --swap-readahead "
					"'%s': want 1..%u pages (1: off)\n", optarg,
					PK_SWAP_READAHEAD_LIMIT);
				return 2;
			}
			cfg.swap_readahead_max = (unsigned)v;
			break;
		}
		case 'S':
			if (pk_size_parse(optarg, &cfg.scan_bytes_per_s)) {
				fprintf(stderr, "pagekeeperd: bad --scan-rate '%s': "
					"want bytes per second like 400M, or 0\n",
					optarg);
				return 2;
			}
			break;
		case 'M':
			if (pk_size_parse(optarg, &cfg.scan_bytes_per_s_max) ||
			    !cfg.scan_bytes_per_s_max) {
				fprintf(stderr, "pagekeeperd: bad --scan-rate-max "
					"'%s': want bytes per second like 2G\n",
					optarg);
				return 2;
			}
			max_rate_set = 1;
			break;
		case 'C': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (!*optarg || *end || v < 1 || v > 100) {
				fprintf(stderr, "pagekeeperd: bad --scan-cpu '%s': "
					"want 1..100 (percent of one core)\n",
					optarg);
				return 2;
			}
			cfg.scan_cpu_percent = (unsigned)v;
			break;
		}
		case 'T': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (!*optarg || *end || v < 0 ||
			    v > (long)PK_SHARE_STABLE_LIMIT) {
				fprintf(stderr, "pagekeeperd: bad --share-stable-scans "
					"'%s': want 0..%u scans\n", optarg,
					PK_SHARE_STABLE_LIMIT);
				return 2;
			}
			cfg.share_stable_scans = (unsigned)v;
			break;
		}
		case 'D':
			if (parse_share_domain(optarg, overrides, &cfg) < 0)
				return 2;
			break;
		case 'f': foreground = 1; break;
		case 'q': quiet = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "pagekeeperd: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return 2;
	}
	if (cfg.scan_bytes_per_s_max < cfg.scan_bytes_per_s) {
		if (max_rate_set) {
			fprintf(stderr, "pagekeeperd: --scan-rate-max (%llu MiB/s) "
				"is below --scan-rate (%llu MiB/s)\n",
				(unsigned long long)(cfg.scan_bytes_per_s_max >> 20),
				(unsigned long long)(cfg.scan_bytes_per_s >> 20));
			return 2;
		}
		cfg.scan_bytes_per_s_max = cfg.scan_bytes_per_s;
	}
	sock_dir = dir_of(cfg.socket_path);
	if (!cfg.run_dir)
		cfg.run_dir = sock_dir;
	if (!sock_dir || (err = make_dirs(sock_dir, 0755)) < 0 ||
	    (err = make_dirs(cfg.state_dir, 0700)) < 0 ||
	    (err = make_dirs(cfg.run_dir, 0700)) < 0) {
		fprintf(stderr, "pagekeeperd: cannot create %s, %s or %s: %s\n",
			sock_dir ? sock_dir : "?", cfg.state_dir,
			cfg.run_dir ? cfg.run_dir : "?", strerror(-err));
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
				       (int)pid, cfg.socket_path);
				return 0;
			}
			waitpid(pid, NULL, 0);
			return 1;
		}
		close(ready[0]);
		setsid();
	}

	if (!policy.swap_write_period_s)
		policy.swap_write_period_s = 86400;
	cfg.policy = &policy;
	err = pk_engine_init(&engine, &cfg);
	if (err) {
		fprintf(stderr, "pagekeeperd: cannot start on %s: %s\n",
			cfg.socket_path,
			err == -EADDRINUSE ? "another daemon is listening there"
			: err == -EBUSY	   ? "another daemon holds its directories"
					   : strerror(-err));
		pk_engine_fini(&engine);
		free(sock_dir);
		return 1;
	}
	if (!quiet)
		pk_log(&engine, "listening on %s, state in %s and %s, "
		       "fault-around %u pages, swap readahead %u pages",
		       cfg.socket_path, cfg.state_dir, cfg.run_dir,
		       cfg.fault_around_max,
		       cfg.swap_readahead_max);
	if (ready[1] >= 0) {
		(void)!write(ready[1], "R", 1);
		close(ready[1]);
	}
	err = pk_engine_run(&engine);
	pk_engine_fini(&engine);
	free(sock_dir);
	return err ? 1 : 0;
}
