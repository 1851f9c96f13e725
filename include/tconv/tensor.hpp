// Tensors as views over callers' buffers, plus a small owning tensor for convenience.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tconv {

enum class DType { f32, f64 };

std::size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }

using Shape = std::vector<std::int64_t>;

// A view of an n-dimensional array owned by somebody else.
// Strides are in elements (not bytes), may be any non-negative value, and
// let callers pass transposed or sliced arrays without a copy.
struct TensorView {
  const void* data = nullptr;
  DType dtype = DType::f32;
  Shape shape;
  Shape strides;  // empty means C-contiguous

  TensorView() = default;
  TensorView(const void* data, DType dtype, Shape shape, Shape strides = {});
  template <typename T>
  TensorView(const T* typed, Shape shape, Shape strides = {})
      : TensorView(static_cast<const void*>(typed), dtype_of<T>(), std::move(shape), std::move(strides)) {}

  std::int64_t rank() const { return static_cast<std::int64_t>(shape.size()); }
  std::int64_t numel() const;
  // The strides in elements, C-contiguous ones filled in when none were given.
  Shape effective_strides() const;
  bool is_contiguous() const;
};

// A view the callee writes into.
struct MutableTensorView : TensorView {
  MutableTensorView() = default;
  MutableTensorView(void* data, DType dtype, Shape shape, Shape strides = {})
      : TensorView(data, dtype, std::move(shape), std::move(strides)) {}
  template <typename T>
  MutableTensorView(T* typed, Shape shape, Shape strides = {})
      : TensorView(typed, std::move(shape), std::move(strides)) {}
  void* mutable_data() const { return const_cast<void*>(data); }
};

// A C-contiguous array that owns its (64-byte aligned) storage.
class Tensor {
 public:
  Tensor() = default;
  Tensor(DType dtype, Shape shape);  // zero-filled
  // Storage left as the allocator gives it, for results that overwrite every element.
  static Tensor uninitialized(DType dtype, Shape shape);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  std::int64_t numel() const;
  void* data() { return storage_.get(); }
  const void* data() const { return storage_.get(); }
  template <typename T> T* data_as() { return static_cast<T*>(data()); }
  template <typename T> const T* data_as() const { return static_cast<const T*>(data()); }

  TensorView view() const { return TensorView(data(), dtype_, shape_); }
  MutableTensorView mutable_view() { return MutableTensorView(data(), dtype_, shape_); }

  // A contiguous copy of any (strided) view.
  static Tensor copy_of(const TensorView& view);

 private:
  struct FreeAligned {
    void operator()(void* p) const;
  };
  Tensor(DType dtype, Shape shape, bool zero_fill);
  DType dtype_ = DType::f32;
  Shape shape_;
  std::unique_ptr<void, FreeAligned> storage_;
};

// Copies element by element between two views of one shape and dtype (any strides).
void copy(const TensorView& src, const MutableTensorView& dst);

std::string shape_to_string(const Shape& shape, const char* separator = "x");

}  // namespace tconv
