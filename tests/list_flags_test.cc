// tools/common/list_flags.h: the comma-separated list flags of the tools and
// ntk_loadgen.
#include "tools/common/list_flags.h"

#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ntk::tools {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ListHasTest, MatchesWholeEntriesOnly) {
  EXPECT_TRUE(ListHas("e1,e2,e3", "e1"));
  EXPECT_TRUE(ListHas("e1,e2,e3", "e3"));
  EXPECT_FALSE(ListHas("e12,e2", "e1"));  // a prefix of an entry is not the entry
  EXPECT_FALSE(ListHas("predict", "pred"));
  EXPECT_FALSE(ListHas("", "e1"));
}

TEST(ParsePositiveIntListTest, ValuesInOrderEmptyEntriesSkipped) {
  absl::StatusOr<std::vector<int>> v = ParsePositiveIntList("widths", "64,128,,1024,");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_THAT(*v, ElementsAre(64, 128, 1024));
  v = ParsePositiveIntList("widths", "");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->empty());
}

TEST(ParsePositiveIntListTest, BadEntryIsInvalidArgumentNamingFlagAndEntry) {
  for (const char* text : {"8,abc", "1,0", "-3", "2.5"}) {
    absl::StatusOr<std::vector<int>> v = ParsePositiveIntList("concurrency", text);
    ASSERT_FALSE(v.ok()) << text;
    EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(v.status().message(), HasSubstr("--concurrency")) << text;
  }
  EXPECT_THAT(ParsePositiveIntList("sizes", "1000,x1").status().message(), HasSubstr("'x1'"));
}

TEST(ParseNumberListTest, ValuesInOrderBlanksAllowed) {
  absl::StatusOr<std::vector<double>> v = ParseNumberList("select_label_smoothings",
                                                          "0.01, 0.1 ,1e-3,0");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_THAT(*v, ElementsAre(0.01, 0.1, 1e-3, 0.0));
  v = ParseNumberList("select_depths", "");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->empty());
}

// Not a number, or an empty entry inside the list: INVALID_ARGUMENT
// naming the flag and the entry (ranges are the caller's to check).
TEST(ParseNumberListTest, BadEntryIsInvalidArgumentNamingFlagAndEntry) {
  for (const char* text : {"0.1,abc", "1,,2", "0.1;0.2", "1e"}) {
    absl::StatusOr<std::vector<double>> v = ParseNumberList("select_regularizations", text);
    ASSERT_FALSE(v.ok()) << text;
    EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(v.status().message(), HasSubstr("--select_regularizations")) << text;
  }
  EXPECT_THAT(ParseNumberList("x", "1,x1").status().message(), HasSubstr("'x1'"));
}

}  // namespace
}  // namespace ntk::tools
