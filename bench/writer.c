/* The benchmark's file writer: creates files as fast as the kernel allows, or one at a
 * time on a schedule, and reports CLOCK_MONOTONIC times (the clock of Python's
 * time.monotonic_ns) so the harness can line them up with what the watchers print.
 *
 *   writer burst  DIR COUNT               DIR/f000000 .. f<COUNT-1>, 1 byte each
 *   writer steady DIR COUNT INTERVAL_US   the same, one file every INTERVAL_US
 *
 * Output: "START_NS END_NS COUNT", then for `steady` one line per file with the time
 * taken just before its close(2). bench/writer_py.py is the same program in Python.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int write_one(const char *dir, long i, long long *closed_ns) {
    char path[4096];
    snprintf(path, sizeof path, "%s/f%06ld", dir, i);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, "x", 1) != 1) {
        fprintf(stderr, "writer: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (closed_ns) *closed_ns = now_ns();
    close(fd);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: writer burst DIR COUNT | writer steady DIR COUNT INTERVAL_US\n");
        return 2;
    }
    const char *mode = argv[1], *dir = argv[2];
    long count = atol(argv[3]);
    if (strcmp(mode, "burst") == 0) {
        long long start = now_ns();
        for (long i = 0; i < count; i++)
            if (write_one(dir, i, NULL) < 0) return 1;
        printf("%lld %lld %ld\n", start, now_ns(), count);
        return 0;
    }
    if (strcmp(mode, "steady") != 0 || argc < 5) {
        fprintf(stderr, "writer: unknown mode or missing INTERVAL_US\n");
        return 2;
    }
    long long interval = atoll(argv[4]) * 1000LL;
    long long *closed = calloc((size_t)count, sizeof *closed);
    if (!closed) return 1;
    long long start = now_ns();
    for (long i = 0; i < count; i++) {
        long long due = start + i * interval;
        struct timespec ts = {.tv_sec = due / 1000000000LL, .tv_nsec = due % 1000000000LL};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
        if (write_one(dir, i, &closed[i]) < 0) return 1;
    }
    printf("%lld %lld %ld\n", start, now_ns(), count);
    for (long i = 0; i < count; i++) printf("%lld\n", closed[i]);
    free(closed);
    return 0;
}
