#include "io/npy.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <regex>
#include <vector>

#include "tconv/error.hpp"

namespace tconv::io {
namespace {

[[noreturn]] void bad_file(const std::string& path, const std::string& what) {
  throw Error(ErrorKind::io, path + ": " + what);
}

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicLength = 6;
// Dimensions beyond this are refused before anything is allocated.
constexpr std::int64_t kMaxFileElements = std::int64_t{1} << 40;

std::uint32_t little_endian(const unsigned char* p, int bytes) {
  std::uint32_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

struct Header {
  DType dtype;
  bool swap_bytes;
  bool fortran_order;
  Shape shape;
};

Header parse_header(const std::string& path, const std::string& text) {
  Header h{};
  std::smatch m;
  if (!std::regex_search(text, m, std::regex(R"('descr'\s*:\s*'([^']*)')"))) {
    bad_file(path, "malformed header: no 'descr' entry");
  }
  const std::string descr = m[1];
  if (descr.size() != 3 || (descr[1] != 'f') || (descr[2] != '4' && descr[2] != '8')) {
    bad_file(path, "unsupported dtype '" + descr + "' (tconv reads float32 '<f4' and float64 '<f8', either byte order)");
  }
  if (descr[0] != '<' && descr[0] != '>' && descr[0] != '=') bad_file(path, "unsupported byte order in dtype '" + descr + "'");
  h.dtype = descr[2] == '4' ? DType::f32 : DType::f64;
  h.swap_bytes = descr[0] == '>';
  if (!std::regex_search(text, m, std::regex(R"('fortran_order'\s*:\s*(True|False))"))) {
    bad_file(path, "malformed header: no 'fortran_order' entry");
  }
  h.fortran_order = m[1] == "True";
  if (!std::regex_search(text, m, std::regex(R"('shape'\s*:\s*\(([^)]*)\))"))) {
    bad_file(path, "malformed header: no 'shape' tuple");
  }
  const std::string dims = m[1];
  const std::regex item(R"(\s*(-?\d+)\s*(,|$))");
  std::int64_t numel = 1;
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), item); it != std::sregex_iterator(); ++it) {
    const std::string digits = (*it)[1];
    if (digits[0] == '-' || digits.size() > 15) bad_file(path, "shape dimension " + digits + " is negative or too large");
    const std::int64_t d = std::stoll(digits);
    if (d != 0 && numel > kMaxFileElements / d) bad_file(path, "shape (" + dims + ") has more than 2^40 elements");
    numel *= d;
    h.shape.push_back(d);
  }
  const std::string stripped = std::regex_replace(dims, std::regex(R"([\s,0-9])"), "");
  if (!stripped.empty()) bad_file(path, "malformed shape (" + dims + ")");
  return h;
}

template <typename T>
void swap_all(T* data, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    auto* b = reinterpret_cast<unsigned char*>(data + i);
    for (std::size_t k = 0; k < sizeof(T) / 2; ++k) std::swap(b[k], b[sizeof(T) - 1 - k]);
  }
}

}  // namespace

Tensor read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) bad_file(path, std::string("cannot open: ") + std::strerror(errno));
  unsigned char preamble[12];
  in.read(reinterpret_cast<char*>(preamble), 8);
  if (in.gcount() < 8 || std::memcmp(preamble, kMagic, kMagicLength) != 0) bad_file(path, "not a .npy file (bad magic)");
  const int major = preamble[6];
  if (major < 1 || major > 3) bad_file(path, "unsupported .npy format version " + std::to_string(major));
  const int length_bytes = major == 1 ? 2 : 4;
  in.read(reinterpret_cast<char*>(preamble + 8), length_bytes);
  if (in.gcount() < length_bytes) bad_file(path, "truncated header");
  const std::uint32_t header_length = little_endian(preamble + 8, length_bytes);
  if (header_length > (1u << 20)) bad_file(path, "header length " + std::to_string(header_length) + " is implausible");
  std::string header(header_length, '\0');
  in.read(header.data(), header_length);
  if (in.gcount() < static_cast<std::streamsize>(header_length)) bad_file(path, "truncated header");
  const Header h = parse_header(path, header);

  Shape read_shape = h.shape;  // Fortran order: the data is the C order of the reversed shape
  if (h.fortran_order) std::reverse(read_shape.begin(), read_shape.end());
  Tensor raw(h.dtype, read_shape);
  const auto bytes = static_cast<std::streamsize>(raw.numel() * static_cast<std::int64_t>(dtype_size(h.dtype)));
  in.read(static_cast<char*>(raw.data()), bytes);
  if (in.gcount() < bytes) {
    bad_file(path, "truncated data: expected " + std::to_string(bytes) + " bytes for shape (" +
                       shape_to_string(h.shape, ", ") + "), found " + std::to_string(in.gcount()));
  }
  if (in.peek() != std::char_traits<char>::eof()) bad_file(path, "trailing bytes after the data");
  if (h.swap_bytes) {
    if (h.dtype == DType::f32) swap_all(raw.data_as<float>(), raw.numel());
    else swap_all(raw.data_as<double>(), raw.numel());
  }
  if (!h.fortran_order) return raw;
  Shape strides(h.shape.size());
  std::int64_t step = 1;
  for (std::size_t d = 0; d < h.shape.size(); ++d) {
    strides[d] = step;
    step *= h.shape[d];
  }
  return Tensor::copy_of(TensorView(raw.data(), h.dtype, h.shape, strides));
}

void write_npy(const std::string& path, const TensorView& tensor) {
  const Tensor contiguous = Tensor::copy_of(tensor);
  std::string dims;
  for (std::size_t d = 0; d < tensor.shape.size(); ++d) dims += (d ? ", " : "") + std::to_string(tensor.shape[d]);
  if (tensor.shape.size() == 1) dims += ",";  // Python's one-element tuple
  std::string dict = std::string("{'descr': '") + (tensor.dtype == DType::f32 ? "<f4" : "<f8") +
                     "', 'fortran_order': False, 'shape': (" + dims + "), }";
  // Magic (6) + version (2) + length (2) + dict + newline, padded to 64 bytes.
  const std::size_t unpadded = 10 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict += '\n';

  const std::string temp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) bad_file(path, std::string("cannot write: ") + std::strerror(errno));
    out.write(kMagic, kMagicLength);
    const unsigned char version_and_length[4] = {1, 0, static_cast<unsigned char>(dict.size() & 0xff),
                                                 static_cast<unsigned char>(dict.size() >> 8)};
    out.write(reinterpret_cast<const char*>(version_and_length), 4);
    out.write(dict.data(), static_cast<std::streamsize>(dict.size()));
    out.write(static_cast<const char*>(contiguous.data()),
              static_cast<std::streamsize>(contiguous.numel() * static_cast<std::int64_t>(dtype_size(tensor.dtype))));
    out.flush();
    if (!out) {
      std::remove(temp.c_str());
      bad_file(path, "write failed");
    }
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(temp.c_str());
    bad_file(path, "cannot move the result into place: " + why);
  }
}

}  // namespace tconv::io
