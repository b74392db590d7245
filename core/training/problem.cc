// ntk/core/training/problem.cc: DecideTrainingProblem (validation, documented
// defaults, targets Y and the regime decision of docs/model-contract.md
// "2. Training objective").
#include "core/training/problem.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/numerics/values.h"

namespace ntk {

const char* RegimeName(Regime r) {
  switch (r) {
    case Regime::kRegularizedCE:
      return "2a";
    case Regime::kUnregularizedCE:
      return "2b";
    case Regime::kSquared:
      return "2c";
  }
  return "?";
}

namespace {

// Tolerance on sum_c targets(i, c) == 1 (the documented contract).
constexpr double kSimplexTolerance = 1e-6;

absl::Status CheckFeatures(const Eigen::MatrixXd& x) {
  if (x.rows() == 0) {
    return absl::InvalidArgumentError("features: no rows (need at least 1 training point)");
  }
  if (x.cols() == 0) {
    return absl::InvalidArgumentError("features: no columns (need at least 1 feature)");
  }
  return CheckInputValues(x, "features");  // core/numerics/values.h
}

// The N x C target matrix Y: one-hot (smoothed) labels or the given
// targets, smoothed: (1 - eps) y + eps / C.
Eigen::MatrixXd MakeTargets(int c, double eps, const TrainingData& data) {
  if (!data.labels.empty()) {
    const Eigen::Index n = static_cast<Eigen::Index>(data.labels.size());
    Eigen::MatrixXd y = Eigen::MatrixXd::Constant(n, c, eps / c);
    for (Eigen::Index i = 0; i < n; ++i) {
      y(i, data.labels[i]) += 1.0 - eps;
    }
    return y;
  }
  if (eps > 0) {
    return ((1.0 - eps) * data.targets.array() + eps / c).matrix();
  }
  return data.targets;
}

}  // namespace

absl::StatusOr<TrainingProblem> DecideTrainingProblem(const ModelSpec& spec,
                                                      const TrainingData& data) {
  // ---- kernel ----
  if (absl::Status s = ValidateKernelSpec(spec.kernel); !s.ok()) return s;

  // ---- approximation (docs/model-contract.md "6. Nystrom models") ----
  const ApproximationSpec& ap = spec.approximation;
  if (ap.kind != ApproximationKind::kExactKernel && ap.kind != ApproximationKind::kNystrom) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.approximation.kind: unknown value ", static_cast<int>(ap.kind)));
  }
  if (ap.num_centers < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.approximation.num_centers: must be >= 0 (0: the default), got ",
        ap.num_centers));
  }

  // ---- training: loss, lambda, eps ----
  const TrainingSpec& tr = spec.training;
  if (tr.loss != Loss::kCrossEntropy && tr.loss != Loss::kSquared) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.training.loss: unknown value ", static_cast<int>(tr.loss)));
  }
  if (tr.regularization.has_value()) {
    const double l = *tr.regularization;
    if (!std::isfinite(l) || l < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "spec.training.regularization: must be a finite number >= 0, got ",
          absl::StrFormat("%g", l)));
    }
  }
  if (tr.label_smoothing.has_value()) {
    const double e = *tr.label_smoothing;
    if (!std::isfinite(e) || e < 0 || e >= 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "spec.training.label_smoothing: must be in [0, 1), got ",
          absl::StrFormat("%g", e)));
    }
  }

  // ---- features ----
  if (absl::Status s = CheckFeatures(data.features); !s.ok()) return s;
  const Eigen::Index n = data.features.rows();

  // ---- labels xor targets ----
  const bool has_labels = !data.labels.empty();
  const bool has_targets = data.targets.rows() > 0 || data.targets.cols() > 0;
  if (has_labels && has_targets) {
    return absl::InvalidArgumentError(
        "labels: give either labels or targets, not both");
  }
  if (!has_labels && !has_targets) {
    return absl::InvalidArgumentError(
        "labels: neither labels nor targets given (need one of them)");
  }
  if (spec.num_classes < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.num_classes: must be >= 0 (0: inferred), got ", spec.num_classes));
  }

  int num_classes = spec.num_classes;
  bool targets_all_positive = true;  // before smoothing
  if (has_labels) {
    if (static_cast<Eigen::Index>(data.labels.size()) != n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "labels: expected ", n, " labels (one per features row), got ",
          data.labels.size()));
    }
    int max_label = -1;
    for (size_t i = 0; i < data.labels.size(); ++i) {
      const int k = data.labels[i];
      if (k < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "labels: row ", i, " has negative label ", k));
      }
      if (spec.num_classes > 0 && k >= spec.num_classes) {
        return absl::InvalidArgumentError(absl::StrCat(
            "labels: row ", i, " has label ", k, ", out of range [0, ",
            spec.num_classes, ") for spec.num_classes = ", spec.num_classes));
      }
      if (k > max_label) max_label = k;
    }
    if (num_classes == 0) {
      if (max_label + 1 < 2) {
        return absl::InvalidArgumentError(absl::StrCat(
            "spec.num_classes: inferred as 1 + the largest label = ",
            max_label + 1, "; need at least 2 classes (set spec.num_classes)"));
      }
      num_classes = max_label + 1;
    }
    // One-hot targets always have zeros (C >= 2).
    targets_all_positive = false;
  } else {
    const Eigen::MatrixXd& t = data.targets;
    if (t.rows() != n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "targets: expected ", n, " rows (one per features row), got ",
          t.rows()));
    }
    if (spec.num_classes > 0 && t.cols() != spec.num_classes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "targets: expected ", spec.num_classes,
          " columns (spec.num_classes), got ", t.cols()));
    }
    if (num_classes == 0) num_classes = static_cast<int>(t.cols());
    if (t.cols() < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "targets: need at least 2 columns (classes), got ", t.cols()));
    }
    if (absl::Status s = CheckFiniteValues(t, "targets"); !s.ok()) return s;
    for (Eigen::Index i = 0; i < n; ++i) {
      double sum = 0;
      for (Eigen::Index c = 0; c < t.cols(); ++c) {
        const double v = t(i, c);
        if (v < 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              "targets: row ", i, " column ", c, " is negative (",
              absl::StrFormat("%g", v), "); targets must lie on the simplex"));
        }
        if (v == 0) targets_all_positive = false;
        sum += v;
      }
      if (std::abs(sum - 1.0) > kSimplexTolerance) {
        return absl::InvalidArgumentError(absl::StrCat(
            "targets: row ", i, " sums to ", absl::StrFormat("%.17g", sum),
            ", not 1 (tolerance ", absl::StrFormat("%g", kSimplexTolerance),
            ")"));
      }
    }
  }
  if (num_classes < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.num_classes: need at least 2 classes, got ", num_classes));
  }

  if (!spec.class_names.empty() &&
      static_cast<int>(spec.class_names.size()) != num_classes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.class_names: expected ", num_classes,
        " names (one per class) or none, got ", spec.class_names.size()));
  }

  // ---- defaults (brief-common.md "Decisions already made") ----
  const bool ce = tr.loss == Loss::kCrossEntropy;
  double eps;
  if (tr.label_smoothing.has_value()) {
    eps = *tr.label_smoothing;
  } else if (has_labels && ce &&
             (!tr.regularization.has_value() || *tr.regularization == 0)) {
    eps = kDefaultLabelSmoothing;
  } else {
    eps = 0;
  }
  // Smoothed targets (1 - eps) y + eps / C are all > 0 iff eps > 0 or y > 0.
  const bool smoothed_positive = eps > 0 || targets_all_positive;
  double lambda;
  if (tr.regularization.has_value()) {
    lambda = *tr.regularization;
  } else if (smoothed_positive || !ce) {
    lambda = 0;
  } else {
    lambda = kDefaultRegularization;
  }
  if (ce && lambda == 0 && !smoothed_positive) {
    return absl::InvalidArgumentError(
        "spec.training.regularization: 0 with cross-entropy needs strictly "
        "positive targets, but some target is 0 (hard labels or soft targets "
        "with zeros, no label smoothing): the logits diverge (docs/model-contract.md \"2b. Unregularized\"); "
        "set regularization > 0 or label_smoothing > 0");
  }

  TrainingProblem r;
  r.spec = spec;
  r.spec.training.regularization = lambda;
  r.spec.training.label_smoothing = eps;
  r.spec.num_classes = num_classes;
  r.lambda = lambda;
  r.label_smoothing = eps;
  r.num_classes = num_classes;
  const std::string lambda_text = absl::StrCat(
      "lambda = ", absl::StrFormat("%g", lambda),
      tr.regularization.has_value() ? "" : " (default)");
  if (!ce) {
    r.regime = Regime::kSquared;
    r.regime_reason = absl::StrCat("squared loss, ", lambda_text);
  } else if (lambda > 0) {
    r.regime = Regime::kRegularizedCE;
    r.regime_reason = absl::StrCat(
        "cross-entropy with ", lambda_text,
        tr.regularization.has_value()
            ? ""
            : ": some target is 0 (no label smoothing), so lambda = 0 is not possible");
  } else {
    r.regime = Regime::kUnregularizedCE;
    r.regime_reason = absl::StrCat(
        "cross-entropy with ", lambda_text, ": every target > 0 (",
        eps > 0 ? absl::StrCat("label smoothing ", absl::StrFormat("%g", eps),
                               tr.label_smoothing.has_value() ? "" : " (default)")
                : std::string("soft targets"),
        ")");
  }
  if (spec.nystrom()) {
    const int64_t m = ResolveNumCenters(ap.num_centers, n);
    r.spec.approximation.num_centers = static_cast<int>(m);
    absl::StrAppend(&r.regime_reason, "; Nystrom with m = ", m, " centers",
                    ap.num_centers == 0 ? " (default)"
                    : ap.num_centers > n
                        ? absl::StrCat(" (requested ", ap.num_centers, " > N = ", n,
                                       ", clipped to N)")
                        : std::string());
  } else {
    r.spec.approximation = ApproximationSpec();
  }
  r.targets = MakeTargets(num_classes, eps, data);
  return r;
}

int64_t DefaultNumCenters(int64_t n) {
  const int64_t grown =
      static_cast<int64_t>(std::ceil(kCentersPerSqrtN * std::sqrt(static_cast<double>(n))));
  return std::min(n, std::clamp<int64_t>(grown, kMinDefaultCenters, kMaxDefaultCenters));
}

int64_t ResolveNumCenters(int64_t requested, int64_t n) {
  return std::min(requested == 0 ? DefaultNumCenters(n) : requested, n);
}

std::string RestoredRegimeReason(Regime regime) {
  return absl::StrCat("regime ", RegimeName(regime), " as decided when the model was fitted");
}

}  // namespace ntk
