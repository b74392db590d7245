// ntk/server/flags.h: ntk_server's command line. Every flag is defined in
// server/flags.cc, with its default taken from ServerOptions
// (server/options.h) and its help text; `ntk_server --help` lists them.
//
// Every flag can also be set from the environment as NTK_<FLAG NAME IN
// CAPITALS> (e.g. NTK_LISTEN, NTK_MAX_TRAIN_ROWS): the environment sets the
// default, the command line overrides it.
//
// Thread safety: call once, from main, before any thread starts.
#ifndef NTK_SERVER_FLAGS_H_
#define NTK_SERVER_FLAGS_H_

#include "absl/status/statusor.h"
#include "server/options.h"

namespace ntk::server {

// Applies the NTK_* environment, parses argv (exiting for --help and on a
// malformed flag, as absl does) and returns the options. INVALID_ARGUMENT
// for a bad NTK_* value or TLS / token files that cannot be used.
absl::StatusOr<ServerOptions> ParseServerFlags(int argc, char** argv);

}  // namespace ntk::server

#endif  // NTK_SERVER_FLAGS_H_
