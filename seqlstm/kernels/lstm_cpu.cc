// The plain LSTM recurrence on CPU, forward and backward, as typed XLA FFI handlers.
//
// Gate order i, f, g, o; c' = f * c + i * g, h' = o * tanh(c'). Everything is row-major float32:
//   x [T, B, D], kernel W [D, 4H], recurrent kernel R [H, 4H], bias [4H], h0, c0 [B, H],
//   valid [T, B] (bool: the step advances the state; elsewhere the state is carried and the
//   output is zero; each row's valid steps are a prefix, as seqlstm builds them from lengths).
//
// Forward: the weights are packed once per call into panels (lstm_cpu_loops.inc), then each step
// is one pass of register-blocked tiles that accumulate x_t @ W + h_{t-1} @ R and apply the gate
// math in registers, split over the machine's cores with a barrier per step (the panels a thread
// uses stay in its cache across steps). Backward: one reverse pass of tiles that form
// dz_{t+1} @ R^T and the gate derivatives of step t, then the weight, input and bias gradients as
// one oneDNN `dnnl_sgemm` each over all T*B rows (as cuDNN and seqlstm/fused_backward.py do).
// The tiles are compiled three times, for AVX-512 (16 lanes), AVX-512 with the bfloat16 units
// (avx512_bf16: bfloat16 products, `round_bf16`, as vdpbf16ps on bfloat16 operands) and AVX2
// (8 lanes), and the CPU picks. feeding_cpu.inc adds the input-feeding decoder's two loops.
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <immintrin.h>

#include "xla/ffi/api/ffi.h"

// oneDNN's row-major sgemm (oneapi/dnnl/dnnl.h), declared here so that the build needs no oneDNN
// headers: libdnnl.so.3 comes from the runtime dependency `onednn` (see setup.py).
extern "C" int dnnl_sgemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha,
                          const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                          float* C, int64_t ldc);

namespace ffi = xla::ffi;

namespace {

// A barrier for the threads of one call: spins (the steps are microseconds apart), and yields
// the core after a while so that more threads than cores (several calls at once) still progress.
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void Wait() {
    const int phase = phase_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      count_.store(0, std::memory_order_relaxed);
      phase_.store(phase + 1, std::memory_order_release);
      return;
    }
    for (int spins = 0; phase_.load(std::memory_order_acquire) == phase; ++spins) {
      if (spins < 4000) {
        __builtin_ia32_pause();
      } else {
        std::this_thread::yield();
      }
    }
  }

 private:
  const int n_;
  std::atomic<int> count_{0};
  std::atomic<int> phase_{0};
};

// The row of step t of sequence r in x, y and the residuals: [T, B, ...] (time-major) or
// [B, T, ...] (batch-major, seqlstm's layers' own layout: no transposes around the call). The
// mask `valid` is [T, B] either way.
struct Layout {
  int64_t T, B;
  bool batch_major;
  int64_t Row(int64_t t, int64_t r) const { return batch_major ? r * T + t : t * B + r; }
};

struct ForwardArgs : Layout {
  int64_t D, H, Hp;
  bool reverse;
  bool round;          // bfloat16 products: h rounded to bfloat16 before each step's product
  const float* x;      // [T, B, D] or [B, T, D]
  const float* w;      // packed W: [Hp / L][D][4L]
  const float* r;      // packed R: [Hp / L][H][4L]
  const float* bias;   // [4Hp], panel order
  const bool* valid;   // [T, B]
  float* y;            // [T, B, H]
  float* gates;        // [T, B, 4Hp] activated gates, panel order (training), or null
  float* cs;           // [T, B, Hp] cell states (training)
  float* c;            // [B, Hp] the running cell state
  float* h[2];         // [B, Hp] each: h_{t-1} and h_t, in turn
  float* m[2];         // the same as the products' operand: h, or h rounded (`round`)
  // The CPU's bfloat16 dot products (`round` on a CPU with avx512_bf16; else all null): the
  // operands as bfloat16, two consecutive k in each 32 bits, as `vdpbf16ps` reads them.
  const uint32_t* xb = nullptr;  // x: [T, B, Dp / 2] or [B, T, Dp / 2] pairs (Dp: D made even)
  const uint16_t* wb = nullptr;  // packed W: [Hp / L][Dp / 2][4L][2]
  const uint16_t* rb = nullptr;  // packed R: [Hp / L][Hp / 2][4L][2]
  uint16_t* mb[2] = {};          // h as bfloat16, [B, Hp] each
  int64_t Dp = 0;
};

struct BackwardArgs : Layout {
  int64_t H, Hp;
  bool reverse;
  bool round;          // bfloat16 products: dz rounded to bfloat16 as their operand
  const float* rt;     // packed R^T: [Hp / L][4Hp][L]
  const bool* valid;   // [T, B]
  const float* gates;  // [T, B, 4Hp]
  const float* cs;     // [T, B, Hp]
  const float* c0;     // [B, Hp]
  const float* dy;     // [T, B, H]
  float* dz;           // [T, B, 4Hp] the gate pre-activations' gradient
  float* dzm;          // dz as the products' operand: dz, or dz rounded (`round`)
  float* dh;           // [B, Hp] the running dh
  float* dc;           // [B, Hp] the running dc
  // The bfloat16 units (as ForwardArgs): R^T [Hp / L][4Hp / 2][L][2] and dz [T, B, 4Hp] as
  // bfloat16, the recurrent product's operands; null otherwise.
  const uint16_t* rtb = nullptr;
  uint16_t* dzb = nullptr;
};

