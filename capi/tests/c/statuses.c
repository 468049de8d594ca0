/* statuses BUS NOT_SHMBUS_BUS TRUNCATED_BUS NO_DAEMON_BUS [CODE=BUS...]:
   provokes every status code a C program can cause on a bus whose daemon runs
   with --max-channels 32, printing "provoked NAME" for each, and checks the
   calls around them (values of several types, arrays, a frame kept when the
   buffer was too small). Each CODE=BUS argument names a broken bus that
   shmbus_connect must refuse with that code (SHMBUS_ABI_MISMATCH=b1 ...).
   Run as root, it first forks a child that drops to uid and gid 65534 and is
   refused the bus's segment (SHMBUS_PERMISSION_DENIED). It also expects the
   pipe "scribbled" on BUS to have a corrupt control block (SHMBUS_CORRUPT).
   Last, it asks for the daemon to be stopped (a line on stdin) and sees
   SHMBUS_BUS_CLOSED. */
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define PROVOKE(code, call)         \
    do {                            \
        EXPECT(code, call);         \
        printf("provoked %s\n", #code); \
    } while (0)

/* The codes a CODE=BUS argument may name. */
static const struct {
    const char *name;
    shmbus_status code;
} CONNECT_CODES[] = {
    {"SHMBUS_SIZE_MISMATCH", SHMBUS_SIZE_MISMATCH},
    {"SHMBUS_ABI_MISMATCH", SHMBUS_ABI_MISMATCH},
    {"SHMBUS_NOT_READY", SHMBUS_NOT_READY},
    {"SHMBUS_CORRUPT_SEGMENT", SHMBUS_CORRUPT_SEGMENT},
    {"SHMBUS_WRONG_OWNER", SHMBUS_WRONG_OWNER},
    {"SHMBUS_UNSAFE_MODE", SHMBUS_UNSAFE_MODE},
    {"SHMBUS_REFUSED", SHMBUS_REFUSED},
    {"SHMBUS_PROTOCOL", SHMBUS_PROTOCOL},
    {"SHMBUS_IO", SHMBUS_IO},
};

/* Connects to the bus of a CODE=BUS argument and expects CODE. */
static void connect_refused(const char *arg) {
    const char *eq = strchr(arg, '=');
    if (eq == NULL) {
        fprintf(stderr, "argument %s is not CODE=BUS\n", arg);
        exit(2);
    }
    size_t n = (size_t)(eq - arg);
    for (size_t i = 0; i < sizeof CONNECT_CODES / sizeof CONNECT_CODES[0]; i++) {
        if (strlen(CONNECT_CODES[i].name) == n && strncmp(arg, CONNECT_CODES[i].name, n) == 0) {
            shmbus_bus *b = NULL;
            shmbus_status s = shmbus_connect(eq + 1, &b);
            if (s != CONNECT_CODES[i].code) {
                fprintf(stderr, "connect %s returned %d (%s), expected %s: %s\n", eq + 1, (int)s,
                        shmbus_strerror(s), CONNECT_CODES[i].name, shmbus_last_error());
                exit(1);
            }
            printf("provoked %s\n", CONNECT_CODES[i].name);
            return;
        }
    }
    fprintf(stderr, "argument %s names no connecting code\n", arg);
    exit(2);
}

/* As uid and gid 65534, in a child forked before this process has any
   thread: the bus's segment (mode 0600, owned by root) may not be opened. */
static void permission_denied(const char *bus_name) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0) {
            perror("dropping to uid 65534");
            exit(1);
        }
        shmbus_bus *b = NULL;
        PROVOKE(SHMBUS_PERMISSION_DENIED, shmbus_connect(bus_name, &b));
        exit(0);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "the uid 65534 child failed\n");
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: statuses BUS NOT_SHMBUS_BUS TRUNCATED_BUS NO_DAEMON_BUS [CODE=BUS...]\n");
        return 2;
    }
    if (geteuid() == 0) permission_denied(argv[1]);
    shmbus_bus *bus, *other = NULL;
    PROVOKE(SHMBUS_OK, shmbus_connect(argv[1], &bus));
    PROVOKE(SHMBUS_NULL_POINTER, shmbus_connect(argv[1], NULL));
    PROVOKE(SHMBUS_BAD_NAME, shmbus_connect("no/slash", &other));
    PROVOKE(SHMBUS_NOT_SHMBUS, shmbus_connect(argv[2], &other));
    PROVOKE(SHMBUS_TRUNCATED, shmbus_connect(argv[3], &other));
    PROVOKE(SHMBUS_DAEMON_NOT_RUNNING, shmbus_connect(argv[4], &other));
    if (strstr(shmbus_last_error(), "shmbusd --name") == NULL) {
        fprintf(stderr, "last error lacks the advice: %s\n", shmbus_last_error());
        return 1;
    }
    for (int i = 5; i < argc; i++) connect_refused(argv[i]);

    /* Removing. */
    uint64_t holders = 99;
    PROVOKE(SHMBUS_NOT_FOUND, shmbus_remove(bus, "never-made", &holders));
    if (holders != 99) return 1;

    /* Pipes. */
    shmbus_pipe_sender *tx, *tx2;
    shmbus_pipe_receiver *rx;
    size_t len, max;
    unsigned char buf[512];
    PROVOKE(SHMBUS_CORRUPT, shmbus_pipe_receiver_open(bus, "scribbled", 4096, &rx));
    CHECK(shmbus_pipe_receiver_open(bus, "p", 4096, &rx));
    CHECK(shmbus_pipe_sender_open(bus, "p", 4096, &tx));
    PROVOKE(SHMBUS_BUSY, shmbus_pipe_sender_open(bus, "p", 4096, &tx2));
    PROVOKE(SHMBUS_PARAM_MISMATCH, shmbus_pipe_sender_open(bus, "p", 8192, &tx2));
    PROVOKE(SHMBUS_BAD_PARAMS, shmbus_pipe_sender_open(bus, "p2", 1000, &tx2));
    PROVOKE(SHMBUS_NO_SPACE, shmbus_pipe_sender_open(bus, "p3", 1ull << 30, &tx2));
    PROVOKE(SHMBUS_EMPTY, shmbus_pipe_recv(rx, buf, sizeof buf, &len, 0));
    PROVOKE(SHMBUS_TIMEOUT, shmbus_pipe_recv(rx, buf, sizeof buf, &len, 1000 * 1000));
    PROVOKE(SHMBUS_INVALID_ARGUMENT, shmbus_pipe_recv(rx, buf, sizeof buf, &len, -5));
    CHECK(shmbus_pipe_sender_max_frame(tx, &max));
    if (max != 512) {
        fprintf(stderr, "max frame %zu\n", max);
        return 1;
    }
    PROVOKE(SHMBUS_TOO_LARGE, shmbus_pipe_send(tx, buf, max + 1, 0));
    PROVOKE(SHMBUS_NULL_POINTER, shmbus_pipe_send(tx, NULL, 3, 0));
    CHECK(shmbus_pipe_send(tx, NULL, 0, 0)); /* an empty frame */
    CHECK(shmbus_pipe_recv(rx, NULL, 0, &len, 0));
    if (len != 0) return 1;
    PROVOKE(SHMBUS_BAD_STATE, shmbus_pipe_commit(tx));
    void *room;
    CHECK(shmbus_pipe_claim(tx, 5, &room, 0));
    PROVOKE(SHMBUS_BAD_STATE, shmbus_pipe_send(tx, "x", 1, 0));
    memcpy(room, "hello", 5);
    CHECK(shmbus_pipe_commit(tx));
    PROVOKE(SHMBUS_BUFFER_TOO_SMALL, shmbus_pipe_recv(rx, buf, 2, &len, 0));
    if (len != 5) return 1;
    CHECK(shmbus_pipe_recv(rx, buf, sizeof buf, &len, 0)); /* the kept frame */
    if (len != 5 || memcmp(buf, "hello", 5) != 0) return 1;
    CHECK(shmbus_pipe_claim(tx, 3, &room, 0));
    CHECK(shmbus_pipe_cancel(tx));
    for (;;) {
        shmbus_status s = shmbus_pipe_send(tx, buf, 100, 0);
        if (s == SHMBUS_FULL) break;
        CHECK(s);
    }
    printf("provoked SHMBUS_FULL\n");
    shmbus_pipe_receiver_free(rx);
    PROVOKE(SHMBUS_DISCONNECTED, shmbus_pipe_send(tx, buf, 100, -1));
    shmbus_pipe_sender_free(tx);

    /* Queues. */
    shmbus_queue *q;
    PROVOKE(SHMBUS_KIND_MISMATCH, shmbus_queue_open(bus, "p", 0, 0, &q));
    CHECK(shmbus_queue_open(bus, "q", 2, 32, &q));
    PROVOKE(SHMBUS_TASK_DONE, shmbus_queue_task_done(q));
    CHECK(shmbus_queue_put(q, "a", 1, 0));
    CHECK(shmbus_queue_put(q, "b", 1, 0));
    EXPECT(SHMBUS_FULL, shmbus_queue_put(q, "c", 1, 0));
    EXPECT(SHMBUS_TIMEOUT, shmbus_queue_join(q, 0));
    EXPECT(SHMBUS_TOO_LARGE, shmbus_queue_put(q, buf, 33, -1));
    EXPECT(SHMBUS_BUFFER_TOO_SMALL, shmbus_queue_get(q, buf, 8, &len, 0));
    if (len != 32) return 1;
    CHECK(shmbus_queue_get(q, buf, 32, &len, 0));
    if (len != 1 || buf[0] != 'a') return 1;
    CHECK(shmbus_queue_get(q, buf, 32, &len, 0));
    EXPECT(SHMBUS_EMPTY, shmbus_queue_get(q, buf, 32, &len, 0));
    void *slot;
    EXPECT(SHMBUS_BAD_STATE, shmbus_queue_commit(q));
    EXPECT(SHMBUS_TOO_LARGE, shmbus_queue_claim(q, 33, &slot, 0));
    CHECK(shmbus_queue_claim(q, 3, &slot, 0));
    EXPECT(SHMBUS_BAD_STATE, shmbus_queue_claim(q, 3, &slot, 0));
    memcpy(slot, "xyz", 3);
    CHECK(shmbus_queue_commit(q));
    CHECK(shmbus_queue_get(q, buf, 32, &len, 0));
    if (len != 3 || memcmp(buf, "xyz", 3) != 0) return 1;
    CHECK(shmbus_queue_task_done(q));
    CHECK(shmbus_queue_task_done(q));
    CHECK(shmbus_queue_task_done(q));
    CHECK(shmbus_queue_join(q, 0));
    shmbus_queue_free(q);
    CHECK(shmbus_remove(bus, "q", &holders));
    if (holders != 0) return 1;
    CHECK(shmbus_remove(bus, "q", NULL) == SHMBUS_NOT_FOUND ? SHMBUS_OK : SHMBUS_UNKNOWN);

    /* Values and arrays. */
    shmbus_value *vd, *vi, *vu;
    CHECK(shmbus_value_open_f64(bus, "price", &vd));
    CHECK(shmbus_value_store_f64(vd, 101.25));
    double d;
    CHECK(shmbus_value_load_f64(vd, &d));
    if (d != 101.25) return 1;
    CHECK(shmbus_value_open_i32(bus, "n", &vi));
    int32_t prev;
    CHECK(shmbus_value_fetch_add_i32(vi, -3, &prev));
    CHECK(shmbus_value_fetch_add_i32(vi, 1, &prev));
    if (prev != -3) return 1;
    uint64_t ver, ver2;
    CHECK(shmbus_value_version(vi, &ver));
    PROVOKE(SHMBUS_TIMEOUT, shmbus_value_wait_changed(vi, ver, 0, NULL));
    CHECK(shmbus_value_store_i32(vi, 7));
    CHECK(shmbus_value_wait_changed(vi, ver, -1, &ver2));
    if (ver2 == ver) return 1;
    PROVOKE(SHMBUS_TYPE_MISMATCH, shmbus_value_open_u64(bus, "price", &vu));
    PROVOKE(SHMBUS_TYPE_MISMATCH, shmbus_value_load_i64(vd, (int64_t *)buf));
    uint64_t words[2];
    PROVOKE(SHMBUS_MISALIGNED, shmbus_value_load_f64(vd, (double *)((char *)words + 1)));
    shmbus_array *a;
    CHECK(shmbus_array_open_f32(bus, "xs", 4, &a));
    float xs[4] = {1.5f, 2.5f, 3.5f, 4.5f}, ys[4];
    CHECK(shmbus_array_write_f32(a, xs, 4));
    CHECK(shmbus_array_read_f32(a, ys, 4, &ver));
    if (memcmp(xs, ys, sizeof xs) != 0) return 1;
    PROVOKE(SHMBUS_LENGTH_MISMATCH, shmbus_array_read_f32(a, ys, 3, NULL));
    CHECK(shmbus_array_len(a, &len));
    if (len != 4) return 1;
    shmbus_array_free(a);
    shmbus_value_free(vd);
    shmbus_value_free(vi);

    /* Fill the directory (the daemon runs with --max-channels 32). */
    for (int i = 0;; i++) {
        char name[32];
        snprintf(name, sizeof name, "fill%d", i);
        shmbus_value *v;
        shmbus_status s = shmbus_value_open_u8(bus, name, &v);
        if (s == SHMBUS_DIRECTORY_FULL) break;
        CHECK(s);
        shmbus_value_free(v);
        if (i > 1000) return 1;
    }
    printf("provoked SHMBUS_DIRECTORY_FULL\n");

    /* The daemon goes away while a receive waits. The frames the sender left
       in "p" above are read first: a receive that finds a frame returns it
       whether or not the daemon still runs, so it must find none. */
    CHECK(shmbus_pipe_receiver_open(bus, "p", 4096, &rx));
    for (int left = 0;; left++) {
        shmbus_status s = shmbus_pipe_recv(rx, buf, sizeof buf, &len, 0);
        if (s == SHMBUS_EMPTY) {
            if (left == 0) return 1; /* the full pipe should have held some */
            break;
        }
        CHECK(s);
    }
    printf("stop the daemon\n");
    fflush(stdout);
    if (fgets((char *)buf, sizeof buf, stdin) == NULL) return 1;
    PROVOKE(SHMBUS_BUS_CLOSED, shmbus_pipe_recv(rx, buf, sizeof buf, &len, -1));
    shmbus_pipe_receiver_free(rx);
    shmbus_bus_free(bus);

    if (strcmp(shmbus_strerror(SHMBUS_OK), "success") != 0) return 1;
    if (strcmp(shmbus_strerror(12345), "unknown status code") != 0) return 1;
    printf("done\n");
    return 0;
}
