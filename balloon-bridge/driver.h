/*
 * driver.h - what a balloon driver implements, and what balloon.c gives it.
 *
 * balloon.c owns struct pk_balloon, checks arguments, and forwards each
 * call of balloon.h to the VM's driver; a driver (lab.c, qmp.c,
 * libvirt.c) keeps its private state behind b->drv and reports through
 * pk_balloon_emit().  The rules of balloon.h hold for every operation:
 * none may block, and every one runs on the owner's thread (libvirt.c's
 * thread only ever runs libvirt.c's own code).
 */
#ifndef PK_BALLOON_DRIVER_H
#define PK_BALLOON_DRIVER_H

#include "balloon-bridge/balloon.h"

#include <stdarg.h>

struct pk_balloon_ops {
	/* Set up b->drv and start connecting; err for a bad channel. */
	int (*open)(struct pk_balloon *b, char *err, size_t err_len);
	void (*close)(struct pk_balloon *b);
	int (*fd)(const struct pk_balloon *b, uint32_t *events);
	void (*io)(struct pk_balloon *b, uint32_t events);
	uint64_t (*tick)(struct pk_balloon *b, uint64_t now_ms);
	/* Send the target now: the link is READY (balloon.c checked). */
	int (*send_target)(struct pk_balloon *b, uint64_t bytes);
};

struct pk_balloon {
	struct pk_balloon_cfg cfg;
	char channel[256];
	struct pk_balloon_info info;
	const struct pk_balloon_ops *ops;
	void *drv;
	/* A target asked while not READY: sent by pk_balloon_emit(UP). */
	uint64_t pending_target;
};

extern const struct pk_balloon_ops pk_balloon_lab_ops;
extern const struct pk_balloon_ops pk_balloon_qmp_ops;
extern const struct pk_balloon_ops pk_balloon_libvirt_ops;

/*
 * Report ev to the owner.  UP, NO_DRIVER and GONE also set info.link
 * (GONE: CONNECTING); UP sends a pending target first.
 */
void pk_balloon_emit(struct pk_balloon *b, enum pk_balloon_event ev);
/* info.why = the formatted text. */
void pk_balloon_why(struct pk_balloon *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Monotonic milliseconds. */
uint64_t pk_balloon_now_ms(void);

#endif
