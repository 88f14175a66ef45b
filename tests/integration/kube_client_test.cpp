// The Kubernetes client against the real kube-apiserver and etcd of the test stack.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <map>
#include <memory>
#include <optional>

#include "agent/base/event_loop.h"
#include "agent/base/json.h"
#include "agent/base/strings.h"
#include "agent/http/http_client.h"
#include "agent/kube/curl_kube_client.h"
#include "agent/kube/kube_config.h"
#include "agent/kube/node_lease.h"
#include "agent/kube/objects.h"
#include "agent/kube/reflector.h"
#include "tests/support/test_stack.h"

namespace eni {
namespace {

using testing::await;
using testing::TestStack;

struct Seen {
  ChangeType type;
  std::string key;
  std::string marker;  // the "step" annotation, so order and content are both checked
};

class KubeClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& stack = TestStack::get();
    auto adminConfig = loadKubeconfig(stack.adminKubeconfig);
    auto agentConfig = loadKubeconfig(stack.agentKubeconfig);
    ASSERT_TRUE(adminConfig) << adminConfig.error().message;
    ASSERT_TRUE(agentConfig) << agentConfig.error().message;
    admin_ = std::make_unique<CurlKubeClient>(http_, *adminConfig);
    agent_ = std::make_unique<CurlKubeClient>(http_, *agentConfig);
    ns_ = "t-" + lower(::testing::UnitTest::GetInstance()->current_test_info()->name());
    Json::Value nsObject;
    nsObject["metadata"]["name"] = ns_;
    auto created = await<Json::Value>(loop_, [&](auto done) {
      admin_->create(ObjectRef{{"/api/v1", "namespaces", false}, "", "", ""}, nsObject, done);
    });
    ASSERT_TRUE(created || created.error().code == ErrorCode::Conflict)
        << created.error().describe();
  }

  Result<Json::Value> createPod(const std::string& name, const std::string& node,
                                const std::string& step = "0") {
    Json::Value pod;
    pod["metadata"]["name"] = name;
    pod["metadata"]["annotations"]["step"] = step;
    pod["spec"]["nodeName"] = node;
    pod["spec"]["containers"][0]["name"] = "c";
    pod["spec"]["containers"][0]["image"] = "registry.invalid/none";
    return await<Json::Value>(loop_, [&](auto done) {
      admin_->create(ObjectRef{ResourceKind::pods(), ns_, "", ""}, pod, done);
    });
  }

  Result<Json::Value> annotate(KubeApi& client, const std::string& pod, const std::string& key,
                               const Json::Value& value) {
    Json::Value patch;
    patch["metadata"]["annotations"][key] = value;
    return await<Json::Value>(loop_, [&](auto done) {
      client.patch(ObjectRef{ResourceKind::pods(), ns_, pod, ""}, PatchType::Merge, patch, {},
                   done);
    });
  }

  Result<Json::Value> deletePod(const std::string& name) {
    // The client has no delete (the agent never deletes pods); tests use kubectl as a user would.
    auto r = testing::runProcess({TestStack::get().kubectl, "--kubeconfig",
                                  TestStack::get().adminKubeconfig, "-n", ns_, "delete", "pod",
                                  name, "--grace-period=0", "--force", "--wait=false"});
    if (r.status != 0) return fail(ErrorCode::Internal, "kubectl delete: " + r.err);
    return Json::Value();
  }

  std::unique_ptr<Reflector> podReflector(const std::string& node, std::vector<Seen>& seen) {
    ListOptions options;
    options.fieldSelector = "spec.nodeName=" + node;
    return std::make_unique<Reflector>(
        *agent_, loop_, ResourceKind::pods(), ns_, options,
        [&seen](ChangeType t, const Json::Value& o) {
          seen.push_back({t, Reflector::keyOf(o), o["metadata"]["annotations"]["step"].asString()});
        });
  }

  bool runUntil(const std::function<bool()>& done, int limitMs = 30000) {
    return loop_.runUntil(done, Duration(limitMs));
  }

