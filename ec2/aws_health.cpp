#include "ec2/aws_health.h"

#include <cctype>

namespace eni {

std::string refusalCode(const Error& error, bool fromCredentialChain) {
  std::string code;
  for (char c : error.awsCode) {
    // The readiness convention allows letters, digits and '-' in the code token.
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '-')
      code += c;
    else if (c == '.')
      code += '-';
  }
  if (!code.empty()) return code;
  return fromCredentialChain ? "NoCredentials" : "AccessDenied";
}

void AwsHealth::recordCall() {
  std::lock_guard<std::mutex> lock(mutex_);
  lastCall_ = clock_.now();
}

void AwsHealth::recordSuccess() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (problem_) ++recoveries_;
  problem_.reset();
}

void AwsHealth::recordRefusal(const Error& error, bool fromCredentialChain) {
  if (error.retryable()) return;
  // A chain that fails for another reason than a refusal (an IMDS answer that is not JSON) still
  // leaves the agent without credentials; an EC2 answer counts only when it is a refusal.
  if (!fromCredentialChain && error.code != ErrorCode::Permission) return;
  std::string detail = error.describe();
  if (fromCredentialChain) detail = "no AWS credentials: " + detail;
  std::lock_guard<std::mutex> lock(mutex_);
  if (!problem_) ++refusals_;
  problem_ = refusalCode(error, fromCredentialChain) + ": " + detail;
}

std::string AwsHealth::problem() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return problem_.value_or("");
}

bool AwsHealth::refused() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return problem_.has_value();
}

bool AwsHealth::probeDue(Duration interval) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!problem_) return false;
  return !lastCall_ || clock_.now() - *lastCall_ >= interval;
}

std::uint64_t AwsHealth::refusals() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return refusals_;
}

std::uint64_t AwsHealth::recoveries() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return recoveries_;
}

}  // namespace eni
