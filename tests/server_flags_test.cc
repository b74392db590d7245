// ntk_server's command line (server/flags.h): --help lists the server's
// flags with their help text, and NTK_<FLAG> environment variables set
// flags, with the command line winning.
#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace ntk {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ServerFlagsTest, HelpListsEveryServerFlag) {
  testing::ProcessResult r = testing::RunProcess({NTK_SERVER_PATH, "--help"});
  ASSERT_FALSE(r.timed_out);
  const std::string text = r.out + r.err;
  EXPECT_THAT(text, Not(HasSubstr("No flags matched")));
  for (const char* flag :
       {"--listen", "--model_dir", "--threads", "--blas_threads", "--worker_threads",
        "--max_message_mb", "--max_train_rows", "--max_nystrom_train_rows", "--max_predict_rows",
        "--max_features",
        "--max_classes", "--max_models", "--max_concurrent_fits", "--max_num_samples",
        "--distribution_cache_mb", "--tls_cert", "--tls_key", "--auth_token_file",
        "--shutdown_grace_seconds", "--log_rpcs", "--stream_idle_seconds",
        "--memory_budget_mb", "--http_listen", "--max_request_seconds"}) {
    EXPECT_THAT(text, HasSubstr(std::string(flag) + " (")) << flag;
  }
  EXPECT_THAT(text, HasSubstr("NTK_<FLAG IN CAPITALS>"));
}

TEST(ServerFlagsTest, BadEnvironmentValueIsRefusedNamingTheVariable) {
  testing::ProcessResult r = testing::RunProcess(
      {NTK_SERVER_PATH}, {{"NTK_MAX_TRAIN_ROWS", "many"}});
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("NTK_MAX_TRAIN_ROWS=many"));
}

// The listen address decides where the server fails, so it shows which of
// environment and command line was used (no port is ever bound).
TEST(ServerFlagsTest, EnvironmentSetsFlagsAndTheCommandLineWins) {
  testing::TempDir dir;
  const std::map<std::string, std::string> env = {{"NTK_LISTEN", "256.0.0.1:1"},
                                                   {"NTK_MODEL_DIR", dir.path() + "/m"}};
  testing::ProcessResult from_env = testing::RunProcess({NTK_SERVER_PATH}, env);
  ASSERT_FALSE(from_env.timed_out);
  EXPECT_EQ(from_env.exit_code, 1);
  EXPECT_THAT(from_env.err, HasSubstr("cannot listen on 256.0.0.1:1"));
  EXPECT_THAT(from_env.err, HasSubstr("from " + dir.path() + "/m"));

  testing::ProcessResult from_flag =
      testing::RunProcess({NTK_SERVER_PATH, "--listen=257.0.0.1:1"}, env);
  ASSERT_FALSE(from_flag.timed_out);
  EXPECT_EQ(from_flag.exit_code, 1);
  EXPECT_THAT(from_flag.err, HasSubstr("cannot listen on 257.0.0.1:1"));
}

}  // namespace
}  // namespace ntk