  EventLoop loop_;
  HttpClient http_{loop_};
  std::unique_ptr<CurlKubeClient> admin_;
  std::unique_ptr<CurlKubeClient> agent_;
  std::string ns_;
};

TEST_F(KubeClientTest, TalksToTheRealApiServer) {
  auto version = await<Json::Value>(loop_, [&](auto done) { agent_->getPath("/version", done); });
  ASSERT_TRUE(version) << version.error().describe();
  const std::string gitVersion = stringField(*version, "gitVersion");
  std::printf("kube-apiserver /version: %s (go %s, built from the official modules)\n",
              gitVersion.c_str(), stringField(*version, "goVersion").c_str());
  EXPECT_EQ(gitVersion.rfind("v1.34.", 0), 0u) << gitVersion;
  EXPECT_EQ(stringField(*version, "minor"), "34");
}

TEST_F(KubeClientTest, ListWatchSeesCreateUpdateDeleteInOrder) {
  std::vector<Seen> seen;
  auto reflector = podReflector("node-order", seen);
  reflector->start();
  ASSERT_TRUE(runUntil([&] { return reflector->synced(); }));
  ASSERT_TRUE(createPod("p", "node-order", "created"));
  ASSERT_TRUE(annotate(*admin_, "p", "step", "updated"));
  ASSERT_TRUE(deletePod("p"));
  ASSERT_TRUE(runUntil([&] { return !seen.empty() && seen.back().type == ChangeType::Deleted; }));
  // A forced delete may first set deletionTimestamp (one more Modified) before the Deleted.
  ASSERT_GE(seen.size(), 3u);
  EXPECT_EQ(seen[0].type, ChangeType::Added);
  EXPECT_EQ(seen[0].marker, "created");
  EXPECT_EQ(seen[1].type, ChangeType::Modified);
  EXPECT_EQ(seen[1].marker, "updated");
  for (std::size_t i = 2; i + 1 < seen.size(); ++i) EXPECT_EQ(seen[i].type, ChangeType::Modified);
  EXPECT_EQ(seen.back().type, ChangeType::Deleted);
  for (const auto& s : seen) EXPECT_EQ(s.key, ns_ + "/p");
}

TEST_F(KubeClientTest, FieldSelectorDeliversOnlyThisNodesPods) {
  std::vector<Seen> seen;
  auto reflector = podReflector("node-mine", seen);
  ASSERT_TRUE(createPod("before-mine", "node-mine"));
  ASSERT_TRUE(createPod("before-other", "node-other"));
  reflector->start();
  ASSERT_TRUE(runUntil([&] { return reflector->synced(); }));
  ASSERT_TRUE(createPod("after-other", "node-other"));
  ASSERT_TRUE(createPod("after-mine", "node-mine"));
  ASSERT_TRUE(runUntil([&] { return seen.size() >= 2; }));
  // One more round trip on the same stream: anything for node-other would have arrived by now.
  ASSERT_TRUE(annotate(*admin_, "after-mine", "step", "last"));
  ASSERT_TRUE(runUntil([&] { return seen.size() >= 3; }));
  std::vector<std::string> keys;
  for (const auto& s : seen) keys.push_back(s.key);
  EXPECT_EQ(keys, (std::vector<std::string>{ns_ + "/before-mine", ns_ + "/after-mine",
                                            ns_ + "/after-mine"}));
}

