// The plain LSTM recurrence on CPU, forward and backward, as typed XLA FFI handlers.
//
// Gate order i, f, g, o; c' = f * c + i * g, h' = o * tanh(c'). Everything is row-major float32:
//   x [T, B, D], kernel W [D, 4H], recurrent kernel R [H, 4H], bias [4H], h0, c0 [B, H],
//   valid [T, B] (bool: the step advances the state; elsewhere the state is carried and the
//   output is zero; each row's valid steps are a prefix, as seqlstm builds them from lengths).
//
// The matmuls go to oneDNN's `dnnl_sgemm` (multi-threaded): the input projection of all steps is
// ONE [T*B, D] @ [D, 4H] product before the loop, each step adds h @ R ([B, H] @ [H, 4H]), and the
// backward pass collects every step's gate gradient dz [T, B, 4H] and forms the weight and input
// gradients as one product each (as cuDNN and seqlstm/fused_backward.py do). The gate math is one
// fused loop over a row that the compiler vectorises (exp written out, no library call).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "xla/ffi/api/ffi.h"

// oneDNN's row-major sgemm (oneapi/dnnl/dnnl.h), declared here so that the build needs no oneDNN
// headers: libdnnl.so.3 comes from the runtime dependency `onednn` (see setup.py).
extern "C" int dnnl_sgemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha,
                          const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                          float* C, int64_t ldc);

namespace ffi = xla::ffi;

namespace {

// tanh(x) as a rational function of x (Eigen's and XLA:CPU's approximation, a few ulp over the
// float range): one division and a dozen FMAs, plain arithmetic so that the gate loops vectorise.
inline float tanh_(float x) {
  x = std::min(std::max(x, -7.90531110763549805f), 7.90531110763549805f);
  const float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * x;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return p / q;
}

inline float sigmoid(float x) { return 0.5f + 0.5f * tanh_(0.5f * x); }

void gemm(char ta, char tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (beta == 0.0f) std::fill(c, c + m * ldc, 0.0f);
    return;
  }
  // A failed call leaves `c` as it was (in the backward pass: uninitialised scratch), so it is
  // an error, never a number.
  int status = dnnl_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
  if (status != 0) throw std::runtime_error("dnnl_sgemm failed with status " + std::to_string(status));
}

// One step's gates for one row: z [4H] holds the pre-activations on entry and the activated
// gates on exit; c is updated in place; h_out receives the new h.
inline void gate_row(float* __restrict z, const float* __restrict bias, float* __restrict c,
                     float* __restrict h_out, int64_t H) {
  float* zi = z;
  float* zf = z + H;
  float* zg = z + 2 * H;
  float* zo = z + 3 * H;
#pragma GCC ivdep
  for (int64_t j = 0; j < H; ++j) {
    float i = sigmoid(zi[j] + bias[j]);
    float f = sigmoid(zf[j] + bias[H + j]);
    float g = tanh_(zg[j] + bias[2 * H + j]);
    float o = sigmoid(zo[j] + bias[3 * H + j]);
    float cn = f * c[j] + i * g;
    c[j] = cn;
    h_out[j] = o * tanh_(cn);
    zi[j] = i;
    zf[j] = f;
    zg[j] = g;
    zo[j] = o;
  }
}

ffi::Error LstmForward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> kernel,
                       ffi::Buffer<ffi::F32> recurrent, ffi::Buffer<ffi::F32> bias,
                       ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0,
                       ffi::Buffer<ffi::PRED> valid, ffi::ResultBuffer<ffi::F32> ys,
                       ffi::ResultBuffer<ffi::F32> h_t, ffi::ResultBuffer<ffi::F32> c_t,
                       ffi::ResultBuffer<ffi::F32> gates, ffi::ResultBuffer<ffi::F32> cs,
                       bool reverse) {
  auto xd = x.dimensions();
  if (xd.size() != 3) return ffi::Error::InvalidArgument("x must be [T, B, D]");
  const int64_t T = xd[0], B = xd[1], D = xd[2];
  const int64_t H = h0.dimensions()[1];
  const int64_t G = 4 * H;
  const float* W = kernel.typed_data();
  const float* R = recurrent.typed_data();
  const float* b = bias.typed_data();
  const bool* v = valid.typed_data();
  float* y = ys->typed_data();
  float* z = gates->typed_data();
  float* cseq = cs->typed_data();
  float* h = h_t->typed_data();
  float* c = c_t->typed_data();
  std::memcpy(h, h0.typed_data(), sizeof(float) * B * H);
  std::memcpy(c, c0.typed_data(), sizeof(float) * B * H);
  if (T == 0 || B == 0) return ffi::Error::Success();
  gemm('N', 'N', T * B, G, D, x.typed_data(), D, W, G, 0.0f, z, G);
  for (int64_t s = 0; s < T; ++s) {
    const int64_t t = reverse ? T - 1 - s : s;
    float* zt = z + t * B * G;
    gemm('N', 'N', B, G, H, h, H, R, G, 1.0f, zt, G);
    for (int64_t r = 0; r < B; ++r) {
      float* yr = y + (t * B + r) * H;
      float* cr = c + r * H;
      if (v[t * B + r]) {
        gate_row(zt + r * G, b, cr, yr, H);
        std::memcpy(h + r * H, yr, sizeof(float) * H);
      } else {
        std::fill(yr, yr + H, 0.0f);
        std::fill(zt + r * G, zt + (r + 1) * G, 0.0f);
      }
      std::memcpy(cseq + (t * B + r) * H, cr, sizeof(float) * H);
    }
  }
  return ffi::Error::Success();
}

