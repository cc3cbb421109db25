/*
 * lab.c - fuzz target: what a lab guest (pk-guestsim --balloon, a user's
 * process) sends the balloon bridge (tests/fuzz/fuzz.h), through a real
 * socket into the real lab driver (balloon-bridge/lab.c, json_lines.c):
 * the harness is bridge.c.
 */
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/bridge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return pk_fuzz_bridge(PK_BLN_LAB, data, size);
}