// tanh(x) as a rational function of x (Eigen's and XLA:CPU's approximation, a few ulp over the
// float range): one division and a dozen FMAs. T is float (the decoder's loops) or a vector of
// floats (the tiles: always inlined, so compiled for the caller's instruction set).
template <typename T>
__attribute__((always_inline)) inline T RationalTanh(T x) {
  constexpr float kClamp = 7.90531110763549805f;
  x = x < -kClamp ? T{} - kClamp : x;
  x = x > kClamp ? T{} + kClamp : x;
  const T x2 = x * x;
  T p = T{} + -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * x;
  T q = T{} + 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return p / q;
}

namespace avx2 {
constexpr int L = 8;
constexpr int kFwdRows = 2;  // 8 accumulators of the 16 ymm registers
constexpr int kBwdRows = 4;
#include "lstm_cpu_loops.inc"
}  // namespace avx2

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq")
namespace avx512 {
constexpr int L = 16;
constexpr int kFwdRows = 6;  // 24 accumulators of the 32 zmm registers
constexpr int kBwdRows = 8;  // 16 accumulators (two unit blocks)
#include "lstm_cpu_loops.inc"
}  // namespace avx512
#pragma GCC pop_options

// The AVX-512 tiles again, with the products of bfloat16 runs on the CPU's bfloat16 dot-product
// instruction (vdpbf16ps: 32 multiply-adds of bfloat16 pairs into float32 per instruction).
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16")
namespace avx512bf16 {
constexpr int L = 16;
constexpr int kFwdRows = 6;
constexpr int kBwdRows = 8;
#define SEQLSTM_BF16_UNITS 1
#include "lstm_cpu_loops.inc"
#undef SEQLSTM_BF16_UNITS
}  // namespace avx512bf16
#pragma GCC pop_options

// AVX-512 where the CPU has it, unless SEQLSTM_NATIVE_ISA=avx2 (read once, as seqlstm's Python
// side reads the lane count once: the tests run the AVX2 tiles that way).
bool HasAvx512() {
  static const bool has = [] {
    const char* isa = std::getenv("SEQLSTM_NATIVE_ISA");
    if (isa != nullptr && std::string(isa) == "avx2") return false;
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
  }();
  return has;
}

int Lanes() { return HasAvx512() ? 16 : 8; }

// Whether bfloat16 products run on the CPU's bfloat16 units (avx512_bf16), unless
// SEQLSTM_NATIVE_ISA is avx512 or avx2 (the tests compare the two ways).
bool HasBf16Units() {
  static const bool has = [] {
    const char* isa = std::getenv("SEQLSTM_NATIVE_ISA");
    if (isa != nullptr && (std::string(isa) == "avx512" || std::string(isa) == "avx2")) {
      return false;
    }
    return HasAvx512() && __builtin_cpu_supports("avx512bf16");
  }();
  return has;
}

// Whether a call with `round_bf16` (bfloat16 products) runs them on the bfloat16 units.
bool OnUnits(bool round_bf16) { return round_bf16 && HasBf16Units(); }

// The cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota
// (/sys/fs/cgroup/cpu.max, "quota period"), as a container limited to 2 CPUs of 64 reports.
int Cores() {
  cpu_set_t set;
  int cores = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
  if (FILE* f = std::fopen("/sys/fs/cgroup/cpu.max", "r")) {
    char quota[32] = {};
    long long period = 0;
    if (std::fscanf(f, "%31s %lld", quota, &period) == 2 && period > 0 &&
        std::string(quota) != "max") {
      const long long limit = (std::atoll(quota) + period - 1) / period;
      if (limit >= 1) cores = static_cast<int>(std::min<long long>(cores, limit));
    }
    std::fclose(f);
  }
  return std::max(cores, 1);
}

// Threads for one call: every core this process may run on, fewer where a step is too small to
// share (a barrier costs about a microsecond, starting a thread tens), one where the whole call
// is; at most `cap` when it is not 0 (seqlstm passes 1 in a process with several CPU devices,
// whose calls run at once). SEQLSTM_NATIVE_THREADS overrides (except a cap of 1).
int Threads(int64_t step_flops, int64_t steps, int64_t tiles, int64_t cap) {
  if (cap == 1) return 1;
  if (const char* env = std::getenv("SEQLSTM_NATIVE_THREADS")) {
    const int n = std::atoi(env);
    if (n >= 1) return static_cast<int>(std::min<int64_t>(n, std::max<int64_t>(tiles, 1)));
  }
  static const int cores = Cores();
  if (step_flops < (1 << 18) || step_flops * steps < (int64_t{1} << 23)) return 1;
  const int64_t by_work = step_flops >> 18;  // at least ~1 us of a step's work per thread
  int64_t n = std::min({int64_t{cores}, by_work, tiles});
  if (cap > 1) n = std::min(n, cap);
  return static_cast<int>(std::max<int64_t>(1, n));
}

