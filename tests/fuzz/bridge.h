/*
 * bridge.h - the balloon bridge's fuzz harness (bridge.c), shared by the
 * qmp and lab targets: one input, the peer's bytes, through a real
 * bridge of that driver.  Returns 0.
 */
#ifndef PK_FUZZ_BRIDGE_H
#define PK_FUZZ_BRIDGE_H

#include "balloon-bridge/balloon.h"

#include <stddef.h>
#include <stdint.h>

int pk_fuzz_bridge(enum pk_balloon_driver driver, const uint8_t *data,
		   size_t size);

#endif
