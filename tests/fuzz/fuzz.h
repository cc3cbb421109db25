/*
 * fuzz.h - what every fuzz target in tests/fuzz/ defines, and what the
 * replay main (replay.c) and libFuzzer call (issue 17, item 4).
 *
 * Each target is one file that defines LLVMFuzzerTestOneInput() for one
 * parser of bytes that come from outside the daemon or the client:
 *   control    a control-socket message as the daemon receives it
 *              (engine/protocol.c: the header, REGISTER and the fixed
 *              requests);
 *   cmsg       the ancillary data of such a message (the fds it carries,
 *              pk_proto_cmsg_fds());
 *   handshake  the daemon's replies as the client library and the CLI
 *              read them (pk_reply_decode(), pk_balloon_reply_decode());
 *   qmp        what a QMP monitor sends the balloon bridge, through a
 *              real UNIX socket into the real QMP driver
 *              (balloon-bridge/json_lines.c, qmp.c; harness bridge.c);
 *   lab        what a lab guest sends it, into the lab driver (lab.c);
 *   config     pagekeeperd's configuration file (tools/daemon_config.c).
 * The same file builds two ways: with clang -fsanitize=fuzzer (tools/fuzz,
 * the slow suite `fuzz`), and with the project's compiler and replay.c's
 * main, which replays the checked-in corpus, tests/fuzz/corpus/TARGET/,
 * in the default suite (and so under ASan + UBSan too).
 *
 * A target must not abort on any input: it aborts (or the sanitizers
 * report) only when the code under test breaks a rule.
 */
#ifndef PK_FUZZ_H
#define PK_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
