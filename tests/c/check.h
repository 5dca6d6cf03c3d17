/* The checks of the C ABI test programs: a failed CHECK prints where and
 * what, and counts; main returns non-zero when any failed. */
#ifndef SYNCSEG_TEST_CHECK_H
#define SYNCSEG_TEST_CHECK_H

#include <stdio.h>

static int failures = 0;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "FAILED %s:%d: ", __FILE__, __LINE__);                   \
      fprintf(stderr, __VA_ARGS__);                                            \
      fprintf(stderr, "\n");                                                   \
      failures++;                                                              \
    }                                                                          \
  } while (0)

#endif
