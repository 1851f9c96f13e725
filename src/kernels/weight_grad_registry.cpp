#include "kernels/weight_grad.hpp"

namespace tconv::detail {

#define TCONV_WEIGHT_GRAD_FAMILY(name) extern const WeightGradFamily k##name##WeightGradFamily;
#include "kernels/weight_grad_families.def"
#undef TCONV_WEIGHT_GRAD_FAMILY

const std::vector<WeightGradFamily>& weight_grad_families() {
#define TCONV_WEIGHT_GRAD_FAMILY(name) k##name##WeightGradFamily,
  static const std::vector<WeightGradFamily> families{
#include "kernels/weight_grad_families.def"
  };
#undef TCONV_WEIGHT_GRAD_FAMILY
  return families;
}

}  // namespace tconv::detail
