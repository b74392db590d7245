// End-to-end tests of ntkctl reading IDX files (the MNIST / Fashion-MNIST
// format, tools/ntkctl/idx.h) against an ntk_server subprocess
// (tests/testing/ntkctl_fixture.h): a fit from IDX images and labels, plain
// or gzip, is the fit from a CSV of the same numbers; --rows; damaged files
// and mismatched counts refused naming the files; a fit over the message
// limit streamed in chunks with the upload shown on stderr.
#include <zlib.h>

#include <cstdint>
#include <fstream>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/ntkctl_fixture.h"
#include "tests/testing/temp_dir.h"

namespace ntk::testing {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

// A labelled image set: n images of side x side pixels, labels in [0, 3).
struct Images {
  int n = 0;
  int side = 0;
  std::vector<uint8_t> pixels;  // n * side * side, row-major
  std::vector<uint8_t> labels;  // n
};

// Class k's images are brighter in the k-th third of the pixels, plus noise
// from a fixed seed: separable, yet not trivially.
Images MakeImages(int n, int side, uint32_t seed) {
  Images im;
  im.n = n;
  im.side = side;
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> noise(0, 120);
  const int d = side * side;
  for (int i = 0; i < n; ++i) {
    const int label = i % 3;
    im.labels.push_back(static_cast<uint8_t>(label));
    for (int j = 0; j < d; ++j) {
      const bool bright = j * 3 / d == label;
      im.pixels.push_back(static_cast<uint8_t>(noise(gen) + (bright ? 130 : 0)));
    }
  }
  return im;
}

std::string BigEndian32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// The IDX bytes (tools/ntkctl/idx.h "Format").
std::string ImagesIdx(const Images& im) {
  return BigEndian32(0x00000803) + BigEndian32(im.n) + BigEndian32(im.side) +
         BigEndian32(im.side) + std::string(im.pixels.begin(), im.pixels.end());
}
std::string LabelsIdx(const std::vector<uint8_t>& labels) {
  return BigEndian32(0x00000801) + BigEndian32(static_cast<uint32_t>(labels.size())) +
         std::string(labels.begin(), labels.end());
}

// The same rows as CSV: the pixel values, then the label.
std::string Csv(const Images& im) {
  std::string out;
  const int d = im.side * im.side;
  for (int i = 0; i < im.n; ++i) {
    for (int j = 0; j < d; ++j) out += std::to_string(im.pixels[i * d + j]) + ",";
    out += std::to_string(im.labels[i]) + "\n";
  }
  return out;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}
void WriteGzip(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

// One data set written as IDX (plain and gzip; names without "idx" or
// "ubyte", so ntkctl must recognize the files by their magic) and as CSV.
class NtkctlIdxTest : public NtkctlTest {
 protected:
  static void SetUpTestSuite() {
    NtkctlTest::SetUpTestSuite();
    images_ = new Images(MakeImages(60, 4, 7));
    WriteFile(File("pixels.bin"), ImagesIdx(*images_));
    WriteFile(File("classes.bin"), LabelsIdx(images_->labels));
    WriteGzip(File("pixels.bin.gz"), ImagesIdx(*images_));
    WriteGzip(File("classes.bin.gz"), LabelsIdx(images_->labels));
    WriteFile(File("same.csv"), Csv(*images_));
  }
  static void TearDownTestSuite() {
    delete images_;
    images_ = nullptr;
    NtkctlTest::TearDownTestSuite();
  }

  static std::string File(const std::string& name) { return dir_->File(name); }

  // Fits `id` with a spec whose answer depends on the scale of the pixels
  // (bias_variance > 0: the ReLU NTK is then not homogeneous), so passing
  // pixel / 255 instead of the pixel would change every prediction.
  static ProcessResult Fit(const std::string& id, std::vector<std::string> data) {
    std::vector<std::string> args = {"fit", "--model=" + id, "--bias_variance=0.5"};
    args.insert(args.end(), data.begin(), data.end());
    return Ctl(args);
  }
  // Predict as CSV (row, label, probabilities with 17 digits).
  static ProcessResult Predict(const std::string& id, std::vector<std::string> data) {
    std::vector<std::string> args = {"predict", "--model=" + id, "--format=csv"};
    args.insert(args.end(), data.begin(), data.end());
    return Ctl(args);
  }

  inline static Images* images_ = nullptr;
};

TEST_F(NtkctlIdxTest, FitFromPlainOrGzipIdxEqualsFitFromCsv) {
  ProcessResult csv = Fit("from-csv", {"--data=" + File("same.csv")});
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  ProcessResult plain =
      Fit("from-idx", {"--data=" + File("pixels.bin"), "--labels=" + File("classes.bin")});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_THAT(plain.out, ContainsRegex("num_train +60"));
  EXPECT_THAT(plain.out, ContainsRegex("num_features +16"));
  EXPECT_THAT(plain.out, ContainsRegex("num_classes +3"));
  ProcessResult gz = Fit("from-idx-gz", {"--data=" + File("pixels.bin.gz"),
                                         "--labels=" + File("classes.bin.gz")});
  ASSERT_EQ(gz.exit_code, 0) << gz.err;

  // Same numbers in the same order: bit-identical models, so the printed
  // probabilities (17 significant digits) agree exactly.
  const std::string on_csv = "--data=" + File("same.csv");
  ProcessResult want = Predict("from-csv", {on_csv});
  ASSERT_EQ(want.exit_code, 0) << want.err;
  EXPECT_EQ(Lines(want.out).size(), 61u);  // header + 60 rows
  for (const std::string id : {"from-idx", "from-idx-gz"}) {
    ProcessResult got = Predict(id, {on_csv});
    ASSERT_EQ(got.exit_code, 0) << got.err;
    EXPECT_EQ(got.out, want.out) << id;
  }
  // Predicting from the IDX files gives the CSV's rows and labels too.
  ProcessResult idx = Predict(
      "from-csv", {"--data=" + File("pixels.bin.gz"), "--labels=" + File("classes.bin")});
  ASSERT_EQ(idx.exit_code, 0) << idx.err;
  EXPECT_EQ(idx.out, want.out);
  EXPECT_THAT(idx.err, HasSubstr("accuracy"));
  EXPECT_THAT(want.err, HasSubstr("accuracy"));
  // Without --labels: the same predictions, no true labels, no accuracy.
  ProcessResult unlabelled = Predict("from-csv", {"--data=" + File("pixels.bin")});
  ASSERT_EQ(unlabelled.exit_code, 0) << unlabelled.err;
  EXPECT_THAT(Lines(unlabelled.out)[0], Not(HasSubstr("true_label")));
  EXPECT_THAT(unlabelled.err, Not(HasSubstr("accuracy")));
  EXPECT_EQ(Lines(unlabelled.out).size(), 61u);

  // predict-dist reads IDX the same way.
  ProcessResult dist =
      Ctl({"predict-dist", "--model=from-idx", "--format=csv", "--data=" + File("pixels.bin"),
           "--labels=" + File("classes.bin"), "--rows=50:"});
  ASSERT_EQ(dist.exit_code, 0) << dist.err;
  EXPECT_EQ(Lines(dist.out).size(), 11u);  // header + rows 50..59
  EXPECT_THAT(dist.err, ContainsRegex("accuracy [0-9.]+ \\([0-9]+/10\\)"));
}

TEST_F(NtkctlIdxTest, RowsSelectImagesAsTheySelectCsvLines) {
  ProcessResult csv = Fit("rows-csv", {"--data=" + File("same.csv"), "--rows=0:40"});
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  ProcessResult idx = Fit("rows-idx", {"--data=" + File("pixels.bin"),
                                       "--labels=" + File("classes.bin"), "--rows=:40"});
  ASSERT_EQ(idx.exit_code, 0) << idx.err;
  EXPECT_THAT(idx.out, ContainsRegex("num_train +40"));
  ProcessResult want = Predict("rows-csv", {"--data=" + File("same.csv"), "--rows=40:60"});
  ASSERT_EQ(want.exit_code, 0) << want.err;
  ProcessResult got = Predict("rows-idx", {"--data=" + File("pixels.bin.gz"),
                                           "--labels=" + File("classes.bin.gz"), "--rows=40:"});
  ASSERT_EQ(got.exit_code, 0) << got.err;
  EXPECT_EQ(got.out, want.out);
  const std::vector<std::string> lines = Lines(got.out);
  ASSERT_EQ(lines.size(), 21u);
  EXPECT_EQ(lines[1].substr(0, 3), "40,");  // data row indices, 0-based
  EXPECT_EQ(lines[20].substr(0, 3), "59,");

  // Out of range: the CSV reader's message, naming the images file.
  ProcessResult past = Predict("rows-idx", {"--data=" + File("pixels.bin"), "--rows=50:70"});
  EXPECT_EQ(past.exit_code, 2);
  EXPECT_THAT(past.err, HasSubstr(File("pixels.bin") +
                                  ": --rows ends at row 70 but the file has only 60 data rows"));
}

// Damaged files exit 2 (as a malformed CSV file does) with a message naming
// the file and what is wrong with it.
TEST_F(NtkctlIdxTest, DamagedIdxFilesAreRefusedNamingTheFile) {
  const std::string images = ImagesIdx(*images_);
  const std::string labels = LabelsIdx(images_->labels);
  // A name that says IDX, content that does not (a PGM header).
  WriteFile(File("bad-idx3-ubyte"), "P5\n4 4\n255\n" + std::string(16, 'x'));
  WriteFile(File("short-images.bin"), images.substr(0, images.size() - 5));
  WriteGzip(File("cut.gz"), images);
  WriteFile(File("cut-idx3-ubyte.gz"), ReadFileOrEmpty(File("cut.gz")).substr(0, 20));
  WriteFile(File("short-labels.bin"), labels.substr(0, labels.size() - 1));
  struct Case {
    std::string data, labels;
    std::string named;  // the file the message must name
    std::string want;
  };
  const std::string pixels = File("pixels.bin"), classes = File("classes.bin");
  const std::vector<Case> cases = {
      {File("bad-idx3-ubyte"), classes, File("bad-idx3-ubyte"), "magic 0x50350a34"},
      {File("short-images.bin"), classes, File("short-images.bin"), "truncated"},
      {File("cut-idx3-ubyte.gz"), classes, File("cut-idx3-ubyte.gz"), "gzip"},
      {pixels, File("short-labels.bin"), File("short-labels.bin"), "truncated"},
      {pixels, File("missing-labels.bin"), File("missing-labels.bin"), "cannot open"},
      // Labels given as --data, images as --labels.
      {classes, pixels, classes, "--data needs images"},
      {pixels, File("pixels.bin.gz"), File("pixels.bin.gz"), "--labels needs labels"},
  };
  for (const Case& c : cases) {
    ProcessResult r = Fit("damaged", {"--data=" + c.data, "--labels=" + c.labels});
    EXPECT_EQ(r.exit_code, 2) << c.data << " " << c.labels << "\n" << r.err;
    EXPECT_THAT(r.err, HasSubstr("ntkctl: " + c.named + ":")) << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.want)) << r.err;
  }
  EXPECT_EQ(Ctl({"get", "--model=damaged"}).exit_code, 1);  // nothing was fitted

