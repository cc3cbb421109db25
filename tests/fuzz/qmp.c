/*
 * qmp.c - fuzz target: what a QMP monitor sends the balloon bridge
 * (tests/fuzz/fuzz.h), through a real socket into the real QMP driver
 * (balloon-bridge/qmp.c, json_lines.c): the harness is bridge.c.
 */
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/bridge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return pk_fuzz_bridge(PK_BLN_QMP, data, size);
}
