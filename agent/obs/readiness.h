#pragma once

#include <functional>
#include <string>
#include <vector>

namespace eni {

/// Level-triggered readiness: the agent is ready when every registered check passes. A check
/// returns an empty string when it passes, else what it is waiting for. Loop thread only.
class Readiness {
 public:
  using Check = std::function<std::string()>;
  void addCheck(std::string name, Check check);
  bool ready() const;
  /// "kube: initial list in progress; imds: ..." for /readyz and logs; empty when ready.
  std::string reasons() const;

 private:
  std::vector<std::pair<std::string, Check>> checks_;
};

}  // namespace eni
