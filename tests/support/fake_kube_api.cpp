#include "tests/support/fake_kube_api.h"

namespace eni::testing {

Json::Value makeObject(const std::string& ns, const std::string& name, const std::string& rv) {
  Json::Value object;
  if (!ns.empty()) object["metadata"]["namespace"] = ns;
  object["metadata"]["name"] = name;
  object["metadata"]["resourceVersion"] = rv;
  return object;
}

}  // namespace eni::testing
