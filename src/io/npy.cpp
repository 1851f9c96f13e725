#include "io/npy.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <utility>
#include <vector>

#include "limits.hpp"
#include "tconv/error.hpp"

namespace tconv::io {
namespace {

[[noreturn]] void bad_file(const std::string& path, const std::string& what) {
  throw Error(ErrorKind::io, path + ": " + what);
}

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicLength = 6;

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

// One value of the header's dictionary: a string, True/False, a tuple of
// integers, or (kept as text, to be refused by the caller) anything else.
struct Value {
  enum Type { string, boolean, tuple, other } type = other;
  std::string text;  // the string, or the source text of any other value
  bool flag = false;
  Shape dims;
};

// A hand-written reader of the Python literal NumPy writes as the header,
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
// (no regular expressions: the header is untrusted and may be long).
class HeaderReader {
 public:
  HeaderReader(const std::string& path, const std::string& text) : path_(path), text_(text) {}

  std::map<std::string, Value> dictionary() {
    std::map<std::string, Value> entries;
    expect('{');
    while (!at('}')) {
      const std::string key = quoted("a quoted key");
      expect(':');
      if (entries.count(key)) malformed("key '" + key + "' appears twice");
      entries[key] = value();
      if (!at('}')) expect(',');
    }
    ++pos_;
    skip_space();
    if (pos_ != text_.size()) malformed("unexpected text after the dictionary");
    return entries;
  }

 private:
  [[noreturn]] void malformed(const std::string& what) const { bad_file(path_, "malformed header: " + what); }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r')) ++pos_;
  }
  bool at(char c) {
    skip_space();
    return pos_ < text_.size() && text_[pos_] == c;
  }
  void expect(char c) {
    if (!at(c)) malformed(std::string("expected '") + c + "' at byte " + std::to_string(pos_) + " of the header");
    ++pos_;
  }
  std::string quoted(const char* what) {
    skip_space();
    const char quote = pos_ < text_.size() ? text_[pos_] : '\0';
    if (quote != '\'' && quote != '"') malformed(std::string("expected ") + what + " at byte " + std::to_string(pos_));
    const std::size_t close = text_.find(quote, pos_ + 1);
    if (close == std::string::npos) malformed("unterminated string");
    std::string s = text_.substr(pos_ + 1, close - pos_ - 1);
    pos_ = close + 1;
    return s;
  }

  Value value() {
    Value v;
    skip_space();
    const std::size_t begin = pos_;
    if (at('\'') || at('"')) {
      v.type = Value::string;
      v.text = quoted("a string");
    } else if (text_.compare(pos_, 4, "True") == 0 || text_.compare(pos_, 5, "False") == 0) {
      v.type = Value::boolean;
      v.flag = text_[pos_] == 'T';
      pos_ += v.flag ? 4 : 5;
    } else if (at('(')) {
      v.type = Value::tuple;
      const std::size_t close = text_.find(')', pos_);
      if (close == std::string::npos) malformed("unterminated tuple");
      v.text = text_.substr(pos_ + 1, close - pos_ - 1);
      v.dims = dimensions(v.text);
      pos_ = close + 1;
    } else {
      skip_other();
      v.text = text_.substr(begin, pos_ - begin);
    }
    return v;
  }

  // Skips a value tconv does not read (a list, say), brackets balanced.
  void skip_other() {
    int depth = 0;
    for (; pos_ < text_.size(); ++pos_) {
      const char c = text_[pos_];
      if (c == '\'' || c == '"') {
        quoted("a string");
        --pos_;
      } else if (c == '[' || c == '(' || c == '{') {
        ++depth;
      } else if (c == ']' || c == ')' || c == '}') {
        if (depth == 0) return;
        --depth;
      } else if (c == ',' && depth == 0) {
        return;
      }
    }
    malformed("unterminated value");
  }

  // "3, 4" or "3," or "": the dimensions of a shape tuple.
  Shape dimensions(const std::string& items) const {
    Shape dims;
    std::size_t i = 0;
    auto space = [&] { while (i < items.size() && (items[i] == ' ' || items[i] == '\n')) ++i; };
    space();
    while (i < items.size()) {
      const std::size_t begin = i;
      if (items[i] == '-') ++i;
      while (i < items.size() && items[i] >= '0' && items[i] <= '9') ++i;
      const std::string digits = items.substr(begin, i - begin);
      space();
      if (digits.empty() || digits == "-" || (i < items.size() && items[i] != ',')) {
        bad_file(path_, "malformed shape (" + items + ")");
      }
      if (digits[0] == '-') bad_file(path_, "shape dimension " + digits + " is negative");
      if (digits.size() > 18) bad_file(path_, "shape dimension " + digits + " is too large");
      dims.push_back(std::stoll(digits));
      if (i < items.size()) ++i;  // the comma
      space();
    }
    if (dims.size() == 1 && items.find(',') == std::string::npos) {
      bad_file(path_, "malformed shape (" + items + "): a one-element tuple needs a comma");
    }
    return dims;
  }