TEST_F(KubeClientTest, MergePatchOfOneAnnotationLeavesTheOthers) {
  ASSERT_TRUE(createPod("p", "node-patch"));
  ASSERT_TRUE(annotate(*admin_, "p", "keep-me", "yes"));
  ASSERT_TRUE(annotate(*agent_, "p", "eni-tagger.io/last-applied-hash", "0123456789abcdef"));
  auto after = await<Json::Value>(loop_, [&](auto done) {
    agent_->get(ObjectRef{ResourceKind::pods(), ns_, "p", ""}, done);
  });
  ASSERT_TRUE(after);
  auto pod = decodePod(*after);
  ASSERT_TRUE(pod);
  EXPECT_EQ(pod->meta.annotations["keep-me"], "yes");
  EXPECT_EQ(pod->meta.annotations["step"], "0");
  EXPECT_EQ(pod->meta.annotations["eni-tagger.io/last-applied-hash"], "0123456789abcdef");
  // null removes exactly that key.
  ASSERT_TRUE(annotate(*agent_, "p", "eni-tagger.io/last-applied-hash", Json::Value()));
  auto removed = decodePod(*await<Json::Value>(loop_, [&](auto done) {
    agent_->get(ObjectRef{ResourceKind::pods(), ns_, "p", ""}, done);
  }));
  EXPECT_EQ(removed->meta.annotations.count("eni-tagger.io/last-applied-hash"), 0u);
  EXPECT_EQ(removed->meta.annotations["keep-me"], "yes");
}

// discardBody: the patch lands and the caller gets null instead of the parsed object (the node
// state's patch answers with the whole Node); a refused patch still says why.
TEST_F(KubeClientTest, APatchThatDiscardsItsAnswerLandsAndStillReportsRefusals) {
  ASSERT_TRUE(createPod("p", "node-discard"));
  PatchOptions discard;
  discard.discardBody = true;
  Json::Value patch;
  patch["metadata"]["annotations"]["eni-tagger.io/last-applied-hash"] = "0123456789abcdef";
  auto answer = await<Json::Value>(loop_, [&](auto done) {
    agent_->patch(ObjectRef{ResourceKind::pods(), ns_, "p", ""}, PatchType::Merge, patch, discard,
                  done);
  });
  ASSERT_TRUE(answer) << answer.error().describe();
  EXPECT_TRUE(answer->isNull()) << "the answer is not parsed";
  auto pod = decodePod(*await<Json::Value>(loop_, [&](auto done) {
    agent_->get(ObjectRef{ResourceKind::pods(), ns_, "p", ""}, done);
  }));
  EXPECT_EQ(pod->meta.annotations["eni-tagger.io/last-applied-hash"], "0123456789abcdef");
  auto missing = await<Json::Value>(loop_, [&](auto done) {
    agent_->patch(ObjectRef{ResourceKind::pods(), ns_, "no-such-pod", ""}, PatchType::Merge, patch,
                  discard, done);
  });
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::NotFound);
  EXPECT_NE(missing.error().message.find("not found"), std::string::npos)
      << missing.error().message;
}

// PatchOptions::echoed: the watch brings a long annotation the client patched back as the real API
// server writes it (Go's JSON encoder, its escapes), and the decoder puts the remembered text back
// instead of decoding it; the object it hands on holds exactly that text. The node state's echo.
TEST_F(KubeClientTest, AnEchoedAnnotationIsPutBackNotDecodedAgain) {
  std::vector<Seen> seen;
  std::string shown;
  ListOptions options;
  options.fieldSelector = "spec.nodeName=node-echo";
  Reflector reflector(*agent_, loop_, ResourceKind::pods(), ns_, options,
                      [&](ChangeType t, const Json::Value& o) {
                        seen.push_back({t, Reflector::keyOf(o), ""});
                        shown = o["metadata"]["annotations"]["eni-agent.io/state"].asString();
                      });
  ASSERT_TRUE(createPod("p", "node-echo"));
  reflector.start();
  ASSERT_TRUE(runUntil([&] { return reflector.synced() && !seen.empty(); }));
  std::string value = R"({"version":1,"note":"quote \" backslash \\ <&> tab\t nl\n )";
  value += "caf\xc3\xa9 \xe2\x80\xa8 \xe2\x80\xa9 \x01 \x7f\",\"enis\":{";
  for (int i = 0; value.size() < 4096; ++i) value += "\"eni-" + std::to_string(i) + "\":{},";
  value += "\"end\":{}}}";
  Json::Value patch;
  patch["metadata"]["annotations"]["eni-agent.io/state"] = value;
  PatchOptions echoed;
  echoed.discardBody = true;
  echoed.echoed = true;
  const std::uint64_t before = agent_->echoesReused();
  ASSERT_TRUE(await<Json::Value>(loop_, [&](auto done) {
    agent_->patch(ObjectRef{ResourceKind::pods(), ns_, "p", ""}, PatchType::Merge, patch, echoed,
                  done);
  }));
  ASSERT_TRUE(runUntil([&] { return shown == value; })) << shown;
  EXPECT_EQ(agent_->echoesReused(), before + 1) << "the echo was decoded character by character";
  // Another value under the same key, not patched by this client: decoded as usual.
  ASSERT_TRUE(annotate(*admin_, "p", "eni-agent.io/state", value + " "));
  ASSERT_TRUE(runUntil([&] { return shown == value + " "; })) << shown;
  EXPECT_EQ(agent_->echoesReused(), before + 1);
}