  // Images of another size than the model's features.
  ASSERT_EQ(Fit("sixteen", {"--data=" + File("pixels.bin"), "--labels=" + File("classes.bin")})
                .exit_code,
            0);
  WriteFile(File("big.bin"), ImagesIdx(MakeImages(3, 5, 1)));
  ProcessResult wrong = Predict("sixteen", {"--data=" + File("big.bin")});
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_THAT(wrong.err, HasSubstr(File("big.bin") +
                                   ": images of 5 x 5 = 25 pixels, the model has 16 features"));
}

TEST_F(NtkctlIdxTest, LabelsOfAnotherCountAreRefusedNamingBothCounts) {
  std::vector<uint8_t> fewer(images_->labels.begin(), images_->labels.begin() + 50);
  WriteFile(File("fifty-labels.bin"), LabelsIdx(fewer));
  ProcessResult r =
      Fit("mismatch", {"--data=" + File("pixels.bin"), "--labels=" + File("fifty-labels.bin")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr(File("pixels.bin") + " has 60 images but " +
                               File("fifty-labels.bin") + " has 50 labels"));
}

TEST_F(NtkctlIdxTest, FlagsThatDoNotApplyAreUsageErrors) {
  const std::string images = "--data=" + File("pixels.bin");
  const std::string labels = "--labels=" + File("classes.bin");
  struct Case {
    std::vector<std::string> args;
    std::string want;
  };
  const std::vector<Case> cases = {
      {{"fit", "--model=u", images}, "--labels=FILE for IDX images"},
      {{"fit", "--model=u", images, labels, "--header"}, "--header: applies to CSV data"},
      {{"fit", "--model=u", images, labels, "--label_column=first"},
       "--label_column: applies to CSV data"},
      {{"fit", "--model=u", images, labels, "--targets=" + File("same.csv")},
       "--labels and --targets"},
      {{"fit", "--model=u", "--data=" + File("same.csv"), labels}, "--labels: applies to IDX"},
      {{"--max_message_mb=0", "fit", "--model=u", images, labels}, "--max_message_mb"},
  };
  for (const Case& c : cases) {
    ProcessResult r = Ctl(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.want << "\n" << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.want));
  }
}

