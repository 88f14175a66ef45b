#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace eni {

/// One evaluation of every readiness check.
struct ReadinessReport {
  bool ready = true;
  /// "kubernetes: ListFailed: pods: connection refused (...)": every failing check with its full
  /// reason, for the log only. Empty when ready.
  std::string detail;
  /// "kubernetes: ListFailed": every failing check with its code only. This is what the
  /// unauthenticated /readyz shows, so it never carries a URL, an address or error text.
  std::string summary;
};

/// Level-triggered readiness: the agent is ready when every registered check passes. A check
/// returns an empty string when it passes, else a reason that starts with a short code token
/// (letters, digits, '-'), optionally followed by ": " and human detail, e.g.
/// "AuthFailure: EC2 refused the credentials (request id ...)". Loop thread only.
class Readiness {
 public:
  using Check = std::function<std::string()>;
  void addCheck(std::string name, Check check);
  /// Runs every check once.
  ReadinessReport report() const;
  bool ready() const { return report().ready; }
  /// report().detail: for logs, never for an unauthenticated endpoint.
  std::string reasons() const { return report().detail; }

 private:
  std::vector<std::pair<std::string, Check>> checks_;
};

/// The code token a reason starts with: "ListFailed" for "ListFailed: pods: ..." or
/// "ListFailed". A reason that does not follow the convention gives "NotReady", so that free text
/// never reaches /readyz.
std::string reasonCode(std::string_view reason);

}  // namespace eni
