/*
 * l0_bench.c - per-call cost of libl0 from C against the simulated L0: the
 * baseline that bench/l0_calls.py compares the Python binding with.
 * Usage: l0_bench STATE_PATH ITERATIONS DURABLE(0|1)
 * Prints one JSON object: nanoseconds per call for query and for a
 * state-changing call (nested enable/disable alternating).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "l0.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s STATE_PATH ITERATIONS DURABLE\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    long n = atol(argv[2]);
    l0_sim_machine m = {.n_cpus = 64, .mem_bytes = UINT64_C(256) << 30, .durable = (uint32_t)atoi(argv[3])};
    if (l0_sim_create(path, &m) != L0_OK)
        return 1;
    l0_handle *h;
    if (l0_open(&h, L0_BACKEND_SIM, path) != L0_OK)
        return 1;
    static l0_state st;
    for (int i = 0; i < 1000; i++)
        l0_query(h, &st);
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        if (l0_query(h, &st) != L0_OK)
            return 1;
    double q = (now_ns() - t0) / (double)n;
    long nw = n / 4 > 0 ? n / 4 : 1;
    t0 = now_ns();
    for (long i = 0; i < nw; i++)
        if ((i % 2 ? l0_nested_disable(h) : l0_nested_enable(h)) != L0_OK)
            return 1;
    double w = (now_ns() - t0) / (double)nw;
    printf("{\"query_ns\": %.1f, \"state_change_ns\": %.1f, \"iterations\": %ld, \"durable\": %u}\n", q,
           w, n, m.durable);
    l0_close(h);
    return 0;
}