TEST_F(KubeClientTest, ServerSideApplyOfStatusKeepsEachNodesEntries) {
  Json::Value neni;
  neni["apiVersion"] = "networking.k8s.aws/v1alpha1";
  neni["kind"] = "NodeENI";
  neni["metadata"]["name"] = ns_;
  neni["spec"]["subnetID"] = "subnet-1";
  neni["spec"]["nodeSelector"]["ng"] = "x";
  ASSERT_TRUE(await<Json::Value>(loop_, [&](auto done) {
    admin_->create(ObjectRef{ResourceKind::nodeEnis(), "", "", ""}, neni, done);
  }));
  for (const std::string node : {"node-a", "node-b"}) {
    Json::Value apply;
    apply["apiVersion"] = "networking.k8s.aws/v1alpha1";
    apply["kind"] = "NodeENI";
    apply["metadata"]["name"] = ns_;
    Json::Value entry;
    entry["nodeID"] = node;
    entry["deviceIndex"] = 1;
    entry["eniID"] = "eni-" + node;
    entry["status"] = "attached";
    apply["status"]["attachments"][0] = entry;
    auto applied = await<Json::Value>(loop_, [&](auto done) {
      agent_->patch(ObjectRef{ResourceKind::nodeEnis(), "", ns_, "status"}, PatchType::Apply, apply,
                    PatchOptions{"eni-agent/" + node, true}, done);
    });
    ASSERT_TRUE(applied) << applied.error().describe();
  }
  auto got = await<Json::Value>(loop_, [&](auto done) {
    agent_->get(ObjectRef{ResourceKind::nodeEnis(), "", ns_, ""}, done);
  });
  ASSERT_TRUE(got);
  auto decoded = decodeNodeEni(*got);
  ASSERT_TRUE(decoded);
  ASSERT_EQ(decoded->attachments.size(), 2u);
  EXPECT_EQ(decoded->attachments[0].eniId, "eni-node-a");
  EXPECT_EQ(decoded->attachments[1].eniId, "eni-node-b");
  EXPECT_EQ(decoded->spec.deviceIndex, 1);  // the CRD's default
}

