#include <cstdlib>
#include <string>

#include "kernels/cpu_features.hpp"
#include "kernels/kernel.hpp"
#include "tconv/error.hpp"

namespace tconv::detail {

#define TCONV_KERNEL_FAMILY(name) extern const KernelFamily k##name##Family;
#include "kernels/families.def"
#undef TCONV_KERNEL_FAMILY

const std::vector<KernelFamily>& kernel_families() {
#define TCONV_KERNEL_FAMILY(name) k##name##Family,
  static const std::vector<KernelFamily> families{
#include "kernels/families.def"
  };
#undef TCONV_KERNEL_FAMILY
  return families;
}

IsaCap isa_cap() {
  // A throwing initializer leaves the static uninitialized, so every later
  // call reports the bad value again instead of running uncapped.
  static const IsaCap cap = [] {
    const char* env = std::getenv("TCONV_ISA");
    const std::string value = env ? env : "";
    if (value.empty() || value == "avx512") return IsaCap::avx512;
    if (value == "avx2") return IsaCap::avx2;
    if (value == "portable") return IsaCap::portable;
    throw Error(ErrorKind::invalid_argument,
                "TCONV_ISA ('" + value + "') must be avx512, avx2 or portable (the most the kernels may use)");
  }();
  return cap;
}

}  // namespace tconv::detail
