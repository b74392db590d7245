// ntkctl fit: builds a FitRequest from the model flags and --data/--targets.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "tools/common/list_flags.h"
#include "tools/ntkctl/cli.h"
#include "tools/ntkctl/csv.h"
#include "tools/ntkctl/output.h"
#include "tools/ntkctl/progress.h"

// The flags only this file reads (the shared ones: tools/ntkctl/cli.h).
ABSL_FLAG(std::string, targets, "", "CSV of soft targets, one row of C values per data row");
ABSL_FLAG(std::string, activation, "relu", "relu | erf");
ABSL_FLAG(int32_t, depth, 1, "hidden layers L >= 1");
ABSL_FLAG(double, weight_variance, 2.0, "sigma_w^2 > 0");
ABSL_FLAG(double, bias_variance, 0.0, "sigma_b^2 >= 0");
ABSL_FLAG(std::string, loss, "cross_entropy", "cross_entropy | squared");
ABSL_FLAG(double, regularization, 0.0, "lambda >= 0 (unset: the server's default)");
ABSL_FLAG(double, label_smoothing, 0.0, "eps in [0, 1) (unset: the server's default)");
ABSL_FLAG(std::string, approximation, "exact",
          "exact | nystrom (docs/model-contract.md \"6. Nystrom models\")");
ABSL_FLAG(int32_t, num_centers, 0, "Nystrom centers m (0: the server's default, growing with N)");
ABSL_FLAG(uint64_t, approx_seed, 0, "Nystrom center selection seed (same seed: same model)");
ABSL_FLAG(int32_t, select_folds, 0,
          "model selection: k-fold cross-validation over the --select_* grid (0: none, >= 2)");
ABSL_FLAG(std::string, select_depths, "", "model selection: depths, e.g. 1,2,3 (empty: --depth)");
ABSL_FLAG(std::string, select_regularizations, "",
          "model selection: lambdas, e.g. 0,0.01,0.1 (empty: --regularization)");
ABSL_FLAG(std::string, select_label_smoothings, "",
          "model selection: eps values (empty: --label_smoothing)");
ABSL_FLAG(std::string, select_bias_variances, "",
          "model selection: bias variances (empty: --bias_variance)");
ABSL_FLAG(uint64_t, select_seed, 0, "model selection: fold assignment seed");
ABSL_FLAG(std::string, select_criterion, "cv",
          "model selection criterion: cv (least mean held-out NLL over --select_folds) or "
          "evidence (greatest Laplace evidence on all rows; 2a candidates, hard labels, eps 0; "
          "with --select_folds >= 2 the CV scores are reported beside it)");
ABSL_FLAG(bool, standardize, false, "z-score each feature with training statistics");
ABSL_FLAG(bool, normalize_rows, false, "scale each row to L2 norm sqrt(d)");
ABSL_FLAG(int32_t, num_classes, 0, "number of classes (0: 1 + the largest label)");
ABSL_FLAG(std::string, class_names, "", "comma-separated class names");
ABSL_FLAG(bool, replace, false, "overwrite an existing model with this id");

