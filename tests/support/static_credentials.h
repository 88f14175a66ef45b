#pragma once

#include <string>
#include <utility>

#include "ec2/credentials.h"

namespace eni::testing {

/// Fixed credentials for tests: moto accepts any unless signatures are checked.
class StaticCredentials final : public CredentialProvider {
 public:
  explicit StaticCredentials(std::string key = "AKIATESTING", std::string secret = "testing",
                             std::string token = "") {
    c_.accessKeyId = std::move(key);
    c_.secretAccessKey = std::move(secret);
    c_.sessionToken = std::move(token);
    c_.source = "test";
  }
  Result<Credentials> credentials() override { return c_; }

 private:
  Credentials c_;
};

}  // namespace eni::testing
