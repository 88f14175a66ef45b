#include "agent/kube/kube_config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

namespace eni {
namespace {

class KubeConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/eni-kubeconfig-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override {
    std::string cmd = dir_;  // remove files we made; no shell needed
    for (const char* f : {"config", "ca.crt", "token", "cert.pem", "key.pem"})
      unlink((dir_ + "/" + f).c_str());
    rmdir(dir_.c_str());
  }
  std::string write(const std::string& name, const std::string& content) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << content;
    return path;
  }
  std::string config(const std::string& cluster, const std::string& user,
                     const std::string& current = "ctx") {
    return write("config", "apiVersion: v1\nkind: Config\ncurrent-context: " + current +
                               "\ncontexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\n"
                               "clusters:\n- name: c\n  cluster:\n" +
                               cluster + "users:\n- name: u\n  user:\n" + user);
  }
  std::string dir_;
};

TEST_F(KubeConfigTest, TokenAndInlineCa) {
  // "-----CA-----" in base64
  auto c = loadKubeconfig(config(
      "    server: https://10.0.0.1:6443/\n    certificate-authority-data: LS0tLS1DQS0tLS0t\n",
      "    token: abc\n"));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->server, "https://10.0.0.1:6443");
  EXPECT_EQ(c->caPem, "-----CA-----");
  EXPECT_EQ(c->token, "abc");
}

TEST_F(KubeConfigTest, FilesAreRelativeToTheKubeconfig) {
  write("ca.crt", "CA");
  write("cert.pem", "CERT");
  write("key.pem", "KEY");
  write("token", "tok\n");
  auto c = loadKubeconfig(
      config("    server: https://h:1\n    certificate-authority: ca.crt\n",
             "    client-certificate: cert.pem\n    client-key: key.pem\n    tokenFile: token\n"));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->caPem, "CA");
  EXPECT_EQ(c->clientCertPem, "CERT");
  EXPECT_EQ(c->clientKeyPem, "KEY");
  EXPECT_EQ(c->tokenFile, dir_ + "/token");
  TokenSource tokens(*c);
  EXPECT_EQ(tokens.current().value(), "tok");
}

struct BadKubeconfig {
  std::string cluster;
  std::string user;
  std::string current;
  std::string mustMention;
};

void PrintTo(const BadKubeconfig& input, std::ostream* os) { *os << input.mustMention; }

class KubeConfigRejects : public KubeConfigTest,
                          public ::testing::WithParamInterface<BadKubeconfig> {};

TEST_P(KubeConfigRejects, NamingTheField) {
  const auto& p = GetParam();
  auto c = loadKubeconfig(config(p.cluster, p.user, p.current));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, ErrorCode::Invalid);
  EXPECT_NE(c.error().message.find(p.mustMention), std::string::npos) << c.error().message;
  EXPECT_NE(c.error().message.find(dir_ + "/config"), std::string::npos) << c.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Table, KubeConfigRejects,
    ::testing::Values(
        BadKubeconfig{"    server: https://h:1\n", "    token: t\n", "nope",
                      "contexts has no entry named \"nope\""},
        BadKubeconfig{"    certificate-authority-data: LS0t\n", "    token: t\n", "ctx",
                      "server is empty"},
        BadKubeconfig{"    server: ftp://h\n", "    token: t\n", "ctx", "is not an http(s) URL"},
        BadKubeconfig{"    server: https://h:1\n    insecure-skip-tls-verify: true\n",
                      "    token: t\n", "ctx", "insecure-skip-tls-verify"},
        BadKubeconfig{"    server: https://h:1\n    certificate-authority-data: '!!!'\n",
                      "    token: t\n", "ctx", "certificate-authority-data is not valid base64"},
        BadKubeconfig{"    server: https://h:1\n    certificate-authority: missing.crt\n",
                      "    token: t\n", "ctx", "certificate-authority: cannot read"},
        BadKubeconfig{"    server: https://h:1\n", "    exec:\n      command: aws\n", "ctx",
                      "exec or auth-provider"},
        BadKubeconfig{"    server: https://h:1\n", "    client-certificate-data: Q0VSVA==\n", "ctx",
                      "without its key"}));

TEST_F(KubeConfigTest, MissingFileAndBadYamlAreClear) {
  auto missing = loadKubeconfig(dir_ + "/absent");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find(dir_ + "/absent"), std::string::npos);
  write("config", "{ this is: [not yaml");
  auto bad = loadKubeconfig(dir_ + "/config");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("not valid YAML"), std::string::npos);
  write("config", "- a\n- list\n");
  auto list = loadKubeconfig(dir_ + "/config");
  ASSERT_FALSE(list);
  EXPECT_NE(list.error().message.find("not a kubeconfig"), std::string::npos);
}

TEST_F(KubeConfigTest, InCluster) {
  write("ca.crt", "CA");
  write("token", "first");
  auto c = loadInCluster("10.96.0.1", "443", dir_);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->server, "https://10.96.0.1:443");
  EXPECT_EQ(c->caPem, "CA");
  auto v6 = loadInCluster("fd00::1", "443", dir_);
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->server, "https://[fd00::1]:443");

  auto noEnv = loadInCluster("", "", dir_);
  ASSERT_FALSE(noEnv);
  EXPECT_NE(noEnv.error().message.find("KUBERNETES_SERVICE_HOST"), std::string::npos);
  unlink((dir_ + "/token").c_str());
  auto noToken = loadInCluster("10.96.0.1", "443", dir_);
  ASSERT_FALSE(noToken);
  EXPECT_NE(noToken.error().message.find(dir_ + "/token"), std::string::npos);
}

TEST_F(KubeConfigTest, TokenFileIsReReadOnlyWhenItRotates) {
  KubeConfig c;
  c.tokenFile = write("token", "one");
  TokenSource tokens(c);
  EXPECT_EQ(tokens.current().value(), "one");
  EXPECT_EQ(tokens.current().value(), "one");
  EXPECT_EQ(tokens.reads(), 1);
  write("token", "two-rotated");  // a different size, so the change is seen even within one tick
  EXPECT_EQ(tokens.current().value(), "two-rotated");
  EXPECT_EQ(tokens.reads(), 2);
  chmod(c.tokenFile.c_str(), 0);
  unlink(c.tokenFile.c_str());
  auto gone = tokens.current();
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, ErrorCode::Permission);
  EXPECT_NE(gone.error().message.find(c.tokenFile), std::string::npos);
}

}  // namespace
}  // namespace eni
