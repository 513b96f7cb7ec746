/* sorted.h — lookup in an ascending array of row numbers or ids, the one
 * binary search the analysis and copyscope-mpi share (an id's row in the
 * index, a row of the whole index in a rank's share of it). */
#ifndef CS_SORTED_H
#define CS_SORTED_H

#include <stdint.h>

/* The index of key in a[n] (ascending, no repeats), -1 when absent. width:
 * the elements' bytes, 4 (int32_t) or 8 (int64_t). */
int64_t cs_sorted_find(const void *a, int width, int64_t n, int64_t key);

#endif
