#include <malloc.h>
#include "CRobitSys.h"

void robit_tune_malloc(int arenas, size_t mmap_threshold) {
    mallopt(M_ARENA_MAX, arenas);
    // Fixed thresholds also switch off glibc's dynamic threshold, which otherwise rises to the largest
    // block freed so far and leaves every later buffer of that size in an arena that never shrinks.
    mallopt(M_MMAP_THRESHOLD, (int)mmap_threshold);
    mallopt(M_TRIM_THRESHOLD, (int)(2 * mmap_threshold));
}

void robit_trim_malloc(void) {
    malloc_trim(0);
}
