#include <gtest/gtest.h>
#include <json/writer.h>
#include <malloc.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "agent/base/backoff.h"
#include "agent/base/event_loop.h"
#include "agent/base/files.h"
#include "agent/base/heap_trimmer.h"
#include "agent/base/json.h"
#include "agent/base/log.h"
#include "agent/base/strings.h"
#include "agent/base/timer.h"
#include "agent/kube/objects.h"

namespace eni {
namespace {

TEST(Backoff, FullJitterUnderADoublingCeilingWithACap) {
  Backoff b(Duration(100), Duration(1000), 1);
  const std::vector<long> ceilings = {100, 200, 400, 800, 1000, 1000};
  for (long ceiling : ceilings) {
    EXPECT_EQ(b.ceiling().count(), ceiling);
    const Duration d = b.next();
    EXPECT_GE(d.count(), 0);
    EXPECT_LE(d.count(), ceiling);
  }
  b.reset();
  EXPECT_EQ(b.ceiling().count(), 100);
  for (int i = 0; i < 100; ++i) b.next();  // no overflow far past the cap
  EXPECT_EQ(b.ceiling().count(), 1000);
}

TEST(EventLoop, TimersRunInDeadlineOrderAndCancelWorks) {
  EventLoop loop;
  std::vector<int> order;
  loop.runAfter(Duration(30), [&] { order.push_back(3); });
  loop.runAfter(Duration(10), [&] { order.push_back(1); });
  const TimerId cancelled = loop.runAfter(Duration(20), [&] { order.push_back(2); });
  loop.runAfter(Duration(10), [&] { order.push_back(11); });
  loop.cancel(cancelled);
  ASSERT_TRUE(loop.runUntil([&] { return order.size() == 3; }, Duration(5000)));
  EXPECT_EQ(order, (std::vector<int>{1, 11, 3}));
}

// Two timers fall due in the same round and the first cancels the second: the second must not
// run (its owner may be gone: a Timer cancels itself in its destructor and trusts that).
TEST(EventLoop, ATimerCancelledByAnotherDueInTheSameRoundDoesNotRun) {
  EventLoop loop;
  std::vector<int> ran;
  TimerId second = 0;
  loop.runAfter(Duration(0), [&] {
    ran.push_back(1);
    loop.cancel(second);
  });
  second = loop.runAfter(Duration(0), [&] { ran.push_back(2); });
  loop.runAfter(Duration(20), [&] { ran.push_back(3); });
  ASSERT_TRUE(loop.runUntil([&] { return !ran.empty() && ran.back() == 3; }, Duration(5000)));
  EXPECT_EQ(ran, (std::vector<int>{1, 3}));
}

// A Timer destroyed by another timer's callback in the same round never calls back into it.
TEST(Timer, DestroyedByAnotherTimerDueInTheSameRoundDoesNotFire) {
  EventLoop loop;
  int fired = 0;
  bool done = false;
  auto victim = std::make_unique<Timer>(loop, [&] { ++fired; });
  Timer killer(loop, [&] { victim.reset(); });
  killer.enable(Duration(0));
  victim->enable(Duration(0));
  Timer end(loop, [&] { done = true; });
  end.enable(Duration(20));
  ASSERT_TRUE(loop.runUntil([&] { return done; }, Duration(5000)));
  EXPECT_EQ(victim, nullptr);
  EXPECT_EQ(fired, 0);
}

TEST(Timer, EnableReplacesDisableCancelsAndItMayBeDestroyedFromItsOwnCallback) {
  EventLoop loop;
  std::vector<int> ran;
  Timer a(loop, [&] { ran.push_back(1); });
  a.enable(Duration(5000));
  a.enable(Duration(0));  // replaces the 5 s timeout
  EXPECT_TRUE(a.enabled());
  Timer b(loop, [&] { ran.push_back(2); });
  b.enable(Duration(0));
  b.disable();
  EXPECT_FALSE(b.enabled());
  std::unique_ptr<Timer> self;
  self = std::make_unique<Timer>(loop, [&] {
    ran.push_back(3);
    self.reset();
  });
  self->enable(Duration(10));
  ASSERT_TRUE(loop.runUntil([&] { return self == nullptr; }, Duration(5000)));
  EXPECT_FALSE(a.enabled());
  EXPECT_EQ(ran, (std::vector<int>{1, 3}));
}

TEST(EventLoop, PostFromAnotherThreadWakesTheLoop) {
  EventLoop loop;
  int ran = 0;
  std::thread other([&] {
    for (int i = 0; i < 100; ++i) loop.post([&] { ++ran; });
  });
  other.join();
  ASSERT_TRUE(loop.runUntil([&] { return ran == 100; }, Duration(5000)));
}

TEST(EventLoop, StopEndsRun) {
  EventLoop loop;
  loop.runAfter(Duration(1), [&] { loop.stop(); });
  loop.run();
  EXPECT_GT(loop.iterations(), 0u);
}

TEST(Strings, EscapeControlBytesKeepsEveryByteVisible) {
  const std::string withNul("a\0b\n\x1b\x7f", 6);
  EXPECT_EQ(escapeControlBytes(withNul), R"(a\x00b\x0a\x1b\x7f)");
  EXPECT_EQ(escapeControlBytes("Team=caf\xc3\xa9 +=._:/@-"), "Team=caf\xc3\xa9 +=._:/@-");
}

TEST(Strings, LowerTurnsOnlyAsciiUppercaseIntoLowercase) {
  EXPECT_EQ(lower("0A:1B:FF:zz"), "0a:1b:ff:zz");
  EXPECT_EQ(lower("TRUE"), "true");
  EXPECT_EQ(lower(""), "");
  EXPECT_EQ(lower("\xC3\x89t\xC3\xA9-\x7F@[`{"), "\xC3\x89t\xC3\xA9-\x7F@[`{");
}

TEST(Json, ParseErrorsAreInvalidNotExceptions) {
  EXPECT_FALSE(parseJson("{"));
  EXPECT_EQ(parseJson("{").error().code, ErrorCode::Invalid);
  EXPECT_FALSE(parseJson(std::string(10000, '[')));  // nesting limit, not a stack overflow
  auto ok = parseJson(R"({"a":"x","n":5,"b":true,"o":{},"l":[1]})");
  ASSERT_TRUE(ok);
  EXPECT_EQ(stringField(*ok, "a"), "x");
  EXPECT_EQ(stringField(*ok, "n", "fallback"), "fallback");  // wrong type, no throw
  EXPECT_EQ(intField(*ok, "a", -1), -1);
  EXPECT_TRUE(boolField(*ok, "b"));
  EXPECT_TRUE(objectField(*ok, "o").isObject());
  EXPECT_TRUE(objectField(*ok, "l").isNull());
  EXPECT_TRUE(arrayField(*ok, "l").isArray());
  EXPECT_EQ(stringField(Json::Value("scalar"), "a", "f"), "f");
  EXPECT_EQ(stringFieldView(*ok, "a"), "x");
  EXPECT_EQ(stringFieldView(*ok, "a").data(), (*ok)["a"].asCString());  // in place, not a copy
  EXPECT_EQ(stringFieldView(*ok, "n"), "");
  EXPECT_EQ(stringFieldView(*ok, "missing"), "");
  EXPECT_EQ(stringFieldView(Json::Value("scalar"), "a"), "");
  EXPECT_EQ(jsonQuote("a\"b\\c\n\x01"), R"("a\"b\\c\n\u0001")");
}

// Go's quoting is the plain one with Go's extra escapes (<, >, &, U+2028, U+2029), for every
// byte and for 0xE2 wherever it falls (a separator, another character, cut short at the end);
// both parse back to the text.
TEST(Json, GoQuotingIsPlainQuotingWithGosExtraEscapes) {
  std::string text;
  for (int c = 1; c < 256; ++c) text += static_cast<char>(c);
  text += "\xe2\x80\xa8<a&b>\xe2\x80\xa9\xe2\x82\xac\xe2\x80\xa7\\\"\xe2\x80";
  std::string expected = jsonQuote(text, JsonQuoting::Plain);
  for (const auto& [raw, escaped] :
       std::vector<std::pair<std::string, std::string>>{{"<", "\\u003c"},
                                                        {">", "\\u003e"},
                                                        {"&", "\\u0026"},
                                                        {"\xe2\x80\xa8", "\\u2028"},
                                                        {"\xe2\x80\xa9", "\\u2029"}}) {
    for (auto at = expected.find(raw); at != std::string::npos;
         at = expected.find(raw, at + escaped.size()))
      expected.replace(at, raw.size(), escaped);
  }
  const std::string go = jsonQuote(text, JsonQuoting::AsGo);
  EXPECT_EQ(go, expected);
  for (const auto& quoted : {go, jsonQuote(text, JsonQuoting::Plain)}) {
    auto parsed = parseJson("[" + quoted + "]");
    ASSERT_TRUE(parsed) << quoted;
    EXPECT_EQ((*parsed)[0].asString(), text);
  }
  std::string appended = "x";
  appendJsonQuoted(appended, "a\"b", JsonQuoting::AsGo);
  EXPECT_EQ(appended, "x\"a\\\"b\"") << "appended after what the string held";
}

// toJson writes what jsoncpp's compact writer (indentation "", emitUTF8) wrote, byte for byte,
// for every kind of value: escapes, control bytes, UTF-8, empty and nested containers, numbers.
TEST(Json, ToJsonWritesExactlyWhatJsoncppWrites) {
  Json::StreamWriterBuilder builder;
  builder["indentation"] = "";
  builder["emitUTF8"] = true;
  std::string everyByte;
  for (int c = 1; c < 256; ++c) everyByte += static_cast<char>(c);
  Json::Value v;
  v["metadata"]["annotations"]["eni-agent.io/state"] = "{\"enis\":{\"eni-1\":{\"tags\":{}}}}";
  v["every byte"] = everyByte;
  v["nul"] = std::string("a\0b", 3);
  v["utf8"] = "caf\xc3\xa9 \xe2\x80\xa8 <>&";
  v["empty"] = "";
  v["obj"] = Json::Value(Json::objectValue);
  v["arr"] = Json::Value(Json::arrayValue);
  v["list"].append(1);
  v["list"].append(-7);
  v["list"].append(Json::Value::maxLargestUInt);
  v["list"].append(Json::Value::minLargestInt);
  v["list"].append(0.1);
  v["list"].append(1e300);
  v["list"].append(-0.0);
  v["list"].append(2.5);
  v["list"].append(true);
  v["list"].append(false);
  v["list"].append(Json::Value());
  v["list"].append(Json::Value(Json::objectValue));
  v["nested"]["a"]["b"][0]["c"] = "d";
  v["Z"] = 1;
  v["a\"key"] = "quoted key";
  for (const Json::Value& value :
       {v, Json::Value("x"), Json::Value(), Json::Value(3.0), Json::Value(Json::arrayValue)}) {
    EXPECT_EQ(toJson(value), Json::writeString(builder, value));
  }
}

TEST(Base64, DecodesAndRejects) {
  EXPECT_EQ(base64Decode("aGVsbG8=").value(), "hello");
  EXPECT_EQ(base64Decode("aGVs\nbG8").value(), "hello");
  EXPECT_FALSE(base64Decode("a$b"));
  EXPECT_FALSE(base64Decode("aGVsbG8=x"));
}

TEST(Log, JsonLinesCarryFieldsEscaped) {
  std::vector<std::string> lines;
  logging::setSink([&](const std::string& l) { lines.push_back(l); });
  logging::configure(LogFormat::Json, LogLevel::Info);
  logDebug("hidden");
  logInfo("tagged \"pod\"", {{"pod", "ns/a"}, {"count", 3}});
  logging::setSink(nullptr);
  ASSERT_EQ(lines.size(), 1u);
  auto parsed = parseJson(lines[0]);
  ASSERT_TRUE(parsed) << lines[0];
  EXPECT_EQ(stringField(*parsed, "msg"), "tagged \"pod\"");
  EXPECT_EQ(stringField(*parsed, "pod"), "ns/a");
  EXPECT_EQ(stringField(*parsed, "count"), "3");
  EXPECT_EQ(stringField(*parsed, "level"), "info");
}

TEST(HeapTrimmer, TrimsOnceAfterEachBurstAndNotWhileSteady) {
  std::size_t free = 0;
  int trims = 0;
  HeapTrimmer trimmer(
      1000, [&] { return free; }, [&] { ++trims; });
  EXPECT_FALSE(trimmer.tick());  // nothing free
  free = 999;
  EXPECT_FALSE(trimmer.tick());  // under one step
  free = 5000;                   // a burst was freed
  EXPECT_TRUE(trimmer.tick());
  EXPECT_FALSE(trimmer.tick());  // still 5000 free: trimmed already, no syscall every second
  free = 5900;
  EXPECT_FALSE(trimmer.tick());
  free = 2000;  // memory reused
  EXPECT_FALSE(trimmer.tick());
  free = 3000;  // freed again, one step above the lowered mark
  EXPECT_TRUE(trimmer.tick());
  EXPECT_EQ(trims, 2);
  EXPECT_EQ(trimmer.trims(), 2u);
}

TEST(HeapTrimmer, RealGlibcProbeSeesAFreedBurst) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer replaces malloc; glibc's arenas do not see the burst";
#else
  HeapTrimmer trimmer;
  trimmer.tick();  // whatever is free now becomes the mark
  // 8 MiB in 4 KiB blocks, every other one kept, so the freed half cannot return by itself.
  std::vector<std::unique_ptr<char[]>> blocks;
  for (int i = 0; i < 2048; ++i) blocks.emplace_back(new char[4096]);
  for (std::size_t i = 0; i < blocks.size(); i += 2) blocks[i].reset();
  EXPECT_TRUE(trimmer.tick());
  EXPECT_FALSE(trimmer.tick());
#endif
}

// glibc's arenas, as malloc_info() lists them (unused where AddressSanitizer replaces malloc).
[[maybe_unused]] std::size_t mallocArenas() {
  char* text = nullptr;
  std::size_t size = 0;
  FILE* out = open_memstream(&text, &size);
  malloc_info(0, out);
  std::fclose(out);
  std::size_t heaps = 0;
  for (const char* at = text; (at = std::strstr(at, "<heap nr=")) != nullptr; ++at) ++heaps;
  std::free(text);
  return heaps;
}

TEST(HeapTrimmer, OneArenaServesEveryThread) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer replaces malloc";
#else
  if (mallocArenas() > 1) GTEST_SKIP() << "earlier tests' threads have arenas; ctest runs it alone";
  ASSERT_TRUE(useOneMallocArena());
  // glibc marks a chunk from a thread's own arena in the size word before it (NON_MAIN_ARENA, 4).
  std::size_t sizeWord = 0;
  std::thread([&] {
    void* block = std::malloc(200);
    const auto header = reinterpret_cast<std::uintptr_t>(block) - sizeof sizeWord;
    sizeWord = *reinterpret_cast<const std::size_t*>(header);
    std::free(block);
  }).join();
  EXPECT_EQ(sizeWord & 4, 0u) << "a new thread allocated from an arena of its own";
  EXPECT_EQ(mallocArenas(), 1u);
#endif
}