TEST_F(KubeClientTest, AgentTokenHasExactlyTheDesignedPermissions) {
  ASSERT_TRUE(createPod("p", "node-rbac"));
  const ObjectRef pod{ResourceKind::pods(), ns_, "p", ""};
  Json::Value podPatch;
  podPatch["metadata"]["annotations"]["eni-tagger.io/last-applied-tags"] = "{}";
  Json::Value statusPatch;
  statusPatch["status"]["conditions"][0]["type"] = "eni-tagger.io/tagged";
  statusPatch["status"]["conditions"][0]["status"] = "True";
  Json::Value event;
  event["metadata"]["generateName"] = "p.";
  event["involvedObject"]["kind"] = "Pod";
  event["involvedObject"]["name"] = "p";
  event["involvedObject"]["namespace"] = ns_;
  event["reason"] = "TagsApplied";
  event["message"] = "test";
  event["type"] = "Normal";
  Json::Value node;
  node["metadata"]["name"] = "node-rbac";
  ASSERT_TRUE(
      await<Json::Value>(loop_,
                         [&](auto done) {
                           admin_->create(ObjectRef{ResourceKind::nodes(), "", "", ""}, node, done);
                         }) ||
      true);
  Json::Value nodePatch;
  nodePatch["metadata"]["annotations"]["eni-agent.io/state"] = "{}";
  // A name of its own on every run: the stack may be reused.
  const std::string leaseName = "rbac-check-" + std::to_string(getpid());
  Json::Value lease;
  lease["metadata"]["name"] = leaseName;
  lease["spec"]["holderIdentity"] = "rbac-check";

  struct Call {
    std::string what;
    std::function<void(Callback<Json::Value>)> run;
    bool allowed;
  };
  auto listCall = [this](ResourceKind kind, std::string ns) {
    return [this, kind, ns](Callback<Json::Value> done) {
      agent_->list(kind, ns, {}, [done](Result<ObjectList> r) {
        if (r)
          done(Json::Value());
        else
          done(fail(r.error()));
      });
    };
  };
  const std::vector<Call> calls = {
      {"list pods", listCall(ResourceKind::pods(), ""), true},
      {"get pod", [&](auto d) { agent_->get(pod, d); }, true},
      {"patch pod", [&](auto d) { agent_->patch(pod, PatchType::Merge, podPatch, {}, d); }, true},
      {"patch pods/status",
       [&](auto d) {
         agent_->patch(ObjectRef{ResourceKind::pods(), ns_, "p", "status"}, PatchType::Merge,
                       statusPatch, {}, d);
       },
       true},
      {"list nodes", listCall(ResourceKind::nodes(), ""), true},
      {"get node",
       [&](auto d) {
         agent_->get(ObjectRef{ResourceKind::nodes(), "", "node-rbac", ""}, d);
       },
       true},
      {"patch node",
       [&](auto d) {
         agent_->patch(ObjectRef{ResourceKind::nodes(), "", "node-rbac", ""}, PatchType::Merge,
                       nodePatch, {}, d);
       },
       true},
      {"list nodeenis", listCall(ResourceKind::nodeEnis(), ""), true},
      {"create event",
       [&](auto d) {
         agent_->create(ObjectRef{ResourceKind::events(), ns_, "", ""}, event, d);
       },
       true},
      {"list secrets", listCall(ResourceKind::secrets(), ""), false},
      {"get secret",
       [&](auto d) {
         agent_->get(ObjectRef{ResourceKind::secrets(), "kube-system", "x", ""}, d);
       },
       false},
      {"list configmaps", listCall(ResourceKind{"/api/v1", "configmaps", true}, ""), false},
      // Of ConfigMaps, only a get of k8s-eni-tagger's eni-tagger-cache in kube-system (read in
      // TaggerTest.K8sEniTaggersConfigMapIsOnlyAHint).
      {"get another configmap in kube-system",
       [&](auto d) {
         agent_->get(ObjectRef{ResourceKind::configMaps(), "kube-system", "kube-root-ca.crt", ""},
                     d);
       },
       false},
      {"get eni-tagger-cache in another namespace",
       [&](auto d) {
         agent_->get(ObjectRef{ResourceKind::configMaps(), ns_, "eni-tagger-cache", ""}, d);
       },
       false},
      {"patch eni-tagger-cache",
       [&](auto d) {
         Json::Value patch;
         patch["data"]["x"] = "y";
         agent_->patch(ObjectRef{ResourceKind::configMaps(), "kube-system", "eni-tagger-cache", ""},
                       PatchType::Merge, patch, {}, d);
       },
       false},
      {"list leases", listCall(leasesKind(), ""), false},
      // The node's lease: get, create and update in the agent's own namespace only (a Role).
      {"create lease in eni-agent",
       [&](auto d) {
         agent_->create(ObjectRef{leasesKind(), "eni-agent", "", ""}, lease, d);
       },
       true},
      {"get lease in eni-agent",
       [&](auto d) {
         agent_->get(ObjectRef{leasesKind(), "eni-agent", leaseName, ""}, d);
       },
       true},
      {"update lease in eni-agent",
       [&](auto d) {
         // Leases take only conditional updates: the version just read.
         const ObjectRef ref{leasesKind(), "eni-agent", leaseName, ""};
         agent_->get(ref, [this, ref, d](Result<Json::Value> read) {
           if (!read) return d(read);
           (*read)["spec"]["holderIdentity"] = "rbac-check-updated";
           agent_->update(ref, *read, d);
         });
       },
       true},
      {"list leases in eni-agent", listCall(leasesKind(), "eni-agent"), false},
      {"create lease in kube-system",
       [&](auto d) {
         agent_->create(ObjectRef{leasesKind(), "kube-system", "", ""}, lease, d);
       },
       false},
      {"get lease in kube-node-lease",
       [&](auto d) {
         agent_->get(ObjectRef{leasesKind(), "kube-node-lease", "node-rbac", ""}, d);
       },
       false},
      {"create pod",
       [&](auto d) {
         agent_->create(ObjectRef{ResourceKind::pods(), ns_, "", ""}, Json::Value(), d);
       },
       false},
      {"update node",
       [&](auto d) {
         agent_->update(ObjectRef{ResourceKind::nodes(), "", "node-rbac", ""}, node, d);
       },
       false},
  };
  for (const auto& call : calls) {
    auto r = await<Json::Value>(loop_, call.run);
    if (call.allowed) {
      EXPECT_TRUE(r) << call.what << ": " << r.error().describe();
    } else {
      ASSERT_FALSE(r) << call.what << " should be forbidden";
      EXPECT_EQ(r.error().code, ErrorCode::Permission) << call.what << ": " << r.error().describe();
      EXPECT_EQ(r.error().httpStatus, 403) << call.what;
      EXPECT_NE(r.error().message.find("forbidden"), std::string::npos) << r.error().message;
    }
  }
}

