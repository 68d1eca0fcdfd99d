// A host emulation of the CUDA execution model, small enough to read, so that
// the real kernel source of csrc/cuda/ runs in the C++ tests without a GPU.
//
// Include this before any kernel header. Every CUDA thread is an OS thread
// (from a pool that outlives launches: creating threads is slow under
// ThreadSanitizer); the blocks of a grid run one after another.
// threadIdx, blockIdx, blockDim and gridDim are thread-local; warps are formed
// from the linear thread index x + y bx + z bx by, as on the hardware.
// __syncthreads is a barrier over the block and the shuffles go through a
// per-warp staging buffer (thread_groups.h); both synchronise through a mutex
// and atomics, so that ThreadSanitizer sees their ordering and reports what
// is not ordered.
// Static __shared__ variables are process-wide statics (static_shared.h) and
// dynamic shared memory a heap buffer of exactly the launch's size; both are
// filled with 0xFF bytes (NaN in floating point, -1 in integers) before every
// block, so a read before the block wrote the value shows up in the results.
//
// Blocks run in turn, each ordered after the one before, so ThreadSanitizer
// cannot see a race between blocks of one grid; within a block it sees every
// access that no barrier orders.
//
// The warp matrix functions of <mma.h> (nvcuda::wmma) are in wmma.h, with
// their preconditions asserted and an element layout of their own.
//
// Not emulated: warp-synchronous execution (lanes run independently, as
// independent thread scheduling allows), shuffles with a partial mask or a
// width other than 32, streams, and device-side math other than the host's
// (the kernels call the host's libm; the GPU's may round differently).
#pragma once

#define SEE_CUDA_EMULATION 1

#include <math.h>  // the float overloads of sqrt, exp, ... in the global namespace, as in device code

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <tuple>
#include <vector>

#include "static_shared.h"
#include "thread_groups.h"
#include "thread_pool.h"

// ---------------------------------------------------------------- the language
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __align__(n) __attribute__((aligned(n)))  // valid among the decl-specifiers, as in CUDA
#define __shared__ static
// The dynamic shared memory of the launch (csrc/cuda/device_runtime.cuh has the CUDA form).
#define SEE_DYNAMIC_SHARED(name) unsigned char* const name = ::see::emulation::dynamic_shared_memory()

struct uint3 {
  unsigned int x, y, z;
};

struct dim3 {
  unsigned int x, y, z;
  dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

using std::max;
using std::min;

namespace see {
namespace emulation {

// What one thread knows of its block.
struct ThreadContext {
  GroupBarrier* block = nullptr;
  Warp* warp = nullptr;
  int lane = 0;
  unsigned char* dynamic_shared = nullptr;
};

inline thread_local ThreadContext current;

inline unsigned char* dynamic_shared_memory() { return current.dynamic_shared; }

constexpr unsigned kFullMask = 0xffffffffu;

template <typename V>
V shuffle(unsigned mask, V value, int source_lane) {
  if (mask != kFullMask) fail("only full-mask shuffles are emulated");
  return current.warp->exchange(current.lane, value, source_lane);
}

}  // namespace emulation
}  // namespace see

inline void __syncthreads() {
  see::emulation::current.block->arrive_and_wait();
}

template <typename V>
V __shfl_sync(unsigned mask, V value, int source_lane, int width = 32) {
  if (width != 32) see::emulation::fail("shuffles of width 32 only");
  return see::emulation::shuffle(mask, value, source_lane & 31);
}

template <typename V>
V __shfl_down_sync(unsigned mask, V value, unsigned delta, int width = 32) {
  if (width != 32) see::emulation::fail("shuffles of width 32 only");
  const int lane = see::emulation::current.lane;
  const int source = lane + static_cast<int>(delta);
  return see::emulation::shuffle(mask, value, source < 32 ? source : lane);
}

// Relaxed, as CUDA's atomics are.
// Relaxed, as CUDA's atomics are.
inline int atomicOr(int* address, int value) { return __atomic_fetch_or(address, value, __ATOMIC_RELAXED); }

// ---------------------------------------------------------------- launches
namespace see {
namespace emulation {

inline void poison(unsigned char* begin, size_t bytes) { std::memset(begin, 0xFF, bytes); }

// Runs kernel(args...) on `grid` blocks of `block` threads with
// `dynamic_shared_bytes` of dynamic shared memory, and returns when every
// block has finished (a launch followed by a device synchronisation).
template <typename... Params, typename... Args>
void launch(dim3 grid, dim3 block, size_t dynamic_shared_bytes, void (*kernel)(Params...), Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "kernel argument count");
  const std::tuple<Params...> params(std::forward<Args>(args)...);  // converted once, copied per thread
  const int threads = static_cast<int>(block.x * block.y * block.z);
  if (threads <= 0 || threads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0)
    fail("invalid launch configuration (an empty grid or block, or more than 1024 threads)");
  const int num_warps = (threads + 31) / 32;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        for (const MemoryRange& range : static_shared_ranges()) poison(range.begin, range.bytes);
        const std::unique_ptr<unsigned char[]> dynamic(new unsigned char[std::max<size_t>(dynamic_shared_bytes, 1)]);
        poison(dynamic.get(), dynamic_shared_bytes);
        GroupBarrier block_barrier(threads,
                                   "a thread of the block returned before a __syncthreads that the others reach");
        std::vector<std::unique_ptr<Warp>> warps;
        for (int w = 0; w < num_warps; ++w) warps.emplace_back(new Warp(std::min(32, threads - 32 * w)));
        thread_pool().run(threads, [&](int t) {
          threadIdx = uint3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
          blockIdx = uint3{bx, by, bz};
          blockDim = block;
          gridDim = grid;
          current = ThreadContext{&block_barrier, warps[t / 32].get(), t % 32, dynamic.get()};
          std::apply(kernel, params);
          current.warp->leave();
          current.block->leave();
        });
      }
}

// The same with the shape decided by a *_launch.h header of csrc/cuda.
template <typename Shape, typename... Params, typename... Args>
void launch(const Shape& shape, void (*kernel)(Params...), Args&&... args) {
  launch(dim3(shape.grid[0], shape.grid[1], shape.grid[2]), dim3(shape.block[0], shape.block[1], shape.block[2]),
         static_cast<size_t>(shape.shared_bytes), kernel, std::forward<Args>(args)...);
}

}  // namespace emulation
}  // namespace see

#include "wmma.h"  // after the thread context, which it uses