namespace ntkctl {
namespace {

// "--<flag>: ..." usage error unless every comma-separated item of `text`
// parses as a number (tools/common/list_flags.h); empty text: no items
// (the spec's value).
bool ParseNumberList(const char* flag, const std::string& text, std::vector<double>* out,
                     int* rc) {
  absl::StatusOr<std::vector<double>> values = ntk::tools::ParseNumberList(flag, text);
  if (!values.ok()) {
    *rc = Usage(std::string(values.status().message()));
    return false;
  }
  *out = std::move(*values);
  return true;
}

// FitRequest.selection from the --select_* flags (docs/cli.md "Model
// selection"); the values are checked by the server, naming the field.
bool FillSelection(ntk::v1::ModelSelection* sel, int* rc) {
  const bool any = IsSet("select_folds") || IsSet("select_depths") ||
                   IsSet("select_regularizations") || IsSet("select_label_smoothings") ||
                   IsSet("select_bias_variances") || IsSet("select_seed") ||
                   IsSet("select_criterion");
  if (!any) return true;
  const std::string criterion = absl::GetFlag(FLAGS_select_criterion);
  if (criterion != "cv" && criterion != "evidence") {
    *rc = Usage(absl::StrCat("--select_criterion: expected cv or evidence, got \"", criterion,
                             "\""));
    return false;
  }
  const bool evidence = criterion == "evidence";
  if (absl::GetFlag(FLAGS_select_folds) < 2 &&
      !(evidence && absl::GetFlag(FLAGS_select_folds) == 0)) {
    *rc = Usage(
        "the --select_* flags need --select_folds=K with K >= 2 (or 0 with "
        "--select_criterion=evidence)");
    return false;
  }
  sel->set_criterion(evidence ? ntk::v1::LAPLACE_EVIDENCE : ntk::v1::CROSS_VALIDATION);
  sel->set_folds(static_cast<uint32_t>(absl::GetFlag(FLAGS_select_folds)));
  sel->set_seed(absl::GetFlag(FLAGS_select_seed));
  std::vector<double> depths, lambdas, eps, biases;
  if (!ParseNumberList("select_depths", absl::GetFlag(FLAGS_select_depths), &depths, rc) ||
      !ParseNumberList("select_regularizations", absl::GetFlag(FLAGS_select_regularizations),
                       &lambdas, rc) ||
      !ParseNumberList("select_label_smoothings", absl::GetFlag(FLAGS_select_label_smoothings),
                       &eps, rc) ||
      !ParseNumberList("select_bias_variances", absl::GetFlag(FLAGS_select_bias_variances),
                       &biases, rc)) {
    return false;
  }
  for (const double d : depths) {
    if (!(d >= 1 && d <= 1e6 && d == static_cast<double>(static_cast<int>(d)))) {
      *rc = Usage(absl::StrCat("--select_depths: expected whole numbers >= 1, got ", d));
      return false;
    }
    sel->add_depths(static_cast<uint32_t>(d));
  }
  for (const double v : lambdas) sel->add_regularizations(v);
  for (const double v : eps) sel->add_label_smoothings(v);
  for (const double v : biases) sel->add_bias_variances(v);
  return true;
}

int RunFit() {
  int rc = kExitOk;
  if (!CheckFormat({"table", "json"}, &rc)) return rc;
  ntk::v1::FitRequest req;
  req.set_model_id(absl::GetFlag(FLAGS_model));
  req.set_replace(absl::GetFlag(FLAGS_replace));
  ntk::v1::ModelSpec* spec = req.mutable_spec();

  int activation = 0;
  if (!ParseChoice("activation", absl::GetFlag(FLAGS_activation),
                   {{"relu", ntk::v1::RELU}, {"erf", ntk::v1::ERF}},
                   &activation, &rc)) {
    return rc;
  }
  spec->mutable_kernel()->set_activation(
      static_cast<ntk::v1::Activation>(activation));
  if (absl::GetFlag(FLAGS_depth) < 1) {
    return Usage(absl::StrCat("--depth: must be >= 1, got ",
                              absl::GetFlag(FLAGS_depth)));
  }
  spec->mutable_kernel()->set_depth(absl::GetFlag(FLAGS_depth));
  // The wire treats weight_variance 0 as "default 2.0"; a user asking for 0
  // explicitly gets the server's error rather than a silent default.
  if (absl::GetFlag(FLAGS_weight_variance) <= 0) {
    return Usage(absl::StrCat("--weight_variance: must be > 0, got ",
                              absl::GetFlag(FLAGS_weight_variance)));
  }
  spec->mutable_kernel()->set_weight_variance(
      absl::GetFlag(FLAGS_weight_variance));
  spec->mutable_kernel()->set_bias_variance(absl::GetFlag(FLAGS_bias_variance));

  int loss = 0;
  if (!ParseChoice("loss", absl::GetFlag(FLAGS_loss),
                   {{"cross_entropy", ntk::v1::CROSS_ENTROPY},
                    {"squared", ntk::v1::SQUARED}},
                   &loss, &rc)) {
    return rc;
  }
  spec->mutable_training()->set_loss(static_cast<ntk::v1::Loss>(loss));
  if (IsSet("regularization")) {
    spec->mutable_training()->set_regularization(
        absl::GetFlag(FLAGS_regularization));
  }
  if (IsSet("label_smoothing")) {
    spec->mutable_training()->set_label_smoothing(
        absl::GetFlag(FLAGS_label_smoothing));
  }
  int approximation = 0;
  if (!ParseChoice("approximation", absl::GetFlag(FLAGS_approximation),
                   {{"exact", ntk::v1::Approximation::EXACT_KERNEL},
                    {"nystrom", ntk::v1::Approximation::NYSTROM}},
                   &approximation, &rc)) {
    return rc;
  }
  if (absl::GetFlag(FLAGS_num_centers) < 0) {
    return Usage(absl::StrCat("--num_centers: must be >= 0, got ",
                              absl::GetFlag(FLAGS_num_centers)));
  }
  if (approximation == ntk::v1::Approximation::NYSTROM) {
    ntk::v1::Approximation* a = spec->mutable_approximation();
    a->set_kind(ntk::v1::Approximation::NYSTROM);
    a->set_num_centers(static_cast<uint32_t>(absl::GetFlag(FLAGS_num_centers)));
    a->set_seed(absl::GetFlag(FLAGS_approx_seed));
  } else if (IsSet("num_centers") || IsSet("approx_seed")) {
    return Usage("--num_centers and --approx_seed need --approximation=nystrom");
  }
  spec->mutable_preprocessing()->set_standardize(
      absl::GetFlag(FLAGS_standardize));
  spec->mutable_preprocessing()->set_normalize_rows(
      absl::GetFlag(FLAGS_normalize_rows));
  if (absl::GetFlag(FLAGS_num_classes) < 0) {
    return Usage("--num_classes: must be >= 0");
  }
  spec->set_num_classes(absl::GetFlag(FLAGS_num_classes));
  if (!absl::GetFlag(FLAGS_class_names).empty()) {
    for (absl::string_view n :
         absl::StrSplit(absl::GetFlag(FLAGS_class_names), ',')) {
      spec->add_class_names(std::string(absl::StripAsciiWhitespace(n)));
    }
  }

  if (!FillSelection(req.mutable_selection(), &rc)) return rc;

  const bool soft = !absl::GetFlag(FLAGS_targets).empty();
  if (soft && IsSet("labels")) {
    return Usage("--labels and --targets: give one (hard labels or soft targets)");
  }
  ntkctl::CsvData data;
  if (!LoadData(-1,
                soft ? ntkctl::LabelColumn::kNone : ntkctl::LabelColumn::kLast,
                &data, &rc)) {
    return rc;
  }
  *req.mutable_features() = ntk::Client::ToProto(data.features);
  if (soft) {
    absl::StatusOr<ntkctl::RowRange> rows =
        ntkctl::ParseRowRange(absl::GetFlag(FLAGS_rows));
    absl::StatusOr<Eigen::MatrixXd> t = ntkctl::ReadMatrixCsv(
        absl::GetFlag(FLAGS_targets), /*header=*/false, *rows);
    if (!t.ok()) return InputError(t.status());
    if (t->rows() != data.features.rows()) {
      return InputError(absl::InvalidArgumentError(absl::StrCat(
          absl::GetFlag(FLAGS_targets), ": has ", t->rows(),
          " rows in the selected range but ", absl::GetFlag(FLAGS_data),
          " has ", data.features.rows())));
    }
    *req.mutable_targets() = ntk::Client::ToProto(*t);
  } else {
    if (data.labels.empty()) {
      return Usage(
          "fit needs labels: a label column (--label_column=last|first), "
          "--labels=FILE for IDX images, or --targets=FILE");
    }
    for (int l : data.labels) req.add_labels(l);
  }

  std::unique_ptr<ntk::Client> client = Connect(kLongDeadline, &rc);
  if (!client) return rc;
  // In the background, so the fit's progress can be shown while it runs
  // (WatchFit); the answer is at once, with the id the server assigned.
  req.set_background(true);
  absl::StatusOr<ntk::v1::ModelInfo> info;
  {
    // A request over the message limit goes in FitStream chunks: show them.
    ProgressDisplay upload(req.model_id().empty() ? "(new model)" : req.model_id());
    const absl::Time start = absl::Now();
    info = client->Fit(req, [&](uint64_t sent, uint64_t total) {
      const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
      const double f = total == 0 ? 1.0 : static_cast<double>(sent) / total;
      upload.Show({f, "upload", absl::StrCat(sent, "/", total, " rows"), elapsed,
                   sent == 0 ? -1.0 : elapsed * (total - sent) / sent});
    });
  }
  if (!info.ok()) return RpcError("fit", info.status());
  return WatchFit(client.get(), info->model_id());
}

}  // namespace

Command FitCommand() {
  return {"fit", "fit a model from a CSV or IDX file",
       std::string(R"(Usage: ntkctl fit --model=ID --data=FILE [flags]

Reads features and labels (or --targets) and fits a model on the server.
Data larger than 3/4 of --max_message_mb is streamed in chunks (FitStream),
the upload shown on stderr. The fit runs in the background on the server;
its progress is shown on stderr (a bar with the ETA on a terminal, plain
lines otherwise) until the model is READY (then printed) or FAILED (exit 1).
Interrupting ntkctl after the upload leaves the fit running: `ntkctl watch
--model=ID` follows it again, `ntkctl delete --model=ID` cancels it.
Examples:
  ntkctl fit --model=digits --data=digits.csv.gz --rows=0:1500 --normalize_rows
  ntkctl fit --model=fashion --approximation=nystrom --depth=2 --standardize \
    --normalize_rows --data=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz \
    --labels=/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz

Model flags:
  --model=ID             model id (1-128 of [A-Za-z0-9._-]; empty: server assigns)
  --replace              overwrite an existing model with this id
  --activation=A         relu | erf (default relu)
  --depth=L              hidden layers (default 1)
  --weight_variance=V    sigma_w^2 (default 2.0)
  --bias_variance=V      sigma_b^2 (default 0)
  --loss=L               cross_entropy | squared (default cross_entropy)
  --regularization=R     lambda >= 0 (unset: the server's default)
  --label_smoothing=E    eps in [0, 1) (unset: the server's default)
  --approximation=A      exact | nystrom (default exact; nystrom fits more rows in
                         N m memory instead of N^2, see docs/model-contract.md
                         "6. Nystrom models")
  --num_centers=M        Nystrom centers (0: the server's default, ~16 sqrt(N))
  --approx_seed=S        Nystrom center selection seed (same seed: same model)
  --standardize          z-score each feature with training statistics
  --normalize_rows       scale each row to L2 norm sqrt(d)
  --num_classes=C        number of classes (0: 1 + the largest label)
  --class_names=a,b,c    class names (C of them)
  --targets=FILE         soft targets: C values per row, one row per data row
                         (same --rows selection; no header); the data file then
                         has no label column unless --label_column says so
  --format=F             table | json (the fitted model's summary)

Model selection (docs/cli.md "Model selection"): k-fold cross-validation over
the cartesian product of the lists (an empty list: the flag above), choosing
the least mean held-out NLL, then the chosen spec fitted on all rows; the
summary ends with the table of every candidate (* = chosen).
  --select_folds=K       folds (>= 2; 0: no selection, or evidence only)
  --select_criterion=C   cv (default) | evidence: the greatest Laplace evidence
                         of each candidate fitted on all rows (every candidate
                         lambda > 0, cross-entropy, hard labels, eps 0)
  --select_depths=1,2,3  depths to try
  --select_regularizations=0,0.01,0.1   lambdas to try
  --select_label_smoothings=0.01,0.1    eps values to try
  --select_bias_variances=0,0.1         bias variances to try
  --select_seed=S        fold assignment seed (same seed and data: same folds)

)") + kDataHelp,
       {"model", "data", "labels", "targets", "header", "rows", "label_column",
        "activation", "depth", "weight_variance", "bias_variance", "loss",
        "regularization", "label_smoothing", "approximation", "num_centers",
        "approx_seed", "standardize", "normalize_rows", "select_criterion",
        "num_classes", "class_names", "replace", "format", "select_folds", "select_depths",
        "select_regularizations", "select_label_smoothings", "select_bias_variances",
        "select_seed"},
       RunFit};
}

}  // namespace ntkctl
