// The warp matrix (WMMA) functions the tensor-core kernels use: <mma.h> under
// nvcc (sm_80 and later: tf32, bf16 and double fragments), the emulation's
// (csrc/tests/cuda_emulation/wmma.h, which asserts the preconditions and
// scrambles the element layout) in the C++ tests.
#pragma once

#include "device_runtime.cuh"

#if !defined(SEE_CUDA_EMULATION)
#include <cuda_bf16.h>
#include <mma.h>
#endif
