// CPU kernels of sb3_tar.kernels.SparseLinear: y = x @ W^T + b with a fixed sparse W held compressed.
//
// W (out x in) is stored twice over one value array:
//   CSR by output row:   row_ptr [out+1] (int64), col_idx [nnz] (int32), values [nnz] in row-major order
//                        of the kept positions (the order of weight[mask]);
//   CSC by input column: col_ptr [in+1] (int64), csc_row [nnz] (int32), csc_perm [nnz] (int32): the
//                        position in `values` of each entry, in column-major order.
// Activations are used transposed, feature-major: XT (in x n), YT (out x n), GYT (out x n), so every
// inner loop runs over the batch contiguously and vectorizes:
//   forward      YT[o, :]  = b[o] + sum_{k in row o} v_k * XT[col_k, :]           (CSR gather)
//   grad input   GXT[i, :] = sum_{k in col i} v_{perm_k} * GYT[row_k, :]          (CSC gather, no scatter)
//   grad values  gv_k      = dot(XT[col_k, :], GYT[o, :])                        (CSR, one dot per kept weight)
// Single-threaded: training runs one intra-op thread per process. Templated over float and double
// (double for torch.autograd.gradcheck).

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_strided.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

namespace {

// Explicit SIMD through GCC/Clang vector extensions (lowered to AVX-512, AVX2 or NEON by the
// compiler): one Vec holds 64 bytes (16 floats / 8 doubles).
template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(64)));
};
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(64)));
};
template <typename T>
using Vec = typename VecOf<T>::type;
template <typename T>
constexpr int64_t kLanes = 64 / static_cast<int64_t>(sizeof(T));

template <typename T>
inline Vec<T> vload(const T* p) {
  Vec<T> r;
  std::memcpy(&r, p, sizeof(r));
  return r;
}
template <typename T>
inline void vstore(T* p, const Vec<T>& v) {
  std::memcpy(p, &v, sizeof(v));
}

// One batch tile of NV vectors (NV * lanes columns from t0) of gather_rows. Narrow tiles (small
// batches) split each row's sum over P = 4 / NV partial accumulators, so there are always about four
// independent FMA chains to hide the FMA latency.
template <typename T, int NV>
inline void gather_tile(const T* __restrict src, int64_t ld, int64_t t0, const int64_t* __restrict ptr,
                        const int32_t* __restrict idx, const T* __restrict w, const T* __restrict init,
                        T* __restrict out, int64_t rows) {
  constexpr int64_t L = kLanes<T>;
  constexpr int P = NV >= 3 ? 1 : 4 / NV;
  for (int64_t r = 0; r < rows; ++r) {
    Vec<T> acc[P][NV];
    for (int p = 0; p < P; ++p)
      for (int v = 0; v < NV; ++v) acc[p][v] = Vec<T>{};
    int64_t k = ptr[r];
    const int64_t end = ptr[r + 1];
    for (; k + P <= end; k += P) {
      for (int p = 0; p < P; ++p) {
        const T wk = w[k + p];
        const T* __restrict s = src + static_cast<int64_t>(idx[k + p]) * ld + t0;
        for (int v = 0; v < NV; ++v) acc[p][v] += wk * vload(s + v * L);
      }
    }
    for (; k < end; ++k) {
      const T wk = w[k];
      const T* __restrict s = src + static_cast<int64_t>(idx[k]) * ld + t0;
      for (int v = 0; v < NV; ++v) acc[0][v] += wk * vload(s + v * L);
    }
    for (int p = 1; p < P; ++p)
      for (int v = 0; v < NV; ++v) acc[0][v] += acc[p][v];
    const T a = init ? init[r] : T(0);
    T* __restrict o = out + r * ld + t0;
    for (int v = 0; v < NV; ++v) vstore(o + v * L, acc[0][v] + a);
  }
}