ffi::Error LstmBackward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> kernel,
                        ffi::Buffer<ffi::F32> recurrent, ffi::Buffer<ffi::F32> h0,
                        ffi::Buffer<ffi::F32> c0, ffi::Buffer<ffi::PRED> valid,
                        ffi::Buffer<ffi::F32> ys, ffi::Buffer<ffi::F32> gates,
                        ffi::Buffer<ffi::F32> cs, ffi::Buffer<ffi::F32> dys,
                        ffi::Buffer<ffi::F32> dh_t, ffi::Buffer<ffi::F32> dc_t,
                        ffi::ResultBuffer<ffi::F32> d_kernel,
                        ffi::ResultBuffer<ffi::F32> d_recurrent,
                        ffi::ResultBuffer<ffi::F32> d_bias, ffi::ResultBuffer<ffi::F32> d_x,
                        ffi::ResultBuffer<ffi::F32> dh0, ffi::ResultBuffer<ffi::F32> dc0,
                        bool reverse) {
  auto xd = x.dimensions();
  const int64_t T = xd[0], B = xd[1], D = xd[2];
  const int64_t H = h0.dimensions()[1];
  const int64_t G = 4 * H;
  const float* W = kernel.typed_data();
  const float* R = recurrent.typed_data();
  const float* hinit = h0.typed_data();
  const float* cinit = c0.typed_data();
  const bool* v = valid.typed_data();
  const float* y = ys.typed_data();
  const float* act = gates.typed_data();
  const float* cseq = cs.typed_data();
  const float* dy = dys.typed_data();
  float* dh = dh0->typed_data();
  float* dc = dc0->typed_data();
  std::memcpy(dh, dh_t.typed_data(), sizeof(float) * B * H);
  std::memcpy(dc, dc_t.typed_data(), sizeof(float) * B * H);
  float* dW = d_kernel->typed_data();
  float* dR = d_recurrent->typed_data();
  float* db = d_bias->typed_data();
  float* dx = d_x->typed_data();
  std::fill(db, db + G, 0.0f);
  if (T == 0 || B == 0) {
    std::fill(dW, dW + D * G, 0.0f);
    std::fill(dR, dR + H * G, 0.0f);
    std::fill(dx, dx + T * B * D, 0.0f);
    return ffi::Error::Success();
  }
  // Uninitialised buffers (every element is written before it is read), and R^T, W^T laid out
  // row-major once per call: dnnl_sgemm runs a transposed operand about 2x slower.
  std::unique_ptr<float[]> dz(new float[T * B * G]);
  std::unique_ptr<float[]> h_prev(new float[T * B * H]);
  std::unique_ptr<float[]> dh_back(new float[B * H]);
  std::unique_ptr<float[]> r_t(new float[G * H]);
  std::unique_ptr<float[]> w_t(new float[G * D]);
  for (int64_t k = 0; k < H; ++k)
    for (int64_t j = 0; j < G; ++j) r_t[j * H + k] = R[k * G + j];
  for (int64_t k = 0; k < D; ++k)
    for (int64_t j = 0; j < G; ++j) w_t[j * D + k] = W[k * G + j];
  // Walk the steps in the opposite order to the forward pass.
  for (int64_t s = T - 1; s >= 0; --s) {
    const int64_t t = reverse ? T - 1 - s : s;
    const int64_t pred = reverse ? t + 1 : t - 1;  // the step processed just before t
    float* dzt = dz.get() + t * B * G;
    for (int64_t r = 0; r < B; ++r) {
      float* dzr = dzt + r * G;
      float* hp_out = h_prev.get() + (t * B + r) * H;
      if (!v[t * B + r]) {
        std::fill(dzr, dzr + G, 0.0f);
        std::fill(hp_out, hp_out + H, 0.0f);
        continue;
      }
      // With right padding, a valid step's predecessor is valid unless t is the row's first.
      const bool first = s == 0 || !v[pred * B + r];
      const float* hp = first ? hinit + r * H : y + (pred * B + r) * H;
      const float* cp = s == 0 ? cinit + r * H : cseq + (pred * B + r) * H;
      const float* a = act + (t * B + r) * G;
      const float* cr = cseq + (t * B + r) * H;
      const float* dyr = dy + (t * B + r) * H;
      float* dhr = dh + r * H;
      float* dcr = dc + r * H;
      std::memcpy(hp_out, hp, sizeof(float) * H);
#pragma GCC ivdep
      for (int64_t j = 0; j < H; ++j) {
        float i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
        float dh_total = dhr[j] + dyr[j];
        float tc = tanh_(cr[j]);
        float dc_total = dcr[j] + dh_total * o * (1.0f - tc * tc);
        dzr[j] = dc_total * g * i * (1.0f - i);
        dzr[H + j] = dc_total * cp[j] * f * (1.0f - f);
        dzr[2 * H + j] = dc_total * i * (1.0f - g * g);
        dzr[3 * H + j] = dh_total * tc * o * (1.0f - o);
        dcr[j] = dc_total * f;
      }
    }
    gemm('N', 'N', B, H, G, dzt, G, r_t.get(), H, 0.0f, dh_back.get(), H);
    for (int64_t r = 0; r < B; ++r) {
      if (v[t * B + r]) std::memcpy(dh + r * H, dh_back.get() + r * H, sizeof(float) * H);
    }
  }
  const int64_t rows = T * B;
  gemm('T', 'N', D, G, rows, x.typed_data(), D, dz.get(), G, 0.0f, dW, G);
  gemm('T', 'N', H, G, rows, h_prev.get(), H, dz.get(), G, 0.0f, dR, G);
  gemm('N', 'N', rows, D, G, dz.get(), G, w_t.get(), D, 0.0f, dx, D);
  for (int64_t r = 0; r < rows; ++r) {
    const float* dzr = dz.get() + r * G;
#pragma GCC ivdep
    for (int64_t j = 0; j < G; ++j) db[j] += dzr[j];
  }
  return ffi::Error::Success();
}

