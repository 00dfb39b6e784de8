// The benchmark floors (see binding.gyp here).
#define MEMGUARD_FLOORS 1
#include "../memguard.cc"