// Runs f(id, n) on n threads (this one and n - 1 new ones); fewer when a thread cannot start.
//
// With `exclusive`, one call at a time runs its loop: XLA runs independent operations at once
// (the two directions of a bidirectional layer inside a larger program do), and two calls side
// by side put three or four busy threads on two cores, pinned, where each barrier then waits for
// the scheduler (measured: the G2P step lost its whole encoder gain). Taking turns, each call
// gets every core. seqlstm passes `exclusive` unless the process has several CPU devices, whose
// calls run on one thread each and should overlap.
template <typename F>
void Parallel(int n, bool exclusive, F&& f) {
  static std::mutex turn;
  std::unique_lock<std::mutex> lock(turn, std::defer_lock);
  if (exclusive) lock.lock();
  if (n <= 1) {
    Barrier none(1);
    f(0, 1, none);
    return;
  }
  std::atomic<int> go{0};  // 0: wait, 1: run
  std::unique_ptr<Barrier> barrier;
  int count = n;
  // Each new thread is pinned to a core of this process's set other than the caller's: a new
  // thread otherwise starts on its creator's core, and two threads taking turns on one core
  // through the barrier make every step a context switch (measured: 10x slower).
  cpu_set_t allowed;
  std::vector<int> cores;
  const int mine = sched_getcpu();
  if (mine >= 0 && sched_getaffinity(0, sizeof(allowed), &allowed) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
      if (CPU_ISSET(cpu, &allowed) && cpu != mine) cores.push_back(cpu);
  }
  std::vector<std::thread> threads;
  threads.reserve(n - 1);
  for (int id = 1; id < n; ++id) {
    try {
      threads.emplace_back([&, id] {
        while (go.load(std::memory_order_acquire) == 0) std::this_thread::yield();
        if (id < count) f(id, count, *barrier);
      });
    } catch (const std::system_error&) {
      count = id;
      break;
    }
    if (!cores.empty()) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cores[(id - 1) % cores.size()], &one);
      pthread_setaffinity_np(threads.back().native_handle(), sizeof(one), &one);
    }
  }
  // The caller stays on its core for the call, too (a migration onto a worker's core would
  // cost the same context switches), and gets its own affinity back after.
  bool pinned = !cores.empty() && count > 1;
  if (pinned) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(mine, &one);
    pinned = pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0;
  }
  barrier = std::make_unique<Barrier>(count);
  go.store(1, std::memory_order_release);
  f(0, count, *barrier);
  for (auto& thread : threads) thread.join();
  if (pinned) pthread_setaffinity_np(pthread_self(), sizeof(allowed), &allowed);
}

// Scratch memory for one call. A fresh allocation of a few hundred KB or more is mmap'ed by
// malloc and pays a page fault per 4 KB page on first touch (the weight panels of H = 128 took
// 80 us of a 2 ms call that way), so each thread keeps its slots' buffers from call to call and
// grows them as needed; buffers above kKeep bytes are allocated for the call alone. (Faults cost
// ~1 us a page here: with kKeep = 16 MB the character model's 32 MB dz made its layer's training
// step 51.6 ms against 40-44, so a thread may keep up to 13 x 64 MB, in practice far less.)
class Scratch {
 public:
  Scratch(int slot, int64_t n) {
    constexpr int64_t kKeep = int64_t{64} << 20;
    thread_local std::unique_ptr<float[]> kept[kSlots];
    thread_local int64_t sizes[kSlots] = {};
    if (n * int64_t{sizeof(float)} > kKeep) {
      owned_.reset(new float[n]);
      data_ = owned_.get();
      return;
    }
    if (sizes[slot] < n) {
      kept[slot].reset();
      kept[slot].reset(new float[n]);
      sizes[slot] = n;
    }
    data_ = kept[slot].get();
  }
  float* get() const { return data_; }
  float& operator[](int64_t i) const { return data_[i]; }
  static constexpr int kSlots = 17;

 private:
  float* data_;
  std::unique_ptr<float[]> owned_;
};

void gemm(char ta, char tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
          const float* b, int64_t ldb, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    return;
  }
  // A failed call leaves `c` as it was (uninitialised scratch), so it is an error, never a number.
  int status = dnnl_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
  if (status != 0) throw std::runtime_error("dnnl_sgemm failed with status " + std::to_string(status));
}

// Maps the pages of the forward pass's outputs, as transparent huge pages where the system allows
// them, before the tiles write them. XLA:CPU places a program's intermediates (the residuals among
// them) in one block, which glibc's malloc maps afresh at every call once it passes 32 MB, its
// largest mmap threshold; writing it then faults in a fresh 4 KB page at a time (11,400 faults a
// training step at (B, T, H) = (64, 100, 256); about 1.3 us each, timed while developing this).
// madvise(MADV_HUGEPAGE) and one madvise(MADV_POPULATE_WRITE) map the range in 2 MB pages
// instead: that training step took 53-58 ms against 64-71 (benchmarks/native_pages.py). Only
// where the outputs alone pass 32 MB (smaller blocks malloc keeps once its threshold has grown,
// and populating memory already mapped is not free: a first version that mapped every output of
// 4 MB or more lost up to 0.4 ms of a 6 ms step at (16, 512, 64)), and only where their first
// page is not mapped yet (`mincore`; below). Mapped
// pages keep their contents; where a call is unsupported (Linux < 5.14, THP off) it fails and the
// pages fault in as before. SEQLSTM_NATIVE_HUGE_PAGES=0 turns it off.
constexpr int64_t kFreshBlock = int64_t{32} << 20;

void Prefault(void* data, int64_t bytes) {
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
  const char* off = std::getenv("SEQLSTM_NATIVE_HUGE_PAGES");  // read per call: benchmarks A/B it
  if (off != nullptr && std::strcmp(off, "0") == 0) return;
  constexpr uintptr_t kPage = 4096;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kPage - 1) & ~(kPage - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kPage - 1);
  if (end <= begin) return;
  void* range = reinterpret_cast<void*>(begin);
  // A block malloc kept from the last call is mapped already: one page tells (mincore), and
  // populating it again cost about 0.6 ms of the character model's 43 ms step for nothing (its
  // one arena keeps every block; a development A/B of the launcher's step).
  unsigned char mapped = 0;
  if (mincore(range, kPage, &mapped) == 0 && (mapped & 1) != 0) return;
  madvise(range, end - begin, MADV_HUGEPAGE);
  madvise(range, end - begin, MADV_POPULATE_WRITE);
}

