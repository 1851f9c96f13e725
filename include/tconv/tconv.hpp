// tconv: convolution and transposed convolution with PyTorch's semantics.
//
// Layouts are PyTorch's: activations [N, C, spatial...] (the batch dimension may
// be left out, as torch accepts unbatched input), weights
//   conv            [C_out, C_in / groups, k...]
//   conv_transpose  [C_in,  C_out / groups, k...]
// Output sizes per spatial dimension (i input, k kernel, s stride, p padding,
// d dilation, op output_padding):
//   conv            floor((i + 2p - d(k-1) - 1) / s) + 1
//   conv_transpose  (i - 1)s - 2p + d(k-1) + op + 1
// Every function throws tconv::Error (error.hpp) and nothing else on bad input.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "tconv/error.hpp"
#include "tconv/params.hpp"
#include "tconv/tensor.hpp"

namespace tconv {

enum class ConvKind { conv, conv_transpose };
const char* conv_kind_name(ConvKind kind);

// The output shape of a convolution, or the Error the computation would throw.
Shape output_shape(ConvKind kind, const Shape& input_shape, const Shape& weight_shape,
                   const ConvParams& params);

// One-shot calls. `bias` may be null. The output has the input's dtype.
Tensor conv(const TensorView& input, const TensorView& weight, const TensorView* bias,
            const ConvParams& params = {});
Tensor conv_transpose(const TensorView& input, const TensorView& weight, const TensorView* bias,
                      const ConvParams& params = {});

// What a prepared operator needs for one input shape.
struct Plan {
  Shape output_shape;
  std::size_t workspace_bytes = 0;  // scratch memory one run allocates
  int threads = 1;
  // How the implementation runs this shape where it chooses per shape (for
  // plane_gemm_avx512: reading the input in place, splitting it into its
  // stride phases, or the channels-last detour); empty where it has one way.
  std::string strategy;
};

struct OperatorOptions {
  // Force one implementation by name (see Operator::implementation()); empty
  // means choose automatically. The environment variable TCONV_IMPL does the same.
  std::string implementation;
};

// A prepared convolution: create once (parameters checked, weights packed),
// then plan and run for as many inputs as needed. A const Operator may be used
// from several threads at once.
class Operator {
 public:
  static Operator create(ConvKind kind, const TensorView& weight, const TensorView* bias,
                         const ConvParams& params, const OperatorOptions& options = {});
  Operator(Operator&&) noexcept;
  Operator& operator=(Operator&&) noexcept;
  ~Operator();

  ConvKind kind() const;
  DType dtype() const;
  // The implementation chosen at creation and why it was chosen.
  const std::string& implementation() const;
  const std::string& reason() const;

  Plan plan(const Shape& input_shape) const;
  Tensor run(const TensorView& input) const;
  // Writes into a caller's buffer of the planned output shape (any strides).
  void run(const TensorView& input, const MutableTensorView& output) const;

 private:
  struct State;
  explicit Operator(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// The names of the implementations this build has and this CPU can run.
std::vector<std::string> available_implementations();

// Threads used by every call (default: OpenMP's default, the number of cores).
void set_num_threads(int threads);
int num_threads();

// The most memory one call may allocate for its output and workspace (and the
// .npy reader for one file): a request beyond it is refused with Error before
// anything is allocated. Default: the environment variable TCONV_MAX_BYTES
// when set, else the machine's physical memory. set_max_bytes(0) restores the
// default. Like the thread count, one process-wide setting.
void set_max_bytes(std::uint64_t bytes);
std::uint64_t max_bytes();

// The dense convolution matrix of `conv(input, weight)` for one sample:
// shape [output elements, input elements] (channels included, C order), so
// that conv(x) = M x and conv_transpose(y) = M^T y for the same weight.
Tensor conv_matrix(const Shape& input_shape, const TensorView& weight, const ConvParams& params = {});

// The three ways of computing a (transposed) convolution, written for clarity
// and used as the oracle of the fast engine. Accumulation is in double.
namespace reference {
enum class Method {
  gather,   // each output element sums the input elements its window covers
  matrix,   // the convolution matrix (or its transpose) times the flattened input
  scatter,  // each input element adds itself times the kernel into the output window it reaches
};
const char* method_name(Method method);
Tensor compute(Method method, ConvKind kind, const TensorView& input, const TensorView& weight,
               const TensorView* bias, const ConvParams& params = {});
}  // namespace reference

}  // namespace tconv
