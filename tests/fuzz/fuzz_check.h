// What every fuzz target uses to state a promise of the code under test:
// when it does not hold, say which and abort, so libFuzzer keeps the input
// as a crash artifact.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition, what)                                               \
  do {                                                                            \
    if (!(condition)) {                                                           \
      std::fprintf(stderr, "FUZZ_CHECK failed: %s (%s) at %s:%d\n", what, #condition, \
                   __FILE__, __LINE__);                                           \
      std::abort();                                                               \
    }                                                                             \
  } while (false)
