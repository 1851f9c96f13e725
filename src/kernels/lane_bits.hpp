// Bit tricks on lane masks shared by the SIMD traits (plain integer code, any ISA).
#pragma once

#include <cstdint>

namespace tconv::detail::simd {

// Bit l of `bits` (l < 8) moved to bit 2l: the mask of every other element.
inline std::uint32_t even_bits(std::uint32_t bits) {
  bits = (bits | (bits << 4)) & 0x0f0fu;
  bits = (bits | (bits << 2)) & 0x3333u;
  return (bits | (bits << 1)) & 0x5555u;
}

}  // namespace tconv::detail::simd