// out[r, :] = init[r] + sum_{k = ptr[r]}^{ptr[r+1]-1} w[k] * src[idx[k], :] for r in [0, rows), where
// src (* x ld) and out (rows x ld) are row-major with ld a multiple of the lanes. `init` may be null (zero).
// Tiles of 4 vectors (64 floats / 32 doubles) keep the accumulators in registers; the last tile has 1-3.
template <typename T>
void gather_rows(const T* __restrict src, int64_t ld, const int64_t* __restrict ptr, const int32_t* __restrict idx,
                 const T* __restrict w, const T* __restrict init, T* __restrict out, int64_t rows) {
  constexpr int64_t L = kLanes<T>;
  int64_t t0 = 0;
  for (; t0 + 4 * L <= ld; t0 += 4 * L) gather_tile<T, 4>(src, ld, t0, ptr, idx, w, init, out, rows);
  switch ((ld - t0) / L) {
    case 3:
      gather_tile<T, 3>(src, ld, t0, ptr, idx, w, init, out, rows);
      break;
    case 2:
      gather_tile<T, 2>(src, ld, t0, ptr, idx, w, init, out, rows);
      break;
    case 1:
      gather_tile<T, 1>(src, ld, t0, ptr, idx, w, init, out, rows);
      break;
    default:
      break;
  }
}

// Matrix-vector product (batch 1, acting): out[r] = init[r] + sum_k w[k] * x[idx[k]], scalar gathers
// into four partial sums.
template <typename T>
void gather_vector(const T* __restrict x, const int64_t* __restrict ptr, const int32_t* __restrict idx,
                   const T* __restrict w, const T* __restrict init, T* __restrict out, int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) {
    T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t k = ptr[r];
    const int64_t end = ptr[r + 1];
    for (; k + 4 <= end; k += 4) {
      s0 += w[k] * x[idx[k]];
      s1 += w[k + 1] * x[idx[k + 1]];
      s2 += w[k + 2] * x[idx[k + 2]];
      s3 += w[k + 3] * x[idx[k + 3]];
    }
    for (; k < end; ++k) s0 += w[k] * x[idx[k]];
    out[r] = (init ? init[r] : T(0)) + ((s0 + s1) + (s2 + s3));
  }
}

// A (rows x n) row-major block with its rows padded by zeros to ld >= n columns (a copy).
template <typename T>
std::vector<T> padded(const T* src, int64_t rows, int64_t n, int64_t ld) {
  std::vector<T> p(static_cast<size_t>(rows * ld), T(0));
  for (int64_t r = 0; r < rows; ++r) std::memcpy(p.data() + r * ld, src + r * n, static_cast<size_t>(n) * sizeof(T));
  return p;
}

// Copy the first n columns of a (rows x ld) block into a (rows x n) block.
template <typename T>
void unpad(const T* src, int64_t rows, int64_t n, int64_t ld, T* dst) {
  for (int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * n, src + r * ld, static_cast<size_t>(n) * sizeof(T));
}

// Batch length padded to whole vectors.
template <typename T>
inline int64_t padded_length(int64_t n) {
  return (n + kLanes<T> - 1) / kLanes<T> * kLanes<T>;
}

// dst (cols x rows, row-major) = the first `cols` columns of src (rows x lds, row-major), transposed,
// in 8 x 8 blocks (about 2.5x faster than a strided torch copy; 16 x 16 blocks alias in the L1 cache
// at power-of-two strides).
template <typename T>
void transpose_into(const T* __restrict src, int64_t rows, int64_t cols, int64_t lds, T* __restrict dst) {
  constexpr int64_t B = 8;
  for (int64_t i0 = 0; i0 < rows; i0 += B) {
    const int64_t i1 = std::min(i0 + B, rows);
    for (int64_t j0 = 0; j0 < cols; j0 += B) {
      const int64_t j1 = std::min(j0 + B, cols);
      if (i1 - i0 == B && j1 - j0 == B) {
        for (int64_t j = 0; j < B; ++j)
          for (int64_t i = 0; i < B; ++i) dst[(j0 + j) * rows + i0 + i] = src[(i0 + i) * lds + j0 + j];
      } else {
        for (int64_t j = j0; j < j1; ++j)
          for (int64_t i = i0; i < i1; ++i) dst[j * rows + i] = src[i * lds + j];
      }
    }
  }
}

// Sum of the lanes of v: halve the vector until one lane is left (log2(lanes) adds).
template <typename T>
inline T hsum(const Vec<T>& v) {
  T t[kLanes<T>];
  std::memcpy(t, &v, sizeof(v));
  for (int64_t w = kLanes<T> / 2; w >= 1; w /= 2)
    for (int64_t j = 0; j < w; ++j) t[j] += t[j + w];
  return t[0];
}

