// End-to-end tests of ntkctl against an ntk_server subprocess on 127.0.0.1
// (ephemeral port, temporary --model_dir): fit digits from the .csv.gz,
// predict, predict-dist (JSON checked field by field), list/get/delete,
// health exit codes, usage errors (exit 2) and file errors with line numbers.
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/mini_json.h"
#include "tests/testing/server_fixture.h"
#include "tests/testing/subprocess.h"

namespace {

using ::ntk::testing::Json;
using ::ntk::testing::JsonParser;
using ::ntk::testing::ProcessResult;
using ::ntk::testing::RunProcess;
using ::testing::HasSubstr;

const char kDigits[] =
    "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz";

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// "accuracy 0.9529 (283/297)" -> 0.9529; -1 when missing.
double ParseAccuracy(const std::string& text, int* correct, int* total) {
  std::smatch m;
  static const std::regex re("accuracy ([0-9.]+) \\(([0-9]+)/([0-9]+)\\)");
  if (!std::regex_search(text, m, re)) return -1;
  *correct = std::stoi(m[2]);
  *total = std::stoi(m[3]);
  return std::stod(m[1]);
}

// ---- Fixture: one server for the whole suite ------------------------------------

class NtkctlTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ntk::testing::TempDir();
    auto s = ntk::testing::SubprocessServer::Start({"--model_dir=" + dir_->path() + "/models"});
    if (s.ok()) {
      server_ = s->release();
    } else {
      start_error_ = new std::string(s.status().ToString());
    }
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    delete dir_;
    dir_ = nullptr;
    delete start_error_;
    start_error_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr) << "ntk_server did not start: " << *start_error_;
  }

  // ntkctl --server=<ours> args...
  static ProcessResult Ctl(std::vector<std::string> args,
                           const std::map<std::string, std::string>& env = {}) {
    std::vector<std::string> argv = {NTKCTL_PATH,
                                     "--server=" + server_->address()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::map<std::string, std::string> e = {{"NTK_SERVER", ""}};
    for (const auto& [k, v] : env) e[k] = v;
    return RunProcess(argv, e);
  }
  // ntkctl without --server (for usage tests that must not need a server).
  static ProcessResult Bare(std::vector<std::string> args) {
    std::vector<std::string> argv = {NTKCTL_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, {{"NTK_SERVER", ""}});
  }

  // Fits `id` on digits rows 0:400 (rows scaled to norm sqrt(d)).
  static ProcessResult FitDigits(const std::string& id,
                                 std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"fit",       "--model=" + id,
                                     std::string("--data=") + kDigits,
                                     "--rows=0:400", "--normalize_rows"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Ctl(args);
  }

  // The plain-text digits CSV (decompressed with gzip -dc) in the temp dir.
  static std::string PlainDigits() {
    const std::string path = dir_->path() + "/digits.csv";
    if (ntk::testing::ReadFileOrEmpty(path).empty()) {
      ProcessResult r = RunProcess(
          {"/bin/sh", "-c", std::string("gzip -dc ") + kDigits + " > " + path});
      EXPECT_EQ(r.exit_code, 0) << r.err;
    }
    return path;
  }

  static ntk::testing::TempDir* dir_;
  static ntk::testing::SubprocessServer* server_;
  static std::string* start_error_;
};

ntk::testing::TempDir* NtkctlTest::dir_ = nullptr;
ntk::testing::SubprocessServer* NtkctlTest::server_ = nullptr;
std::string* NtkctlTest::start_error_ = nullptr;

// ---- Help and usage errors (no RPC needed) --------------------------------------

