// eni-test-netns: the test-support network-namespace helper as a command, for scripts/demo.sh,
// which plays the kernel's part (a veth whose MAC is an attached ENI's) without `ip`.
//   eni-test-netns create <name>                         prints the namespace's path
//   eni-test-netns veth <path> <name> <mac> <peer> [mtu] [up]
//   eni-test-netns up <path> <name>                      sets a link up (e.g. a veth's peer)
//   eni-test-netns delete <path>                         removes it, links and all
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/support/netns_fixture.h"

namespace {

int usage() {
  std::fputs(
      "usage: eni-test-netns create <name> | veth <path> <name> <mac> <peer> [mtu] [up] | "
      "up <path> <name> | delete <path>\n",
      stderr);
  return 2;
}

int failed(const eni::Error& error) {
  std::fprintf(stderr, "eni-test-netns: %s\n", error.message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 2 && args[0] == "create") {
    auto ns = eni::testing::TestNetns::create(args[1]);
    if (!ns) return failed(ns.error());
    std::printf("%s\n", ns->release().c_str());
    return 0;
  }
  if (args.size() >= 5 && args.size() <= 7 && args[0] == "veth") {
    auto ns = eni::testing::TestNetns::adopt(args[1]);
    unsigned mtu = 0;
    if (args.size() >= 6) mtu = static_cast<unsigned>(std::strtoul(args[5].c_str(), nullptr, 10));
    auto added = ns.addVeth(args[2], args[3], args[4], mtu);
    if (added && args.size() == 7 && args[6] == "up") added = ns.setUp(args[2]);
    ns.release();
    if (!added) return failed(added.error());
    return 0;
  }
  if (args.size() == 3 && args[0] == "up") {
    auto ns = eni::testing::TestNetns::adopt(args[1]);
    auto up = ns.setUp(args[2]);
    ns.release();
    if (!up) return failed(up.error());
    return 0;
  }
  if (args.size() == 2 && args[0] == "delete") {
    auto ns = eni::testing::TestNetns::adopt(args[1]);  // removed as it goes out of scope
    return 0;
  }
  return usage();
}
