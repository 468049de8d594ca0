/* counter BUS N: adds 1 to the uint64_t value "hits" N times with
   fetch_add, checking that every previous value it sees is below the total
   all processes could reach (the test checks the final sum). */
#include <stdint.h>

#include "check.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: counter BUS N\n");
        return 2;
    }
    uint64_t n = strtoull(argv[2], NULL, 10);
    shmbus_bus *bus;
    shmbus_value *hits;
    CHECK(shmbus_connect(argv[1], &bus));
    CHECK(shmbus_value_open_u64(bus, "hits", &hits));
    uint64_t last = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t prev;
        CHECK(shmbus_value_fetch_add_u64(hits, 1, &prev));
        if (i > 0 && prev <= last) {
            fprintf(stderr, "fetch_add went backwards: %llu after %llu\n",
                    (unsigned long long)prev, (unsigned long long)last);
            return 1;
        }
        last = prev;
    }
    shmbus_value_free(hits);
    shmbus_bus_free(bus);
    printf("done\n");
    return 0;
}
