#include "agent/kube/watch_decoder.h"

#include <gtest/gtest.h>

#include <random>

#include "agent/base/json.h"

namespace eni {
namespace {

const std::string kStream =
    R"({"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"a","namespace":"n","resourceVersion":"10"}}})"
    "\n"
    R"({"type":"MODIFIED","object":{"kind":"Pod","metadata":{"name":"a","namespace":"n","resourceVersion":"11"}}})"
    "\n"
    R"({"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"15"}}})"
    "\n"
    R"({"type":"DELETED","object":{"kind":"Pod","metadata":{"name":"a","namespace":"n","resourceVersion":"16"}}})"
    "\n";

std::vector<WatchEventType> decodeAll(WatchStreamDecoder& d, const std::vector<std::string>& chunks,
                                      Result<void>* lastResult = nullptr) {
  std::vector<WatchEventType> types;
  for (const auto& c : chunks) {
    auto r = d.feed(c, [&](WatchEvent e) { types.push_back(e.type); });
    if (lastResult != nullptr) *lastResult = r;
    if (!r) break;
  }
  return types;
}

const std::vector<WatchEventType> kExpected = {WatchEventType::Added, WatchEventType::Modified,
                                               WatchEventType::Bookmark, WatchEventType::Deleted};

TEST(WatchStreamDecoder, WholeStreamInOneChunk) {
  WatchStreamDecoder d;
  EXPECT_EQ(decodeAll(d, {kStream}), kExpected);
  EXPECT_EQ(d.buffered(), 0u);
}

TEST(WatchStreamDecoder, EverySplitPointGivesTheSameEvents) {
  for (std::size_t cut = 0; cut <= kStream.size(); ++cut) {
    WatchStreamDecoder d;
    EXPECT_EQ(decodeAll(d, {kStream.substr(0, cut), kStream.substr(cut)}), kExpected) << cut;
  }
}

TEST(WatchStreamDecoder, ByteByByte) {
  WatchStreamDecoder d;
  std::vector<std::string> chunks;
  for (char c : kStream) chunks.emplace_back(1, c);
  EXPECT_EQ(decodeAll(d, chunks), kExpected);
}

TEST(WatchStreamDecoder, RandomChunkingKeepsOrderAndContent) {
  std::mt19937 rng(42);
  for (int round = 0; round < 200; ++round) {
    WatchStreamDecoder d;
    std::vector<std::string> chunks;
    std::size_t at = 0;
    while (at < kStream.size()) {
      const std::size_t n = std::uniform_int_distribution<std::size_t>(1, 40)(rng);
      chunks.push_back(kStream.substr(at, n));
      at += n;
    }
    std::vector<std::string> versions;
    for (const auto& c : chunks) {
      ASSERT_TRUE(d.feed(c, [&](WatchEvent e) {
        versions.push_back(e.object["metadata"]["resourceVersion"].asString());
      }));
    }
    EXPECT_EQ(versions, (std::vector<std::string>{"10", "11", "15", "16"}));
  }
}

TEST(WatchStreamDecoder, ErrorEvent410IsGone) {
  WatchStreamDecoder d;
  Result<void> r;
  auto types = decodeAll(
      d,
      {kStream.substr(0, kStream.find('\n') + 1),
       R"J({"type":"ERROR","object":{"kind":"Status","status":"Failure","message":"too old resource version: 5 (10)","reason":"Expired","code":410}})J"
       "\n"},
      &r);
  EXPECT_EQ(types, std::vector<WatchEventType>{WatchEventType::Added});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::Gone);
  EXPECT_NE(r.error().message.find("too old resource version"), std::string::npos);
  EXPECT_TRUE(d.failed());
}

TEST(WatchStreamDecoder, OtherErrorEventIsTransient) {
  WatchStreamDecoder d;
  auto r = d.feed(R"({"type":"ERROR","object":{"kind":"Status","message":"internal","code":500}})"
                  "\n",
                  [](WatchEvent) { FAIL() << "no event expected"; });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::Transient);
  EXPECT_EQ(r.error().httpStatus, 500);
}

