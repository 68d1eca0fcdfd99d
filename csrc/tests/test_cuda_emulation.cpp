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
  }, "a lane of the warp returned before a full-mask shuffle that the others reach");
}

int early_return_barrier() {
  return expect_abort([] {
    std::vector<int> out(64);
    launch(dim3(1), dim3(64), 0, see::cuda::early_return_barrier_kernel, out.data());
  }, "a thread of the block returned before a __syncthreads that the others reach");
}

}  // namespace

int main(int argc, char** argv) {
  const std::string which = argc > 1 ? argv[1] : "";
  if (which == "poison") return poison();
  if (which == "missing_barrier") return missing_barrier();
  if (which == "partial_warp") return partial_warp();
  if (which == "early_return_shuffle") return early_return_shuffle();
  if (which == "early_return_barrier") return early_return_barrier();
  std::fprintf(stderr, "usage: %s poison|missing_barrier|partial_warp|early_return_shuffle|early_return_barrier\n",
               argv[0]);
  return 2;
}