// A fit over 3/4 of --max_message_mb goes in FitStream chunks; stderr (not
// a terminal here) gets one "upload" line per chunk at most, ending at 100%
// with every row, and the model equals the one sent in one message.
TEST_F(NtkctlIdxTest, StreamedFitShowsTheUploadAndGivesTheSameModel) {
  // 200 images of 28 x 28 = 1.25 MB of doubles on the wire > 0.75 MiB.
  const Images im = MakeImages(200, 28, 11);
  WriteGzip(File("mnist-sized.gz"), ImagesIdx(im));
  WriteGzip(File("mnist-sized-labels.gz"), LabelsIdx(im.labels));
  const std::vector<std::string> data = {"--data=" + File("mnist-sized.gz"),
                                         "--labels=" + File("mnist-sized-labels.gz")};
  std::vector<std::string> args = {"--max_message_mb=1", "fit", "--model=streamed",
                                   "--normalize_rows"};
  args.insert(args.end(), data.begin(), data.end());
  ProcessResult streamed = Ctl(args);
  ASSERT_EQ(streamed.exit_code, 0) << streamed.err;
  EXPECT_THAT(streamed.out, ContainsRegex("num_train +200"));

  static const std::regex upload(
      "^fit streamed: ([0-9]+)% upload ([0-9]+)/200 rows elapsed [0-9.]+s eta ");
  std::vector<int> percents, rows;
  for (const std::string& line : Lines(streamed.err)) {
    std::smatch m;
    if (std::regex_search(line, m, upload)) {
      percents.push_back(std::stoi(m[1]));
      rows.push_back(std::stoi(m[2]));
    }
  }
  // At least two chunks (half a message each), increasing, ending complete.
  ASSERT_GE(rows.size(), 2u) << streamed.err;
  for (size_t i = 1; i < rows.size(); ++i) EXPECT_GT(rows[i], rows[i - 1]) << streamed.err;
  EXPECT_EQ(rows.back(), 200);
  EXPECT_EQ(percents.back(), 100);

  std::vector<std::string> one = {"fit", "--model=one-message", "--normalize_rows"};
  one.insert(one.end(), data.begin(), data.end());
  ProcessResult unary = Ctl(one);
  ASSERT_EQ(unary.exit_code, 0) << unary.err;
  EXPECT_THAT(unary.err, Not(HasSubstr("upload")));
  ProcessResult a = Predict("streamed", data);
  ProcessResult b = Predict("one-message", data);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
}

}  // namespace
}  // namespace ntk::testing