TEST_F(KubeClientTest, WatchSurvivesAnApiServerRestart) {
  std::vector<Seen> seen;
  auto reflector = podReflector("node-restart", seen);
  reflector->start();
  ASSERT_TRUE(runUntil([&] { return reflector->synced(); }));
  ASSERT_TRUE(createPod("before", "node-restart"));
  ASSERT_TRUE(runUntil([&] { return seen.size() == 1; }));
  const auto restartsBefore = reflector->watchRestarts();

  ASSERT_EQ(TestStack::get().control({"restart", "kube-apiserver"}), 0);
  ASSERT_TRUE(createPod("after", "node-restart", "after-restart"));
  ASSERT_TRUE(runUntil([&] { return seen.size() == 2; }, 60000));
  EXPECT_EQ(seen[1].key, ns_ + "/after");
  EXPECT_EQ(seen[1].marker, "after-restart");
  EXPECT_GT(reflector->watchRestarts(), restartsBefore);
  // A dropped stream resumes from its version; but a restarted API server's watch cache starts at
  // the version etcd is at then, so when anything in the cluster was written in between (its own
  // leases are, every 10 s) it answers that version with 410 and one relist follows. Never more,
  // and never a missed update (above).
  EXPECT_LE(reflector->lists(), 2u) << "at most the one relist a 410 after the restart asks for";
}

