// The one exception type the tconv C++ API throws.
#pragma once

#include <stdexcept>
#include <string>

namespace tconv {

// Why a call was refused. Bindings map these onto their own error types
// (Python: invalid_argument -> ValueError, wrong_type -> TypeError).
enum class ErrorKind {
  invalid_argument,  // a parameter or shape breaks a rule; the message names it, its value and the rule
  wrong_type,        // a dtype or layout tconv does not accept here
  io,                // a file could not be read or written, or is malformed
  internal,          // a bug in tconv: please report it
};

// Every error tconv raises through its C++ API is a tconv::Error; nothing aborts.
class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

}  // namespace tconv
