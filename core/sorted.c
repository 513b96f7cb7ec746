/* sorted.c — see sorted.h. */
#include "core/sorted.h"

static int64_t at(const void *a, int width, int64_t i) {
    return width == 4 ? (int64_t)((const int32_t *)a)[i] : ((const int64_t *)a)[i];
}

int64_t cs_sorted_find(const void *a, int width, int64_t n, int64_t key) {
    int64_t lo = 0, hi = n - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2, v = at(a, width, mid);
        if (v == key) return mid;
        if (v < key) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}