TEST(Objects, PrunersKeepWhatTheDecodersReadAndDropTheRest) {
  const auto full = *parseJson(R"({"apiVersion":"v1","kind":"Pod",
      "metadata":{"name":"p","namespace":"n","uid":"u1","resourceVersion":"42",
        "labels":{"app":"a"},"finalizers":["f"],
        "annotations":{"eni-tagger.io/tags":"{\"Team\":\"A\"}",
          "kubectl.kubernetes.io/last-applied-configuration":"{\"a very\":\"long copy\"}"},
        "managedFields":[{"manager":"kubectl","fieldsV1":{"f:metadata":{}}}]},
      "spec":{"nodeName":"n1","hostNetwork":true,"containers":[{"name":"c","image":"i",
        "env":[{"name":"A","value":"B"}]}],"volumes":[{"name":"v"}]},
      "status":{"phase":"Running","podIP":"10.0.1.5","podIPs":[{"ip":"10.0.1.5"}],
        "conditions":[{"type":"eni-tagger.io/tagged","status":"True","reason":"Synced"}],
        "containerStatuses":[{"name":"c","ready":true}],"hostIP":"10.0.0.9"}})");
  Json::Value pruned = full;
  prunePod(pruned);
  EXPECT_FALSE(pruned["metadata"].isMember("managedFields"));
  EXPECT_FALSE(pruned["metadata"]["annotations"].isMember(
      "kubectl.kubernetes.io/last-applied-configuration"));
  EXPECT_EQ(pruned["spec"].getMemberNames(), (std::vector<std::string>{"hostNetwork", "nodeName"}));
  EXPECT_EQ(pruned["status"].getMemberNames(),
            (std::vector<std::string>{"conditions", "phase", "podIP", "podIPs"}));
  EXPECT_EQ(pruned["status"]["conditions"], full["status"]["conditions"]);
  auto before = decodePod(full);
  auto after = decodePod(pruned);
  ASSERT_TRUE(before && after);
  EXPECT_EQ(after->meta.annotations.size(), 1u);
  EXPECT_EQ(after->meta.annotations,
            (std::map<std::string, std::string>{{"eni-tagger.io/tags", R"({"Team":"A"})"}}));
  EXPECT_EQ(after->meta.labels, before->meta.labels);
  EXPECT_EQ(after->meta.finalizers, before->meta.finalizers);
  EXPECT_EQ(after->meta.resourceVersion, "42");
  EXPECT_EQ(after->podIps, before->podIps);
  EXPECT_EQ(after->hostNetwork, before->hostNetwork);
  EXPECT_EQ(after->phase, before->phase);

  Json::Value node = *parseJson(R"({"metadata":{"name":"n1","labels":{"l":"1"},
      "annotations":{"eni-agent.io/state":"{}"},"managedFields":[{}]},
      "spec":{"providerID":"aws:///us-east-1a/i-0abc","podCIDR":"10.1.0.0/24"},
      "status":{"images":[{"names":["a"],"sizeBytes":1}]}})");
  pruneNode(node);
  EXPECT_FALSE(node.isMember("status"));
  EXPECT_FALSE(node["metadata"].isMember("managedFields"));
  EXPECT_EQ(node["spec"].getMemberNames(), std::vector<std::string>{"providerID"});
  auto decoded = decodeNode(node);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->instanceId(), "i-0abc");
  EXPECT_EQ(decoded->meta.labels.at("l"), "1");
  EXPECT_EQ(decoded->meta.annotations.at("eni-agent.io/state"), "{}");
  // A reader of labels leaves the annotations (the node state, tens of KiB) where they are.
  auto labels = decodeNode(node, /*annotations=*/false);
  ASSERT_TRUE(labels);
  EXPECT_EQ(labels->meta.labels.at("l"), "1");
  EXPECT_TRUE(labels->meta.annotations.empty());
  EXPECT_EQ(labels->instanceId(), "i-0abc");

  Json::Value notAnObject(Json::arrayValue);  // never throws on a wrong type
  prunePod(notAnObject);
  pruneNode(notAnObject);
  Json::Value oddTypes = *parseJson(R"({"metadata":{"annotations":5},"spec":"x","status":[1]})");
  prunePod(oddTypes);
  EXPECT_TRUE(oddTypes["spec"].isObject() && oddTypes["spec"].empty());
}

