/* pipe_queue producer|consumer BUS N: the producer sends N checksummed
   frames through pipe "frames" (alternating copy and zero-copy claim/commit),
   frees its end, then puts N items into queue "items" (the same way, with
   some claims cancelled, which the consumer must not see) and joins it; the
   consumer receives them (alternating a buffer and a callback), checks every
   byte, sees end of file, takes every item and marks it done. Each prints
   the checksum of everything it sent or received. */
#include <stdint.h>
#include <string.h>

#include "check.h"

struct seen {
    uint64_t i;
    uint64_t sum;
};

static void verify(struct seen *s, const unsigned char *p, size_t n) {
    unsigned char want[64];
    frame_fill(s->i, want);
    if (n != frame_len(s->i) || memcmp(p, want, n) != 0) {
        fprintf(stderr, "frame %llu is wrong (%zu bytes)\n", (unsigned long long)s->i, n);
        exit(1);
    }
    s->sum = fnv(s->sum, p, n);
    s->i++;
}

static void on_frame(void *ctx, const void *data, size_t len) {
    verify((struct seen *)ctx, (const unsigned char *)data, len);
}

static int producer(shmbus_bus *bus, uint64_t n) {
    shmbus_pipe_sender *tx;
    CHECK(shmbus_pipe_sender_open(bus, "frames", 0, &tx));
    uint64_t sum = 0xcbf29ce484222325ull;
    unsigned char f[64];
    for (uint64_t i = 0; i < n; i++) {
        size_t len = frame_len(i);
        frame_fill(i, f);
        sum = fnv(sum, f, len);
        if (i % 2 == 0) {
            CHECK(shmbus_pipe_send(tx, f, len, -1));
        } else {
            void *room;
            CHECK(shmbus_pipe_claim(tx, len, &room, -1));
            memcpy(room, f, len);
            CHECK(shmbus_pipe_commit(tx));
        }
    }
    shmbus_pipe_sender_free(tx);

    shmbus_queue *q;
    CHECK(shmbus_queue_open(bus, "items", 64, 64, &q));
    for (uint64_t i = 0; i < n; i++) {
        frame_fill(i, f);
        sum = fnv(sum, f, frame_len(i));
        if (i % 2 == 0) {
            CHECK(shmbus_queue_put(q, f, frame_len(i), 10 * 1000 * 1000 * 1000LL));
        } else {
            void *room;
            if (i % 7 == 1) {
                /* A claim dropped unput: the consumer never sees it. */
                CHECK(shmbus_queue_claim(q, 8, &room, -1));
                memset(room, 0xee, 8);
                CHECK(shmbus_queue_cancel(q));
            }
            CHECK(shmbus_queue_claim(q, frame_len(i), &room, -1));
            memcpy(room, f, frame_len(i));
            CHECK(shmbus_queue_commit(q));
        }
    }
    CHECK(shmbus_queue_join(q, -1));
    shmbus_queue_free(q);
    printf("sum %016llx\n", (unsigned long long)sum);
    return 0;
}

static int consumer(shmbus_bus *bus, uint64_t n) {
    shmbus_pipe_receiver *rx;
    shmbus_queue *q;
    CHECK(shmbus_pipe_receiver_open(bus, "frames", 0, &rx));
    CHECK(shmbus_queue_open(bus, "items", 64, 64, &q));
    printf("ready\n");
    fflush(stdout);
    struct seen s = {0, 0xcbf29ce484222325ull};
    unsigned char buf[64];
    while (s.i < n) {
        if (s.i % 2 == 0) {
            size_t len;
            CHECK(shmbus_pipe_recv(rx, buf, sizeof buf, &len, -1));
            verify(&s, buf, len);
        } else {
            CHECK(shmbus_pipe_recv_with(rx, on_frame, &s, -1));
        }
    }
    size_t len;
    EXPECT(SHMBUS_DISCONNECTED, shmbus_pipe_recv(rx, buf, sizeof buf, &len, -1));
    shmbus_pipe_receiver_free(rx);

    /* The queue has one consumer here, so items come in order. */
    s.i = 0;
    while (s.i < n) {
        if (s.i % 2 == 0) {
            CHECK(shmbus_queue_get(q, buf, sizeof buf, &len, -1));
            verify(&s, buf, len);
        } else {
            CHECK(shmbus_queue_get_with(q, on_frame, &s, -1));
        }
        CHECK(shmbus_queue_task_done(q));
    }
    shmbus_queue_free(q);
    printf("sum %016llx\n", (unsigned long long)s.sum);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: pipe_queue producer|consumer BUS N\n");
        return 2;
    }
    uint64_t n = strtoull(argv[3], NULL, 10);
    shmbus_bus *bus;
    CHECK(shmbus_connect(argv[2], &bus));
    int r = strcmp(argv[1], "producer") == 0 ? producer(bus, n) : consumer(bus, n);
    shmbus_bus_free(bus);
    return r;
}
