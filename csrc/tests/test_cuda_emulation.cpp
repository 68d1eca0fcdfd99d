// Tests of the CUDA emulation itself (cuda_emulation/emulation.h): that it
// poisons shared memory, reduces like the hardware, and stops on the misuse
// it promises to catch. Run as `test_cuda_emulation <case>`; ctest runs each
// case. A misuse case runs its kernel in a child process and passes when the
// child aborts with the emulation's message.
//
// The `missing_barrier` case is the negative control of the ThreadSanitizer
// build: a kernel that reads a neighbour's shared slot without the barrier
// that would order the write before it. Under ThreadSanitizer ctest passes it
// only if a data race is reported; if a change to the emulation ever hid the
// ordering that barriers give (or faked one), this case would fail, where the
// kernel tests would just pass silently.
//
// The `wmma*` cases check the warp matrix functions (cuda_emulation/wmma.h):
// `wmma` that the element layout is the emulation's own (a permutation of the
// matrix, unlike either memory order) while loads, stores and elementwise
// work agree with the matrix; the others that each precondition of the CUDA
// documentation is reported. `wmma_misaligned_load` is their negative
// control: a fragment load from a pointer 4 bytes off a 32-byte boundary.
#include "cuda_emulation/emulation.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/block_reduce.cuh"

