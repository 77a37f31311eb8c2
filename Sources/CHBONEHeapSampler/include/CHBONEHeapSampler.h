#ifndef CHBONE_HEAP_SAMPLER_H
#define CHBONE_HEAP_SAMPLER_H
#include "CHBONEPosix.h"

// The `hbone` executable's malloc, free, calloc, realloc, reallocarray, memalign, posix_memalign,
// aligned_alloc, valloc and pvalloc: glibc's (its __libc_* entry points), plus the heap sampler.
// Nothing imports this module; depending on it links them in. Callers use the
// chbone_heap_profiler_* functions of CHBONEPosix, which reach these through weak symbols.
int chbone_heap_sampler_set_active(int active, uint64_t interval);
void chbone_heap_sampler_status(chbone_heap_status *out);
int64_t chbone_heap_sampler_snapshot(chbone_heap_stack *out, int64_t max);

#endif
