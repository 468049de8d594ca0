/* topic subscriber|publisher BUS N, or topic lossy BUS.
   subscriber: joins lossless topic "ticks", prints "ready", receives N
   checksummed messages in order (alternating a buffer and a callback; once
   asking for the size with a NULL buffer first), then prints the checksum.
   publisher: publishes the N messages (in turn: try-and-retry, a timeout,
   waiting forever, and a zero-copy claim written in place and committed,
   with some claims cancelled, which subscribers must not see) and prints
   the checksum.
   lossy: one process on a lossy topic: too many subscribers, history, and a
   subscriber overrun twice (SHMBUS_LAGGED with its missed count, through
   the buffer and the callback receive). */
#include <stdint.h>
#include <string.h>

#include "check.h"

#define SLOTS 64
#define SLOT_SIZE 64
#define MAX_SUBSCRIBERS 4
#define SECOND 1000000000LL

struct seen {
    uint64_t i;
    uint64_t sum;
};

static void verify(struct seen *s, const unsigned char *p, size_t n) {
    unsigned char want[64];
    frame_fill(s->i, want);
    if (n != frame_len(s->i) || memcmp(p, want, n) != 0) {
        fprintf(stderr, "message %llu is wrong (%zu bytes)\n", (unsigned long long)s->i, n);
        exit(1);
    }
    s->sum = fnv(s->sum, p, n);
    s->i++;
}

static void on_message(void *ctx, const void *data, size_t len) {
    verify((struct seen *)ctx, (const unsigned char *)data, len);
}

static shmbus_topic *ticks(shmbus_bus *bus) {
    shmbus_topic *t;
    CHECK(shmbus_topic_open(bus, "ticks", SLOTS, SLOT_SIZE, 0, MAX_SUBSCRIBERS, &t));
    return t;
}

static int subscriber(shmbus_bus *bus, uint64_t n) {
    shmbus_topic *t = ticks(bus);
    shmbus_topic_subscriber *sub;
    CHECK(shmbus_topic_subscriber_open(t, 0, &sub));
    shmbus_topic_free(t);
    printf("ready\n");
    fflush(stdout);
    struct seen s = {0, 0xcbf29ce484222325ull};
    unsigned char buf[SLOT_SIZE];
    size_t len;
    uint64_t missed = 0;
    /* The first message: its size asked for, then received. */
    EXPECT(SHMBUS_BUFFER_TOO_SMALL, shmbus_topic_recv(sub, NULL, 0, &len, &missed, -1));
    if (len != frame_len(0)) {
        fprintf(stderr, "size asked: %zu, want %zu\n", len, frame_len(0));
        return 1;
    }
    CHECK(shmbus_topic_recv(sub, buf, sizeof buf, &len, &missed, -1));
    verify(&s, buf, len);
    while (s.i < n) {
        if (s.i % 2 == 0) {
            CHECK(shmbus_topic_recv(sub, buf, sizeof buf, &len, NULL, -1));
            verify(&s, buf, len);
        } else {
            CHECK(shmbus_topic_recv_with(sub, on_message, &s, &missed, -1));
        }
    }
    EXPECT(SHMBUS_EMPTY, shmbus_topic_recv(sub, buf, sizeof buf, &len, NULL, 0));
    shmbus_topic_subscriber_free(sub);
    printf("sum %016llx\n", (unsigned long long)s.sum);
    return 0;
}

