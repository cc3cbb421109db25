/*
 * balloon.c - the balloon bridge's one interface over its drivers.
 *
 * What: pk_balloon_open() picks the driver the registration named and
 * hands every later call to it; argument checks, the info block and the
 * target asked before the channel was up live here, once, so that each
 * driver is only its protocol.
 *
 * How: struct pk_balloon (driver.h) holds the configuration, the info the
 * owner reads, and the driver's private state.  A target set while the
 * link is not READY is kept and sent when the driver reports UP.
 *
 * Why: three drivers with one set of rules: the same errors, the same
 * events, whichever way the guest is reached (balloon.h).
 */
#include "balloon-bridge/driver.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIB (1024ull * 1024ull)

uint64_t pk_balloon_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void pk_balloon_why(struct pk_balloon *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b->info.why, sizeof(b->info.why), fmt, ap);
	va_end(ap);
}

void pk_balloon_emit(struct pk_balloon *b, enum pk_balloon_event ev)
{
	switch (ev) {
	case PK_BLN_EV_UP:
		b->info.link = PK_BLN_READY;
		b->info.why[0] = '\0';
		if (b->pending_target) {
			uint64_t t = b->pending_target;
			b->pending_target = 0;
			if (b->ops->send_target(b, t) < 0)
				b->pending_target = t;
		}
		break;
	case PK_BLN_EV_NO_DRIVER:
		b->info.link = PK_BLN_NO_DRIVER;
		break;
	case PK_BLN_EV_GONE:
		b->info.link = PK_BLN_CONNECTING;
		break;
	default:
		break;
	}
	if (b->cfg.on_event)
		b->cfg.on_event(b, ev, b->cfg.data);
}

static const struct pk_balloon_ops *driver_ops(enum pk_balloon_driver d)
{
	switch (d) {
	case PK_BLN_LAB:
		return &pk_balloon_lab_ops;
	case PK_BLN_QMP:
		return &pk_balloon_qmp_ops;
	case PK_BLN_LIBVIRT:
		return &pk_balloon_libvirt_ops;
	default:
		return NULL;
	}
}

int pk_balloon_open(struct pk_balloon **out, const struct pk_balloon_cfg *cfg,
		    char *err, size_t err_len)
{
	const struct pk_balloon_ops *ops = driver_ops(cfg->driver);
	struct pk_balloon *b;
	int rc;

	*out = NULL;
	if (!ops) {
		snprintf(err, err_len, "no balloon driver of kind %d",
			 (int)cfg->driver);
		return -EINVAL;
	}
	if (!cfg->channel || !cfg->channel[0] ||
	    strlen(cfg->channel) >= sizeof(b->channel)) {
		snprintf(err, err_len, "the %s balloon channel is %s",
			 pk_balloon_driver_name(cfg->driver),
			 cfg->channel && cfg->channel[0] ? "too long" : "empty");
		return -EINVAL;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->cfg = *cfg;
	snprintf(b->channel, sizeof(b->channel), "%s", cfg->channel);
	b->cfg.channel = b->channel;
	if (!b->cfg.stats_period_ms)
		b->cfg.stats_period_ms = 2000;
	if (!b->cfg.timeout_ms)
		b->cfg.timeout_ms = 5000;
	b->ops = ops;
	b->info.link = PK_BLN_CONNECTING;
	b->info.total_bytes = b->info.free_bytes = b->info.available_bytes = -1;
	b->info.swap_in_bytes = b->info.swap_out_bytes = -1;
	b->info.major_faults = b->info.minor_faults = -1;
	b->info.oom_kills = b->info.alloc_stalls = -1;
	rc = ops->open(b, err, err_len);
	if (rc < 0) {
		free(b);
		return rc;
	}
	*out = b;
	return 0;
}

void pk_balloon_close(struct pk_balloon *b)
{
	if (!b)
		return;
	b->ops->close(b);
	free(b);
}

int pk_balloon_fd(const struct pk_balloon *b, uint32_t *events)
{
	return b->ops->fd(b, events);
}

void pk_balloon_io(struct pk_balloon *b, uint32_t events)
{
	b->ops->io(b, events);
}

uint64_t pk_balloon_tick(struct pk_balloon *b, uint64_t now_ms)
{
	return b->ops->tick(b, now_ms);
}

int pk_balloon_set_target(struct pk_balloon *b, uint64_t bytes, char *why,
			  size_t why_len)
{
	if (bytes % 4096 || bytes < MIB || bytes > b->cfg.ram_bytes) {
		snprintf(why, why_len, "a balloon target must be a multiple "
			 "of 4096 bytes from 1 MiB to the guest's RAM "
			 "(%llu MiB), not %llu bytes",
			 (unsigned long long)(b->cfg.ram_bytes / MIB),
			 (unsigned long long)bytes);
		return -EINVAL;
	}
	if (b->info.link == PK_BLN_NO_DRIVER) {
		snprintf(why, why_len, "the guest has no balloon driver");
		return -ENODEV;
	}
	if (b->info.link == PK_BLN_MIGRATING) {
		snprintf(why, why_len, "the guest is migrating");
		return -EBUSY;
	}
	b->info.target_bytes = bytes;
	if (b->info.link != PK_BLN_READY) {
		b->pending_target = bytes;
		return 0;
	}
	b->pending_target = 0;
	int rc = b->ops->send_target(b, bytes);
	if (rc < 0)
		snprintf(why, why_len, "sending the target failed: %s",
			 strerror(-rc));
	return rc;
}

const struct pk_balloon_info *pk_balloon_info(const struct pk_balloon *b)
{
	return &b->info;
}

const char *pk_balloon_driver_name(enum pk_balloon_driver d)
{
	static const char *const names[] = { "none", "lab", "qmp", "libvirt" };

	return (unsigned)d < 4 ? names[d] : "unknown";
}

const char *pk_balloon_link_name(enum pk_balloon_link l)
{
	static const char *const names[] = { "connecting", "ready",
					     "no balloon driver", "migrating" };

	return (unsigned)l < 4 ? names[l] : "unknown";
}