TEST_F(KubeClientTest, GoneAfterCompactionRelistsWithoutMissingAnUpdate) {
  std::vector<Seen> seen;
  auto reflector = podReflector("node-gone", seen);
  ASSERT_TRUE(createPod("changes", "node-gone", "v0"));
  ASSERT_TRUE(createPod("deleted", "node-gone"));
  reflector->start();
  ASSERT_TRUE(runUntil([&] { return reflector->synced() && seen.size() == 2; }));
  const std::string staleVersion = reflector->resourceVersion();

  // While the agent is away: changes, then etcd compaction past its version, and an API server
  // restart so that its watch cache cannot serve the old version either.
  reflector->stop();
  for (int i = 1; i <= 5; ++i)
    ASSERT_TRUE(annotate(*admin_, "changes", "step", "v" + std::to_string(i)));
  ASSERT_TRUE(deletePod("deleted"));
  ASSERT_TRUE(createPod("created", "node-gone", "new"));
  ASSERT_EQ(TestStack::get().control({"compact"}), 0);
  ASSERT_EQ(TestStack::get().control({"restart", "kube-apiserver"}), 0);
  seen.clear();

  reflector->start();  // resumes from staleVersion: the server answers 410
  ASSERT_TRUE(runUntil([&] { return reflector->lists() == 2 && seen.size() >= 3; }, 60000))
      << "lists=" << reflector->lists() << " seen=" << seen.size();
  EXPECT_NE(reflector->resourceVersion(), staleVersion);
  std::map<std::string, Seen> byKey;
  for (const auto& s : seen) byKey[s.key] = s;
  EXPECT_EQ(byKey[ns_ + "/changes"].type, ChangeType::Modified);
  EXPECT_EQ(byKey[ns_ + "/changes"].marker, "v5");
  EXPECT_EQ(byKey[ns_ + "/deleted"].type, ChangeType::Deleted);
  EXPECT_EQ(byKey[ns_ + "/created"].type, ChangeType::Added);
  EXPECT_EQ(byKey[ns_ + "/created"].marker, "new");
  EXPECT_EQ(reflector->objects().size(), 2u);
}

// An answer past the client's body cap fails cleanly with the cap's error (the default cap,
// kKubeMaxBodyBytes, is 64 MiB; here it is lowered to 8 KiB against three 4 KiB pods). Watch
// streams are not buffered whole, so the cap does not cut them: the same client's watch delivers
// all three pods.
TEST_F(KubeClientTest, AListPastTheBodyCapFailsCleanlyButAWatchStreamsOn) {
  const std::string filler(4096, 'x');
  for (const char* name : {"big-1", "big-2", "big-3"}) {
    ASSERT_TRUE(createPod(name, "node-big", filler)) << name;
  }
  CurlKubeClient capped(http_, *loadKubeconfig(TestStack::get().adminKubeconfig));
  capped.setMaxBodyBytes(8 << 10);
  auto refused = await<ObjectList>(
      loop_, [&](auto done) { capped.list(ResourceKind::pods(), ns_, {}, done); });
  ASSERT_FALSE(refused) << refused->items.size() << " pods under an 8 KiB cap";
  EXPECT_EQ(refused.error().code, ErrorCode::Transient);
  EXPECT_NE(refused.error().message.find("larger than the 8 KiB cap"), std::string::npos)
      << refused.error().message;

  int added = 0;
  bool closed = false;
  ListOptions options;
  options.timeoutSeconds = 30;
  const WatchId id = capped.watch(
      ResourceKind::pods(), ns_, options,
      [&](WatchEvent e) { added += e.type == WatchEventType::Added ? 1 : 0; },
      [&](Result<void>) { closed = true; });
  ASSERT_TRUE(runUntil([&] { return added == 3 || closed; }));
  EXPECT_EQ(added, 3) << "the watch stream is not cut at the body cap";
  capped.cancelWatch(id);

  auto listed = await<ObjectList>(
      loop_, [&](auto done) { admin_->list(ResourceKind::pods(), ns_, {}, done); });
  ASSERT_TRUE(listed) << listed.error().describe();
  EXPECT_EQ(listed->items.size(), 3u) << "under the default cap";
}

Json::Value stallProxy(const std::string& method, const std::string& path,
                       const std::string& body = "") {
  const auto& stack = TestStack::get();
  return *parseJson(stack.controlHttp(method, stack.stallProxyControl + path, body));
}

