// The CUDA passes of the softmax-family losses (cuda/softmax_family_kernels.cuh)
// under the emulation, against the CPU row loops (cpu/softmax_family_kernels.h),
// both on the same cosines, chunk after chunk, with the launch shapes the GPU
// gets (cuda/softmax_family_launch.h).
//
// Per row, the chunk's maximum and target logit are the same function of the
// same numbers on both sides: equal; so is every exponential (the shared
// entry_exponential). Their sum (each term at most 1) is taken in blocks of
// kSoftmaxExpBlock terms in T on the CPU (within gamma_256(T) of itself) and
// in double by the block reduction (within gamma_count(double)); merged over
// the chunks, each rescaled by an exp of an exact difference, the rows' sums
// within gamma_256(T) + gamma_{count + 2 chunks}(double) of each other. The
// gradient entries are the same formula of the same inputs: equal.
#include "cuda_emulation/emulation.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "cpu/softmax_family_kernels.h"
#include "cuda/softmax_family_kernels.cuh"
#include "cuda/softmax_family_launch.h"
#include "emulated_test_support.h"

namespace {

using see::emulation::launch;
using see::testing::check;
using see::testing::check_close;
using see::testing::gamma;

struct Rows {
  std::vector<double> max, sum, target, found;
  explicit Rows(int64_t N) : max(N, -INFINITY), sum(N, 0.0), target(N, 0.0), found(N, 0.0) {}
  see::cpu::RowStats view() { return {max.data(), sum.data(), target.data(), found.data()}; }
};

template <typename T>
void run_case(const see::LogitMap& map, int64_t N, int64_t C, int64_t width, bool nan_row, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> cosine(-1.0, 1.0);
  std::uniform_int_distribution<int64_t> label(0, C);  // C itself: a label of no class here (target unfound)
  std::vector<T> S(N * C);
  for (auto& s : S) s = static_cast<T>(cosine(rng));
  if (nan_row) S[1 * C + C / 2] = static_cast<T>(NAN);
  std::vector<int64_t> labels(N);
  for (auto& y : labels) y = label(rng);
  // Chunks of `width` classes, each its own N x count row-major block, as the glue forms them.
  Rows cpu(N), gpu(N);
  std::vector<std::vector<T>> chunks;
  for (int64_t first = 0; first < C; first += width) {
    const int64_t count = std::min(width, C - first);
    std::vector<T> chunk(N * count);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t c = 0; c < count; ++c) chunk[i * count + c] = S[i * C + first + c];
    // Each pass takes its own copy: the target's cosine is scratch to it.
    std::vector<T> cpu_chunk = chunk, gpu_chunk = chunk;
    const see::cpu::SoftmaxChunk<T> p{cpu_chunk.data(), N, count, first, labels.data(), map};
    for (int64_t i = 0; i < N; ++i) see::cpu::softmax_row_stats(p, i, cpu.view());
    launch(see::cuda::softmax_rows_launch(N, count), see::cuda::softmax_rows_kernel<T>, gpu_chunk.data(), count,
           first, labels.data(), map, gpu.max.data(), gpu.sum.data(), gpu.target.data(), gpu.found.data());
    chunks.push_back(chunk);
  }
  const int64_t num_chunks = static_cast<int64_t>(chunks.size());
  std::vector<double> lse(N), weight(N, 1.0 / N);
  for (int64_t i = 0; i < N; ++i) {
    const bool row_nan = nan_row && i == 1;
    check(std::isnan(gpu.sum[i]) == row_nan && std::isnan(cpu.sum[i]) == row_nan, "a NaN row is NaN, only it");
    if (row_nan) continue;
    check_close(gpu.max[i], cpu.max[i], 0.0, "row maximum");
    const double block = static_cast<double>(std::min<int64_t>(width, see::cpu::kSoftmaxExpBlock));
    check_close(gpu.sum[i], cpu.sum[i], (gamma<T>(block) + gamma<double>(width + 2 * num_chunks)) * cpu.sum[i],
                "row sum");
    check_close(gpu.found[i], cpu.found[i], 0.0, "target found");
    check_close(gpu.target[i], cpu.target[i], 0.0, "target logit");
    check(cpu.found[i] == (labels[i] < C ? 1.0 : 0.0), "the target is found exactly when it is a class here");
    lse[i] = cpu.max[i] + std::log(cpu.sum[i]);
  }
  for (int64_t k = 0; k < num_chunks; ++k) {
    const int64_t first = k * width, count = std::min(width, C - first);
    std::vector<T> cpu_grad = chunks[k], gpu_grad = chunks[k];
    const see::cpu::SoftmaxChunk<T> p{cpu_grad.data(), N, count, first, labels.data(), map};
    for (int64_t i = 0; i < N; ++i) see::cpu::softmax_row_grad(p, i, lse.data(), weight.data());
    launch(see::cuda::softmax_rows_launch(N, count), see::cuda::softmax_grad_kernel<T>, gpu_grad.data(), count,
           first, labels.data(), map, lse.data(), weight.data());
    for (int64_t e = 0; e < N * count; ++e) {
      if (nan_row && e / count == 1) continue;
      check_close(gpu_grad[e], cpu_grad[e], 0.0, "gradient entry");
    }
  }
}

template <typename T>
void run_all() {
  std::mt19937_64 rng(7);
  const see::LogitMap maps[] = {{2.0, -2.0, see::kNoMargin, 0.0},
                                {20.0, 0.0, see::kNoMargin, 0.0},
                                {64.0, 0.0, see::kCosineMargin, 0.35},
                                {64.0, 0.0, see::kAngularMargin, 0.5}};
  for (const auto& map : maps) {
    run_case<T>(map, 5, 37, 37, false, rng);   // one chunk, a partial warp
    run_case<T>(map, 7, 300, 64, false, rng);  // several chunks, the last one short, a full block
    run_case<T>(map, 4, 9, 1, true, rng);      // one class per chunk, a NaN row
  }
}

}  // namespace

int main() {
  run_all<double>();
  run_all<float>();
  if (see::testing::failures == 0) std::printf("emulated softmax-family kernels: all tests passed\n");
  return see::testing::failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
