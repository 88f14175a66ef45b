#include "agent/kube/watch_decoder.h"

#include <gtest/gtest.h>

#include <random>

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
}  // namespace eni
