/*
 * fuzz.h — the one entry point every harness of tests/fuzz defines: libFuzzer
 * calls it (fuzz=true builds), and so does replay.c, which feeds it the files
 * of the seed corpus in the normal build
 */
#ifndef PGM_FUZZ_H
#define PGM_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