static int publisher(shmbus_bus *bus, uint64_t n) {
    shmbus_topic *t = ticks(bus);
    shmbus_topic_publisher *p;
    CHECK(shmbus_topic_publisher_open(t, &p));
    shmbus_topic_free(t);
    uint64_t sum = 0xcbf29ce484222325ull;
    unsigned char f[64];
    uint64_t full = 0;
    for (uint64_t i = 0; i < n; i++) {
        size_t len = frame_len(i);
        frame_fill(i, f);
        sum = fnv(sum, f, len);
        switch (i % 4) {
        case 0: {
            shmbus_status st;
            while ((st = shmbus_topic_publish(p, f, len, 0)) == SHMBUS_FULL) full++;
            CHECK(st);
            break;
        }
        case 1:
            CHECK(shmbus_topic_publish(p, f, len, 10 * SECOND));
            break;
        case 2:
            CHECK(shmbus_topic_publish(p, f, len, -1));
            break;
        default:
            if (i % 11 == 3) {
                /* A claim dropped unpublished: subscribers never see it. */
                CHECK(shmbus_topic_claim(p, 8, -1));
                CHECK(shmbus_topic_claim_write(p, 0, "dropped!", 8));
                CHECK(shmbus_topic_cancel(p));
            }
            /* Zero-copy: the first word, then the rest in place. */
            CHECK(shmbus_topic_claim(p, len, -1));
            if (i == 3) {
                EXPECT(SHMBUS_BAD_STATE, shmbus_topic_publish(p, f, len, 0));
                EXPECT(SHMBUS_BAD_STATE, shmbus_topic_claim(p, len, 0));
                EXPECT(SHMBUS_INVALID_ARGUMENT, shmbus_topic_claim_write(p, 3, f, 1));
                EXPECT(SHMBUS_INVALID_ARGUMENT, shmbus_topic_claim_write(p, 8, f, len));
            }
            CHECK(shmbus_topic_claim_write(p, 0, f, 8));
            CHECK(shmbus_topic_claim_write(p, 8, f + 8, len - 8));
            CHECK(shmbus_topic_commit(p));
        }
    }
    unsigned char big[SLOT_SIZE + 1] = {0};
    EXPECT(SHMBUS_TOO_LARGE, shmbus_topic_publish(p, big, sizeof big, 0));
    EXPECT(SHMBUS_TOO_LARGE, shmbus_topic_claim(p, sizeof big, 0));
    EXPECT(SHMBUS_BAD_STATE, shmbus_topic_commit(p));
    EXPECT(SHMBUS_BAD_STATE, shmbus_topic_cancel(p));
    EXPECT(SHMBUS_BAD_STATE, shmbus_topic_claim_write(p, 0, f, 1));
    shmbus_topic_publisher_free(p);
    printf("full %llu\nsum %016llx\n", (unsigned long long)full, (unsigned long long)sum);
    return 0;
}

/* Receives what `sub` has until SHMBUS_EMPTY, checking that the messages
   are consecutive and end with message `last`; returns how many. */
static uint64_t drain(shmbus_topic_subscriber *sub, uint64_t first, uint64_t last) {
    unsigned char buf[SLOT_SIZE];
    size_t len;
    uint64_t got = 0;
    shmbus_status st;
    while ((st = shmbus_topic_recv(sub, buf, sizeof buf, &len, NULL, 0)) == SHMBUS_OK) {
        unsigned char want[64];
        frame_fill(first + got, want);
        if (len != frame_len(first + got) || memcmp(buf, want, len) != 0) {
            fprintf(stderr, "lossy: message %llu is wrong\n", (unsigned long long)(first + got));
            exit(1);
        }
        got++;
    }
    EXPECT(SHMBUS_EMPTY, st);
    if (got == 0 || first + got - 1 != last) {
        fprintf(stderr, "lossy: received %llu from %llu, the last published is %llu\n",
                (unsigned long long)got, (unsigned long long)first, (unsigned long long)last);
        exit(1);
    }
    return got;
}

static void publish_range(shmbus_topic_publisher *p, uint64_t from, uint64_t to) {
    unsigned char f[64];
    for (uint64_t i = from; i < to; i++) {
        frame_fill(i, f);
        /* A lossy topic never makes a publisher wait. */
        CHECK(shmbus_topic_publish(p, f, frame_len(i), 0));
    }
}

static void on_lagged_call(void *ctx, const void *data, size_t len) {
    (void)data;
    (void)len;
    *(int *)ctx = 1;
}

