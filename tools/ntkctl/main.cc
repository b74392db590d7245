// ntkctl: command-line client for ntk-serve (see docs/cli.md).
//
//   ntkctl [global flags] <command> [flags]
//
// Commands: fit, predict, predict-dist, list, get, delete, health, help.
// Exit codes: 0 ok, 1 the server (or the connection) returned an error,
// 2 usage or input error (bad flag, unreadable or malformed data file).
//
// Flags are Abseil flags, but ntkctl parses the command line itself so that
// every command accepts only its own flags, `--help` works per command, and
// every usage error exits with 2 (absl::ParseCommandLine exits with 1).
#include <algorithm>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tools/ntkctl/cli.h"

namespace ntkctl {
namespace {

// The commands in the order `ntkctl --help` lists them.
const std::vector<Command>& Commands() {
  static const std::vector<Command>* commands = [] {
    auto* v = new std::vector<Command>{FitCommand(), PredictCommand(),
                                       PredictDistCommand(), WatchCommand()};
    for (Command& c : ModelCommands()) v->push_back(std::move(c));
    return v;
  }();
  return *commands;
}

void PrintMainHelp(std::ostream& os) {
  os << "ntkctl: command-line client for ntk-serve (infinite-width NTK "
        "classifiers).\n\n"
        "Usage: ntkctl [global flags] <command> [flags]\n\nCommands:\n";
  for (const Command& c : Commands()) {
    os << absl::StrFormat("  %-14s %s\n", c.name, c.summary);
  }
  os << "\n" << kGlobalHelp
     << "\n`ntkctl <command> --help` shows a command's flags.\n"
        "Exit codes: 0 ok, 1 RPC error (code and message printed), 2 usage or "
        "input error.\n";
}

const Command* FindCommand(const std::string& name) {
  for (const Command& c : Commands()) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

void PrintCommandHelp(const Command& c, std::ostream& os) {
  os << "ntkctl " << c.name << ": " << c.summary << "\n\n" << c.help << "\n"
     << kGlobalHelp;
}

// ---- Command line ---------------------------------------------------------------

bool IsKnownFlag(const std::string& name) {
  static const std::set<std::string> known = [] {
    std::set<std::string> s(kGlobalFlags.begin(), kGlobalFlags.end());
    for (const Command& c : Commands()) s.insert(c.flags.begin(), c.flags.end());
    return s;
  }();
  return known.count(name) > 0;
}

}  // namespace
}  // namespace ntkctl

int main(int argc, char** argv) {
  using namespace ntkctl;  // NOLINT: main is the only function here.
  std::vector<std::string> positional;
  bool want_help = false;
  struct Given {
    std::string name;
    std::string value;
    std::string text;  // as typed, for messages
  };
  std::vector<Given> given;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      for (++i; i < argc; ++i) positional.push_back(argv[i]);
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      positional.push_back(arg);
      continue;
    }
    std::string body = arg.substr(arg[1] == '-' ? 2 : 1);
    std::string name = body, value;
    bool has_value = false;
    if (size_t eq = body.find('='); eq != std::string::npos) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
      has_value = true;
    }
    if (name == "help" || name == "h") {
      want_help = true;
      continue;
    }
    bool negated = false;
    if (!IsKnownFlag(name) && absl::StartsWith(name, "no") &&
        IsKnownFlag(name.substr(2))) {
      negated = true;
      name = name.substr(2);
    }
    absl::CommandLineFlag* flag =
        IsKnownFlag(name) ? absl::FindCommandLineFlag(name) : nullptr;
    if (flag == nullptr) return Usage("unknown flag '" + arg + "'");
    const bool is_bool = flag->IsOfType<bool>();
    if (negated) {
      if (!is_bool || has_value) return Usage("unknown flag '" + arg + "'");
      value = "false";
    } else if (!has_value) {
      if (is_bool) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return Usage("flag '" + arg + "' needs a value");
      }
    }
    given.push_back({name, value, arg});
  }

  const Command* cmd = nullptr;
  if (!positional.empty()) {
    std::string name = positional[0];
    if (name == "help") {
      if (positional.size() > 1) {
        const Command* c = FindCommand(positional[1]);
        if (c == nullptr) return Usage("unknown command '" + positional[1] + "'");
        PrintCommandHelp(*c, std::cout);
      } else {
        PrintMainHelp(std::cout);
      }
      return kExitOk;
    }
    cmd = FindCommand(name);
    if (cmd == nullptr) return Usage("unknown command '" + name + "'");
  }
  if (want_help) {
    if (cmd != nullptr) {
      PrintCommandHelp(*cmd, std::cout);
    } else {
      PrintMainHelp(std::cout);
    }
    return kExitOk;
  }
  if (cmd == nullptr) {
    PrintMainHelp(std::cerr);
    return kExitUsage;
  }
  // `ntkctl get ID` is short for `ntkctl get --model=ID` (every command
  // that takes --model).
  const bool takes_model =
      std::count(cmd->flags.begin(), cmd->flags.end(), "model") > 0;
  if (positional.size() == 2 && takes_model &&
      std::none_of(given.begin(), given.end(),
                   [](const Given& g) { return g.name == "model"; })) {
    given.push_back({"model", positional[1], positional[1]});
  } else if (positional.size() > 1) {
    return Usage(absl::StrCat(cmd->name, ": unexpected argument '",
                              positional[1], "'"));
  }
  for (const Given& g : given) {
    const bool allowed =
        std::count(kGlobalFlags.begin(), kGlobalFlags.end(), g.name) > 0 ||
        std::count(cmd->flags.begin(), cmd->flags.end(), g.name) > 0;
    if (!allowed) {
      return Usage(absl::StrCat(cmd->name, " does not take --", g.name,
                                " (see ntkctl ", cmd->name, " --help)"));
    }
    std::string error;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(g.name);
    if (!flag->ParseFrom(g.value, &error)) {
      return Usage(absl::StrCat("--", g.name, ": ", error));
    }
    ExplicitFlags().insert(g.name);
  }
  return cmd->run();
}