// x rounded to the nearest bfloat16 (ties to even), kept in float32 (the tiles' round_bf16).
float RoundBf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) {
    u = (u | 0x00400000u) & 0xFFFF0000u;  // NaN stays NaN
  } else {
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
  }
  std::memcpy(&x, &u, sizeof(u));
  return x;
}

// The upper half of x rounded to bfloat16: its bits as a bfloat16.
uint16_t Bf16Bits(float x) {
  x = RoundBf16(x);
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  return static_cast<uint16_t>(u >> 16);
}

// For the bfloat16 units: float32 panels [blocks][K][cols] (values the caller rounded to
// bfloat16) -> [blocks][Kp / 2][cols][2] bfloat16, each two consecutive k side by side as
// vdpbf16ps reads them; k from K up to Kp (even) is zero. The forward's W and R panels
// (cols = 4L) and the backward's R^T (cols = L).
Scratch InterleavePairs(int slot, const float* panels, int64_t blocks, int64_t K, int64_t Kp,
                        int64_t cols) {
  Scratch out(slot, blocks * Kp * cols / 2);  // floats, 2 bfloat16 each
  uint16_t* o = reinterpret_cast<uint16_t*>(out.get());
  for (int64_t u = 0; u < blocks; ++u)
    for (int64_t k = 0; k < Kp; ++k) {
      const float* in = panels + (u * K + k) * cols;
      uint16_t* to = o + (u * Kp + k / 2 * 2) * cols + (k & 1);
      if (k >= K) {
        for (int64_t j = 0; j < cols; ++j) to[2 * j] = 0;
      } else {
        for (int64_t j = 0; j < cols; ++j) to[2 * j] = Bf16Bits(in[j]);
      }
    }
  return out;
}

// Rows [rows, D] -> bfloat16 [rows, Dp] (Dp = D made even, the last column zero then): in a row
// two consecutive k are side by side already, as vdpbf16ps reads its other operand.
Scratch ToBf16Rows(int slot, const float* x, int64_t rows, int64_t D, int64_t Dp) {
  Scratch out(slot, rows * Dp / 2);
  uint16_t* o = reinterpret_cast<uint16_t*>(out.get());
  for (int64_t row = 0; row < rows; ++row) {
    for (int64_t k = 0; k < D; ++k) o[row * Dp + k] = Bf16Bits(x[row * D + k]);
    if (Dp > D) o[row * Dp + D] = 0;
  }
  return out;
}

// The packing below runs once per call on every weight matrix: it copies runs of L contiguous
// floats (no per-element index arithmetic; 250 us -> ~15 us at H = 128). Each function packs
// unit blocks [u0, u1), so that the threads of a call pack their shares at once (one thread
// packed G2P's encoder layers in 0.14-0.36 ms a call; sharing it and the backward pass's
// transposes below, G2P's second encoder layer, one direction, trained in 6.1 against 7.0 ms:
// a scratch A/B of the two builds with benchmarks/native_rule.py's `layer_fns`).

// W [K, 4H] -> [Hp / L][K][4L] (forward tiles), blocks [u0, u1).
void PackPanelsInto(const float* w, int64_t K, int64_t H, int64_t L, int64_t u0, int64_t u1,
                    float* out) {
  for (int64_t u = u0; u < u1; ++u) {
    const int64_t n = std::max<int64_t>(0, std::min(L, H - u * L));
    for (int64_t k = 0; k < K; ++k) {
      float* panel = out + (u * K + k) * 4 * L;
      for (int64_t g = 0; g < 4; ++g) {
        std::memcpy(panel + g * L, w + k * 4 * H + g * H + u * L, sizeof(float) * n);
        std::fill(panel + g * L + n, panel + (g + 1) * L, 0.0f);
      }
    }
  }
}

Scratch PackPanels(int slot, const float* w, int64_t K, int64_t H, int64_t Hp, int64_t L) {
  Scratch out(slot, K * 4 * Hp);
  PackPanelsInto(w, K, H, L, 0, Hp / L, out.get());
  return out;
}

// Transposes the 8 x 8 block at src (row stride lds) into dst (row stride ldd), in registers.
inline void Transpose8x8(const float* src, int64_t lds, float* dst, int64_t ldd) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}

// The columns of w [K_valid, 4H] (row stride lds) in panel order, transposed: dst[j][k] (row
// stride ldd) = w[k][g * H + u * L + l] for panel column j = u * 4L + g * L + l in [j0, j1)
// (multiples of 8) and k < K, zero for padded units and for k >= K_valid. Runs of 8 panel
// columns are 8 adjacent columns of w, so the work is 8 x 8 register transposes.
void PanelTranspose(const float* w, int64_t lds, int64_t K_valid, int64_t K, int64_t H,
                    int64_t L, int64_t j0, int64_t j1, float* dst, int64_t ldd) {
  for (int64_t j = j0; j < j1; j += 8) {
    const int64_t u = j / (4 * L), g = j % (4 * L) / L, unit = u * L + j % L;
    const int64_t n = std::max<int64_t>(0, std::min<int64_t>(8, H - unit));
    const float* col = w + g * H + unit;
    for (int64_t k = 0; k < K; k += 8) {
      const int64_t kn = std::max<int64_t>(0, std::min<int64_t>(8, K_valid - k));
      if (n == 8 && kn == 8 && k + 8 <= K) {
        Transpose8x8(col + k * lds, lds, dst + j * ldd + k, ldd);
        continue;
      }
      for (int64_t i = 0; i < 8; ++i)
        for (int64_t kk = 0; kk < std::min<int64_t>(8, K - k); ++kk)
          dst[(j + i) * ldd + k + kk] = i < n && kk < kn ? col[(k + kk) * lds + i] : 0.0f;
    }
  }
}

