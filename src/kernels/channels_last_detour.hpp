// The channels-last detour: a channels-first problem computed by the
// channels-last igemm family (igemm.hpp) between two transposing copies
// (layout_transpose.hpp) in the workspace:
//     src [N][C_in][S_in] -> [N][S_in][C_in] -> igemm -> [N][S_out][C_out] -> dst [N][C_out][S_out]
// The copies move values without combining them and igemm sums in the
// channels-first GEMM families' order, so the result has their bits. Families
// whose vectors hold positions take it where positions leave lanes empty and
// the output channels fill igemm's vectors exactly: channels_last_igemm_avx512
// and _avx2 (chosen at creation) and plane_gemm_avx512 and _avx2 (short phase
// planes, chosen per input shape; plane_gemm_avx2 also strided convolutions of
// many input channels, chosen at creation).
#pragma once

#include <memory>
#include <string>

#include "kernels/kernel.hpp"

namespace tconv::detail {

// The igemm family the detour computes with.
enum class DetourIsa { avx512, avx2 };

// Empty when the detour can run g (float32, channels-first): output channels
// per group a multiple of the ISA's lanes (16, 8) and a channels-last twin that
// its igemm family takes.
std::string channels_last_detour_rejects(DetourIsa isa, const Geometry& g, const WeightFacts& weights);

// weight and bias as a family's `prepare` takes them; bias may be null.
std::unique_ptr<PreparedKernel> make_channels_last_detour(DetourIsa isa, const Geometry& g, const float* weight,
                                                          const float* bias);

}  // namespace tconv::detail