static int lossy(shmbus_bus *bus) {
    const uint64_t slots = 8;
    shmbus_topic *t;
    EXPECT(SHMBUS_INVALID_ARGUMENT, shmbus_topic_open(bus, "lossy", slots, SLOT_SIZE, 2, 2, &t));
    EXPECT(SHMBUS_BAD_PARAMS, shmbus_topic_open(bus, "lossy", 3, SLOT_SIZE, 1, 2, &t));
    CHECK(shmbus_topic_open(bus, "lossy", slots, SLOT_SIZE, 1, 2, &t));
    shmbus_topic *again;
    EXPECT(SHMBUS_PARAM_MISMATCH, shmbus_topic_open(bus, "lossy", slots * 2, SLOT_SIZE, 1, 2, &again));
    size_t slot_size;
    CHECK(shmbus_topic_slot_size(t, &slot_size));
    if (slot_size != SLOT_SIZE) return fprintf(stderr, "slot size %zu\n", slot_size), 1;

    shmbus_topic_publisher *p;
    CHECK(shmbus_topic_publisher_open(t, &p));
    shmbus_topic_subscriber *sub, *late, *third;
    CHECK(shmbus_topic_subscriber_open(t, 0, &sub));

    /* Three rings' worth and a bit: `sub` is overrun. */
    const uint64_t n = 3 * slots + slots / 2;
    publish_range(p, 0, n);
    /* A subscriber joining now with history gets the last few first. */
    const uint64_t history = slots / 4;
    CHECK(shmbus_topic_subscriber_open(t, history, &late));
    EXPECT(SHMBUS_TOO_MANY_SUBSCRIBERS, shmbus_topic_subscriber_open(t, 0, &third));
    if (drain(late, n - history, n - 1) != history) {
        fprintf(stderr, "lossy: history gave another count\n");
        return 1;
    }

    unsigned char buf[SLOT_SIZE];
    size_t len;
    uint64_t missed = 0;
    EXPECT(SHMBUS_LAGGED, shmbus_topic_recv(sub, buf, sizeof buf, &len, &missed, 0));
    if (missed == 0 || missed >= n) {
        fprintf(stderr, "lossy: missed %llu of %llu\n", (unsigned long long)missed,
                (unsigned long long)n);
        return 1;
    }
    uint64_t got = drain(sub, missed, n - 1);
    printf("lagged %llu then received %llu\n", (unsigned long long)missed, (unsigned long long)got);

    /* Overrun again, seen through the callback receive: f is not called. */
    publish_range(p, n, 2 * n);
    int called = 0;
    missed = 0;
    EXPECT(SHMBUS_LAGGED, shmbus_topic_recv_with(sub, on_lagged_call, &called, &missed, 0));
    if (called || missed == 0 || missed >= n) {
        fprintf(stderr, "lossy: callback called %d, missed %llu\n", called,
                (unsigned long long)missed);
        return 1;
    }
    drain(sub, n + missed, 2 * n - 1);
    /* `late` is also a ring behind: a NULL `missed` is accepted. */
    EXPECT(SHMBUS_LAGGED, shmbus_topic_recv(late, buf, sizeof buf, &len, NULL, 0));

    /* Freeing a subscriber makes room for another. */
    shmbus_topic_subscriber_free(late);
    CHECK(shmbus_topic_subscriber_open(t, 0, &third));
    EXPECT(SHMBUS_EMPTY, shmbus_topic_recv(third, buf, sizeof buf, &len, NULL, 0));
    EXPECT(SHMBUS_TIMEOUT, shmbus_topic_recv(third, buf, sizeof buf, &len, NULL, 1000000));
    EXPECT(SHMBUS_INVALID_ARGUMENT, shmbus_topic_recv(third, buf, sizeof buf, &len, NULL, -2));
    EXPECT(SHMBUS_NULL_POINTER, shmbus_topic_recv_with(third, NULL, NULL, NULL, 0));
    EXPECT(SHMBUS_NULL_POINTER, shmbus_topic_recv(third, buf, sizeof buf, NULL, NULL, 0));

    shmbus_topic_subscriber_free(third);
    shmbus_topic_subscriber_free(sub);
    shmbus_topic_publisher_free(p);
    shmbus_topic_free(t);
    printf("done\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: topic subscriber|publisher BUS N | topic lossy BUS\n");
        return 2;
    }
    shmbus_bus *bus;
    CHECK(shmbus_connect(argv[2], &bus));
    int rc;
    if (strcmp(argv[1], "lossy") == 0) {
        rc = lossy(bus);
    } else if (argc == 4) {
        uint64_t n = strtoull(argv[3], NULL, 10);
        rc = strcmp(argv[1], "publisher") == 0 ? publisher(bus, n) : subscriber(bus, n);
    } else {
        fprintf(stderr, "N missing\n");
        rc = 2;
    }
    shmbus_bus_free(bus);
    return rc;
}