// No exception may cross an FFI handler's C ABI (that is std::terminate, a SIGABRT no launcher
// can report): out of memory becomes XLA's RESOURCE_EXHAUSTED, which seqlstm's launchers turn
// into their one-line error, and a failed oneDNN call an internal error.
template <auto Fn>
struct Guarded;
template <typename... Args, ffi::Error (*Fn)(Args...)>
struct Guarded<Fn> {
  static ffi::Error Call(Args... args) {
    try {
      return Fn(std::move(args)...);
    } catch (const std::bad_alloc&) {
      return ffi::Error(ffi::ErrorCode::kResourceExhausted,
                        "Out of memory in seqlstm's native LSTM kernel");
    } catch (const std::exception& error) {
      return ffi::Error::Internal(std::string("seqlstm's native LSTM kernel: ") + error.what());
    }
  }
};

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqlstmLstmForward, Guarded<LstmForward>::Call,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()   // x
                                  .Arg<ffi::Buffer<ffi::F32>>()   // kernel
                                  .Arg<ffi::Buffer<ffi::F32>>()   // recurrent
                                  .Arg<ffi::Buffer<ffi::F32>>()   // bias
                                  .Arg<ffi::Buffer<ffi::F32>>()   // h0
                                  .Arg<ffi::Buffer<ffi::F32>>()   // c0
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // valid
                                  .Ret<ffi::Buffer<ffi::F32>>()   // ys
                                  .Ret<ffi::Buffer<ffi::F32>>()   // h_T
                                  .Ret<ffi::Buffer<ffi::F32>>()   // c_T
                                  .Ret<ffi::Buffer<ffi::F32>>()   // gates
                                  .Ret<ffi::Buffer<ffi::F32>>()   // cs
                                  .Attr<bool>("reverse"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqlstmLstmBackward, Guarded<LstmBackward>::Call,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()   // x
                                  .Arg<ffi::Buffer<ffi::F32>>()   // kernel
                                  .Arg<ffi::Buffer<ffi::F32>>()   // recurrent
                                  .Arg<ffi::Buffer<ffi::F32>>()   // h0
                                  .Arg<ffi::Buffer<ffi::F32>>()   // c0
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // valid
                                  .Arg<ffi::Buffer<ffi::F32>>()   // ys
                                  .Arg<ffi::Buffer<ffi::F32>>()   // gates
                                  .Arg<ffi::Buffer<ffi::F32>>()   // cs
                                  .Arg<ffi::Buffer<ffi::F32>>()   // dys
                                  .Arg<ffi::Buffer<ffi::F32>>()   // dh_T
                                  .Arg<ffi::Buffer<ffi::F32>>()   // dc_T
                                  .Ret<ffi::Buffer<ffi::F32>>()   // d kernel
                                  .Ret<ffi::Buffer<ffi::F32>>()   // d recurrent
                                  .Ret<ffi::Buffer<ffi::F32>>()   // d bias
                                  .Ret<ffi::Buffer<ffi::F32>>()   // d x
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dh0
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dc0
                                  .Attr<bool>("reverse"));