namespace see {
namespace cuda {

// What thread t finds in static and dynamic shared memory before anyone
// writes there (the poison), and a block sum.
__global__ void poison_kernel(double* static_before, unsigned char* dynamic_before, double* sums) {
  __shared__ double slot[64];
  SEE_DYNAMIC_SHARED(raw);
  const int t = threadIdx.x;
  static_before[blockIdx.x * 64 + t] = slot[t];
  dynamic_before[blockIdx.x * 64 + t] = raw[t];
  __syncthreads();  // every read of the poison before any write
  slot[t] = 1.0;
  raw[t] = 1;
  sums[blockIdx.x * 64 + t] = block_sum(static_cast<double>(t));
}

// Each thread of a 2-D block gets the linear index of lane 0 of its warp.
__global__ void warp_leader_kernel(int* out) {
  const int linear = threadIdx.x + threadIdx.y * blockDim.x + threadIdx.z * blockDim.x * blockDim.y;
  out[linear] = __shfl_sync(kFullMask, linear, 0);
}

__global__ void missing_barrier_kernel(int* out) {
  __shared__ int slot[64];
  const int t = threadIdx.x;
  __syncthreads();
  slot[t] = t;
  // A __syncthreads belongs here: the read below is of another thread's write.
  out[t] = slot[(t + 1) % blockDim.x];
}

__global__ void shuffle_kernel(int* out) { out[threadIdx.x] = warp_sum(1); }

__global__ void early_return_shuffle_kernel(int* out) {
  if (threadIdx.x == 5) return;
  out[threadIdx.x] = warp_sum(1);
}

__global__ void early_return_barrier_kernel(int* out) {
  if (threadIdx.x == 0) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

namespace wmma = nvcuda::wmma;
using OperandA = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using Accumulator = wmma::fragment<wmma::accumulator, 16, 16, 8, float>;

// Loads a 16 x 16 matrix (row-major), doubles every element of the
// fragment, stores it column-major; `before` gets lane 0's first element of
// a fragment never filled.
__global__ void wmma_roundtrip_kernel(const float* in, float* out, float* before) {
  Accumulator f;
  if (threadIdx.x == 0) *before = f.x[0];
  wmma::load_matrix_sync(f, in, 16, wmma::mem_row_major);
  for (int e = 0; e < f.num_elements; ++e) f.x[e] *= 2.0f;
  wmma::store_matrix_sync(out, f, 16, wmma::mem_col_major);
}

__global__ void wmma_load_kernel(const float* p, unsigned ldm) {
  OperandA f;
  wmma::load_matrix_sync(f, p, ldm);
}

__global__ void wmma_divergent_kernel(const float* p) {
  OperandA f;
  wmma::load_matrix_sync(f, p + (threadIdx.x == 3 ? 8 : 0), 8);
}

__global__ void wmma_early_return_kernel(const float* p) {
  if (threadIdx.x == 7) return;
  OperandA f;
  wmma::load_matrix_sync(f, p, 8);
}

}  // namespace cuda
}  // namespace see

namespace {

using see::emulation::launch;

int poison() {
  std::vector<double> static_before(128), sums(128);
  std::vector<unsigned char> dynamic_before(128);
  launch(dim3(2), dim3(64), 64, see::cuda::poison_kernel, static_before.data(), dynamic_before.data(), sums.data());
  int bad = 0;
  for (int i = 0; i < 128; ++i) {
    bad += !std::isnan(static_before[i]);  // the second block too: the first block's 1.0 was poisoned again
    bad += dynamic_before[i] != 0xFF;
    bad += sums[i] != 63.0 * 64.0 / 2.0;
  }
  bad += see::emulation::static_shared_ranges().empty();
  // Warps of a 16 x 2 x 3 block: lanes 0-31 of the linear index, whatever the shape.
  std::vector<int> leaders(96);
  launch(dim3(1), dim3(16, 2, 3), 0, see::cuda::warp_leader_kernel, leaders.data());
  for (int i = 0; i < 96; ++i) bad += leaders[i] != i / 32 * 32;
  std::printf("%s: %d wrong values\n", bad == 0 ? "poison, block sums and warps as expected" : "FAIL", bad);
  return bad == 0 ? 0 : 1;
}

int missing_barrier() {
  std::vector<int> out(64);
  launch(dim3(1), dim3(64), 0, see::cuda::missing_barrier_kernel, out.data());
  std::printf("the kernel ran; only ThreadSanitizer can tell that it raced\n");
  return 0;
}

// Runs `launch_misuse` in a child process, which must die of SIGABRT with
// `message` on its standard error. (Forked before any launch: the parent has
// no worker threads that the child would lack.)
template <typename Body>
int expect_abort(Body launch_misuse, const char* message) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return 2;
  const pid_t child = fork();
  if (child == 0) {
    dup2(pipe_fds[1], STDERR_FILENO);
    close(pipe_fds[0]);
    launch_misuse();
    _exit(0);  // not reached when the emulation catches the misuse
  }
  close(pipe_fds[1]);
  std::string err;
  char buffer[256];
  for (ssize_t got; (got = read(pipe_fds[0], buffer, sizeof buffer)) > 0;) err.append(buffer, got);
  close(pipe_fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  const bool aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
  const bool said_so = err.find(message) != std::string::npos;
  std::printf("%s: child %s, its message: %s", aborted && said_so ? "caught" : "FAIL",
              aborted ? "aborted" : "did not abort", err.empty() ? "(none)\n" : err.c_str());
  return aborted && said_so ? 0 : 1;
}

int partial_warp() {
  return expect_abort([] {
    std::vector<int> out(48);
    launch(dim3(1), dim3(48), 0, see::cuda::shuffle_kernel, out.data());
  }, "a full-mask shuffle in a warp with fewer than 32 lanes");
}

int early_return_shuffle() {
  return expect_abort([] {
    std::vector<int> out(32);
    launch(dim3(1), dim3(32), 0, see::cuda::early_return_shuffle_kernel, out.data());
  }, "a lane of the warp returned before a warp-wide operation (full-mask shuffle, WMMA) that the others reach");
}

int early_return_barrier() {
  return expect_abort([] {
    std::vector<int> out(64);
    launch(dim3(1), dim3(64), 0, see::cuda::early_return_barrier_kernel, out.data());
  }, "a thread of the block returned before a __syncthreads that the others reach");
}

// Where (row, column) each (lane, element) of a fragment type lands: a bijection, unlike row- or column-major.
template <typename Fragment>
int count_layout_faults() {
  std::vector<int> hits(Fragment::rows * Fragment::cols, 0);
  int row_major = 0, col_major = 0;
  for (int lane = 0; lane < 32; ++lane)
    for (int e = 0; e < Fragment::num_elements; ++e) {
      int r, c;
      Fragment::position(lane, e, &r, &c);
      ++hits[r * Fragment::cols + c];
      const int slot = lane * Fragment::num_elements + e;
      row_major += slot == r * Fragment::cols + c;
      col_major += slot == c * Fragment::rows + r;
    }
  int faults = 0;
  for (int h : hits) faults += h != 1;
  const int slots = 32 * Fragment::num_elements;
  return faults + (row_major > slots / 4) + (col_major > slots / 4);
}

alignas(32) float wmma_buffer[16 * 16 + 64];

int wmma() {
  alignas(32) static float in[256], out[256];
  for (int i = 0; i < 256; ++i) in[i] = static_cast<float>(i);
  float before = 0.0f;
  launch(dim3(1), dim3(32), 0, see::cuda::wmma_roundtrip_kernel, in, out, &before);
  int bad = !std::isnan(before);
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) bad += out[c * 16 + r] != 2.0f * in[r * 16 + c];
  bad += count_layout_faults<see::cuda::OperandA>();
  bad += count_layout_faults<see::cuda::Accumulator>();
  bad += count_layout_faults<nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 8, 8, 4, double, nvcuda::wmma::col_major>>();
  // tf32 rounding: to nearest, 10 mantissa bits kept.
  bad += nvcuda::wmma::__float_to_tf32(1.0f + 1.0f / 4096) != 1.0f;
  bad += nvcuda::wmma::__float_to_tf32(1.0f + 3.0f / 4096) != 1.0f + 1.0f / 1024;
  std::printf("%s: %d wrong values\n", bad == 0 ? "fragments load, store and scramble as expected" : "FAIL", bad);
  return bad == 0 ? 0 : 1;
}

int wmma_misaligned_load() {
  return expect_abort([] { launch(dim3(1), dim3(32), 0, see::cuda::wmma_load_kernel, wmma_buffer + 1, 8u); },
                      "load_matrix_sync: the pointer is not 256-bit (32-byte) aligned");
}

int wmma_bad_ldm() {
  return expect_abort([] { launch(dim3(1), dim3(32), 0, see::cuda::wmma_load_kernel, wmma_buffer, 6u); },
                      "load_matrix_sync: the leading dimension 6 is not a multiple of 16 bytes");
}

int wmma_partial_warp() {
  return expect_abort([] { launch(dim3(1), dim3(48), 0, see::cuda::wmma_load_kernel, wmma_buffer, 8u); },
                      "a WMMA operation in a warp with fewer than 32 lanes");
}

int wmma_divergent() {
  return expect_abort([] { launch(dim3(1), dim3(32), 0, see::cuda::wmma_divergent_kernel, wmma_buffer); },
                      "load_matrix_sync: the lanes of the warp passed different pointers or ldm");
}

int wmma_early_return() {
  return expect_abort([] { launch(dim3(1), dim3(32), 0, see::cuda::wmma_early_return_kernel, wmma_buffer); },
                      "a lane of the warp returned before a warp-wide operation (full-mask shuffle, WMMA)");
}

}  // namespace

int main(int argc, char** argv) {
  const std::string which = argc > 1 ? argv[1] : "";
  if (which == "poison") return poison();
  if (which == "missing_barrier") return missing_barrier();
  if (which == "partial_warp") return partial_warp();
  if (which == "early_return_shuffle") return early_return_shuffle();
  if (which == "early_return_barrier") return early_return_barrier();
  if (which == "wmma") return wmma();
  if (which == "wmma_misaligned_load") return wmma_misaligned_load();
  if (which == "wmma_bad_ldm") return wmma_bad_ldm();
  if (which == "wmma_partial_warp") return wmma_partial_warp();
  if (which == "wmma_divergent") return wmma_divergent();
  if (which == "wmma_early_return") return wmma_early_return();
  std::fprintf(stderr,
               "usage: %s poison|missing_barrier|partial_warp|early_return_shuffle|early_return_barrier|wmma|"
               "wmma_misaligned_load|wmma_bad_ldm|wmma_partial_warp|wmma_divergent|wmma_early_return\n",
               argv[0]);
  return 2;
}