TEST(WatchStreamDecoder, GarbageLinesAreClearErrors) {
  for (const std::string& line : std::vector<std::string>{
           "not json at all", "{\"type\":\"ADDED\"}", "{\"object\":{}}", "[1,2,3]",
           "{\"type\":\"SURPRISE\",\"object\":{}}", "{\"type\":7,\"object\":{}}", "\"string\"",
           "{\"type\":\"ADDED\",\"object\":\"not an object\"}", std::string(300, '['),
           "{\"a\":\xff}"}) {
    WatchStreamDecoder d;
    int events = 0;
    auto r = d.feed(line + "\n", [&](WatchEvent) { ++events; });
    ASSERT_FALSE(r) << line;
    EXPECT_EQ(r.error().code, ErrorCode::Internal) << line;
    EXPECT_NE(r.error().message.find("watch stream"), std::string::npos);
    EXPECT_EQ(events, 0);
    // A failed decoder refuses more input instead of resynchronising on a half-read stream.
    EXPECT_FALSE(d.feed(kStream, [&](WatchEvent) { ++events; }));
    EXPECT_EQ(events, 0);
  }
}

TEST(WatchStreamDecoder, BlankLinesAndCarriageReturnsAreSkipped) {
  WatchStreamDecoder d;
  std::string withNoise = "\n\r\n" + kStream + "\n  \n";
  EXPECT_EQ(decodeAll(d, {withNoise}), kExpected);
}

TEST(WatchStreamDecoder, OversizedLineIsRefused) {
  WatchStreamDecoder d;
  std::string huge(WatchStreamDecoder::kMaxLineBytes + 1, 'x');
  auto r = d.feed(huge, [](WatchEvent) {});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("16 MiB"), std::string::npos);
  EXPECT_EQ(d.buffered(), 0u) << "the refused line's buffer is handed back at once";
}

}  // namespace
// ------------------------------------------------------------ echoes of the agent's own patches

// A long value shaped like the node state, with everything Go's JSON encoder escapes.
std::string longValue(const std::string& tail = "") {
  std::string v = R"({"version":1,"note":"q \" b \\ <&> )"
                  "caf\xc3\xa9 \xe2\x80\xa8\x01\",\"enis\":{";
  for (int i = 0; v.size() < 2048; ++i) v += "\"eni-" + std::to_string(i) + "\":{},";
  return v + "\"end\":{}}" + tail + "}";
}

// A Node MODIFIED event as the API server writes it, with `state` under the annotation, and
// `elsewhere` (raw JSON) as spec.
std::string nodeLine(const std::string& state, const std::string& elsewhere = "{}") {
  return R"({"type":"MODIFIED","object":{"kind":"Node","spec":)" + elsewhere +
         R"(,"metadata":{"name":"n","annotations":{"a":"b","eni-agent.io/state":)" +
         KnownAnnotations::quoteAsApiServer(state) + R"(,"z":"y"}}}})" + "\n";
}

std::string annotationOf(const WatchEvent& e) {
  return e.object["metadata"]["annotations"]["eni-agent.io/state"].asString();
}

TEST(KnownAnnotations, QuotesAsGosEncoderDoes) {
  EXPECT_EQ(KnownAnnotations::quoteAsApiServer("a\"b\\c<d>e&f\n\t\b\f\x01\x7f"),
            R"("a\"b\\c\u003cd\u003ee\u0026f\n\t\b\f\u0001)"
            "\x7f\"");
  EXPECT_EQ(KnownAnnotations::quoteAsApiServer("caf\xc3\xa9 \xe2\x80\xa8\xe2\x80\xa9"),
            "\"caf\xc3\xa9 \\u2028\\u2029\"");
  // Other E2 sequences, and E2 80 cut short at the end, go as they are.
  EXPECT_EQ(KnownAnnotations::quoteAsApiServer("\xe2\x82\xac<\xe2\x80\xa7\xe2\x80"),
            "\"\xe2\x82\xac\\u003c\xe2\x80\xa7\xe2\x80\"");
  EXPECT_EQ(KnownAnnotations::quoteAsApiServer("\xe2"), "\"\xe2\"");
}

