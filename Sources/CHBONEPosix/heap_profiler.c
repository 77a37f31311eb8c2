#include "CHBONEPosix.h"
#include <errno.h>
#include <string.h>

// Defined by CHBONEHeapSampler, which only the `hbone` executable links: weak, so every other
// binary (tests, benchmarks, the fuzzers) links without it and these read as NULL.
extern int chbone_heap_sampler_set_active(int active, uint64_t interval) __attribute__((weak));
extern void chbone_heap_sampler_status(chbone_heap_status *out) __attribute__((weak));
extern int64_t chbone_heap_sampler_snapshot(chbone_heap_stack *out, int64_t max) __attribute__((weak));

int chbone_heap_profiler_available(void) {
    return chbone_heap_sampler_set_active != NULL && chbone_heap_sampler_status != NULL && chbone_heap_sampler_snapshot != NULL;
}

int chbone_heap_profiler_set_active(int active, uint64_t interval) {
    if (!chbone_heap_profiler_available()) { errno = ENOSYS; return -1; }
    return chbone_heap_sampler_set_active(active, interval);
}

void chbone_heap_profiler_status(chbone_heap_status *out) {
    memset(out, 0, sizeof *out);
    if (!chbone_heap_profiler_available()) return;
    chbone_heap_sampler_status(out);
    out->available = 1;
}

int64_t chbone_heap_profiler_snapshot(chbone_heap_stack *out, int64_t max) {
    if (!chbone_heap_profiler_available()) return 0;
    return chbone_heap_sampler_snapshot(out, max);
}
