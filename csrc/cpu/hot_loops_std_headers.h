// Every standard header the hot loops use, for the units of the extra copies
// (hot_loops_avx2_fma.cpp, hot_loops_avx512.cpp) to include before their
// target pragmas: then the later includes of these are no-ops and no standard
// inline function is compiled for the extra instruction sets. Macros and
// standard headers only.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>