// And back: [K, 4Hp] in panel order -> [K, 4H].
void UnpackColumns(const float* in, int64_t K, int64_t H, int64_t Hp, int64_t L, float* out) {
  for (int64_t k = 0; k < K; ++k)
    for (int64_t u = 0; u < Hp / L; ++u) {
      const int64_t n = std::min(L, H - u * L);
      for (int64_t g = 0; g < 4; ++g)
        std::memcpy(out + k * 4 * H + g * H + u * L, in + k * 4 * Hp + u * 4 * L + g * L,
                    sizeof(float) * n);
    }
}

// R [H, 4H] -> R^T in [Hp / L][4Hp][L] (backward tiles: row u*L + l of R is lane l of block u),
// blocks [u0, u1).
void PackTransposedInto(const float* r, int64_t H, int64_t L, int64_t u0, int64_t u1,
                        float* out) {
  const int64_t G = 4 * ((H + L - 1) / L * L);
  for (int64_t u = u0; u < u1; ++u) {
    PanelTranspose(r + u * L * 4 * H, 4 * H, std::min(L, H - u * L), L, H, L, 0, G,
                   out + u * G * L, L);
  }
}

// [B, H] -> [B, Hp] (zeros in the padding) and back.
void Pad(const float* in, int64_t B, int64_t H, int64_t Hp, float* out) {
  for (int64_t b = 0; b < B; ++b) {
    std::memcpy(out + b * Hp, in + b * H, sizeof(float) * H);
    std::fill(out + b * Hp + H, out + (b + 1) * Hp, 0.0f);
  }
}

void Unpad(const float* in, int64_t B, int64_t H, int64_t Hp, float* out) {
  for (int64_t b = 0; b < B; ++b) std::memcpy(out + b * H, in + b * Hp, sizeof(float) * H);
}

// The sizes of a call: steps T, rows B, inputs D and units H of x [T, B, D] (or [B, T, D]) and
// h0 [B, H], the tiles' lanes L and the units padded to them, Hp.
struct Dims {
  int64_t T, B, D, H, L, Hp;
};

Dims ReadDims(const ffi::Buffer<ffi::F32>& x, const ffi::Buffer<ffi::F32>& h0,
              bool batch_major) {
  auto xd = x.dimensions();
  const int64_t H = h0.dimensions()[1], L = Lanes();
  return {xd[batch_major ? 1 : 0], xd[batch_major ? 0 : 1], xd[2], H, L, (H + L - 1) / L * L};
}

ffi::Error Forward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> kernel,
                   ffi::Buffer<ffi::F32> recurrent, ffi::Buffer<ffi::F32> bias,
                   ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0,
                   ffi::Buffer<ffi::PRED> valid, float* y, float* h_t, float* c_t, float* gates,
                   float* cs, bool reverse, bool batch_major, int64_t threads, bool round_bf16) {
  if (x.dimensions().size() != 3) {
    return ffi::Error::InvalidArgument("x must be [T, B, D] or [B, T, D]");
  }
  const Dims d = ReadDims(x, h0, batch_major);  // named copies: lambdas below capture them
  const int64_t T = d.T, B = d.B, D = d.D, H = d.H, L = d.L, Hp = d.Hp;
  if (T == 0 || B == 0 || H == 0) {
    std::memcpy(h_t, h0.typed_data(), sizeof(float) * B * H);
    std::memcpy(c_t, c0.typed_data(), sizeof(float) * B * H);
    return ffi::Error::Success();
  }
  const bool units = OnUnits(round_bf16);
  // The weight panels: packed by the call's threads, each its share of the unit blocks (below),
  // or here with the bfloat16 units, whose operands are made from them first.
  Scratch w(0, D * 4 * Hp), r(1, H * 4 * Hp), b(2, 4 * Hp);
  auto pack = [&](int64_t u0, int64_t u1) {
    PackPanelsInto(kernel.typed_data(), D, H, L, u0, u1, w.get());
    PackPanelsInto(recurrent.typed_data(), H, H, L, u0, u1, r.get());
    PackPanelsInto(bias.typed_data(), 1, H, L, u0, u1, b.get());
  };
  if (units) pack(0, Hp / L);
  Scratch state(3, 5 * B * Hp);
  float* c = state.get();
  float* h = c + B * Hp;
  float* m = round_bf16 ? h + 2 * B * Hp : h;
  Pad(c0.typed_data(), B, H, Hp, c);
  Pad(h0.typed_data(), B, H, Hp, h);
  if (round_bf16 && !units) {
    for (int64_t i = 0; i < B * Hp; ++i) m[i] = RoundBf16(h[i]);
  }
  ForwardArgs a{{T, B, batch_major}, D, H, Hp, reverse, round_bf16, x.typed_data(), w.get(),
                r.get(), b.get(), valid.typed_data(), y, gates, cs, c, {h, h + B * Hp},
                {m, m + B * Hp}};
  // The units' operands: x, W and R as bfloat16 pairs (R's padded units zero), h as bfloat16.
  const int64_t Dp = (D + 1) / 2 * 2;
  const int64_t blocks = units ? Hp / L : 0, rows = units ? T * B : 0;
  Scratch wb = InterleavePairs(13, w.get(), blocks, D, Dp, 4 * L);
  Scratch rb = InterleavePairs(14, r.get(), blocks, H, Hp, 4 * L);
  Scratch xb = ToBf16Rows(15, x.typed_data(), rows, D, Dp);
  Scratch hb(16, units ? B * Hp : 0);  // h as bfloat16, twice
  if (units) {
    uint16_t* h16 = reinterpret_cast<uint16_t*>(hb.get());
    for (int64_t i = 0; i < B * Hp; ++i) h16[i] = Bf16Bits(h[i]);
    a.xb = reinterpret_cast<const uint32_t*>(xb.get());
    a.wb = reinterpret_cast<const uint16_t*>(wb.get());
    a.rb = reinterpret_cast<const uint16_t*>(rb.get());
    a.mb[0] = h16;
    a.mb[1] = h16 + B * Hp;
    a.Dp = Dp;
  }
  const int64_t tile_rows = L == 16 ? avx512::kFwdRows : avx2::kFwdRows;
  const int64_t tiles = (B + tile_rows - 1) / tile_rows * (Hp / L);
  const int n = Threads(2 * B * (D + H) * 4 * Hp, T, tiles, threads);
  const int64_t out_bytes = sizeof(float) * T * B * (H + (gates != nullptr ? 5 * Hp : 0));
  if (out_bytes >= kFreshBlock) {
    Prefault(y, sizeof(float) * T * B * H);
    if (gates != nullptr) {
      Prefault(gates, sizeof(float) * T * B * 4 * Hp);
      Prefault(cs, sizeof(float) * T * B * Hp);
    }
  }
  Parallel(n, threads != 1, [&](int id, int count, Barrier& barrier) {
    if (!units) {
      pack(Hp / L * id / count, Hp / L * (id + 1) / count);
      if (count > 1) barrier.Wait();
    }
    if (units) {
      avx512bf16::forward_worker<true>(a, id, count, barrier);
    } else if (L == 16) {
      avx512::forward_worker(a, id, count, barrier);
    } else {
      avx2::forward_worker(a, id, count, barrier);
    }
  });
  Unpad(a.h[T % 2], B, H, Hp, h_t);
  Unpad(c, B, H, Hp, c_t);
  return ffi::Error::Success();
}

