// The closed-form kernels under the CUDA emulation: the Max-Mahalanobis
// centers and the Philox normal stream, against the CPU's formulas.
//
// Both compute each element from its index alone with the same shared header
// as the CPU, so under the emulation (the host's arithmetic) the results must
// be bit-identical; what is tested is the indexing: thread and block offsets,
// the grid-stride loop, a count that is not a multiple of the four elements a
// thread writes, and blocks whose threads run out of work.
#include "cuda_emulation/emulation.h"

#include <cstdio>
#include <cstring>
#include <vector>

#include "cuda/mmd_centers_kernels.cuh"
#include "cuda/mmd_centers_launch.h"
#include "cuda/philox_normal_kernels.cuh"
#include "cuda/philox_normal_launch.h"
#include "emulated_test_support.h"
#include "mmd_centers.h"
#include "philox_normal.h"

namespace {

using see::emulation::launch;
using see::testing::check;

void test_mmd_centers(int64_t num_centers, int64_t dim, double radius) {
  std::vector<double> got(num_centers * dim, -7.0), want(num_centers * dim);
  for (int64_t i = 0; i < num_centers; ++i)
    for (int64_t j = 0; j < dim; ++j) want[i * dim + j] = radius * see::mmd_center_entry(i, j, num_centers);
  launch(see::cuda::mmd_centers_launch(num_centers * dim), see::cuda::mmd_centers_kernel, got.data(), num_centers,
         dim, radius);
  check(std::memcmp(got.data(), want.data(), got.size() * sizeof(double)) == 0,
        "emulated MMD centers equal the closed form bit for bit");
}

// A grid smaller than the work: the grid-stride loop covers the rest.
void test_mmd_centers_grid_stride() {
  const int64_t num_centers = 9, dim = 70;  // 630 entries, 3 blocks by the launch rule
  std::vector<double> got(num_centers * dim, -7.0);
  launch(dim3(1), dim3(64), 0, see::cuda::mmd_centers_kernel, got.data(), num_centers, dim, 2.0);
  bool ok = true;
  for (int64_t e = 0; e < num_centers * dim; ++e)
    ok &= got[e] == 2.0 * see::mmd_center_entry(e / dim, e % dim, num_centers);
  check(ok, "MMD centers kernel: the grid-stride loop reaches every entry");
}

template <typename T>
void test_philox(int64_t count, uint64_t seed) {
  std::vector<T> got(count + 1, T(-7)), want(count);
  const int64_t seed_value = static_cast<int64_t>(seed);
  see::philox_normal_fill(seed, 0, count, want.data());
  launch(see::cuda::philox_normal_launch(count), see::cuda::philox_normal_kernel<T>, got.data(), &seed_value, count);
  check(std::memcmp(got.data(), want.data(), count * sizeof(T)) == 0,
        "emulated Philox stream equals philox_normal_fill bit for bit");
  check(got[count] == T(-7), "the Philox kernel writes nothing past count");
}

template <typename T>
void test_philox_grid_stride() {
  const int64_t count = 1031;  // 258 groups on one block of 32 threads: nine rounds of the loop
  const uint64_t seed = 0x0123456789abcdefull;
  const int64_t seed_value = static_cast<int64_t>(seed);
  std::vector<T> got(count), want(count);
  see::philox_normal_fill(seed, 0, count, want.data());
  launch(dim3(1), dim3(32), 0, see::cuda::philox_normal_kernel<T>, got.data(), &seed_value, count);
  check(std::memcmp(got.data(), want.data(), count * sizeof(T)) == 0, "Philox kernel: the grid-stride loop");
}

}  // namespace

int main() {
  test_mmd_centers(1, 1, 1.0);
  test_mmd_centers(2, 3, 1.0);
  test_mmd_centers(17, 20, 0.5);  // 340 entries: two blocks, the second partly idle
  test_mmd_centers_grid_stride();
  for (int64_t count : {1, 3, 4, 1021, 2050}) {
    test_philox<float>(count, 0x0123456789abcdefull);
    test_philox<double>(count, 42);
  }
  test_philox_grid_stride<float>();
  test_philox_grid_stride<double>();
  if (see::testing::failures == 0) std::printf("emulated MMD-centers and Philox kernels: all tests passed\n");
  return see::testing::failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
