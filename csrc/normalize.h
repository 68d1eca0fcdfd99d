// Forwards to cpu/normalize.h, where the CPU row norms live; kept only while
// cpu/slerp_cpu.cpp includes it by this name.
#pragma once

#include "cpu/normalize.h"
