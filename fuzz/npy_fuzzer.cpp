// libFuzzer target: the .npy reader on arbitrary bytes. Every input either
// reads or is refused with tconv::Error; anything else (a crash, a sanitizer
// report, another exception) is a bug.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "io/npy.hpp"
#include "tconv/tconv.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tconv::set_max_bytes(std::uint64_t{1} << 26);  // far below libFuzzer's -rss_limit_mb
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  try {
    const tconv::Tensor t = tconv::io::read_npy(in, "fuzz.npy");
    if (static_cast<std::uint64_t>(t.numel()) * tconv::dtype_size(t.dtype()) > size) __builtin_trap();
  } catch (const tconv::Error&) {
  }
  return 0;
}
