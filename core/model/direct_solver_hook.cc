// ntk/core/model/direct_solver_hook.cc: the process-wide hook of
// direct_solver_hook.h.
#include "core/model/direct_solver_hook.h"

#include <utility>

namespace ntk {
namespace {

ExactDirectSolver& Hook() {
  static ExactDirectSolver* hook = new ExactDirectSolver;  // never destroyed
  return *hook;
}

}  // namespace

void SetExactDirectSolver(ExactDirectSolver solver) { Hook() = std::move(solver); }

const ExactDirectSolver& GetExactDirectSolver() { return Hook(); }

}  // namespace ntk