TEST_F(NtkctlTest, HelpExitsZeroEverywhere) {
  ProcessResult r = Bare({"--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("predict-dist"));
  EXPECT_THAT(r.out, HasSubstr("Exit codes"));
  for (const char* cmd : {"fit", "predict", "predict-dist", "list", "get",
                          "delete", "health"}) {
    ProcessResult h = Bare({cmd, "--help"});
    EXPECT_EQ(h.exit_code, 0) << cmd << ": " << h.err;
    EXPECT_THAT(h.out, HasSubstr(std::string("Usage: ntkctl ") + cmd)) << cmd;
    EXPECT_THAT(h.out, HasSubstr("--server")) << cmd;  // global flags listed
  }
  EXPECT_THAT(Bare({"fit", "--help"}).out, HasSubstr("--activation"));
  EXPECT_THAT(Bare({"help", "predict-dist"}).out, HasSubstr("--method"));
}

TEST_F(NtkctlTest, UsageErrorsExitTwoAndNameTheFlag) {
  ProcessResult r = Bare({});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("Usage"));

  r = Bare({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("unknown command 'frobnicate'"));

  r = Bare({"fit", "--depth=abc", std::string("--data=") + kDigits});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--depth"));

  r = Bare({"list", "--depth=3"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("list does not take --depth"));

  r = Bare({"list", "--no_such_flag"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("unknown flag '--no_such_flag'"));

  r = Bare({"fit", "--activation=tanh", std::string("--data=") + kDigits});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--activation"));

  r = Bare({"fit", "--rows=50:10", std::string("--data=") + kDigits});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--rows"));

  r = Bare({"predict-dist", "--model=x", "--data=y.csv", "--method=bayes"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--method"));

  r = Bare({"get"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--model"));
}

TEST_F(NtkctlTest, BadFileLinesAreReportedWithTheirNumber) {
  // Two good rows of 64 features + label, then a row with one value short.
  std::string good;
  for (int j = 0; j < 64; ++j) good += std::to_string(j % 7) + ",";
  const std::string row1 = good + "1\n";
  const std::string row2 = good + "2\n";
  std::string short_row;
  for (int j = 0; j < 63; ++j) short_row += "0,";
  short_row += "3\n";
  const std::string bad = dir_->path() + "/bad.csv";
  ASSERT_TRUE(ntk::testing::WriteFile(bad, row1 + row2 + short_row));
  ProcessResult r = Bare({"fit", "--model=bad", "--data=" + bad});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("bad.csv:3: expected 65 columns, got 64"));

  // A header line counts: the same short row is then line 4.
  ASSERT_TRUE(ntk::testing::WriteFile(bad + ".h",
                                      "header\n" + row1 + row2 + short_row));
  r = Bare({"fit", "--model=bad", "--header", "--data=" + bad + ".h"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("bad.csv.h:4: expected 65 columns, got 64"));

  // A cell that is not a number.
  std::string nan_row = row1;
  nan_row.replace(0, 1, "abc");
  const std::string bad2 = dir_->path() + "/bad2.csv";
  ASSERT_TRUE(ntk::testing::WriteFile(bad2, row1 + nan_row));
  r = Bare({"fit", "--model=bad", "--data=" + bad2});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("bad2.csv:2: column 1: cannot parse 'abc'"));

  // A label that is not an integer.
  const std::string bad3 = dir_->path() + "/bad3.csv";
  ASSERT_TRUE(ntk::testing::WriteFile(bad3, row1 + good + "2.5\n"));
  r = Bare({"fit", "--model=bad", "--data=" + bad3});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("bad3.csv:2: column 65 (the label)"));

  // A missing file.
  r = Bare({"fit", "--model=bad", "--data=" + dir_->path() + "/nope.csv"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("nope.csv: cannot open"));

  // A row range past the end of the file.
  const std::string two = dir_->path() + "/two.csv";
  ASSERT_TRUE(ntk::testing::WriteFile(two, row1 + row2));
  r = Bare({"fit", "--model=bad", "--data=" + two, "--rows=1:10"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("the file has only 2 data rows"));
}

// ---- Against the server --------------------------------------------------------

TEST_F(NtkctlTest, HealthExitCodes) {
  ProcessResult r = Ctl({"health"});
  EXPECT_EQ(r.exit_code, 0) << r.err << "\nserver log:\n" << server_->ReadStderr();
  EXPECT_THAT(r.out, HasSubstr("SERVING"));

  // NTK_SERVER is used when --server is not given.
  r = RunProcess({NTKCTL_PATH, "health"}, {{"NTK_SERVER", server_->address()}});
  EXPECT_EQ(r.exit_code, 0) << r.err;

  // Nobody listens on a port this test holds bound without listening.
  const ntk::testing::BoundPort port;
  ASSERT_GT(port.port(), 0);
  r = RunProcess({NTKCTL_PATH, "--server=127.0.0.1:" + std::to_string(port.port()),
                  "--deadline_seconds=2", "health"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("NOT_SERVING"));
}

TEST_F(NtkctlTest, FitPredictDigitsFromGzip) {
  ProcessResult fit = FitDigits("digits-cli", {"--class_names=0,1,2,3,4,5,6,7,8,9"});
  ASSERT_EQ(fit.exit_code, 0) << fit.err << "\nserver log:\n" << server_->ReadStderr();
  EXPECT_THAT(fit.out, ::testing::ContainsRegex("num_train +400"));
  EXPECT_THAT(fit.out, ::testing::ContainsRegex("num_features +64"));
  EXPECT_THAT(fit.out, ::testing::ContainsRegex("num_classes +10"));

  ProcessResult pred = Ctl({"predict", "--model=digits-cli",
                            std::string("--data=") + kDigits, "--rows=1500:"});
  ASSERT_EQ(pred.exit_code, 0) << pred.err;
  int correct = 0, total = 0;
  const double acc = ParseAccuracy(pred.out, &correct, &total);
  EXPECT_EQ(total, 297);  // rows 1500..1796 of 1797
  // Bound: trained on rows 0:400 and scored on rows 1500:1797, scikit-learn's
  // 1-nearest-neighbour gets 0.919 and an RBF SVM (gamma 0.001) 0.929; this
  // NTK model measured 0.906. 0.8 leaves room for a different but correct
  // kernel/solver and still fails for misaligned rows, labels or classes
  // (chance is 0.1).
  EXPECT_GT(acc, 0.8) << pred.out;
  // One table row per test point, plus header and accuracy lines.
  EXPECT_EQ(Lines(pred.out).size(), 297u + 2u);

  // The same rows from the plain CSV, and from a copy with a header line,
  // give exactly the same csv output as the gzip file.
  const std::string plain = PlainDigits();
  ProcessResult a = Ctl({"predict", "--model=digits-cli", "--format=csv",
                         std::string("--data=") + kDigits, "--rows=1500:1600"});
  ProcessResult b = Ctl({"predict", "--model=digits-cli", "--format=csv",
                         "--data=" + plain, "--rows=1500:1600"});
  const std::string with_header = dir_->path() + "/digits_h.csv";
  ASSERT_TRUE(ntk::testing::WriteFile(
      with_header, "p0,p1,...,label\n" + ntk::testing::ReadFileOrEmpty(plain)));
  ProcessResult c = Ctl({"predict", "--model=digits-cli", "--format=csv",
                         "--header", "--data=" + with_header,
                         "--rows=1500:1600"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(Lines(a.out).size(), 101u);  // header + 100 rows
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.out, c.out);

  // Unlabeled data (64 columns) is accepted too: no accuracy then.
  const std::string unlabeled = dir_->path() + "/unlabeled.csv";
  {
    std::string text;
    std::stringstream ss(ntk::testing::ReadFileOrEmpty(plain));
    std::string line;
    for (int i = 0; i < 5 && std::getline(ss, line); ++i) {
      text += line.substr(0, line.rfind(',')) + "\n";
    }
    ASSERT_TRUE(ntk::testing::WriteFile(unlabeled, text));
  }
  ProcessResult u = Ctl({"predict", "--model=digits-cli", "--data=" + unlabeled});
  EXPECT_EQ(u.exit_code, 0) << u.err;
  EXPECT_THAT(u.out, ::testing::Not(HasSubstr("accuracy")));
  EXPECT_EQ(Lines(u.out).size(), 1u + 5u);

  // An unknown model is an RPC error: exit 1 with the code.
  ProcessResult nf = Ctl({"predict", "--model=no-such-model",
                          std::string("--data=") + kDigits, "--rows=0:5"});
  EXPECT_EQ(nf.exit_code, 1);
  EXPECT_THAT(nf.err, HasSubstr("NOT_FOUND"));
}

TEST_F(NtkctlTest, PredictDistJsonIsCompleteAndNormalized) {
  ProcessResult fit = FitDigits("digits-dist");
  ASSERT_EQ(fit.exit_code, 0) << fit.err << "\nserver log:\n" << server_->ReadStderr();
  ProcessResult r = Ctl({"predict-dist", "--model=digits-dist", "--format=json",
                         std::string("--data=") + kDigits, "--rows=1500:1600"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 100u);
  const char* kNumbers[] = {"max_probability", "predictive_entropy",
                            "expected_entropy", "mutual_information"};
  const char* kArrays[] = {"probability_mean", "probability_std",
                           "probability_covariance", "logit_mean",
                           "logit_covariance"};
  for (size_t i = 0; i < lines.size(); ++i) {
    SCOPED_TRACE("line " + std::to_string(i + 1) + ": " + lines[i].substr(0, 200));
    Json j;
    ASSERT_TRUE(JsonParser(lines[i]).Parse(&j));
    ASSERT_EQ(j.type, Json::kObject);
    for (const char* k : {"row", "label", "true_label", "label_name", "method"}) {
      ASSERT_TRUE(j.object.count(k)) << k;
    }
    EXPECT_EQ(j.object["row"].number, 1500.0 + i);
    for (const char* k : kNumbers) {
      ASSERT_TRUE(j.object.count(k)) << k;
      ASSERT_EQ(j.object[k].type, Json::kNumber) << k;  // null = not finite
      EXPECT_TRUE(std::isfinite(j.object[k].number)) << k;
    }
    for (const char* k : kArrays) {
      ASSERT_TRUE(j.object.count(k)) << k;
      ASSERT_EQ(j.object[k].type, Json::kArray) << k;
      for (const Json& v : j.object[k].array) {
        ASSERT_EQ(v.type, Json::kNumber) << k;
        EXPECT_TRUE(std::isfinite(v.number)) << k;
      }
    }
    const std::vector<Json>& p = j.object["probability_mean"].array;
    ASSERT_EQ(p.size(), 10u);
    EXPECT_EQ(j.object["probability_covariance"].array.size(), 100u);
    EXPECT_EQ(j.object["logit_mean"].array.size(), 10u);
    double sum = 0, best = -1;
    int argmax = -1;
    for (size_t k = 0; k < p.size(); ++k) {
      EXPECT_GE(p[k].number, 0.0);
      sum += p[k].number;
      if (p[k].number > best) best = p[k].number, argmax = static_cast<int>(k);
    }
    // Tolerance: a mean of softmax vectors sums to 1 up to double rounding
    // (~1e-16 per term, printed with 17 digits); 1e-9 allows that with a
    // wide margin but catches unnormalized approximations.
    EXPECT_NEAR(sum, 1.0, 1e-9);
    EXPECT_EQ(j.object["label"].number, argmax);
    EXPECT_EQ(j.object["max_probability"].number, best);
    // MI is defined as H[E p] - E[H p]; same rounding argument as above.
    EXPECT_NEAR(j.object["mutual_information"].number,
                j.object["predictive_entropy"].number -
                    j.object["expected_entropy"].number,
                1e-9);
  }

  // Table with --top: the 5 points of largest MI, largest first.
  ProcessResult t = Ctl({"predict-dist", "--model=digits-dist", "--top=5",
                         std::string("--data=") + kDigits, "--rows=1500:1600"});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  std::vector<std::string> tl = Lines(t.out);
  ASSERT_EQ(tl.size(), 2u + 5u + 1u);  // "# method", header, 5 rows, accuracy
  double last_mi = 1e300;
  for (int i = 2; i < 7; ++i) {
    std::stringstream ss(tl[i]);
    std::string row, label, pmax, h, eh, mi;
    ss >> row >> label >> pmax >> h >> eh >> mi;
    const double v = std::stod(mi);
    EXPECT_LE(v, last_mi) << tl[i];
    last_mi = v;
  }

  // The default fit (hard labels, cross-entropy, no regularization given) is
  // regime 2b, where LAPLACE_POSTERIOR does not apply: FAILED_PRECONDITION,
  // exit 1 with the code and message.
  ProcessResult lp = Ctl({"predict-dist", "--model=digits-dist",
                          "--method=laplace_posterior",
                          std::string("--data=") + kDigits, "--rows=1500:1510"});
  EXPECT_EQ(lp.exit_code, 1) << lp.out;
  EXPECT_THAT(lp.err, HasSubstr("FAILED_PRECONDITION"));
}

TEST_F(NtkctlTest, SoftTargetsFit) {
  // Features without a label column and smoothed one-hot targets.
  const std::string plain = PlainDigits();
  std::stringstream ss(ntk::testing::ReadFileOrEmpty(plain));
  std::string line, features, targets;
  for (int i = 0; i < 200 && std::getline(ss, line); ++i) {
    const size_t comma = line.rfind(',');
    features += line.substr(0, comma) + "\n";
    const int label = std::stoi(line.substr(comma + 1));
    for (int k = 0; k < 10; ++k) {
      targets += std::string(k ? "," : "") + (k == label ? "0.91" : "0.01");
    }
    targets += "\n";
  }
  const std::string fpath = dir_->path() + "/soft_x.csv";
  const std::string tpath = dir_->path() + "/soft_y.csv";
  ASSERT_TRUE(ntk::testing::WriteFile(fpath, features));
  ASSERT_TRUE(ntk::testing::WriteFile(tpath, targets));
  ProcessResult r = Ctl({"fit", "--model=digits-soft", "--data=" + fpath,
                         "--targets=" + tpath, "--normalize_rows",
                         "--format=json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json j;
  ASSERT_TRUE(JsonParser(Lines(r.out)[0]).Parse(&j)) << r.out;
  EXPECT_EQ(j.object["model_id"].str, "digits-soft");
  EXPECT_EQ(j.object["num_train"].number, 200);
  EXPECT_EQ(j.object["spec"].object["num_classes"].number, 10);

  // A targets file whose row count does not match is refused before any RPC.
  ASSERT_TRUE(ntk::testing::WriteFile(tpath + ".short", "0.5,0.5\n"));
  r = Ctl({"fit", "--model=digits-soft2", "--data=" + fpath,
           "--targets=" + tpath + ".short"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("soft_y.csv.short"));
}

TEST_F(NtkctlTest, ListGetDelete) {
  ProcessResult fit = FitDigits("digits-crud");
  ASSERT_EQ(fit.exit_code, 0) << fit.err;

  ProcessResult list = Ctl({"list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_THAT(list.out, HasSubstr("digits-crud"));

  ProcessResult lj = Ctl({"list", "--format=json"});
  ASSERT_EQ(lj.exit_code, 0) << lj.err;
  bool found = false;
  for (const std::string& l : Lines(lj.out)) {
    Json j;
    ASSERT_TRUE(JsonParser(l).Parse(&j)) << l;
    found |= j.object["model_id"].str == "digits-crud";
  }
  EXPECT_TRUE(found) << lj.out;

  ProcessResult get = Ctl({"get", "--model=digits-crud", "--format=json"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  Json g;
  ASSERT_TRUE(JsonParser(get.out).Parse(&g)) << get.out;
  EXPECT_EQ(g.object["num_features"].number, 64);
  EXPECT_TRUE(g.object["spec"].object["preprocessing"].object["normalize_rows"].b);

  // Same id again without --replace: ALREADY_EXISTS; with --replace: ok.
  ProcessResult again = FitDigits("digits-crud");
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("ALREADY_EXISTS"));
  EXPECT_EQ(FitDigits("digits-crud", {"--replace"}).exit_code, 0);

  ProcessResult del = Ctl({"delete", "--model=digits-crud"});
  EXPECT_EQ(del.exit_code, 0) << del.err;
  ProcessResult gone = Ctl({"get", "--model=digits-crud"});
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_THAT(gone.err, HasSubstr("NOT_FOUND"));
  EXPECT_THAT(Ctl({"list"}).out, ::testing::Not(HasSubstr("digits-crud")));
  EXPECT_EQ(Ctl({"delete", "--model=digits-crud"}).exit_code, 1);
}

// fit runs in the background and is watched (docs/cli.md "fit", "watch"):
// a fit that fails in core (labels up to 9 with --num_classes=2, a check of
// core's, so the Fit call itself is accepted) exits 1 with the fit's error;
// watch prints a READY model, and an unknown id is NOT_FOUND.
TEST_F(NtkctlTest, FitFailureAndWatch) {
  ProcessResult bad = FitDigits("digits-bad", {"--num_classes=2"});
  EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
  EXPECT_THAT(bad.err, HasSubstr("FAILED"));
  EXPECT_THAT(bad.err, HasSubstr("label"));
  ProcessResult get = Ctl({"get", "--model=digits-bad"});
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_THAT(get.out, HasSubstr("FAILED"));
  EXPECT_EQ(Ctl({"delete", "--model=digits-bad"}).exit_code, 0);

  ASSERT_EQ(FitDigits("digits-watch").exit_code, 0);
  ProcessResult w = Ctl({"watch", "--model=digits-watch", "--format=json"});
  ASSERT_EQ(w.exit_code, 0) << w.err;
  Json j;
  ASSERT_TRUE(JsonParser(w.out).Parse(&j)) << w.out;
  EXPECT_EQ(j.object["state"].str, "READY");
  ProcessResult nope = Ctl({"watch", "--model=digits-nope"});
  EXPECT_EQ(nope.exit_code, 1);
  EXPECT_THAT(nope.err, HasSubstr("NOT_FOUND"));
  EXPECT_EQ(Ctl({"delete", "--model=digits-watch"}).exit_code, 0);
}

// Model selection (docs/cli.md "Model selection"): the table of every
// candidate with the chosen one marked, the model fitted with its spec; a
// --select_* list without --select_folds is a usage error, a bad value is
// the server's INVALID_ARGUMENT naming the list and index.
TEST_F(NtkctlTest, FitWithSelectionPrintsTheTable) {
  ProcessResult fit = FitDigits("digits-select", {"--select_folds=3", "--select_depths=1,2",
                                                  "--select_regularizations=0.1,1"});
  ASSERT_EQ(fit.exit_code, 0) << fit.err;
  EXPECT_THAT(fit.out, HasSubstr("selection: 4 candidates, 3-fold cross-validation"));
  // Rows 0-3, exactly one marked chosen; its depth is the model's.
  std::smatch m;
  static const std::regex chosen_re("\\n +([0-3])\\* +([12]) ");
  ASSERT_TRUE(std::regex_search(fit.out, m, chosen_re)) << fit.out;
  EXPECT_THAT(fit.out, ::testing::ContainsRegex("depth +" + m[2].str() + "\n"));
  int marked = 0;
  static const std::regex marked_re("^ +[0-9]+\\* ");
  for (const std::string& line : Lines(fit.out)) marked += std::regex_search(line, marked_re);
  EXPECT_EQ(marked, 1) << fit.out;

  ProcessResult usage = FitDigits("digits-select2", {"--select_depths=1,2"});
  EXPECT_EQ(usage.exit_code, 2) << usage.err;
  EXPECT_THAT(usage.err, HasSubstr("--select_folds"));
  ProcessResult bad = FitDigits("digits-select3", {"--select_folds=3",
                                                   "--select_regularizations=0.1,-1"});
  EXPECT_EQ(bad.exit_code, 1) << bad.err;
  EXPECT_THAT(bad.err, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(bad.err, HasSubstr("selection.regularizations[1]"));
  EXPECT_EQ(Ctl({"delete", "--model=digits-select"}).exit_code, 0);
}

// A server that wants TLS and a bearer token: ntkctl's --tls_ca and
// --token_file, and the exit codes when either is missing or wrong.
TEST(NtkctlSecurityTest, TlsCaAndTokenFile) {
  ntk::testing::TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const absl::Status made = ntk::testing::MakeSelfSignedCertificate(dir);
  ASSERT_TRUE(made.ok()) << made;
  const std::string cert = dir.File("cert.pem"), key = dir.File("key.pem");
  const std::string token = dir.path() + "/token";
  ASSERT_TRUE(ntk::testing::WriteFile(token, "s3cret-token\n"));
  const std::string wrong = dir.path() + "/wrong";
  ASSERT_TRUE(ntk::testing::WriteFile(wrong, "not-the-token\n"));

  auto started = ntk::testing::SubprocessServer::Start(
      {"--model_dir=" + dir.path() + "/models", "--tls_cert=" + cert, "--tls_key=" + key,
       "--auth_token_file=" + token});
  ASSERT_TRUE(started.ok()) << started.status();
  ntk::testing::SubprocessServer& server = **started;
  auto ctl = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {NTKCTL_PATH, "--server=" + server.address(),
                                     "--deadline_seconds=5"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, {{"NTK_SERVER", ""}});
  };

  ProcessResult ok = ctl({"--tls_ca=" + cert, "--token_file=" + token, "list"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err << "\nserver log:\n" << server.ReadStderr();
  EXPECT_THAT(ok.out, HasSubstr("MODEL_ID"));

  ProcessResult no_token = ctl({"--tls_ca=" + cert, "list"});
  EXPECT_EQ(no_token.exit_code, 1);
  EXPECT_THAT(no_token.err, HasSubstr("UNAUTHENTICATED"));

  ProcessResult bad_token = ctl({"--tls_ca=" + cert, "--token_file=" + wrong, "list"});
  EXPECT_EQ(bad_token.exit_code, 1);
  EXPECT_THAT(bad_token.err, HasSubstr("UNAUTHENTICATED"));

  // Plaintext to a TLS server fails to connect: an RPC error, exit 1.
  ProcessResult plain = ctl({"--token_file=" + token, "list"});
  EXPECT_EQ(plain.exit_code, 1);

  // Unreadable credential files are usage errors naming the flag.
  ProcessResult missing = ctl({"--tls_ca=" + dir.path() + "/nope.pem", "list"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("--tls_ca"));
  ProcessResult empty_token = ctl({"--tls_ca=" + cert, "--token_file=" + dir.path() + "/nope", "list"});
  EXPECT_EQ(empty_token.exit_code, 2);
  EXPECT_THAT(empty_token.err, HasSubstr("--token_file"));
}

}  // namespace
