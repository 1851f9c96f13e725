#include "kernels/kernel.hpp"

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

}  // namespace tconv::detail