// A connection that stops forwarding while TCP stays up (tests/env/stall_proxy.py plays a hung
// L7 load balancer): the connection check gets no answer, the connection is closed, the watch
// on it ends as stalled, and the next request goes out on a new connection. While the connection
// works, a quiet watch costs checks that are answered, and no reconnect.
TEST_F(KubeClientTest, StalledConnectionIsClosedAndTheNextRequestOpensANewOne) {
  stallProxy("POST", "/reset");
  struct Unstall {
    ~Unstall() { stallProxy("POST", "/reset"); }
  } unstall;
  auto config = loadKubeconfig(TestStack::get().stallKubeconfig);
  ASSERT_TRUE(config) << config.error().message;
  KubeClientOptions options;
  options.watchIdleTimeout = Duration(2000);
  CurlKubeClient client(http_, *config, options);
  int opened = 0;
  std::optional<Result<void>> closed;
  client.watch(
      ResourceKind::pods(), ns_, ListOptions{},
      [&](WatchEvent e) { opened += e.type == WatchEventType::Opened ? 1 : 0; },
      [&](Result<void> r) { closed = std::move(r); });
  ASSERT_TRUE(runUntil([&] { return opened == 1; })) << "the API server accepted the watch";
  ASSERT_TRUE(runUntil([&] { return client.connectionChecks() >= 2 || closed; }, 60000));
  EXPECT_FALSE(closed) << "a quiet watch on a working connection stays";
  EXPECT_EQ(client.failedConnectionChecks(), 0u);
  EXPECT_EQ(stallProxy("GET", "/stats")["connections"].asInt(), 1)
      << "the watch and the checks share one HTTP/2 connection";

  stallProxy("POST", "/stall");
  ASSERT_TRUE(runUntil([&] { return closed.has_value(); }, 60000));
  ASSERT_FALSE(*closed);
  EXPECT_EQ(closed->error().code, ErrorCode::Transient);
  EXPECT_NE(closed->error().message.find("stalled"), std::string::npos) << closed->error().message;
  EXPECT_EQ(client.failedConnectionChecks(), 1u);
  EXPECT_EQ(http_.stalledConnections(), 1u);

  // The hung connection is not reused: the next request opens a new one, which works.
  auto version = await<Json::Value>(loop_, [&](auto done) { client.getPath("/version", done); });
  ASSERT_TRUE(version) << version.error().describe();
  EXPECT_EQ(stallProxy("GET", "/stats")["connections"].asInt(), 2);
  EXPECT_TRUE(runUntil([&] {
    return stallProxy("GET", "/stats")["closed_by_client"].asInt() == 1;
  })) << "the client closed the stalled connection";
}

TEST_F(KubeClientTest, UnreachableServerIsAClearTransientError) {
  KubeConfig config;
  config.server = "https://127.0.0.1:1";  // nothing listens on port 1
  config.token = "t";
  CurlKubeClient client(http_, config);
  auto r =
      await<ObjectList>(loop_, [&](auto done) { client.list(ResourceKind::pods(), "", {}, done); });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::Transient);
  EXPECT_NE(r.error().message.find("127.0.0.1:1"), std::string::npos) << r.error().message;
}

TEST_F(KubeClientTest, WrongCaIsRefusedNotIgnored) {
  auto config = loadKubeconfig(TestStack::get().agentKubeconfig);
  ASSERT_TRUE(config);
  // A certificate that did not sign the server's: curl trusts partial chains, so it must be
  // unrelated to the server's chain, not merely a leaf of it.
  auto ca = readFile(TestStack::get().dir + "/pki/admin.crt");
  ASSERT_TRUE(ca);
  config->caPem = *ca;
  CurlKubeClient client(http_, *config);
  auto r = await<Json::Value>(loop_, [&](auto done) { client.getPath("/version", done); });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::Transient);
}

TEST_F(KubeClientTest, UnreadableTokenFileNamesTheFile) {
  KubeConfig config = *loadKubeconfig(TestStack::get().agentKubeconfig);
  config.tokenFile = TestStack::get().dir + "/no-such-token";
  CurlKubeClient client(http_, config);
  auto r =
      await<ObjectList>(loop_, [&](auto done) { client.list(ResourceKind::pods(), "", {}, done); });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::Permission);
  EXPECT_NE(r.error().message.find("no-such-token"), std::string::npos);
}

}  // namespace
}  // namespace eni
