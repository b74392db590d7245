// End-to-end tests of ntkctl against an ntk_server subprocess on 127.0.0.1
// (ephemeral port, temporary --model_dir; tests/testing/ntkctl_fixture.h):
// help, usage errors (exit 2) and file errors with line numbers, health
// exit codes, list/get/delete, background fit + watch, TLS and the bearer
// token. fit / predict / predict-dist: tests/ntkctl_predict_test.cc.
#include <regex>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/mini_json.h"
#include "tests/testing/ntkctl_fixture.h"
#include "tests/testing/server_fixture.h"
#include "tests/testing/subprocess.h"

namespace ntk::testing {
namespace {

using ::testing::HasSubstr;

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
  ASSERT_TRUE(WriteFile(bad, row1 + row2 + short_row));
  ProcessResult r = Bare({"fit", "--model=bad", "--data=" + bad});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("bad.csv:3: expected 65 columns, got 64"));

  // A header line counts: the same short row is then line 4.
  ASSERT_TRUE(WriteFile(bad + ".h",
                                      "header\n" + row1 + row2 + short_row));
  r = Bare({"fit", "--model=bad", "--header", "--data=" + bad + ".h"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("bad.csv.h:4: expected 65 columns, got 64"));

  // A cell that is not a number.
  std::string nan_row = row1;
  nan_row.replace(0, 1, "abc");
  const std::string bad2 = dir_->path() + "/bad2.csv";
  ASSERT_TRUE(WriteFile(bad2, row1 + nan_row));
  r = Bare({"fit", "--model=bad", "--data=" + bad2});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("bad2.csv:2: column 1: cannot parse 'abc'"));

  // A label that is not an integer.
  const std::string bad3 = dir_->path() + "/bad3.csv";
  ASSERT_TRUE(WriteFile(bad3, row1 + good + "2.5\n"));
  r = Bare({"fit", "--model=bad", "--data=" + bad3});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("bad3.csv:2: column 65 (the label)"));

  // A missing file.
  r = Bare({"fit", "--model=bad", "--data=" + dir_->path() + "/nope.csv"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("nope.csv: cannot open"));

  // A row range past the end of the file.
  const std::string two = dir_->path() + "/two.csv";
  ASSERT_TRUE(WriteFile(two, row1 + row2));
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
  const BoundPort port;
  ASSERT_GT(port.port(), 0);
  r = RunProcess({NTKCTL_PATH, "--server=127.0.0.1:" + std::to_string(port.port()),
                  "--deadline_seconds=2", "health"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("NOT_SERVING"));
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

  // The Laplace evidence: no folds needed, a log_evidence column, the
  // greatest one chosen; an unknown criterion is a usage error.
  ProcessResult ev = FitDigits("digits-evidence", {"--select_criterion=evidence",
                                                   "--select_depths=1,2",
                                                   "--select_regularizations=0.1,1"});
  ASSERT_EQ(ev.exit_code, 0) << ev.err;
  EXPECT_THAT(ev.out, HasSubstr("selection: 4 candidates, Laplace evidence on all rows"));
  EXPECT_THAT(ev.out, HasSubstr("log_evidence"));
  double best = -1e300;
  int best_row = -1, chosen_row = -1;
  static const std::regex row_re("^ +([0-3])(\\*?) .* (-?[0-9.e+]+)$");
  for (const std::string& line : Lines(ev.out)) {
    std::smatch r;
    if (!std::regex_search(line, r, row_re)) continue;
    const double e = std::stod(r[3].str());
    if (e > best) {
      best = e;
      best_row = std::stoi(r[1].str());
    }
    if (r[2].str() == "*") chosen_row = std::stoi(r[1].str());
  }
  EXPECT_GE(best_row, 0) << ev.out;
  EXPECT_EQ(chosen_row, best_row) << ev.out;
  ProcessResult bogus = FitDigits("digits-evidence2", {"--select_criterion=marginal"});
  EXPECT_EQ(bogus.exit_code, 2) << bogus.err;
  EXPECT_THAT(bogus.err, HasSubstr("--select_criterion"));
  EXPECT_EQ(Ctl({"delete", "--model=digits-evidence"}).exit_code, 0);
}

// A server that wants TLS and a bearer token: ntkctl's --tls_ca and
// --token_file, and the exit codes when either is missing or wrong.
TEST(NtkctlSecurityTest, TlsCaAndTokenFile) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const absl::Status made = MakeSelfSignedCertificate(dir);
  ASSERT_TRUE(made.ok()) << made;
  const std::string cert = dir.File("cert.pem"), key = dir.File("key.pem");
  const std::string token = dir.path() + "/token";
  ASSERT_TRUE(WriteFile(token, "s3cret-token\n"));
  const std::string wrong = dir.path() + "/wrong";
  ASSERT_TRUE(WriteFile(wrong, "not-the-token\n"));

  auto started = SubprocessServer::Start(
      {"--model_dir=" + dir.path() + "/models", "--tls_cert=" + cert, "--tls_key=" + key,
       "--auth_token_file=" + token});
  ASSERT_TRUE(started.ok()) << started.status();
  SubprocessServer& server = **started;
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
}  // namespace ntk::testing