  const std::string& path_;
  const std::string& text_;
  std::size_t pos_ = 0;
};

Header parse_header(const std::string& path, const std::string& text) {
  std::map<std::string, Value> entries = HeaderReader(path, text).dictionary();
  for (const char* key : {"descr", "fortran_order", "shape"}) {
    if (!entries.count(key)) {
      bad_file(path, std::string("malformed header: no '") + key + (key[0] == 's' ? "' tuple" : "' entry"));
    }
  }
  if (entries.size() != 3) {
    for (const auto& [key, value] : entries) {
      if (key != "descr" && key != "fortran_order" && key != "shape") {
        bad_file(path, "malformed header: unknown key '" + key + "' (NumPy writes descr, fortran_order and shape)");
      }
    }
  }
  Header h{};
  const Value& descr_value = entries["descr"];
  if (descr_value.type != Value::string) {
    bad_file(path, "unsupported dtype " + descr_value.text + " (structured arrays are not read; tconv reads float32 "
                   "'<f4' and float64 '<f8', either byte order)");
  }
  const std::string& descr = descr_value.text;
  if (descr.size() != 3 || descr[1] != 'f' || (descr[2] != '4' && descr[2] != '8') ||
      (descr[0] != '<' && descr[0] != '>' && descr[0] != '=')) {
    bad_file(path, "unsupported dtype '" + descr + "' (tconv reads float32 '<f4' and float64 '<f8', either byte order)");
  }
  h.dtype = descr[2] == '4' ? DType::f32 : DType::f64;
  h.swap_bytes = descr[0] == '>';
  if (entries["fortran_order"].type != Value::boolean) {
    bad_file(path, "malformed header: fortran_order is " + entries["fortran_order"].text + ", not True or False");
  }
  h.fortran_order = entries["fortran_order"].flag;
  if (entries["shape"].type != Value::tuple) bad_file(path, "malformed header: no 'shape' tuple");
  h.shape = entries["shape"].dims;
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

Tensor read_npy(std::istream& in, const std::string& path) {
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

  // Sizes are checked against the file and the memory limit before anything is allocated.
  const std::string what = path + ": data";
  const std::uint64_t bytes = detail::checked_bytes(h.shape, dtype_size(h.dtype), what, ErrorKind::io);
  const std::streampos data_start = in.tellg();
  in.seekg(0, std::ios::end);
  const auto available = static_cast<std::uint64_t>(in.tellg() - data_start);
  in.seekg(data_start);
  if (available < bytes) {
    bad_file(path, "truncated data: expected " + std::to_string(bytes) + " bytes for shape (" +
                       shape_to_string(h.shape, ", ") + "), found " + std::to_string(available));
  }
  if (available > bytes) bad_file(path, "trailing bytes after the data");
  detail::check_memory(what + " of shape (" + shape_to_string(h.shape, ", ") + ")", bytes, ErrorKind::io);

  Shape read_shape = h.shape;  // Fortran order: the data is the C order of the reversed shape
  if (h.fortran_order) std::reverse(read_shape.begin(), read_shape.end());
  Tensor raw = Tensor::uninitialized(h.dtype, read_shape);
  in.read(static_cast<char*>(raw.data()), static_cast<std::streamsize>(bytes));
  if (static_cast<std::uint64_t>(in.gcount()) < bytes) bad_file(path, "read failed");
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

Tensor read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) bad_file(path, std::string("cannot open: ") + std::strerror(errno));
  return read_npy(in, path);
}

namespace {

// Writes every byte of each piece to `fd`; false (errno set) on failure.
bool write_all(int fd, const std::vector<std::pair<const char*, std::size_t>>& pieces) {
  for (auto [data, size] : pieces) {
    while (size > 0) {
      const ::ssize_t n = ::write(fd, data, std::min<std::size_t>(size, std::size_t{1} << 30));
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      data += n;
      size -= static_cast<std::size_t>(n);
    }
  }
  return true;
}

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// path.tmp.<pid>.<n>: the temporary names, next to the path so rename() stays in one filesystem.
std::string temp_name(const std::string& path, int n) {
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(n);
}

// Gives the unnamed file `fd` (O_TMPFILE) the name `name`, which must not exist.
// False (errno set) when that fails.
bool link_unnamed(int fd, const std::string& name) {
  const std::string self = "/proc/self/fd/" + std::to_string(fd);
  if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW) == 0) return true;
  const int error = errno;
  if (error == ENOENT && ::access("/proc/self/fd", F_OK) != 0) {
    // No /proc: AT_EMPTY_PATH, which kernels allow only with CAP_DAC_READ_SEARCH.
    return ::linkat(fd, "", AT_FDCWD, name.c_str(), AT_EMPTY_PATH) == 0;
  }
  errno = error;
  return false;
}

