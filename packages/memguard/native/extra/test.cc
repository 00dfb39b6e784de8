// The test build: the fault seam and the floors (see binding.gyp here).
#define MEMGUARD_TEST_SEAM 1
#define MEMGUARD_FLOORS 1
#include "../memguard.cc"
