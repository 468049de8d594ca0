/* Shared by the test programs: CHECK(call) exits with the status's name
   and shmbus_last_error() when a call does not return SHMBUS_OK, and
   EXPECT(code, call) when it does not return `code`. */
#ifndef CHECK_H
#define CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include "shmbus.h"

#define EXPECT(code, call)                                                    \
    do {                                                                      \
        shmbus_status s_ = (call);                                            \
        if (s_ != (code)) {                                                   \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %s: %s\n", \
                    __FILE__, __LINE__, #call, (int)s_, shmbus_strerror(s_), \
                    #code, shmbus_last_error());                              \
            exit(1);                                                          \
        }                                                                     \
    } while (0)

#define CHECK(call) EXPECT(SHMBUS_OK, call)

/* Frame i of a run: its length (8 to 64 bytes) and contents follow from i
   alone, so the receiver can check every byte. */
static inline uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static inline size_t frame_len(uint64_t i) { return 8 + (size_t)(mix(i) % 57); }

static inline void frame_fill(uint64_t i, unsigned char *out) {
    uint64_t x = mix(i);
    size_t n = frame_len(i);
    for (size_t k = 0; k < 8; k++) out[k] = (unsigned char)(i >> (8 * k));
    for (size_t k = 8; k < n; k++) out[k] = (unsigned char)((x >> (8 * (k % 8))) ^ k);
}

/* FNV-1a over a frame, folded into a running checksum. */
static inline uint64_t fnv(uint64_t h, const unsigned char *p, size_t n) {
    for (size_t k = 0; k < n; k++) {
        h ^= p[k];
        h *= 0x100000001b3ull;
    }
    return h;
}

#endif