ffi::Error LstmForward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> kernel,
                       ffi::Buffer<ffi::F32> recurrent, ffi::Buffer<ffi::F32> bias,
                       ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0,
                       ffi::Buffer<ffi::PRED> valid, ffi::ResultBuffer<ffi::F32> ys,
                       ffi::ResultBuffer<ffi::F32> h_t, ffi::ResultBuffer<ffi::F32> c_t,
                       ffi::ResultBuffer<ffi::F32> gates, ffi::ResultBuffer<ffi::F32> cs,
                       bool reverse, bool batch_major, int64_t threads, bool round_bf16) {
  return Forward(x, kernel, recurrent, bias, h0, c0, valid, ys->typed_data(), h_t->typed_data(),
                 c_t->typed_data(), gates->typed_data(), cs->typed_data(), reverse, batch_major,
                 threads, round_bf16);
}

// The forward pass alone (nothing differentiated): no residuals are written.
ffi::Error LstmInference(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> kernel,
                         ffi::Buffer<ffi::F32> recurrent, ffi::Buffer<ffi::F32> bias,
                         ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0,
                         ffi::Buffer<ffi::PRED> valid, ffi::ResultBuffer<ffi::F32> ys,
                         ffi::ResultBuffer<ffi::F32> h_t, ffi::ResultBuffer<ffi::F32> c_t,
                         bool reverse, bool batch_major, int64_t threads, bool round_bf16) {
  return Forward(x, kernel, recurrent, bias, h0, c0, valid, ys->typed_data(), h_t->typed_data(),
                 c_t->typed_data(), nullptr, nullptr, reverse, batch_major, threads, round_bf16);
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
                        bool reverse, bool batch_major, int64_t threads, bool round_bf16) {
  if (x.dimensions().size() != 3) {
    return ffi::Error::InvalidArgument("x must be [T, B, D] or [B, T, D]");
  }
  const Dims d = ReadDims(x, h0, batch_major);  // named copies: lambdas below capture them
  const int64_t T = d.T, B = d.B, D = d.D, H = d.H, L = d.L, Hp = d.Hp;
  const Layout layout{T, B, batch_major};
  const int64_t G = 4 * Hp;
  float* dW = d_kernel->typed_data();
  float* dR = d_recurrent->typed_data();
  float* db = d_bias->typed_data();
  float* dx = d_x->typed_data();
  if (T == 0 || B == 0 || H == 0) {
    std::fill(dW, dW + D * 4 * H, 0.0f);
    std::fill(dR, dR + H * 4 * H, 0.0f);
    std::fill(db, db + 4 * H, 0.0f);
    std::fill(dx, dx + T * B * D, 0.0f);
    std::memcpy(dh0->typed_data(), dh_t.typed_data(), sizeof(float) * B * H);
    std::memcpy(dc0->typed_data(), dc_t.typed_data(), sizeof(float) * B * H);
    return ffi::Error::Success();
  }
  const int64_t rows = T * B;
  // R^T's panels: packed by the call's threads, each its share of the unit blocks (below), or
  // here with the bfloat16 units, whose operands are made from them first.
  const bool units = OnUnits(round_bf16);
  Scratch rt(4, Hp * G);
  const float* R = recurrent.typed_data();
  if (units) PackTransposedInto(R, H, L, 0, Hp / L, rt.get());
  Scratch dz(6, rows * G);
  Scratch dz_rounded(12, round_bf16 ? rows * G : 0);
  float* dzm = round_bf16 ? dz_rounded.get() : dz.get();
  Scratch state(7, 3 * B * Hp);
  float* dh = state.get();
  float* dc = dh + B * Hp;
  float* c0p = dc + B * Hp;
  Pad(dh_t.typed_data(), B, H, Hp, dh);
  Pad(dc_t.typed_data(), B, H, Hp, dc);
  Pad(c0.typed_data(), B, H, Hp, c0p);
  const bool* v = valid.typed_data();
  BackwardArgs a{layout, H, Hp, reverse, round_bf16, rt.get(), v, gates.typed_data(),
                 cs.typed_data(), c0p, dys.typed_data(), dz.get(), dzm, dh, dc};
  Scratch rtb = InterleavePairs(13, rt.get(), units ? Hp / L : 0, G, G, L);  // R^T in pairs
  Scratch dzb(14, units ? rows * G / 2 : 0);
  if (units) {
    a.rtb = reinterpret_cast<const uint16_t*>(rtb.get());
    a.dzb = reinterpret_cast<uint16_t*>(dzb.get());
  }
  const int64_t row_block = L == 16 ? avx512::kBwdRows : avx2::kBwdRows;
  const int64_t tiles = (B + row_block - 1) / row_block * ((Hp / L + 1) / 2);
  const int n = Threads(2 * B * H * G, T, tiles, threads);
  // After the loop, for the gradient products: every step's h_{t-1} (the initial state at a
  // row's first valid step, zeros at padding), for dR = h_prev^T dz, and W^T in panel order,
  // [4Hp, D], so that dx = dz @ W^T takes no transposed operand (dnnl_sgemm runs one about 2x
  // slower). The threads build both, each a share.
  const float* y = ys.typed_data();
  const float* hinit = h0.typed_data();
  Scratch h_prev(8, rows * H);
  Scratch w_t(9, G * D);
  auto previous_states = [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t t = reverse ? T - 1 - s : s;
      const int64_t pred = reverse ? t + 1 : t - 1;
      for (int64_t r = 0; r < B; ++r) {
        float* out = h_prev.get() + layout.Row(t, r) * H;
        if (!v[t * B + r]) {
          std::fill(out, out + H, 0.0f);
        } else {
          const bool first = s == 0 || !v[pred * B + r];
          std::memcpy(out, first ? hinit + r * H : y + layout.Row(pred, r) * H,
                      sizeof(float) * H);
        }
      }
    }
  };
  Parallel(n, threads != 1, [&](int id, int count, Barrier& barrier) {
    if (!units) {
      PackTransposedInto(R, H, L, Hp / L * id / count, Hp / L * (id + 1) / count, rt.get());
      if (count > 1) barrier.Wait();
    }
    if (units) {
      avx512bf16::backward_worker<true>(a, id, count, barrier);
    } else if (L == 16) {
      avx512::backward_worker(a, id, count, barrier);
    } else {
      avx2::backward_worker(a, id, count, barrier);
    }
    const int64_t runs = G / 8;  // W^T in runs of 8 panel columns
    PanelTranspose(kernel.typed_data(), 4 * H, D, D, H, L, runs * id / count * 8,
                   runs * (id + 1) / count * 8, w_t.get(), D);
    previous_states(T * id / count, T * (id + 1) / count);
  });
  Unpad(dh, B, H, Hp, dh0->typed_data());
  Unpad(dc, B, H, Hp, dc0->typed_data());

  gemm('N', 'N', rows, D, G, dzm, G, w_t.get(), D, dx, D);
  Scratch packed(11, std::max(D, H) * G);
  gemm('T', 'N', D, G, rows, x.typed_data(), D, dzm, G, packed.get(), G);
  UnpackColumns(packed.get(), D, H, Hp, L, dW);
  gemm('T', 'N', H, G, rows, h_prev.get(), H, dzm, G, packed.get(), G);
  UnpackColumns(packed.get(), H, H, Hp, L, dR);
  std::fill(packed.get(), packed.get() + G, 0.0f);
  for (int64_t k = 0; k < rows; ++k) {
    const float* dzr = dz.get() + k * G;
#pragma GCC ivdep
    for (int64_t j = 0; j < G; ++j) packed[j] += dzr[j];
  }
  UnpackColumns(packed.get(), 1, H, Hp, L, db);
  return ffi::Error::Success();
}

