// Tiny settings of the finite-width validation experiments
// (tools/validate/experiments.h, docs/validation.md): real networks trained
// by gradient descent against the NTK model of docs/model-contract.md sections 2-3 ("Training objective", "Predict").
//
// These assert the qualitative claims of docs/model-contract.md "5. Checks that tie the code to the theory" with stated
// margins; the full-size runs with the measured slopes are in
// docs/validation.md (ntk_validate).
#include "tools/validate/experiments.h"

#include <cstdio>

#include <gtest/gtest.h>

namespace ntk {
namespace validate {
namespace {

// Small synthetic problem: N = 24, M = 16, d = 8, C = 3.
const Dataset& Data() {
  static const Dataset* d = new Dataset(MakeDataset(24, 16, 8, 3, 1.0, 3));
  return *d;
}

KernelSpec ErfKernel() {
  KernelSpec k;
  k.activation = Activation::kErf;  // smooth: GD converges to a tight tolerance
  k.depth = 1;
  k.weight_variance = 2.0;
  k.bias_variance = 0.1;
  return k;
}

TrainConfig Converge() {
  TrainConfig c;
  c.max_steps = 30000;
  c.gradient_tolerance = 1e-7;
  c.momentum = 0.9;  // same limit as plain GD (finite_mlp.h)
  return c;
}

// Mean over `seeds` of the rms logit / probability error at `width`.
struct Errors {
  double logit = 0, prob = 0, scale = 0;
};
Errors MeanErrors(const Setting& s, int width, int seeds) {
  Errors e;
  for (int k = 0; k < seeds; ++k) {
    absl::StatusOr<WidthResult> r = RunWidth(s, Data(), width, 100 + k, Converge());
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return e;
    EXPECT_TRUE(r->converged) << s.name << " width " << width << " seed " << k
                              << " gradient " << r->gradient_norm;
    e.logit += r->logit.rms / seeds;
    e.prob += r->prob.rms / seeds;
    e.scale = r->logit_scale;
  }
  return e;
}

// The error between a trained width-n network and the kernel prediction with
// the same F0, f0 is O(1/sqrt(n)) (docs/model-contract.md "5. Checks that tie the code to the theory"): 16x the width should
// give ~1/4 of the error. We require < 1/2 (a factor-2 margin for the
// seed-to-seed spread of two seeds and pre-asymptotic terms at width 128),
// and the wide error to be a small fraction of the logits themselves
// (measured here: 1.9% for E1 and 4.1% for E2 at width 2048, error ratios
// 0.24 and 0.12 from width 128; 15% leaves margin and still fails if the
// prediction were unrelated to the network, which gives ~100%).
void CheckShrinksWithWidth(const Setting& s) {
  const Errors narrow = MeanErrors(s, 128, 2);
  const Errors wide = MeanErrors(s, 2048, 2);
  std::printf("%s: logit rms error %.4f (width 128) -> %.4f (width 2048), ratio %.3f; "
              "prob %.4f -> %.4f; logit scale %.3f\n",
              s.name.c_str(), narrow.logit, wide.logit, wide.logit / narrow.logit, narrow.prob,
              wide.prob, wide.scale);
  EXPECT_LT(wide.logit, 0.5 * narrow.logit) << s.name;
  EXPECT_LT(wide.prob, 0.5 * narrow.prob) << s.name;
  EXPECT_LT(wide.logit, 0.15 * wide.scale) << s.name;
}

TEST(ValidateTest, E1RegularizedErrorShrinksWithWidth) {
  CheckShrinksWithWidth(Setting{"E1 2a", ErfKernel(), 1.0, 0.0});
}

TEST(ValidateTest, E2UnregularizedSmoothedErrorShrinksWithWidth) {
  CheckShrinksWithWidth(Setting{"E2 2b", ErfKernel(), 0.0, 0.1});
}

// E3: with lambda = 0 and hard labels the logits keep growing (like log t)
// and the NTK keeps drifting, while with lambda > 0 they converge.
TEST(ValidateTest, E3HardLabelsLogitsGrowWhileRegularizedStayBounded) {
  const int width = 256, steps = 4000;
  absl::StatusOr<std::vector<TrajectoryPoint>> e1 =
      RunTrajectory(Setting{"E1", ErfKernel(), 1.0, 0.0}, Data(), width, 7, steps, 8);
  absl::StatusOr<std::vector<TrajectoryPoint>> e3 =
      RunTrajectory(Setting{"E3", ErfKernel(), 0.0, 0.0}, Data(), width, 7, steps, 8);
  ASSERT_TRUE(e1.ok()) << e1.status();
  ASSERT_TRUE(e3.ok()) << e3.status();
  ASSERT_GE(e1->size(), 5u);
  ASSERT_EQ(e1->size(), e3->size());
  const size_t last = e1->size() - 1, mid = e1->size() / 2;  // mid ~ sqrt(steps)
  // Both run the same number of steps; the default eta differs only by the
  // factor (lmax + 2 lambda) / lmax (~1.1 here), so the horizons are alike.
  // E1 has converged long before the end (its slowest rate is >= lambda = 1
  // per unit time, and the record `late` is at t >= 0.25 t_end, tens of time
  // units): its logits and NTK are frozen there to 1e-6 relative.
  size_t late = 0;
  while (e1->at(late).time < 0.25 * e1->at(last).time) ++late;
  ASSERT_LT(late, last);
  ASSERT_GT(e1->at(late).time, 10.0);
  EXPECT_NEAR(e1->at(last).logit.rms, e1->at(late).logit.rms, 1e-6 * e1->at(last).logit.rms);
  EXPECT_NEAR(e1->at(last).ntk_change, e1->at(late).ntk_change, 1e-6);
  // E3: logits grow like log t; from the middle record (t ~ 1-2) to the end
  // (t ~ 100-200, ~2 orders of magnitude) that is + ~2 in rms logit; we ask
  // for +30% and for monotone growth over the second half.
  std::printf("E1: t=%.3g logit_rms %.4f ntk_change %.3e | E3: t=%.3g logit_rms %.4f -> "
              "t=%.3g %.4f, ntk_change %.3e\n",
              e1->at(last).time, e1->at(last).logit.rms, e1->at(last).ntk_change,
              e3->at(mid).time, e3->at(mid).logit.rms, e3->at(last).time,
              e3->at(last).logit.rms, e3->at(last).ntk_change);
  EXPECT_GT(e3->at(last).logit.rms, 1.3 * e3->at(mid).logit.rms);
  for (size_t i = mid + 1; i <= last; ++i)
    EXPECT_GT(e3->at(i).logit.rms, e3->at(i - 1).logit.rms) << "record " << i;
  // ... beyond E1's bounded logits, and the NTK drifts further than E1's
  // (which stopped): at least 1.5x at the end (measured 5.4x: 0.118 vs
  // 0.022; E3 logits 2.82 at t = 7 -> 5.25 at t = 444).
  EXPECT_GT(e3->at(last).logit.rms, e1->at(last).logit.rms);
  EXPECT_GT(e3->at(last).ntk_change, 1.5 * e1->at(last).ntk_change);
  EXPECT_GT(e3->at(last).ntk_change, e3->at(mid).ntk_change);
}

}  // namespace
}  // namespace validate
}  // namespace ntk