// out[q] = sum_j a_q[j] * b[j] over j in [0, n) for Q rows a_q = src + idx[q] * n sharing one b: each
// chunk of b is loaded once for the Q rows; 2 * Q vector accumulators, one horizontal sum per row.
template <typename T, int Q>
inline void dots(const T* __restrict src, const int32_t* __restrict idx, const T* __restrict b, int64_t n,
                 T* __restrict out) {
  constexpr int64_t L = kLanes<T>;
  const T* a[Q];
  Vec<T> s0[Q], s1[Q];
  for (int q = 0; q < Q; ++q) {
    a[q] = src + static_cast<int64_t>(idx[q]) * n;
    s0[q] = Vec<T>{};
    s1[q] = Vec<T>{};
  }
  int64_t j = 0;
  for (; j + 2 * L <= n; j += 2 * L) {
    const Vec<T> b0 = vload(b + j), b1 = vload(b + j + L);
    for (int q = 0; q < Q; ++q) {
      s0[q] += vload(a[q] + j) * b0;
      s1[q] += vload(a[q] + j + L) * b1;
    }
  }
  if (j + L <= n) {
    const Vec<T> b0 = vload(b + j);
    for (int q = 0; q < Q; ++q) s0[q] += vload(a[q] + j) * b0;
    j += L;
  }
  for (int q = 0; q < Q; ++q) {
    T tail = 0;
    for (int64_t jj = j; jj < n; ++jj) tail += a[q][jj] * b[jj];
    out[q] = hsum<T>(s0[q] + s1[q]) + tail;
  }
}

#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define SB3_TAR_SHUFFLEVECTOR 1
// Horizontal sums of kLanes vectors at once: s[i] -> lane l of the result holds the sum of the lanes of
// s[bitrev(l)]. Each stage adds the low and high blocks of pairs of vectors (log2(lanes) stages, about
// 2 shuffles + 1 add per vector in all, against ~2 * log2(lanes) ops per vector for one-by-one sums).
template <typename T>
struct TransposeSum;

