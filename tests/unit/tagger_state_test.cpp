// The tagger as keeper of the node-state annotation, with fakes: the ENI manager's attachments
// are recorded, written once after the debounce, and not written again when nothing changed.
#include <gtest/gtest.h>

#include "agent/base/executor.h"
#include "agent/base/json.h"
#include "agent/tagger/tagger.h"
#include "tests/support/fake_kube_api.h"
#include "tests/support/manual_scheduler.h"

namespace eni {
namespace {

class NoEc2 final : public Ec2Api {
 public:
  Result<std::vector<NetworkInterface>> describeNetworkInterfaces(
      const std::vector<std::string>&, const std::vector<Filter>&) override {
    ++calls;
    return fail(ErrorCode::Internal, "unexpected");
  }
  Result<void> createTags(const std::vector<std::string>&, const std::vector<Tag>&) override {
    return no();
  }
  Result<void> deleteTags(const std::vector<std::string>&, const std::vector<Tag>&) override {
    return no();
  }
  Result<NetworkInterface> createNetworkInterface(const CreateEniRequest&) override { return no(); }
  Result<std::string> attachNetworkInterface(const std::string&, const std::string&,
                                             std::int64_t) override {
    return no();
  }
  Result<void> detachNetworkInterface(const std::string&, bool) override { return no(); }
  Result<void> deleteNetworkInterface(const std::string&) override { return no(); }
  Result<void> setDeleteOnTermination(const std::string&, const std::string&, bool) override {
    return no();
  }
  Result<std::vector<Subnet>> describeSubnets(const std::vector<std::string>&,
                                              const std::vector<Filter>&) override {
    return no();
  }
  Result<std::vector<SecurityGroup>> describeSecurityGroups(const std::vector<std::string>&,
                                                            const std::vector<Filter>&) override {
    return no();
  }
  Result<Instance> describeInstance(const std::string&) override { return no(); }
  int calls = 0;

 private:
  tl::unexpected<Error> no() {
    ++calls;
    return fail(ErrorCode::Internal, "unexpected");
  }
};

class NoImds final : public Imds {
 public:
  Result<std::string> get(const std::string&) override {
    return fail(ErrorCode::Internal, "unexpected");
  }
  Result<InstanceIdentity> identity() override { return fail(ErrorCode::Internal, "unexpected"); }
  Result<InterfaceMap> interfaces() override { return fail(ErrorCode::Internal, "unexpected"); }
  Result<Credentials> roleCredentials() override { return fail(ErrorCode::Internal, "unexpected"); }
};

TEST(TaggerNodeState, RecordsTheEniManagersAttachmentsOnce) {
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  InlineExecutor executor;
  NoEc2 ec2;
  NoImds imds;
  TaggerOptions options;
  options.nodeName = "n1";
  Tagger tagger(kube, ec2, imds, scheduler, executor, scheduler, options);
  Json::Value node;
  node["metadata"]["name"] = "n1";
  tagger.onNode(ChangeType::Added, node);

  const std::vector<AttachmentRecord> attachments = {
      {"multus", "eni-1", "eni-attach-1", 2, "", 9001, "attached"}};
  tagger.setAttachments(attachments);
  tagger.setAttachments(attachments);  // the same again: nothing new
  EXPECT_TRUE(kube.patches.empty()) << "debounced";
  scheduler.advance(Duration(1000));
  ASSERT_EQ(kube.patches.size(), 1u);
  EXPECT_EQ(kube.patches[0].first.kind.plural, "nodes");
  EXPECT_EQ(kube.patches[0].first.name, "n1");
  auto state = decodeNodeState(
      kube.patches[0].second["metadata"]["annotations"][kNodeStateAnnotation].asString());
  ASSERT_TRUE(state) << state.error().message;
  EXPECT_EQ(state->attachments, attachments);
  tagger.setAttachments(attachments);
  scheduler.advance(Duration(1000));
  EXPECT_EQ(kube.patches.size(), 1u) << "written only when it changed";
  EXPECT_EQ(ec2.calls, 0);
}

TEST(TaggerResync, AnEarlyResyncReplacesThePendingTimerInsteadOfAddingOne) {
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  InlineExecutor executor;
  NoEc2 ec2;
  NoImds imds;
  TaggerOptions options;
  options.nodeName = "n1";
  Tagger tagger(kube, ec2, imds, scheduler, executor, scheduler, options);
  Json::Value node;
  node["metadata"]["name"] = "n1";
  tagger.onNode(ChangeType::Added, node);
  tagger.start();
  scheduler.advance(Duration(2000));  // the first pass and the node-state write
  ASSERT_TRUE(tagger.idle());
  EXPECT_EQ(scheduler.pending(), 1u) << "only the resync timer";
  tagger.resync();
  tagger.resync();
  scheduler.advance(Duration(2000));
  EXPECT_EQ(scheduler.pending(), 1u) << "still one resync timer, not three";
  EXPECT_EQ(tagger.passes(), 2u) << "the two early resyncs shared one pass";
}

// A pod condition patch that fails (the API server restarting, say) used to be forgotten: the
// tagger believed the pod showed the condition and patched it again only when the pod changed.
TEST(TaggerPodWrites, AFailedConditionPatchIsRetriedWithoutThePodChanging) {
  testing::FakeKubeApi kube;
  kube.failStatusPatches = 1;
  testing::ManualScheduler scheduler;
  InlineExecutor executor;
  NoEc2 ec2;
  NoImds imds;
  TaggerOptions options;
  options.nodeName = "n1";
  Tagger tagger(kube, ec2, imds, scheduler, executor, scheduler, options);
  Json::Value node;
  node["metadata"]["name"] = "n1";
  tagger.onNode(ChangeType::Added, node);
  tagger.start();
  Json::Value pod;
  pod["metadata"]["name"] = "web";
  pod["metadata"]["namespace"] = "default";
  pod["metadata"]["uid"] = "uid-web";
  pod["metadata"]["annotations"]["eni-tagger.io/tags"] = "{not json";  // InvalidTags, no AWS
  pod["spec"]["nodeName"] = "n1";
  pod["status"]["phase"] = "Running";
  pod["status"]["podIP"] = "10.0.0.5";
  pod["status"]["podIPs"][0]["ip"] = "10.0.0.5";
  tagger.onPod(ChangeType::Added, pod);

  auto conditionPatches = [&] {
    int n = 0;
    for (const auto& [ref, body] : kube.patches) {
      if (ref.subresource == "status" && ref.name == "web") {
        EXPECT_EQ(body["status"]["conditions"][0]["reason"].asString(), "InvalidTags");
        ++n;
      }
    }
    return n;
  };
  scheduler.advance(Duration(100));
  ASSERT_EQ(conditionPatches(), 1) << "the first patch, which fails";
  scheduler.advance(options.retryDelay);
  EXPECT_EQ(conditionPatches(), 2) << "patched again after retryDelay, the pod unchanged";
  scheduler.advance(options.retryDelay * 3);
  EXPECT_EQ(conditionPatches(), 2) << "and not again once it succeeded";
  EXPECT_TRUE(tagger.idle());
  EXPECT_EQ(ec2.calls, 0);
}

}  // namespace
}  // namespace eni