// What remember() returns goes into the patch's body: the member as the echo carries it, which
// parses back to the key and value, short values (not kept) included.
TEST(KnownAnnotations, RememberGivesTheMemberAsTheApiServerWritesIt) {
  KnownAnnotations known;
  for (const std::string& value : {longValue(), std::string("short <&> \xe2\x80\xa8 \"q\"")}) {
    const std::string member = known.remember("eni-agent.io/state", value);
    EXPECT_EQ(member, KnownAnnotations::quoteAsApiServer("eni-agent.io/state") + ":" +
                          KnownAnnotations::quoteAsApiServer(value));
    auto parsed = parseJson("{" + member + "}");
    ASSERT_TRUE(parsed);
    EXPECT_EQ((*parsed)["eni-agent.io/state"].asString(), value);
  }
  EXPECT_FALSE(known.empty());
  // The same value again: the same member, from what is kept.
  EXPECT_EQ(known.remember("eni-agent.io/state", longValue()),
            KnownAnnotations::quoteAsApiServer("eni-agent.io/state") + ":" +
                KnownAnnotations::quoteAsApiServer(longValue()));
}

TEST(KnownAnnotations, TheEchoOfARememberedValueIsPutBackNotDecoded) {
  KnownAnnotations known;
  const std::string state = longValue();
  known.remember("eni-agent.io/state", state);
  WatchStreamDecoder d;
  d.reuse(&known);
  std::vector<WatchEvent> events;
  const std::string line = nodeLine(state);
  // In two chunks, as the network may deliver it.
  for (const auto& chunk : {line.substr(0, 100), line.substr(100)}) {
    ASSERT_TRUE(d.feed(chunk, [&](WatchEvent e) { events.push_back(std::move(e)); }));
  }
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(known.reused(), 1u);
  EXPECT_EQ(annotationOf(events[0]), state);
  EXPECT_EQ(events[0].object["metadata"]["annotations"]["a"].asString(), "b");
  EXPECT_EQ(events[0].object["metadata"]["annotations"]["z"].asString(), "y");
  // The same object as a decoder without the table makes.
  auto plain = WatchStreamDecoder::decodeLine(line);
  ASSERT_TRUE(plain);
  EXPECT_EQ(events[0].object, plain->object);
}

TEST(KnownAnnotations, AnythingElseIsDecodedAsUsual) {
  KnownAnnotations known;
  const std::string state = longValue();
  known.remember("eni-agent.io/state", state);
  // Another value under the key (someone else's edit).
  auto other = WatchStreamDecoder::decodeLine(nodeLine(longValue(",\"x\":{}")), &known);
  ASSERT_TRUE(other);
  EXPECT_EQ(annotationOf(*other), longValue(",\"x\":{}"));
  // The remembered pair somewhere else in the object, and another value where it belongs: the
  // stand-in lands in the wrong place, so the line is decoded whole.
  const std::string pair = KnownAnnotations::quoteAsApiServer("eni-agent.io/state") + ":" +
                           KnownAnnotations::quoteAsApiServer(state);
  auto moved = WatchStreamDecoder::decodeLine(nodeLine("mine", "{" + pair + "}"), &known);
  ASSERT_TRUE(moved);
  EXPECT_EQ(annotationOf(*moved), "mine");
  EXPECT_EQ(moved->object["spec"]["eni-agent.io/state"].asString(), state);
  // ... also when whoever wrote the object put a stand-in of their guessing where the value
  // belongs: the stand-in is random, so the remembered text is not put there.
  for (const std::string guess : {"\001eni-agent:known", "\001eni-agent:0000000000000000"}) {
    auto planted = WatchStreamDecoder::decodeLine(nodeLine(guess, "{" + pair + "}"), &known);
    ASSERT_TRUE(planted);
    EXPECT_EQ(annotationOf(*planted), guess);
  }
  // Escaped differently from Go's encoder (\u003c written as <): not recognised, decoded.
  std::string unusual = nodeLine(state);
  for (std::size_t at = unusual.find("\\u003c"); at != std::string::npos;
       at = unusual.find("\\u003c"))
    unusual.replace(at, 6, "<");
  auto differently = WatchStreamDecoder::decodeLine(unusual, &known);
  ASSERT_TRUE(differently);
  EXPECT_EQ(annotationOf(*differently), state);
  EXPECT_EQ(known.reused(), 0u);
}

