// ntk/tools/ntkctl/cli.h: what ntkctl's files share: the flags several
// files read (declared here, defined in flags.cc; a flag only one file reads
// is defined in that file, as Abseil recommends), the exit codes and error printers, the
// Command table entry each command file provides, and the pieces several
// commands use (connecting, reading --data, --format/--model checks).
//
// Layout: main.cc parses the command line and dispatches; flags.cc holds the
// shared flags and help text; common.cc the shared pieces; fit.cc,
// predict.cc, predict_dist.cc, models.cc (list/get/delete/health) and
// watch.cc (watch) one command group each, with its help text next to its
// code; progress.h the progress display (upload and fit) of fit and watch;
// csv.h and idx.h the data file readers (library ntkctl_data).
//
// Thread safety: ntkctl is single-threaded; nothing here is thread-safe
// (ExplicitFlags() is a process-wide set filled once by main).
#ifndef NTK_TOOLS_NTKCTL_CLI_H_
#define NTK_TOOLS_NTKCTL_CLI_H_

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/status.h"
#include "client/client.h"
#include "proto/ntk/v1/ntk.pb.h"
#include "tools/ntkctl/csv.h"

ABSL_DECLARE_FLAG(std::string, model);
ABSL_DECLARE_FLAG(std::string, data);
ABSL_DECLARE_FLAG(std::string, rows);
ABSL_DECLARE_FLAG(std::string, format);
ABSL_DECLARE_FLAG(bool, verbose);

namespace ntkctl {

constexpr int kExitOk = 0;
constexpr int kExitRpc = 1;
constexpr int kExitUsage = 2;

// Per-call deadlines (seconds) when --deadline_seconds is 0.
constexpr double kLongDeadline = 600;
constexpr double kShortDeadline = 10;

// Flags given explicitly on the command line (filled by main).
std::set<std::string>& ExplicitFlags();
bool IsSet(const std::string& name);

// Print "ntkctl: ..." to stderr and return the exit code to use.
int Usage(const std::string& msg);                           // kExitUsage
int InputError(const absl::Status& s);                       // kExitUsage
int RpcError(const std::string& what, const absl::Status& s);  // kExitRpc

// Help text shared by the commands: the global flags and the --data flags.
extern const char kGlobalHelp[];
extern const char kDataHelp[];
// Flags every command accepts.
extern const std::vector<std::string> kGlobalFlags;

// One ntkctl command: its name, help and accepted flags, and what it runs.
struct Command {
  std::string name;
  std::string summary;
  std::string help;                // usage and flags
  std::vector<std::string> flags;  // accepted besides the global ones
  std::function<int()> run;
};

// The commands, one per file (see Layout above).
Command FitCommand();
Command PredictCommand();
Command PredictDistCommand();
std::vector<Command> ModelCommands();  // list, get, delete, health
Command WatchCommand();                // watch.cc

// Follows `model_id` with WatchModel, showing progress on stderr (a bar on
// a terminal, plain lines otherwise), then prints the model (PrintModel).
// Returns the exit code: kExitRpc when the fit FAILED or the watch failed.
int WatchFit(ntk::Client* client, const std::string& model_id);

// Connects with the global flags; on failure prints the error, sets
// *exit_code and returns null.
std::unique_ptr<ntk::Client> Connect(double default_deadline_s, int* exit_code);

// Reads --data: CSV with --header/--rows/--label_column, or IDX images
// (recognized by name or magic, ntkctl::IsIdxFile) with --rows and --labels.
// expected_features < 0 when unknown. Returns false (with *exit_code set) on error.
bool LoadData(int expected_features, LabelColumn auto_means, CsvData* out,
              int* exit_code);

// False (with *exit_code set) unless --format is one of `allowed`.
bool CheckFormat(std::initializer_list<const char*> allowed, int* exit_code);
// False (with *exit_code set) when --model is empty.
bool RequireModel(int* exit_code);

// What a command that only talks to the server (list, get, delete, health,
// watch) checks before it connects, and its deadline.
struct ServerCommand {
  bool table_or_json = false;  // --format must be table or json
  bool needs_model = false;    // --model must be given (RequireModel)
  double default_deadline_s = kShortDeadline;
};

// How those commands start, in one place: the checks of `command`
// (--format, then --model), Connect, then `run` with the client. Returns
// run's exit code, or that of the first step that failed (its error
// printed).
int RunOnServer(const ServerCommand& command, const std::function<int(ntk::Client&)>& run);

// The checks predict and predict-dist start with: --format is table, json or
// csv, --model and --data are given. False (with *exit_code set) otherwise.
bool CheckRowCommandFlags(int* exit_code);

// Sets *out to the value paired with --`flag`'s `value` in `choices`; else
// prints "--flag: expected a, b or c, got 'value'", sets *exit_code and
// returns false.
bool ParseChoice(const std::string& flag, const std::string& value,
                 const std::vector<std::pair<std::string, int>>& choices,
                 int* out, int* exit_code);

// Prints a model to stdout as --format asks: one JSON line, or the summary.
void PrintModel(const ntk::v1::ModelInfo& info);

// Prints "accuracy A (k/n)" when the data had labels.
void ReportAccuracy(const std::vector<int>& truth,
                    const std::vector<int>& predicted, std::ostream& os);

// Connects (long deadline), fetches --model (for its feature count and class
// names) and reads --data; on failure prints the error, sets *rc and returns
// null.
std::unique_ptr<ntk::Client> ConnectModelAndData(ntk::v1::ModelInfo* info,
                                                 CsvData* data, int* rc);

}  // namespace ntkctl

#endif  // NTK_TOOLS_NTKCTL_CLI_H_