// The fallback where the folder's filesystem has no unnamed files (or they
// cannot be linked): a named temporary file renamed into place, removed on
// failure. A process killed while writing leaves it behind.
void write_through_named_temp(const std::string& path, const std::vector<std::pair<const char*, std::size_t>>& pieces) {
  std::string temp;
  int fd = -1;
  for (int n = 0; fd < 0; ++n) {
    temp = temp_name(path, n);
    fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && (errno != EEXIST || n >= 100)) bad_file(path, std::string("cannot write: ") + std::strerror(errno));
  }
  {
    const FileDescriptor file(fd);
    if (!write_all(file.get(), pieces)) {
      const std::string why = std::strerror(errno);
      ::unlink(temp.c_str());
      bad_file(path, "write failed: " + why);
    }
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(temp.c_str());
    bad_file(path, "cannot move the result into place: " + why);
  }
}

}  // namespace

void write_npy(const std::string& path, const TensorView& tensor) {
  // A strided view is copied to C order first; a contiguous one is written as it is.
  Tensor copy;
  const void* data = tensor.data;
  if (!tensor.is_contiguous()) {
    copy = Tensor::copy_of(tensor);
    data = copy.data();
  }
  std::string dims;
  for (std::size_t d = 0; d < tensor.shape.size(); ++d) dims += (d ? ", " : "") + std::to_string(tensor.shape[d]);
  if (tensor.shape.size() == 1) dims += ",";  // Python's one-element tuple
  std::string dict = std::string("{'descr': '") + (tensor.dtype == DType::f32 ? "<f4" : "<f8") +
                     "', 'fortran_order': False, 'shape': (" + dims + "), }";
  // Magic (6) + version (2) + length (2) + dict + newline, padded to 64 bytes.
  const std::size_t unpadded = 10 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict += '\n';
  const unsigned char version_and_length[4] = {1, 0, static_cast<unsigned char>(dict.size() & 0xff),
                                               static_cast<unsigned char>(dict.size() >> 8)};
  const std::vector<std::pair<const char*, std::size_t>> pieces{
      {kMagic, kMagicLength},
      {reinterpret_cast<const char*>(version_and_length), 4},
      {dict.data(), dict.size()},
      {static_cast<const char*>(data), static_cast<std::size_t>(tensor.numel()) * dtype_size(tensor.dtype)}};

  // The data goes to an unnamed file in the output's folder (O_TMPFILE), which
  // the kernel removes when the process ends, however it ends; only when it is
  // complete does it get a name. So a failure, or a kill at any moment, leaves
  // no partial file.
  const std::string folder = std::filesystem::path(path).parent_path().string();
  const int fd = ::open(folder.empty() ? "." : folder.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
  if (fd < 0) {
    // The filesystem (or an old kernel) has no unnamed files.
    if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL) return write_through_named_temp(path, pieces);
    bad_file(path, std::string("cannot write: ") + std::strerror(errno));
  }
  const FileDescriptor file(fd);
  if (!write_all(file.get(), pieces)) bad_file(path, std::string("write failed: ") + std::strerror(errno));
  // A new path gets the complete file directly. An existing one is replaced by
  // rename() from a temporary name: a kill between those two calls is the only
  // moment that can leave a (complete) file under the temporary name.
  if (link_unnamed(file.get(), path)) return;
  if (errno != EEXIST) return write_through_named_temp(path, pieces);
  std::string temp;
  for (int n = 0;; ++n) {
    temp = temp_name(path, n);
    if (link_unnamed(file.get(), temp)) break;
    if (errno != EEXIST || n >= 100) bad_file(path, std::string("cannot write: ") + std::strerror(errno));
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(temp.c_str());
    bad_file(path, "cannot move the result into place: " + why);
  }
}

}  // namespace tconv::io