TEST(KnownAnnotations, KeepsTheLastTwoLongValues) {
  KnownAnnotations known;
  known.remember("eni-agent.io/state", "short");
  EXPECT_TRUE(known.empty()) << "a short value costs less to decode than to look for";
  const std::string a = longValue(",\"a\":{}"), b = longValue(",\"b\":{}"),
                    c = longValue(",\"c\":{}");
  known.remember("eni-agent.io/state", a);
  known.remember("eni-agent.io/state", b);
  known.remember("eni-agent.io/state", c);
  for (const auto& [value, reused] : {std::pair{a, 0u}, {b, 1u}, {c, 2u}}) {
    auto e = WatchStreamDecoder::decodeLine(nodeLine(value), &known);
    ASSERT_TRUE(e);
    EXPECT_EQ(annotationOf(*e), value);
    EXPECT_EQ(known.reused(), reused);
  }
}

// A node of many ENIs writes its state once and then small overlays beside it, often: each key
// keeps its own last two, so the state stays known while overlays come and go, and an echo that
// carries both has both put back.
TEST(KnownAnnotations, EachKeyKeepsItsOwnAndBothArePutBack) {
  KnownAnnotations known;
  const std::string state = longValue();
  known.remember("eni-agent.io/state", state);
  std::vector<std::string> overlays;
  for (int i = 0; i < 5; ++i) {
    overlays.push_back(longValue(",\"o\":{\"n\":" + std::to_string(i) + "}"));
    known.remember("eni-agent.io/state-pending", overlays.back());
  }
  const std::string line =
      R"({"type":"MODIFIED","object":{"kind":"Node","metadata":{"name":"n","annotations":{)"
      R"("eni-agent.io/state":)" +
      KnownAnnotations::quoteAsApiServer(state) + R"(,"eni-agent.io/state-pending":)" +
      KnownAnnotations::quoteAsApiServer(overlays.back()) + R"(,"z":"y"}}}})";
  // The state alone (an event before the first overlay): still known, put back.
  ASSERT_TRUE(WatchStreamDecoder::decodeLine(nodeLine(state), &known));
  EXPECT_EQ(known.reused(), 1u) << "the overlays did not push the state out";
  auto e = WatchStreamDecoder::decodeLine(line, &known);
  ASSERT_TRUE(e);
  EXPECT_EQ(known.reused(), 2u);
  const Json::Value& a = e->object["metadata"]["annotations"];
  EXPECT_EQ(a["eni-agent.io/state"].asString(), state);
  EXPECT_EQ(a["eni-agent.io/state-pending"].asString(), overlays.back());
  EXPECT_EQ(a["z"].asString(), "y");
  auto plain = WatchStreamDecoder::decodeLine(line);
  ASSERT_TRUE(plain);
  EXPECT_EQ(e->object, plain->object);
  // An overlay three writes old is no longer kept: decoded, and the line with it.
  std::string old = line;
  const std::string last = KnownAnnotations::quoteAsApiServer(overlays.back());
  old.replace(old.find(last), last.size(), KnownAnnotations::quoteAsApiServer(overlays[1]));
  auto older = WatchStreamDecoder::decodeLine(old, &known);
  ASSERT_TRUE(older);
  EXPECT_EQ(older->object["metadata"]["annotations"]["eni-agent.io/state-pending"].asString(),
            overlays[1]);
  EXPECT_EQ(older->object["metadata"]["annotations"]["eni-agent.io/state"].asString(), state);
}

}  // namespace eni
