#include "limits.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>

#include "tconv/tconv.hpp"

namespace tconv {
namespace {

std::atomic<std::uint64_t> g_max_bytes{0};  // 0: the default

// TCONV_MAX_BYTES when set, else the machine's physical memory.
std::uint64_t default_max_bytes() {
  if (const char* env = std::getenv("TCONV_MAX_BYTES"); env && *env) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long value = std::strtoull(env, &end, 10);
    if (*end != '\0' || errno != 0 || value == 0 || env[0] == '-') {
      throw Error(ErrorKind::invalid_argument, std::string("TCONV_MAX_BYTES ('") + env +
                                                   "') must be a positive integer number of bytes");
    }
    return value;
  }
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return UINT64_MAX;  // unknown: only overflow checks apply
  return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page_size);
}

}  // namespace

void set_max_bytes(std::uint64_t bytes) { g_max_bytes = bytes; }

std::uint64_t max_bytes() {
  const std::uint64_t set = g_max_bytes.load();
  return set > 0 ? set : default_max_bytes();
}

namespace detail {

std::uint64_t checked_bytes(const Shape& shape, std::size_t element_size, const std::string& what, ErrorKind kind) {
  std::uint64_t bytes = element_size;
  for (const std::int64_t d : shape) {
    if (d < 0) throw Error(kind, what + " of shape " + shape_to_string(shape) + " has a negative dimension");
    if (__builtin_mul_overflow(bytes, static_cast<std::uint64_t>(d), &bytes)) {
      throw Error(kind, what + " of shape " + shape_to_string(shape) + " has more than 2^64 bytes");
    }
  }
  return bytes;
}

void check_memory(const std::string& what, std::uint64_t bytes, ErrorKind kind) {
  const std::uint64_t limit = max_bytes();
  if (bytes > limit) {
    throw Error(kind, what + " needs " + std::to_string(bytes) + " bytes, more than the limit of " +
                          std::to_string(limit) +
                          " bytes (set by TCONV_MAX_BYTES or set_max_bytes; default: the machine's physical memory)");
  }
}

}  // namespace detail
}  // namespace tconv
