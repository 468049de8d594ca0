/* The pipe benchmark's C side, run by `cargo run --release -p shmbus-capi
   --example c_vs_rust` beside the same loops written in Rust:
     pipe loop BUS N   one thread sends a 64-byte frame and receives it, N times,
                       timeout 0 (for callgrind: instructions per send+recv)
     pipe loop-wait BUS N   the same with timeout -1 (the frame is always there)
     pipe ping BUS N   round trips through pipes "ping" and "pong"; prints ns each
     pipe pong BUS N   the other end of ping
     pipe send BUS N   N frames through pipe "flow"
     pipe recv BUS N   receives them; prints frames per second */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shmbus.h"

#define FRAME 64
#define CHECK(call)                                                   \
    do {                                                              \
        shmbus_status s_ = (call);                                    \
        if (s_ != SHMBUS_OK) {                                        \
            fprintf(stderr, "%s: %s\n", #call, shmbus_last_error());  \
            exit(1);                                                  \
        }                                                             \
    } while (0)

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: pipe loop|ping|pong|send|recv BUS N\n");
        return 2;
    }
    const char *mode = argv[1];
    uint64_t n = strtoull(argv[3], NULL, 10);
    shmbus_bus *bus;
    CHECK(shmbus_connect(argv[2], &bus));
    unsigned char frame[FRAME], buf[FRAME];
    memset(frame, 7, sizeof frame);
    size_t len;
    shmbus_pipe_sender *tx;
    shmbus_pipe_receiver *rx;
    if (strcmp(mode, "loop") == 0 || strcmp(mode, "loop-wait") == 0) {
        int64_t timeout = strcmp(mode, "loop") == 0 ? 0 : -1;
        CHECK(shmbus_pipe_receiver_open(bus, "loop", 0, &rx));
        CHECK(shmbus_pipe_sender_open(bus, "loop", 0, &tx));
        for (uint64_t i = 0; i < n; i++) {
            CHECK(shmbus_pipe_send(tx, frame, FRAME, timeout));
            CHECK(shmbus_pipe_recv(rx, buf, sizeof buf, &len, timeout));
        }
    } else if (strcmp(mode, "ping") == 0 || strcmp(mode, "pong") == 0) {
        int ping = strcmp(mode, "ping") == 0;
        CHECK(shmbus_pipe_receiver_open(bus, ping ? "pong" : "ping", 0, &rx));
        CHECK(shmbus_pipe_sender_open(bus, ping ? "ping" : "pong", 0, &tx));
        uint64_t t0 = 0;
        for (uint64_t i = 0; i < n; i++) {
            if (i == n / 10) t0 = now_ns(); /* the first tenth warms up */
            if (ping) {
                CHECK(shmbus_pipe_send(tx, frame, FRAME, -1));
                CHECK(shmbus_pipe_recv(rx, buf, sizeof buf, &len, -1));
            } else {
                CHECK(shmbus_pipe_recv(rx, buf, sizeof buf, &len, -1));
                CHECK(shmbus_pipe_send(tx, buf, len, -1));
            }
        }
        if (ping) printf("%.1f\n", (double)(now_ns() - t0) / (double)(n - n / 10));
    } else if (strcmp(mode, "send") == 0) {
        CHECK(shmbus_pipe_sender_open(bus, "flow", 0, &tx));
        for (uint64_t i = 0; i < n; i++) CHECK(shmbus_pipe_send(tx, frame, FRAME, -1));
        rx = NULL;
    } else {
        CHECK(shmbus_pipe_receiver_open(bus, "flow", 0, &rx));
        printf("ready\n");
        fflush(stdout);
        CHECK(shmbus_pipe_recv(rx, buf, sizeof buf, &len, -1));
        uint64_t t0 = now_ns();
        for (uint64_t i = 1; i < n; i++) CHECK(shmbus_pipe_recv(rx, buf, sizeof buf, &len, -1));
        printf("%.0f\n", (double)(n - 1) * 1e9 / (double)(now_ns() - t0));
        tx = NULL;
    }
    shmbus_pipe_sender_free(tx);
    shmbus_pipe_receiver_free(rx);
    shmbus_bus_free(bus);
    return 0;
}
