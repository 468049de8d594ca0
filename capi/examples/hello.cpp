// A C++17 program on libshmbus: a pipe, a queue and a value, with the C
// status codes turned into exceptions by a small helper.
//
//   c++ -std=c++17 hello.cpp $(pkg-config --cflags --libs shmbus) -o hello
//   shmbusd --name demo &   ./hello demo
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "shmbus.h"

namespace {

void check(shmbus_status s) {
    if (s != SHMBUS_OK) throw std::runtime_error(shmbus_last_error());
}

// Owning handles: each frees its C handle when it goes out of scope.
template <typename T, void (*Free)(T*)>
struct Deleter {
    void operator()(T* p) const { Free(p); }
};
using Bus = std::unique_ptr<shmbus_bus, Deleter<shmbus_bus, shmbus_bus_free>>;
using Sender = std::unique_ptr<shmbus_pipe_sender,
                               Deleter<shmbus_pipe_sender, shmbus_pipe_sender_free>>;
using Receiver = std::unique_ptr<shmbus_pipe_receiver,
                                 Deleter<shmbus_pipe_receiver, shmbus_pipe_receiver_free>>;
using Queue = std::unique_ptr<shmbus_queue, Deleter<shmbus_queue, shmbus_queue_free>>;
using Value = std::unique_ptr<shmbus_value, Deleter<shmbus_value, shmbus_value_free>>;

template <typename H, typename Open, typename... Args>
H open(Open f, Args... args) {
    typename H::pointer p = nullptr;
    check(f(args..., &p));
    return H(p);
}

}  // namespace

int main(int argc, char** argv) try {
    Bus bus = open<Bus>(shmbus_connect, argc > 1 ? argv[1] : nullptr);

    // A pipe: the receiver first, so that it sees the sender come and go.
    auto rx = open<Receiver>(shmbus_pipe_receiver_open, bus.get(), "greetings", uint64_t{0});
    auto tx = open<Sender>(shmbus_pipe_sender_open, bus.get(), "greetings", uint64_t{0});
    std::string_view hello = "hello from C++";
    check(shmbus_pipe_send(tx.get(), hello.data(), hello.size(), -1));
    std::string got;
    check(shmbus_pipe_recv_with(
        rx.get(),
        [](void* ctx, const void* data, size_t len) {
            static_cast<std::string*>(ctx)->assign(static_cast<const char*>(data), len);
        },
        &got, 0));
    std::printf("pipe: %s\n", got.c_str());

    // A queue, Python's JoinableQueue.
    auto q = open<Queue>(shmbus_queue_open, bus.get(), "jobs", uint64_t{0}, uint64_t{0});
    check(shmbus_queue_put(q.get(), "job-1", 5, -1));
    char buf[256];
    size_t len = 0;
    check(shmbus_queue_get(q.get(), buf, sizeof buf, &len, 1000000000));
    check(shmbus_queue_task_done(q.get()));
    check(shmbus_queue_join(q.get(), 0));
    std::printf("queue: %.*s\n", static_cast<int>(len), buf);

    // A value, updated atomically.
    auto hits = open<Value>(shmbus_value_open_u64, bus.get(), "hits");
    uint64_t before = 0;
    check(shmbus_value_fetch_add_u64(hits.get(), 1, &before));
    std::printf("value: %llu -> %llu\n", static_cast<unsigned long long>(before),
                static_cast<unsigned long long>(before + 1));
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
}
