// The netns helper and the netlink dump, on the real kernel. Needs root.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>

#include "netlink/link_dump.h"
#include "netlink/netns.h"
#include "tests/support/netns_fixture.h"

namespace eni {
namespace {

const LinkInfo* byName(const std::vector<LinkInfo>& links, const std::string& name) {
  auto it =
      std::find_if(links.begin(), links.end(), [&](const LinkInfo& l) { return l.name == name; });
  return it == links.end() ? nullptr : &*it;
}

TEST(Netns, VethWithAChosenMacAppearsOnlyInTheTestNamespace) {
  ASSERT_EQ(geteuid(), 0u) << "netns tests need root; CI runs them as root";
  auto ns = testing::TestNetns::create("eni-test-helper");
  ASSERT_TRUE(ns) << ns.error().message;
  ASSERT_TRUE(ns->addVeth("eni-a", "02:00:00:aa:bb:01", "eni-a-peer", 1400));

  auto inside = dumpLinks(ns->path());
  ASSERT_TRUE(inside) << inside.error().message;
  const LinkInfo* veth = byName(*inside, "eni-a");
  ASSERT_NE(veth, nullptr);
  EXPECT_EQ(veth->mac, "02:00:00:aa:bb:01");
  EXPECT_EQ(veth->mtu, 1400u);
  EXPECT_FALSE(veth->adminUp());
  EXPECT_NE(byName(*inside, "eni-a-peer"), nullptr);
  const LinkInfo* lo = byName(*inside, "lo");
  ASSERT_NE(lo, nullptr);
  EXPECT_TRUE(lo->adminUp());

  auto outside = dumpLinks("");
  ASSERT_TRUE(outside);
  EXPECT_EQ(byName(*outside, "eni-a"), nullptr) << "the veth must not leak into our namespace";

  ASSERT_TRUE(ns->deleteLink("eni-a"));
  auto after = dumpLinks(ns->path());
  ASSERT_TRUE(after);
  EXPECT_EQ(byName(*after, "eni-a"), nullptr);
  EXPECT_EQ(byName(*after, "eni-a-peer"), nullptr) << "deleting one end removes the pair";
}

TEST(Netns, MissingNamespaceIsNotFound) {
  auto r = NetnsGuard::enter("/run/netns/eni-test-does-not-exist");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::NotFound);
  EXPECT_NE(r.error().message.find("eni-test-does-not-exist"), std::string::npos);
}

TEST(Netns, GuardReturnsToTheOriginalNamespace) {
  auto ns = testing::TestNetns::create("eni-test-guard");
  ASSERT_TRUE(ns) << ns.error().message;
  auto before = dumpLinks("");
  ASSERT_TRUE(before);
  {
    auto guard = NetnsGuard::enter(ns->path());
    ASSERT_TRUE(guard);
  }
  auto after = dumpLinks("");
  ASSERT_TRUE(after);
  EXPECT_EQ(before->size(), after->size());
}

}  // namespace
}  // namespace eni
