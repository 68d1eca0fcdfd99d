// The warp matrix (WMMA) API of <mma.h> under the host emulation: fragments,
// fill_fragment, load_matrix_sync, store_matrix_sync, mma_sync and
// __float_to_tf32, for the shapes the kernels use on sm_80 and later:
//   m16n16k8 with precision::tf32 operands (float in memory) and a float accumulator,
//   m16n16k16 with __nv_bfloat16 operands and a float accumulator,
//   m8n8k4 with double operands and a double accumulator.
// __nv_bfloat16 and its conversions (<cuda_bf16.h>'s, round to nearest even)
// are emulated here too. (Half operands are not emulated.)
//
// What the hardware leaves unspecified, the emulation chooses so that code
// relying on it fails:
// - The element layout. Element e of lane l of a fragment holds the matrix
//   entry of a scrambled index (kScramble below), a different one for each
//   use (a, b, accumulator): code that reads or writes frag.x[e] as a given
//   (row, column) gets wrong results. Elementwise code that treats every
//   element alike (scaling, a conversion to tf32) is layout-free and works.
// - A fragment's value before it is filled: NaN.
// - tf32 operands: mma_sync reads the top 19 bits of each float (the low 13
//   mantissa bits dropped, as the tensor cores ignore them), so unconverted
//   operands carry a relative error of up to 2^-10, converted ones (by
//   __float_to_tf32, round to nearest) up to 2^-11. Products are exact in
//   float and are added to the accumulator in k order, in float (double: fma).
// Preconditions of the CUDA documentation are asserted, with a message, as
// the rest of the emulation does: every lane of a full warp takes part (a lane
// that returned early is reported by the warp's barrier), with the same
// arguments; the pointer is 256-bit (32-byte) aligned; the leading dimension
// is a multiple of 16 bytes.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "thread_groups.h"

// A bfloat16 value (the top 16 bits of a float) and <cuda_bf16.h>'s conversions.
struct __nv_bfloat16 {
  uint16_t bits;
};

inline float __bfloat162float(__nv_bfloat16 v) {
  const uint32_t bits = static_cast<uint32_t>(v.bits) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest, ties to even; a NaN stays a NaN.
inline __nv_bfloat16 __float2bfloat16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if (std::isnan(f)) return __nv_bfloat16{static_cast<uint16_t>((bits >> 16) | 0x40u)};
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return __nv_bfloat16{static_cast<uint16_t>(bits >> 16)};
}

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
namespace precision {
struct tf32 {};
}  // namespace precision
enum layout_t { mem_row_major, mem_col_major };

namespace detail {

template <typename Use, int M, int N, int K>
struct Shape;
template <int M, int N, int K>
struct Shape<matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct Shape<matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct Shape<accumulator, M, N, K> {
  static constexpr int rows = M, cols = N;
};

// The element type in memory and in the fragment.
template <typename T>
struct Storage {
  using type = T;
};
template <>
struct Storage<precision::tf32> {
  using type = float;
};

template <typename Use>
constexpr int kScramble = std::is_same<Use, matrix_a>::value ? 37 : std::is_same<Use, matrix_b>::value ? 73 : 101;

template <typename Use, int M, int N, int K, typename T>
constexpr bool supported() {
  using S = typename Storage<T>::type;
  const bool tf32_shape = M == 16 && N == 16 && K == 8;
  const bool bf16_shape = M == 16 && N == 16 && K == 16;
  const bool double_shape = M == 8 && N == 8 && K == 4;
  if (std::is_same<Use, accumulator>::value)
    return ((tf32_shape || bf16_shape) && std::is_same<T, float>::value) ||
           (double_shape && std::is_same<T, double>::value);
  return (tf32_shape && std::is_same<T, precision::tf32>::value) ||
         (bf16_shape && std::is_same<T, __nv_bfloat16>::value) || (double_shape && std::is_same<S, double>::value);
}

// A fragment element's value before it is filled: NaN.
template <typename S>
S unfilled() {
  return std::numeric_limits<S>::quiet_NaN();
}
template <>
inline __nv_bfloat16 unfilled<__nv_bfloat16>() {
  return __float2bfloat16(std::numeric_limits<float>::quiet_NaN());
}

}  // namespace detail

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
class fragment {
  static_assert(detail::supported<Use, M, N, K, T>(),
                "WMMA shape/type not emulated (m16n16k8 tf32 and m16n16k16 bf16 with float accumulators, "
                "m8n8k4 double)");

