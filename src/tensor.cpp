#include <cstdlib>
#include <cstring>
#include <new>

#include "tconv/error.hpp"
#include "tconv/tensor.hpp"
#include "limits.hpp"
#include "tensor_values.hpp"

namespace tconv {

std::size_t dtype_size(DType dtype) { return dtype == DType::f32 ? sizeof(float) : sizeof(double); }

const char* dtype_name(DType dtype) { return dtype == DType::f32 ? "float32" : "float64"; }

TensorView::TensorView(const void* data_, DType dtype_, Shape shape_, Shape strides_)
    : data(data_), dtype(dtype_), shape(std::move(shape_)), strides(std::move(strides_)) {
  if (!strides.empty() && strides.size() != shape.size()) {
    throw Error(ErrorKind::invalid_argument, "tensor view has " + std::to_string(shape.size()) +
                                                 " dimensions but " + std::to_string(strides.size()) +
                                                 " strides");
  }
}

std::int64_t TensorView::numel() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

Shape TensorView::effective_strides() const {
  if (!strides.empty()) return strides;
  Shape contiguous(shape.size());
  std::int64_t step = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    contiguous[i] = step;
    step *= shape[i];
  }
  return contiguous;
}

bool TensorView::is_contiguous() const {
  if (strides.empty()) return true;
  std::int64_t step = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    if (shape[i] != 1 && strides[i] != step) return false;
    step *= shape[i];
  }
  return true;
}

void Tensor::FreeAligned::operator()(void* p) const { std::free(p); }

Tensor::Tensor(DType dtype, Shape shape) : Tensor(dtype, std::move(shape), true) {}

Tensor Tensor::uninitialized(DType dtype, Shape shape) { return Tensor(dtype, std::move(shape), false); }

Tensor::Tensor(DType dtype, Shape shape, bool zero_fill) : dtype_(dtype), shape_(std::move(shape)) {
  const std::string what = "tensor";
  const std::uint64_t bytes = detail::checked_bytes(shape_, dtype_size(dtype_), what, ErrorKind::invalid_argument);
  detail::check_memory(what + " of shape " + shape_to_string(shape_), bytes, ErrorKind::invalid_argument);
  constexpr std::size_t alignment = 64;
  const std::size_t rounded = (bytes + alignment - 1) / alignment * alignment;
  void* p = std::aligned_alloc(alignment, rounded == 0 ? alignment : rounded);
  if (p == nullptr) {
    throw Error(ErrorKind::invalid_argument,
                "cannot allocate " + std::to_string(bytes) + " bytes for a tensor of shape " + shape_to_string(shape_));
  }
  if (zero_fill) std::memset(p, 0, rounded == 0 ? alignment : rounded);
  storage_.reset(p);
}

std::int64_t Tensor::numel() const {
  std::int64_t n = 1;
  for (auto d : shape_) n *= d;
  return n;
}

namespace {
// Walks every element of `shape` in C order, keeping an offset into two strided arrays.
template <typename T>
void copy_strided(const Shape& shape, const T* src, const Shape& src_strides, T* dst, const Shape& dst_strides) {
  const std::size_t rank = shape.size();
  std::int64_t total = 1;
  for (auto d : shape) total *= d;
  std::vector<std::int64_t> index(rank, 0);
  std::int64_t src_offset = 0, dst_offset = 0;
  for (std::int64_t flat = 0; flat < total; ++flat) {
    dst[dst_offset] = src[src_offset];
    for (std::size_t d = rank; d-- > 0;) {
      ++index[d];
      src_offset += src_strides[d];
      dst_offset += dst_strides[d];
      if (index[d] < shape[d]) break;
      src_offset -= src_strides[d] * index[d];
      dst_offset -= dst_strides[d] * index[d];
      index[d] = 0;
    }
  }
}
}  // namespace

void copy(const TensorView& src, const MutableTensorView& dst) {
  if (src.shape != dst.shape || src.dtype != dst.dtype) {
    throw Error(ErrorKind::invalid_argument, "cannot copy a " + std::string(dtype_name(src.dtype)) + " tensor of shape " +
                                                 shape_to_string(src.shape) + " into a " + dtype_name(dst.dtype) +
                                                 " tensor of shape " + shape_to_string(dst.shape));
  }
  if (src.numel() == 0) return;
  if (src.is_contiguous() && dst.is_contiguous()) {
    std::memcpy(dst.mutable_data(), src.data, static_cast<std::size_t>(src.numel()) * dtype_size(src.dtype));
  } else if (src.dtype == DType::f32) {
    copy_strided(src.shape, static_cast<const float*>(src.data), src.effective_strides(),
                 static_cast<float*>(dst.mutable_data()), dst.effective_strides());
  } else {
    copy_strided(src.shape, static_cast<const double*>(src.data), src.effective_strides(),
                 static_cast<double*>(dst.mutable_data()), dst.effective_strides());
  }
}

Tensor Tensor::copy_of(const TensorView& view) {
  Tensor out(view.dtype, view.shape);
  copy(view, out.mutable_view());
  return out;
}

namespace detail {

std::vector<double> to_double(const TensorView& view) {
  const Tensor contiguous = Tensor::copy_of(view);
  std::vector<double> values(static_cast<std::size_t>(contiguous.numel()));
  for (std::size_t k = 0; k < values.size(); ++k) {
    values[k] = view.dtype == DType::f32 ? contiguous.data_as<float>()[k] : contiguous.data_as<double>()[k];
  }
  return values;
}

Tensor from_double(const std::vector<double>& values, DType dtype, const Shape& shape) {
  Tensor out(dtype, shape);
  for (std::size_t k = 0; k < values.size(); ++k) {
    if (dtype == DType::f32) {
      out.data_as<float>()[k] = static_cast<float>(values[k]);
    } else {
      out.data_as<double>()[k] = values[k];
    }
  }
  return out;
}

}  // namespace detail

std::string shape_to_string(const Shape& shape, const char* separator) {
  std::string s;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += separator;
    s += std::to_string(shape[i]);
  }
  return s;
}

}  // namespace tconv