TEST(Objects, DecodeNeverThrowsOnWrongTypes) {
  auto pod = decodePod(*parseJson(R"({"metadata":{"name":"p","namespace":"n","uid":"u1",
      "annotations":{"a":"1","bad":5},"finalizers":["f",3],"deletionTimestamp":"2026-01-01T00:00:00Z"},
      "spec":{"nodeName":"n1","hostNetwork":"yes"},
      "status":{"phase":"Running","podIPs":[{"ip":"10.0.1.5"},{"ip":7}],"podIP":"10.0.1.5"}})"));
  ASSERT_TRUE(pod);
  EXPECT_EQ(pod->meta.annotations.size(), 1u);
  EXPECT_EQ(pod->meta.finalizers, std::vector<std::string>{"f"});
  EXPECT_TRUE(pod->meta.deleting);
  EXPECT_FALSE(pod->hostNetwork);  // a string is not a bool
  EXPECT_EQ(pod->podIps, std::vector<std::string>{"10.0.1.5"});
  EXPECT_FALSE(pod->terminal());

  EXPECT_FALSE(decodePod(Json::Value(Json::arrayValue)));
  EXPECT_FALSE(decodePod(*parseJson(R"({"metadata":{"name":5}})")));

  auto node = decodeNode(
      *parseJson(R"({"metadata":{"name":"n1"},"spec":{"providerID":"aws:///us-east-1a/i-0abc"}})"));
  ASSERT_TRUE(node);
  EXPECT_EQ(node->instanceId(), "i-0abc");

  auto neni =
      decodeNodeEni(*parseJson(R"({"metadata":{"name":"x"},"spec":{"nodeSelector":{"ng":"multi"},
      "subnetIDs":["subnet-1","subnet-2"],"securityGroupIDs":["sg-1"],"mtu":9001,"deleteOnTermination":false},
      "status":{"attachments":[{"nodeID":"n1","deviceIndex":2,"eniID":"eni-1"}]}})"));
  ASSERT_TRUE(neni);
  EXPECT_EQ(neni->spec.deviceIndex, 1);  // default
  EXPECT_FALSE(neni->spec.deleteOnTermination);
  EXPECT_EQ(neni->spec.mtu, 9001);
  EXPECT_EQ(neni->spec.subnetIds.size(), 2u);
  ASSERT_EQ(neni->attachments.size(), 1u);
  EXPECT_EQ(neni->attachments[0].deviceIndex, 2);
  EXPECT_FALSE(neni->spec.enableDpdk);
  EXPECT_FALSE(neni->attachments[0].dpdkBound);

  // aws-multi-eni-controller's DPDK fields, spec and status entry.
  auto dpdk = decodeNodeEni(*parseJson(R"({"metadata":{"name":"d"},"spec":{"subnetID":"subnet-1",
      "enableDPDK":true,"dpdkDriver":"igb_uio","dpdkResourceName":"intel.com/sriov_dpdk",
      "dpdkPCIAddress":"0000:00:06.0"},"status":{"attachments":[{"nodeID":"n1","deviceIndex":1,
      "dpdkBound":true,"dpdkDriver":"vfio-pci","dpdkResourceName":"intel.com/x",
      "dpdkPCIAddress":"0000:00:07.0"}]}})"));
  ASSERT_TRUE(dpdk);
  EXPECT_TRUE(dpdk->spec.enableDpdk);
  EXPECT_EQ(dpdk->spec.dpdkDriver, "igb_uio");
  EXPECT_EQ(dpdk->spec.dpdkResourceName, "intel.com/sriov_dpdk");
  EXPECT_EQ(dpdk->spec.dpdkPciAddress, "0000:00:06.0");
  ASSERT_EQ(dpdk->attachments.size(), 1u);
  EXPECT_TRUE(dpdk->attachments[0].dpdkBound);
  EXPECT_EQ(dpdk->attachments[0].dpdkDriver, "vfio-pci");
  EXPECT_EQ(dpdk->attachments[0].dpdkResourceName, "intel.com/x");
  EXPECT_EQ(dpdk->attachments[0].dpdkPciAddress, "0000:00:07.0");
}

}  // namespace
}  // namespace eni