template <>
struct TransposeSum<float> {
  static constexpr int kBitrev[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};
  static inline Vec<float> run(const Vec<float>* s) {
    Vec<float> c[8], d[4], e[2];
    for (int i = 0; i < 8; ++i)
      c[i] = __builtin_shufflevector(s[2 * i], s[2 * i + 1], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
             __builtin_shufflevector(s[2 * i], s[2 * i + 1], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    for (int i = 0; i < 4; ++i)
      d[i] = __builtin_shufflevector(c[2 * i], c[2 * i + 1], 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27) +
             __builtin_shufflevector(c[2 * i], c[2 * i + 1], 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
    for (int i = 0; i < 2; ++i)
      e[i] = __builtin_shufflevector(d[2 * i], d[2 * i + 1], 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29) +
             __builtin_shufflevector(d[2 * i], d[2 * i + 1], 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
    return __builtin_shufflevector(e[0], e[1], 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30) +
           __builtin_shufflevector(e[0], e[1], 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
  }
};

template <>
struct TransposeSum<double> {
  static constexpr int kBitrev[8] = {0, 4, 2, 6, 1, 5, 3, 7};
  static inline Vec<double> run(const Vec<double>* s) {
    Vec<double> c[4], d[2];
    for (int i = 0; i < 4; ++i)
      c[i] = __builtin_shufflevector(s[2 * i], s[2 * i + 1], 0, 1, 2, 3, 8, 9, 10, 11) +
             __builtin_shufflevector(s[2 * i], s[2 * i + 1], 4, 5, 6, 7, 12, 13, 14, 15);
    for (int i = 0; i < 2; ++i)
      d[i] = __builtin_shufflevector(c[2 * i], c[2 * i + 1], 0, 1, 8, 9, 4, 5, 12, 13) +
             __builtin_shufflevector(c[2 * i], c[2 * i + 1], 2, 3, 10, 11, 6, 7, 14, 15);
    return __builtin_shufflevector(d[0], d[1], 0, 8, 2, 10, 4, 12, 6, 14) +
           __builtin_shufflevector(d[0], d[1], 1, 9, 3, 11, 5, 13, 7, 15);
  }
};

// out[q] = dot(src + idx[q] * ld, b) for q in [0, lanes), with ld a multiple of the lanes: one
// accumulator per row (lanes independent FMA chains), b loaded once per chunk for all rows, and one
// transposed reduction whose lanes come out in order (the rows are taken in bit-reversed order).
template <typename T>
inline void dots_block(const T* __restrict src, const int32_t* __restrict idx, const T* __restrict b, int64_t ld,
                       T* __restrict out) {
  constexpr int L = static_cast<int>(kLanes<T>);
  const T* a[L];
  Vec<T> s[L];
  for (int i = 0; i < L; ++i) {
    a[i] = src + static_cast<int64_t>(idx[TransposeSum<T>::kBitrev[i]]) * ld;
    s[i] = Vec<T>{};
  }
  for (int64_t j = 0; j < ld; j += L) {
    const Vec<T> bj = vload(b + j);
    for (int i = 0; i < L; ++i) s[i] += vload(a[i] + j) * bj;
  }
  vstore(out, TransposeSum<T>::run(s));
}
#endif

// Gradient of the kept values: gv[k] = dot(XT[col_k, :], GYT[o, :]) for every k of every row o
// (x and g have ld columns, a multiple of the lanes).
template <typename T>
void value_grads(const T* __restrict x, const T* __restrict g, int64_t ld, const int64_t* __restrict rp,
                 const int32_t* __restrict ci, int64_t rows, T* __restrict gv) {
  for (int64_t o = 0; o < rows; ++o) {
    const T* go = g + o * ld;
    int64_t k = rp[o];
    const int64_t end = rp[o + 1];
#ifdef SB3_TAR_SHUFFLEVECTOR
    for (; k + kLanes<T> <= end; k += kLanes<T>) dots_block<T>(x, ci + k, go, ld, gv + k);
#endif
    for (; k + 4 <= end; k += 4) dots<T, 4>(x, ci + k, go, ld, gv + k);
    for (; k < end; ++k) dots<T, 1>(x, ci + k, go, ld, gv + k);
  }
}

void check_structure(const at::Tensor& ptr, const at::Tensor& idx, int64_t rows, int64_t nnz, const char* what) {
  TORCH_CHECK(ptr.device().is_cpu() && idx.device().is_cpu(), what, ": structure must be on the CPU");
  TORCH_CHECK(ptr.dim() == 1 && ptr.size(0) == rows + 1 && ptr.scalar_type() == at::ScalarType::Long && ptr.is_contiguous(),
              what, ": pointer array must be a contiguous int64 vector of length ", rows + 1);
  TORCH_CHECK(idx.dim() == 1 && idx.size(0) == nnz && idx.scalar_type() == at::ScalarType::Int && idx.is_contiguous(), what,
              ": index array must be a contiguous int32 vector of length nnz = ", nnz);
}

void check_dense(const at::Tensor& t, const at::Tensor& values, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU");
  TORCH_CHECK(t.scalar_type() == values.scalar_type(), name, " has dtype ", t.scalar_type(), " but values have ",
              values.scalar_type());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

// x (n x f) as a contiguous (f x n) tensor: a view if x is feature-major already (the output of a
// SparseLinear, or an element-wise op on it), a blocked transpose if x is row-major, else a torch copy.
at::Tensor feature_major(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 2, "feature_major expects a 2-D tensor");
  const at::Tensor xt = x.t();
  if (xt.is_contiguous() || !x.is_contiguous() || !x.device().is_cpu() ||
      (x.scalar_type() != at::ScalarType::Float && x.scalar_type() != at::ScalarType::Double))
    return xt.contiguous();
  at::Tensor out = at::empty({x.size(1), x.size(0)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sparse_linear_feature_major", [&] {
    transpose_into<scalar_t>(x.data_ptr<scalar_t>(), x.size(0), x.size(1), x.size(1), out.data_ptr<scalar_t>());
  });
  return out;
}

// y = x @ W^T + b from XT = x^T (in x n, contiguous); y (n x out) is returned in feature-major layout
// (strides 1, n), so the next layer's x.t().contiguous() is free.
at::Tensor forward(const at::Tensor& xt, const at::Tensor& values, const std::optional<at::Tensor>& bias,
                      const at::Tensor& row_ptr, const at::Tensor& col_idx, int64_t out_features) {
  TORCH_CHECK(xt.dim() == 2, "xt must be 2-D (in_features x batch)");
  TORCH_CHECK(values.dim() == 1 && values.is_contiguous() && values.device().is_cpu(), "values must be a contiguous CPU vector");
  check_dense(xt, values, "xt");
  check_structure(row_ptr, col_idx, out_features, values.size(0), "CSR");
  const bool has_bias = bias.has_value() && bias->defined();
  if (has_bias) {
    check_dense(*bias, values, "bias");
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == out_features, "bias must have out_features entries");
  }
  const int64_t n = xt.size(1);
  // y (n x out) in feature-major layout (strides 1, n): the memory of YT, not a view of another tensor
  auto y = at::empty_strided({n, out_features}, {1, n}, xt.options());
  if (n == 0) return y;
  AT_DISPATCH_FLOATING_TYPES(xt.scalar_type(), "sparse_linear_forward", [&] {
    const int64_t* rp = row_ptr.data_ptr<int64_t>();
    const int32_t* ci = col_idx.data_ptr<int32_t>();
    const scalar_t* v = values.data_ptr<scalar_t>();
    const scalar_t* b = has_bias ? bias->data_ptr<scalar_t>() : nullptr;
    const scalar_t* x = xt.data_ptr<scalar_t>();
    scalar_t* out = y.data_ptr<scalar_t>();
    const int64_t ld = padded_length<scalar_t>(n);
    if (n == 1) {
      gather_vector<scalar_t>(x, rp, ci, v, b, out, out_features);
    } else if (ld == n) {
      gather_rows<scalar_t>(x, n, rp, ci, v, b, out, out_features);
    } else {  // small or odd batch: work on zero-padded copies
      const std::vector<scalar_t> xp = padded(x, xt.size(0), n, ld);
      std::unique_ptr<scalar_t[]> yp(new scalar_t[static_cast<size_t>(out_features * ld)]);  // fully written
      gather_rows<scalar_t>(xp.data(), ld, rp, ci, v, b, yp.get(), out_features);
      unpad(yp.get(), out_features, n, ld, out);
    }
  });
  return y;
}

// Gradients wrt x (n x in, in the layout of x: feature-major, or row-major if input_row_major), wrt the
// kept values (nnz) and wrt the bias (out), from XT (in x n) and GYT = grad_y^T (out x n), both
// contiguous. A gradient that is not needed comes back undefined (None).
std::vector<at::Tensor> backward(const at::Tensor& xt, const at::Tensor& gyt, const at::Tensor& values,
                                    const at::Tensor& row_ptr, const at::Tensor& col_idx,
                                    const at::Tensor& col_ptr, const at::Tensor& csc_row,
                                    const at::Tensor& csc_perm, bool need_input, bool need_values, bool need_bias,
                                    bool input_row_major) {
  TORCH_CHECK(xt.dim() == 2 && gyt.dim() == 2 && xt.size(1) == gyt.size(1), "xt and gyt must be 2-D with one batch size");
  TORCH_CHECK(values.dim() == 1 && values.is_contiguous() && values.device().is_cpu(), "values must be a contiguous CPU vector");
  check_dense(xt, values, "xt");
  check_dense(gyt, values, "gyt");
  const int64_t in_features = xt.size(0), out_features = gyt.size(0), n = xt.size(1), nnz = values.size(0);
  check_structure(row_ptr, col_idx, out_features, nnz, "CSR");
  check_structure(col_ptr, csc_row, in_features, nnz, "CSC");
  TORCH_CHECK(csc_perm.device().is_cpu() && csc_perm.dim() == 1 && csc_perm.size(0) == nnz && csc_perm.scalar_type() == at::ScalarType::Int &&
                  csc_perm.is_contiguous(),
              "csc_perm must be a contiguous int32 vector of length nnz");
  at::Tensor gx, gv, gb;
  // grad x in the layout of x: row-major, or feature-major (GXT's memory seen as n x in)
  if (need_input)
    gx = input_row_major ? at::empty({n, in_features}, xt.options()) : at::empty_strided({n, in_features}, {1, n}, xt.options());
  if (need_values) gv = n == 0 ? at::zeros({nnz}, values.options()) : at::empty({nnz}, values.options());
  if (need_bias) gb = at::empty({out_features}, values.options());
  if (n == 0) {
    if (need_bias) gb.zero_();
    return {gx, gv, gb};
  }
  AT_DISPATCH_FLOATING_TYPES(xt.scalar_type(), "sparse_linear_backward", [&] {
    const int64_t ld = padded_length<scalar_t>(n);
    std::vector<scalar_t> xpad, gpad;
    const scalar_t* x = xt.data_ptr<scalar_t>();
    const scalar_t* g = gyt.data_ptr<scalar_t>();
    if (ld != n) {  // small or odd batch: work on zero-padded copies
      if (need_values) xpad = padded(x, in_features, n, ld);
      gpad = padded(g, out_features, n, ld);
      x = xpad.data();
      g = gpad.data();
    }
    if (need_input) {
      // the values in CSC order, gathered once (nnz scalar loads) so the gather reads them contiguously
      std::vector<scalar_t> v_csc(static_cast<size_t>(nnz));
      const scalar_t* v = values.data_ptr<scalar_t>();
      const int32_t* perm = csc_perm.data_ptr<int32_t>();
      for (int64_t k = 0; k < nnz; ++k) v_csc[k] = v[perm[k]];
      if (ld == n && !input_row_major) {
        gather_rows<scalar_t>(g, n, col_ptr.data_ptr<int64_t>(), csc_row.data_ptr<int32_t>(), v_csc.data(), nullptr,
                              gx.data_ptr<scalar_t>(), in_features);
      } else {
        std::unique_ptr<scalar_t[]> gxp(new scalar_t[static_cast<size_t>(in_features * ld)]);  // fully written
        gather_rows<scalar_t>(g, ld, col_ptr.data_ptr<int64_t>(), csc_row.data_ptr<int32_t>(), v_csc.data(), nullptr,
                              gxp.get(), in_features);
        if (input_row_major)
          transpose_into(gxp.get(), in_features, n, ld, gx.data_ptr<scalar_t>());
        else
          unpad(gxp.get(), in_features, n, ld, gx.data_ptr<scalar_t>());
      }
    }
    if (need_bias) {  // row sums of GYT (the padding is zero)
      scalar_t* out = gb.data_ptr<scalar_t>();
      constexpr int64_t L = kLanes<scalar_t>;
      for (int64_t o = 0; o < out_features; ++o) {
        const scalar_t* go = g + o * ld;
        Vec<scalar_t> acc = {};
        for (int64_t j = 0; j < ld; j += L) acc += vload(go + j);
        out[o] = hsum<scalar_t>(acc);
      }
    }
    if (need_values) {
      value_grads<scalar_t>(x, g, ld, row_ptr.data_ptr<int64_t>(), col_idx.data_ptr<int32_t>(), out_features,
                            gv.data_ptr<scalar_t>());
    }
  });
  return {gx, gv, gb};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "sb3-tar sparse linear CPU kernels (CSR/CSC over a fixed mask, transposed activations)";
  m.def("forward", &forward, "y = x @ W^T + b from xt = x^T (returns y in feature-major layout)", pybind11::arg("xt"), pybind11::arg("values"), pybind11::arg("bias"),
        pybind11::arg("row_ptr"), pybind11::arg("col_idx"), pybind11::arg("out_features"));
  m.def("backward", &backward, "(grad x, grad values, grad bias) from xt = x^T and gyt = grad_y^T", pybind11::arg("xt"), pybind11::arg("gyt"),
        pybind11::arg("values"), pybind11::arg("row_ptr"), pybind11::arg("col_idx"), pybind11::arg("col_ptr"),
        pybind11::arg("csc_row"), pybind11::arg("csc_perm"), pybind11::arg("need_input"), pybind11::arg("need_values"),
        pybind11::arg("need_bias"), pybind11::arg("input_row_major"));
  m.def("feature_major", &feature_major, "x (n x f) as a contiguous (f x n) tensor (a view when possible)",
        pybind11::arg("x"));
}