 public:
  using element_type = T;
  using storage_element_type = typename detail::Storage<T>::type;
  static constexpr int rows = detail::Shape<Use, M, N, K>::rows;
  static constexpr int cols = detail::Shape<Use, M, N, K>::cols;
  static constexpr int num_elements = rows * cols / 32;
  storage_element_type x[num_elements];

  fragment() {
    for (auto& e : x) e = detail::unfilled<storage_element_type>();
  }

  // The (row, column) of element e of this lane's fragment: the emulation's own layout.
  static void position(int lane, int e, int* row, int* col) {
    const int slot = lane * num_elements + e;
    const int index = (slot * detail::kScramble<Use> + 11) % (rows * cols);  // odd multiplier: a bijection
    *row = index / cols;
    *col = index % cols;
  }
};

namespace detail {

using see::emulation::current;
using see::emulation::fail;

// The whole warp takes part, with lane 0's arguments.
inline void enter_collective(const void* pointer, unsigned ldm, const char* what) {
  if (current.warp->lanes() != 32) fail("a WMMA operation in a warp with fewer than 32 lanes");
  const auto p = reinterpret_cast<uint64_t>(pointer);
  const uint64_t p0 = current.warp->exchange(current.lane, p, 0);
  const uint64_t ldm0 = current.warp->exchange(current.lane, static_cast<uint64_t>(ldm), 0);
  if (p != p0 || ldm != ldm0) fail(what);
}

template <typename S>
void check_memory(const S* pointer, unsigned ldm, const char* op) {
  static thread_local char message[256];
  if (reinterpret_cast<uintptr_t>(pointer) % 32 != 0) {
    std::snprintf(message, sizeof message, "%s: the pointer is not 256-bit (32-byte) aligned", op);
    fail(message);
  }
  if ((ldm * sizeof(S)) % 16 != 0) {
    std::snprintf(message, sizeof message, "%s: the leading dimension %u is not a multiple of 16 bytes", op, ldm);
    fail(message);
  }
}

// body(e, row, column) for each element e of this lane's fragment of type F.
template <typename F, typename Body>
void for_each_element(Body&& body) {
  for (int e = 0; e < F::num_elements; ++e) {
    int r, c;
    F::position(current.lane, e, &r, &c);
    body(e, r, c);
  }
}

inline bool row_major_layout(row_major*) { return true; }
inline bool row_major_layout(col_major*) { return false; }

// What the tensor cores read of a float operand: its top 19 bits.
inline float tf32_operand(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  bits &= 0xFFFFE000u;
  std::memcpy(&v, &bits, 4);
  return v;
}
inline double tf32_operand(double v) { return v; }
inline float tf32_operand(__nv_bfloat16 v) { return __bfloat162float(v); }  // a bf16 operand, as it is

inline float multiply_add(float a, float b, float acc) { return acc + a * b; }  // a * b exact for tf32 operands
inline double multiply_add(double a, double b, double acc) { return std::fma(a, b, acc); }

}  // namespace detail

// Round to nearest (ties away from zero) to the 10-bit mantissa of tf32, kept in a float.
inline float __float_to_tf32(float v) {
  if (!std::isfinite(v)) return v;
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  bits = (bits + 0x1000u) & 0xFFFFE000u;
  std::memcpy(&v, &bits, 4);
  return v;
}

template <typename Use, int M, int N, int K, typename T, typename Layout, typename V>
void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, const V& value) {
  for (auto& e : f.x) e = static_cast<typename fragment<Use, M, N, K, T, Layout>::storage_element_type>(value);
}