#include "feeding_cpu.inc"

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

// The bindings of the LSTM handlers: the forward inputs they share, and the attributes of all.
auto BindForwardInputs() {
  return ffi::Ffi::Bind()
      .Arg<ffi::Buffer<ffi::F32>>()    // x
      .Arg<ffi::Buffer<ffi::F32>>()    // kernel
      .Arg<ffi::Buffer<ffi::F32>>()    // recurrent
      .Arg<ffi::Buffer<ffi::F32>>()    // bias
      .Arg<ffi::Buffer<ffi::F32>>()    // h0
      .Arg<ffi::Buffer<ffi::F32>>()    // c0
      .Arg<ffi::Buffer<ffi::PRED>>();  // valid
}

// The operands both decoder handlers read first (after the forward's x_tm), in this order.
template <typename Binding>
auto BindAttentionOperands(Binding binding) {
  return std::move(binding)
      .template Arg<ffi::Buffer<ffi::F32>>()   // query kernel [H, A] ([0, 0] unless additive)
      .template Arg<ffi::Buffer<ffi::F32>>()   // v [A] ([0] unless additive)
      .template Arg<ffi::Buffer<ffi::F32>>()   // combine [E + H, H]
      .template Arg<ffi::Buffer<ffi::F32>>()   // projected keys [B, S, A]
      .template Arg<ffi::Buffer<ffi::F32>>()   // values [B, S, E]
      .template Arg<ffi::Buffer<ffi::S32>>();  // lengths [B]
}

