// The test build: the fault seam (see binding.gyp here).
#define MEMGUARD_TEST_SEAM 1
#include "../memguard.cc"