// matrix_a / matrix_b: the layout is the fragment's type.
template <typename Use, int M, int N, int K, typename T, typename Layout>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f,
                      const typename fragment<Use, M, N, K, T, Layout>::storage_element_type* p, unsigned ldm) {
  static_assert(!std::is_same<Layout, void>::value, "an operand fragment needs row_major or col_major");
  using F = fragment<Use, M, N, K, T, Layout>;
  detail::enter_collective(p, ldm, "load_matrix_sync: the lanes of the warp passed different pointers or ldm");
  detail::check_memory(p, ldm, "load_matrix_sync");
  const bool row_major = detail::row_major_layout(static_cast<Layout*>(nullptr));
  detail::for_each_element<F>([&](int e, int r, int c) { f.x[e] = row_major ? p[r * ldm + c] : p[c * ldm + r]; });
}

template <int M, int N, int K, typename T>
void load_matrix_sync(fragment<accumulator, M, N, K, T>& f, const T* p, unsigned ldm, layout_t layout) {
  using F = fragment<accumulator, M, N, K, T>;
  detail::enter_collective(p, ldm, "load_matrix_sync: the lanes of the warp passed different pointers or ldm");
  detail::check_memory(p, ldm, "load_matrix_sync");
  detail::for_each_element<F>(
      [&](int e, int r, int c) { f.x[e] = layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]; });
}

template <int M, int N, int K, typename T>
void store_matrix_sync(T* p, const fragment<accumulator, M, N, K, T>& f, unsigned ldm, layout_t layout) {
  using F = fragment<accumulator, M, N, K, T>;
  detail::enter_collective(p, ldm, "store_matrix_sync: the lanes of the warp passed different pointers or ldm");
  detail::check_memory(p, ldm, "store_matrix_sync");
  detail::for_each_element<F>(
      [&](int e, int r, int c) { (layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[e]; });
}

// d = a b + c, over the warp: each lane stages its elements of a, b and c by
// position, and after the barrier computes its own elements of d from all of them.
template <int M, int N, int K, typename TA, typename LA, typename LB, typename TC>
void mma_sync(fragment<accumulator, M, N, K, TC>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
              const fragment<matrix_b, M, N, K, TA, LB>& b, const fragment<accumulator, M, N, K, TC>& c) {
  using FA = fragment<matrix_a, M, N, K, TA, LA>;
  using FB = fragment<matrix_b, M, N, K, TA, LB>;
  using FC = fragment<accumulator, M, N, K, TC>;
  // The operands as the products read them: float for tf32 and bf16 (whose products are exact in float).
  using S = decltype(detail::tf32_operand(std::declval<typename FA::storage_element_type>()));
  static_assert(sizeof(S) * (M * K + K * N) + sizeof(TC) * M * N <= see::emulation::Warp::kMatrixStagingBytes,
                "staging room");
  detail::enter_collective(nullptr, 0, "mma_sync: unreachable");
  see::emulation::Warp& warp = *detail::current.warp;
  S* sa = reinterpret_cast<S*>(warp.matrix_staging());
  S* sb = sa + M * K;
  TC* sc = reinterpret_cast<TC*>(sb + K * N);
  detail::for_each_element<FA>([&](int e, int r, int col) { sa[r * K + col] = detail::tf32_operand(a.x[e]); });
  detail::for_each_element<FB>([&](int e, int r, int col) { sb[r * N + col] = detail::tf32_operand(b.x[e]); });
  detail::for_each_element<FC>([&](int e, int r, int col) { sc[r * N + col] = c.x[e]; });
  warp.arrive_and_wait();
  TC out[FC::num_elements];
  detail::for_each_element<FC>([&](int e, int r, int col) {
    TC acc = sc[r * N + col];
    for (int k = 0; k < K; ++k) acc = detail::multiply_add(sa[r * K + k], sb[k * N + col], acc);
    out[e] = acc;
  });
  warp.arrive_and_wait();  // every lane has read the staging before any lane stages again
  for (int e = 0; e < FC::num_elements; ++e) d.x[e] = out[e];
}

}  // namespace wmma
}  // namespace nvcuda