template <typename Binding>
auto BindAttributes(Binding binding) {
  return std::move(binding)  // a binding's methods take it as an rvalue
      .template Attr<bool>("reverse")
      .template Attr<bool>("batch_major")
      .template Attr<int64_t>("threads")
      .template Attr<bool>("round_bf16");
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqlstmLstmForward, Guarded<LstmForward>::Call,
                              BindAttributes(BindForwardInputs()
                                                 .Ret<ffi::Buffer<ffi::F32>>()    // ys
                                                 .Ret<ffi::Buffer<ffi::F32>>()    // h_T
                                                 .Ret<ffi::Buffer<ffi::F32>>()    // c_T
                                                 .Ret<ffi::Buffer<ffi::F32>>()    // gates [T, B, 4Hp]
                                                 .Ret<ffi::Buffer<ffi::F32>>()));  // cs [T, B, Hp]

XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqlstmLstmInference, Guarded<LstmInference>::Call,
                              BindAttributes(BindForwardInputs()
                                                 .Ret<ffi::Buffer<ffi::F32>>()    // ys
                                                 .Ret<ffi::Buffer<ffi::F32>>()    // h_T
                                                 .Ret<ffi::Buffer<ffi::F32>>()));  // c_T

XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqlstmLstmBackward, Guarded<LstmBackward>::Call,
                              BindAttributes(ffi::Ffi::Bind()
                                                 .Arg<ffi::Buffer<ffi::F32>>()    // x
                                                 .Arg<ffi::Buffer<ffi::F32>>()    // kernel
                                                 .Arg<ffi::Buffer<ffi::F32>>()    // recurrent
                                                 .Arg<ffi::Buffer<ffi::F32>>()    // h0
                                                 .Arg<ffi::Buffer<ffi::F32>>()    // c0
                                                 .Arg<ffi::Buffer<ffi::PRED>>()   // valid
                                                 .Arg<ffi::Buffer<ffi::F32>>()    // ys
                                                 .Arg<ffi::Buffer<ffi::F32>>()    // gates
                                                 .Arg<ffi::Buffer<ffi::F32>>()    // cs
                                                 .Arg<ffi::Buffer<ffi::F32>>()    // dys
                                                 .Arg<ffi::Buffer<ffi::F32>>()    // dh_T
                                                 .Arg<ffi::Buffer<ffi::F32>>()    // dc_T
                                                 .Ret<ffi::Buffer<ffi::F32>>()    // d kernel
                                                 .Ret<ffi::Buffer<ffi::F32>>()    // d recurrent
                                                 .Ret<ffi::Buffer<ffi::F32>>()    // d bias
                                                 .Ret<ffi::Buffer<ffi::F32>>()    // d x
                                                 .Ret<ffi::Buffer<ffi::F32>>()    // dh0
                                                 .Ret<ffi::Buffer<ffi::F32>>()));  // dc0

XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqlstmFeedingForward, Guarded<FeedingForward>::Call,
                              BindAttentionOperands(  // after x_tm [T, B, 4H]
                                  ffi::Ffi::Bind().Arg<ffi::Buffer<ffi::F32>>())
                                  .Arg<ffi::Buffer<ffi::F32>>()   // feed [B, H]
                                  .RemainingArgs()                // per layer: W, b, h0, c0
                                  .Ret<ffi::Buffer<ffi::F32>>()   // outputs [T, B, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()   // attention [T, B, S]
                                  .Ret<ffi::Buffer<ffi::F32>>()   // queries [T, B, A]
                                  .Ret<ffi::Buffer<ffi::F32>>()   // [context | h_top] [T, B, E + H]
                                  .RemainingRets()                // per layer: h, c, gates, rows
                                  .Attr<bool>("additive"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqlstmFeedingBackward, Guarded<FeedingBackward>::Call,
                              BindAttentionOperands(ffi::Ffi::Bind())
                                  .Arg<ffi::Buffer<ffi::F32>>()   // outputs [T, B, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // attention [T, B, S]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // queries [T, B, A]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // [context | h_top]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // d outputs [T, B, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // d attention [T, B, S]
                                  .RemainingArgs()  // per layer: W, gates, c, c0, rows
                                  .Ret<ffi::Buffer<ffi::F32>>()   // d feed [B, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()   // d projected [B, S, A]
                                  .Ret<ffi::Buffer<ffi::F32>>()   // d values [B, S, E]
                                  .Ret<ffi::Buffer<ffi::F32>>()   // d v [A]
                                  .Ret<ffi::Buffer<ffi::F32>>()   // d combine [E + H, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()   // d query kernel [H, A]
                                  .RemainingRets()                // per layer: dz, dW, db, dh0, dc0
                                  .Attr<bool>("additive"));

// The vector width of the tiles this CPU runs (16 with AVX-512, else 8): the hidden size is padded
// to a multiple of it in the residuals (gates [T, B, 4Hp], cell states [T, B, Hp]).
extern "C" int SeqlstmLanes() { return Lanes(); }

// 1 where dtype=bfloat16 products run on the CPU's bfloat16 units (avx512_bf16), else 0.
extern "C" int SeqlstmBf16Units() { return HasBf16Units() ? 1 : 0; }
