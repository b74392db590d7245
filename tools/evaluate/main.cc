// ntk_evaluate: the evaluation of docs/evaluation.md, through a running
// ntk_server and the C++ client.
//
//   ntk_evaluate --target=127.0.0.1:50051 --out=DIR
//       [--phases=digits,fmnist,ood] [--sizes=1000,5000,10000,20000]
//       [--cv_n=3000] [--ood_n=10000] [--grid=full|small]
//       [--fmnist_config="relu,2,2,0,0,0.1"]   (skip the CV: act,L,sw2,sb2,lambda,eps)
//
// Writes DIR/ntk.json (settings, CV tables, metrics per run) and
// DIR/ntk_ood_scores.csv (per test point OOD scores), read by
// tools/evaluate/report.py. Settings are chosen on training data only, by
// the least cross-validated NLL of Predict:
//   --selection=fit (default): every model's own Fit selects
//     (FitRequest.selection, docs/api.md) over the --select_* grid on its
//     own training rows, so the choice follows N;
//   --selection=client: one two-stage 3-fold CV through plain Fits on the
//     first --cv_n rows (stage 1 over Stage1Grid(), stage 2 over the
//     variances (Stage2Grid) of the winner), reused at every N.
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/client.h"
#include "tools/common/list_flags.h"
#include "tools/evaluate/datasets.h"
#include "tools/evaluate/evaluation.h"
#include "tools/evaluate/json_output.h"
#include "core/numerics/metrics.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "ntk_server address");
ABSL_FLAG(std::string, out, "eval-out", "output directory (must exist)");
ABSL_FLAG(std::string, phases, "digits,fmnist,ood", "which parts to run");
ABSL_FLAG(std::string, sizes, "1000,5000,10000,20000", "Fashion-MNIST training sizes");
ABSL_FLAG(int, cv_n, 3000, "Fashion-MNIST CV subset: the first cv_n training images");
ABSL_FLAG(int, cv_folds, 3, "folds");
ABSL_FLAG(int, ood_n, 2000, "OOD model: the first ood_n training images of classes 0-7");
ABSL_FLAG(int, dist_rows, 2000,
          "Fashion-MNIST size runs: PredictDistribution on the first dist_rows test images "
          "(0: all); the OOD and digits runs always use all");
ABSL_FLAG(int, ood_test_rows, 3000,
          "OOD: evaluate on the first ood_test_rows test images (0: all 10000); LINEARIZED "
          "PredictDistribution costs 13 C N^2 flops per point");
ABSL_FLAG(int, dist_max_train_2a, 2000,
          "skip PredictDistribution for lambda > 0 models above this N (LINEARIZED needs "
          "13 N^2 doubles of factors, C Cholesky factorizations and 13 C N^2 flops per point)");
ABSL_FLAG(bool, also_lambda0, true,
          "when the CV picks lambda > 0, also evaluate the best lambda = 0 configuration "
          "(regime 2b, EXACT distribution)");
ABSL_FLAG(std::string, selection, "fit",
          "fit: each model's Fit chooses its settings (FitRequest.selection) by --select_folds "
          "cross-validation over the --select_* grid on its own training rows; client: one "
          "two-stage CV through plain Fits on the first --cv_n rows (--grid, --stage2), "
          "reused at every N");
ABSL_FLAG(int, select_folds, 3, "--selection=fit: folds (>= 2)");
ABSL_FLAG(std::string, select_depths, "1,2,3,4", "--selection=fit: depths");
ABSL_FLAG(std::string, select_bias_variances, "0,0.1", "--selection=fit: bias variances sb^2");
ABSL_FLAG(std::string, select_label_smoothings, "0.001,0.002,0.005,0.01,0.02,0.05,0.1",
          "--selection=fit, N > --select_2a_max_n (lambda = 0 only): label smoothings eps. In "
          "2b the centered logits scale with log((1 - eps + eps/C) / (eps/C)), so this list "
          "is a temperature grid, and each value costs only two triangular solves per fold");
ABSL_FLAG(std::string, select_label_smoothings_2a, "0.01,0.05,0.2",
          "--selection=fit, N <= --select_2a_max_n: label smoothings eps (0 may be in it: "
          "selection leaves out lambda = 0 with eps = 0, which has no minimizer on hard "
          "labels; every value multiplies the 2a Newton solves)");
ABSL_FLAG(std::string, select_regularizations, "0,0.01,0.1,1",
          "--selection=fit: lambdas (0: regime 2b) for N <= --select_2a_max_n");
ABSL_FLAG(int, select_2a_max_n, 2000,
          "--selection=fit: above this N, lambda = 0 only: the 2a candidates' Newton solves "
          "(C N_fold^2 per iteration, every candidate and fold) would take most of the run");
ABSL_FLAG(uint64_t, select_seed, 1, "--selection=fit: fold assignment seed");
ABSL_FLAG(std::string, grid, "full",
          "full: Stage1Grid + Stage2Grid; small: 4 configs (development); "
          "or a ';'-separated list of act,L,sw2,sb2,lambda,eps configs (stage 1; stage 2 still runs)");
ABSL_FLAG(bool, stage2, true, "run stage 2 of the CV (the variances of the stage-1 winner)");
ABSL_FLAG(std::string, fmnist_config, "", "skip the Fashion-MNIST CV: act,L,sw2,sb2,lambda,eps");
ABSL_FLAG(std::string, digits_config, "", "skip the digits CV: act,L,sw2,sb2,lambda,eps");
ABSL_FLAG(std::string, fmnist_best_lambda0, "",
          "with --fmnist_config: the lambda = 0 configuration to evaluate beside it");
ABSL_FLAG(std::string, digits_best_lambda0, "",
          "with --digits_config: the lambda = 0 configuration to evaluate beside it");
ABSL_FLAG(double, deadline_unix, 0,
          "report every evaluation that would start after this time (Unix seconds) as not run");
ABSL_FLAG(uint32_t, num_samples, 0, "PredictDistribution num_samples (0: server default)");
ABSL_FLAG(int, chunk_rows, 2000, "rows per Predict / PredictDistribution call");
ABSL_FLAG(std::string, digits_path, ntk::eval::kDigitsPath, "digits.csv.gz");
ABSL_FLAG(std::string, fmnist_dir, ntk::eval::kFashionMnistDir, "Fashion-MNIST IDX directory");

namespace ntk::eval {
namespace {

const auto kStart = std::chrono::steady_clock::now();

template <typename... Args>
void Log(const absl::FormatSpec<Args...>& fmt, const Args&... args) {
  std::fprintf(stderr, "[evaluate %7.1fs] %s\n", SecondsSince(kStart),
               absl::StrFormat(fmt, args...).c_str());
  std::fflush(stderr);
}

// Two-stage CV (see the file comment). Returns the winner; fills `scores`
// and, when given, `best_lambda0` with the best lambda = 0 configuration.
NtkConfig SelectConfig(Client& client, const Dataset& data, int num_classes,
                       const std::string& name, std::vector<CvScore>* scores,
                       std::optional<NtkConfig>* best_lambda0) {
  const int folds = absl::GetFlag(FLAGS_cv_folds);
  std::vector<NtkConfig> grid = Stage1Grid();
  const std::string grid_flag = absl::GetFlag(FLAGS_grid);
  if (grid_flag == "small") {
    grid = {grid[0], grid[4], grid[7], grid[21]};
  } else if (grid_flag != "full") {
    grid.clear();
    for (absl::string_view part : absl::StrSplit(grid_flag, ';', absl::SkipEmpty())) {
      absl::StatusOr<NtkConfig> c = ParseConfig(std::string(part));
      if (c.ok()) {
        grid.push_back(*c);
      } else {
        Log("--grid: %s", c.status().ToString());
      }
    }
    if (grid.empty()) grid = {NtkConfig{}};
  }
  auto run = [&](const std::vector<NtkConfig>& configs, const CvScore* incumbent) {
    const CvScore* best = incumbent;
    for (const NtkConfig& c : configs) {
      scores->push_back(CrossValidate(client, data, c, folds, num_classes,
                                      absl::StrCat("eval-cv-", name, "-", scores->size())));
      const CvScore& s = scores->back();
      if (s.error.empty()) {
        Log("cv %s [%s]: val NLL %.4f acc %.4f (%.1fs)", name, c.Name(), s.val_nll,
            s.val_accuracy, s.seconds);
      } else {
        Log("cv %s [%s]: FAILED %s", name, c.Name(), s.error);
      }
    }
    for (const CvScore& s : *scores) {
      // Strictly better by more than 1e-9 relative, so that numerically
      // equivalent configs (e.g. sw^2 for ReLU with sb^2 = 0 in 2b, which
      // only scales Theta) keep the earlier one.
      if (s.error.empty() && (best == nullptr || s.val_nll < best->val_nll * (1 - 1e-9))) {
        best = &s;
      }
    }
    return best;
  };
  const CvScore* best1 = run(grid, nullptr);
  if (best1 == nullptr) {
    Log("cv %s: every config failed; using the first", name);
    return grid[0];
  }
  const NtkConfig stage1 = best1->config;
  Log("cv %s: stage 1 winner [%s] val NLL %.4f", name, stage1.Name(), best1->val_nll);
  NtkConfig chosen = stage1;
  if (absl::GetFlag(FLAGS_stage2)) {
    std::vector<NtkConfig> g2 = Stage2Grid(stage1);
    g2.erase(g2.begin());  // (2, 0) is the stage-1 winner itself, already scored
    chosen = run(g2, nullptr)->config;  // the best over both stages
  }
  const CvScore* best0 = nullptr;
  for (const CvScore& s : *scores) {
    if (s.error.empty() && s.config.lambda == 0 &&
        (best0 == nullptr || s.val_nll < best0->val_nll * (1 - 1e-9))) {
      best0 = &s;
    }
  }
  if (best_lambda0 != nullptr && best0 != nullptr) *best_lambda0 = best0->config;
  for (const CvScore& s : *scores) {
    if (s.config.Name() == chosen.Name()) {
      Log("cv %s: chosen [%s] val NLL %.4f", name, chosen.Name(), s.val_nll);
    }
  }
  return chosen;
}

void WriteOodCsv(const std::string& path, const Evaluation& e, const std::vector<int>& labels) {
  std::ofstream f(path);
  f << "label,is_out";
  for (const Evaluation::OodScore& o : e.ood) f << "," << o.name;
  f << "\n";
  for (size_t i = 0; i < e.is_out.size(); ++i) {
    f << labels[i] << "," << (e.is_out[i] ? 1 : 0);
    for (const Evaluation::OodScore& o : e.ood) f << "," << absl::StrFormat("%.10g", o.values[i]);
    f << "\n";
  }
}

int Main() {
  const std::string out_dir = absl::GetFlag(FLAGS_out);
  const std::string phases = absl::GetFlag(FLAGS_phases);
  auto has = [&](const char* p) { return tools::ListHas(phases, p); };
  const absl::StatusOr<std::vector<int>> sizes =
      tools::ParsePositiveIntList("sizes", absl::GetFlag(FLAGS_sizes));
  if (!sizes.ok()) {
    std::fprintf(stderr, "%s\n", sizes.status().ToString().c_str());
    return 1;
  }

  const std::string selection_mode = absl::GetFlag(FLAGS_selection);
  if (selection_mode != "fit" && selection_mode != "client") {
    std::fprintf(stderr, "--selection: expected fit or client, got '%s'\n",
                 selection_mode.c_str());
    return 1;
  }
  const absl::StatusOr<std::vector<int>> select_depths =
      tools::ParsePositiveIntList("select_depths", absl::GetFlag(FLAGS_select_depths));
  const absl::StatusOr<std::vector<double>> select_biases =
      tools::ParseNumberList("select_bias_variances", absl::GetFlag(FLAGS_select_bias_variances));
  const absl::StatusOr<std::vector<double>> select_eps = tools::ParseNumberList(
      "select_label_smoothings", absl::GetFlag(FLAGS_select_label_smoothings));
  const absl::StatusOr<std::vector<double>> select_eps_2a = tools::ParseNumberList(
      "select_label_smoothings_2a", absl::GetFlag(FLAGS_select_label_smoothings_2a));
  const absl::StatusOr<std::vector<double>> select_lambdas = tools::ParseNumberList(
      "select_regularizations", absl::GetFlag(FLAGS_select_regularizations));
  for (const absl::Status& s : {select_depths.status(), select_biases.status(),
                                select_eps.status(), select_eps_2a.status(),
                                select_lambdas.status()}) {
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
  }

  ClientOptions copts;
  copts.target = absl::GetFlag(FLAGS_target);
  copts.default_deadline = std::chrono::minutes(60);
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(copts);
  if (!client.ok()) {
    std::fprintf(stderr, "connect: %s\n", client.status().ToString().c_str());
    return 1;
  }
  CallOptions call;
  call.chunk_rows = absl::GetFlag(FLAGS_chunk_rows);
  call.num_samples = absl::GetFlag(FLAGS_num_samples);

  std::vector<std::string> runs, cvs;
  std::vector<std::string> errors;
  // ntk.json is rewritten after every run, so that an interrupted run keeps
  // what it has.
  auto write_json = [&]() {
    const std::string file = out_dir + "/ntk.json";
    std::ofstream f(file + ".tmp");
    f << "{\"total_seconds\":" << JsonNumber(SecondsSince(kStart)) << ",\"cv\":{"
      << absl::StrJoin(cvs, ",\n") << "},\n\"runs\":[" << absl::StrJoin(runs, ",\n")
      << "],\n\"errors\":[" << absl::StrJoin(errors, ",\n") << "]}\n";
    f.close();
    if (!f || std::rename((file + ".tmp").c_str(), file.c_str()) != 0) {
      std::fprintf(stderr, "cannot write %s\n", file.c_str());
      return false;
    }
    return true;
  };
  auto past_deadline = [&](const std::string& what) {
    const double deadline = absl::GetFlag(FLAGS_deadline_unix);
    if (deadline <= 0 || absl::ToUnixSeconds(absl::Now()) < deadline) return false;
    Log("%s: not run (time budget)", what);
    errors.push_back(absl::StrCat("{\"what\":", JsonString(what), ",\"status\":",
                                  JsonString("not run: the time budget of the evaluation run was exhausted"),
                                  "}"));
    write_json();
    return true;
  };
  auto record_error = [&](const std::string& what, const absl::Status& s) {
    Log("%s: %s", what, s.ToString());
    errors.push_back(absl::StrCat("{\"what\":", JsonString(what), ",\"status\":", JsonString(s.ToString()), "}"));
  };
  auto log_eval = [&](const std::string& what, const Evaluation& e) {
    Log("%s [%s] N=%d: Predict acc %.4f NLL %.4f Brier %.4f ECE %.4f | %s acc %.4f NLL %.4f "
        "ECE %.4f | fit %.1fs predict %.1fs dist %.1fs",
        what, e.config.Name(), e.n_train, e.predict.accuracy, e.predict.nll, e.predict.brier,
        e.predict.ece, e.has_distribution ? e.distribution_method : "no distribution",
        e.distribution.accuracy, e.distribution.nll, e.distribution.ece, e.fit_wall_seconds,
        e.predict_wall_seconds, e.distribution_wall_seconds);
    if (!e.distribution_error.empty()) Log("  distribution failed: %s", e.distribution_error);
    for (const auto& o : e.ood) Log("  OOD AUROC %s: %.4f", o.name, o.auroc);
  };

  // The configurations to evaluate: the CV choice, and (when it has
  // lambda > 0) the best lambda = 0 one.
  auto variants = [&](const NtkConfig& chosen, const std::optional<NtkConfig>& best0) {
    std::vector<std::pair<std::string, NtkConfig>> v = {{"cv_choice", chosen}};
    if (absl::GetFlag(FLAGS_also_lambda0) && chosen.lambda > 0 && best0.has_value()) {
      v.push_back({"best_lambda0", *best0});
    }
    return v;
  };
  auto choose = [&](const std::string& name, const Dataset& cv_data, const std::string& fixed,
                    NtkConfig* chosen, std::optional<NtkConfig>* best0) -> bool {
    if (!fixed.empty()) {
      absl::StatusOr<NtkConfig> c = ParseConfig(fixed);
      if (!c.ok()) return record_error(name + "_config", c.status()), false;
      *chosen = *c;
      const std::string b0 = name == "digits" ? absl::GetFlag(FLAGS_digits_best_lambda0)
                                              : absl::GetFlag(FLAGS_fmnist_best_lambda0);
      if (!b0.empty()) {
        absl::StatusOr<NtkConfig> c0 = ParseConfig(b0);
        if (!c0.ok()) return record_error(name + "_best_lambda0", c0.status()), false;
        *best0 = *c0;
      }
      return true;
    }
    std::vector<CvScore> scores;
    *chosen = SelectConfig(**client, cv_data, 10, name, &scores, best0);
    cvs.push_back(absl::StrCat(JsonString(name), ":",
                               CvJson(scores, *chosen, *best0, static_cast<int>(cv_data.y.size()),
                                      absl::GetFlag(FLAGS_cv_folds))));
    write_json();
    return true;
  };

  // choose, then variants: the configurations to evaluate on a dataset;
  // nullopt when a fixed configuration does not parse (main exits with 2).
  // --selection=fit: the base config only (each Fit selects; see run_variants).
  const bool fit_selects = absl::GetFlag(FLAGS_selection) == "fit";
  auto chosen_variants = [&](const std::string& name, const Dataset& cv_data,
                             const std::string& fixed)
      -> std::optional<std::vector<std::pair<std::string, NtkConfig>>> {
    NtkConfig chosen;
    std::optional<NtkConfig> best0;
    if (fit_selects && fixed.empty()) return std::vector<std::pair<std::string, NtkConfig>>{
        {"cv_choice", NtkConfig{}}};
    if (!choose(name, cv_data, fixed, &chosen, &best0)) return std::nullopt;
    return variants(chosen, best0);
  };

  // FitRequest.selection for a model of n training rows (--selection=fit).
  auto selection_for = [&](int n) {
    v1::ModelSelection sel;
    sel.set_folds(static_cast<uint32_t>(absl::GetFlag(FLAGS_select_folds)));
    sel.set_seed(absl::GetFlag(FLAGS_select_seed));
    for (int d : *select_depths) sel.add_depths(static_cast<uint32_t>(d));
    for (double v : *select_biases) sel.add_bias_variances(v);
    const bool small = n <= absl::GetFlag(FLAGS_select_2a_max_n);
    for (double v : small ? *select_eps_2a : *select_eps) sel.add_label_smoothings(v);
    for (double v : *select_lambdas) {
      if (v == 0 || small) sel.add_regularizations(v);
    }
    if (sel.regularizations_size() == 0) sel.add_regularizations(0);
    return sel;
  };

  // Runs `evaluate(variant, config, call)` for each variant. With
  // --selection=fit and no fixed config, the one variant is the Fit that
  // selects; when it chose lambda > 0, the best lambda = 0 candidate of its
  // report follows as a plain Fit ("best_lambda0", --also_lambda0).
  using EvaluateFn = std::function<std::optional<Evaluation>(
      const std::string& variant, const NtkConfig& config, const CallOptions& call)>;
  auto run_variants = [&](const std::vector<std::pair<std::string, NtkConfig>>& to_run, int n,
                          bool fixed, const EvaluateFn& evaluate) {
    for (const auto& [variant, config] : to_run) {
      CallOptions c = call;
      if (fit_selects && !fixed) c.selection = selection_for(n);
      const std::optional<Evaluation> e = evaluate(variant, config, c);
      if (!e || c.selection.folds() < 2 || e->config.lambda == 0 ||
          !absl::GetFlag(FLAGS_also_lambda0)) {
        continue;
      }
      const v1::SelectionRow* best0 = nullptr;
      for (const v1::SelectionRow& row : e->selection.rows()) {
        if (row.training().regularization() == 0 &&
            (best0 == nullptr || row.mean_nll() < best0->mean_nll())) {
          best0 = &row;
        }
      }
      if (best0 == nullptr) continue;
      v1::ModelSpec spec;
      *spec.mutable_kernel() = best0->kernel();
      *spec.mutable_training() = best0->training();
      evaluate("best_lambda0", NtkConfig::FromSpec(spec), call);
    }
  };

  if (has("digits")) {
    absl::StatusOr<TrainTest> digits = LoadDigits(absl::GetFlag(FLAGS_digits_path));
    if (!digits.ok()) {
      record_error("digits", digits.status());
    } else {
      const std::string fixed = absl::GetFlag(FLAGS_digits_config);
      const auto to_run = chosen_variants("digits", digits->train, fixed);
      if (!to_run) return 2;
      run_variants(*to_run, static_cast<int>(digits->train.y.size()), !fixed.empty(),
                   [&](const std::string& variant, const NtkConfig& config,
                       const CallOptions& c) -> std::optional<Evaluation> {
        if (past_deadline("digits " + variant)) return std::nullopt;
        absl::StatusOr<Evaluation> e = Evaluate(**client, "eval-digits", config, digits->train,
                                                digits->test, 10, c);
        if (!e.ok()) return record_error("digits " + variant, e.status()), std::nullopt;
        log_eval("digits " + variant, *e);
        runs.push_back(EvaluationJson("digits", variant, *e));
        write_json();
        return *std::move(e);
      });
    }
  }

  if (has("fmnist") || has("ood")) {
    Log("loading Fashion-MNIST");
    absl::StatusOr<TrainTest> fm = LoadFashionMnist(absl::GetFlag(FLAGS_fmnist_dir));
    if (!fm.ok()) {
      record_error("fmnist", fm.status());
    } else {
      const std::string fixed = absl::GetFlag(FLAGS_fmnist_config);
      const auto to_run =
          chosen_variants("fmnist", Head(fm->train, absl::GetFlag(FLAGS_cv_n)), fixed);
      if (!to_run) return 2;
      if (has("ood")) {
        // First, while the machine is fresh: the OOD runs (small N).
        Dataset train = HeadWithLabelsBelow(fm->train, absl::GetFlag(FLAGS_ood_n), 8);
        const int ood_rows = absl::GetFlag(FLAGS_ood_test_rows);
        const Dataset ood_test = ood_rows > 0 ? Head(fm->test, ood_rows) : fm->test;
        std::vector<bool> is_out;
        for (int y : ood_test.y) is_out.push_back(y >= 8);
        run_variants(*to_run, static_cast<int>(train.y.size()), !fixed.empty(),
                     [&](const std::string& variant, const NtkConfig& config,
                         const CallOptions& c) -> std::optional<Evaluation> {
          if (past_deadline("fmnist_ood " + variant)) return std::nullopt;
          absl::StatusOr<Evaluation> e = Evaluate(**client, "eval-fmnist-ood", config, train,
                                                  ood_test, 8, c, is_out);
          if (!e.ok()) return record_error("fmnist_ood " + variant, e.status()), std::nullopt;
          log_eval("fmnist_ood " + variant, *e);
          runs.push_back(EvaluationJson("fmnist_ood", variant, *e));
          write_json();
          WriteOodCsv(out_dir + "/ntk_ood_scores_" + variant + ".csv", *e, ood_test.y);
          return *std::move(e);
        });
      }
      if (has("fmnist")) {
        for (const int n : *sizes) {
          Dataset train = Head(fm->train, n);
          run_variants(*to_run, n, !fixed.empty(),
                       [&](const std::string& variant, const NtkConfig& config,
                           const CallOptions& call_in) -> std::optional<Evaluation> {
            if (past_deadline(absl::StrCat("fmnist ", variant, " N=", n))) return std::nullopt;
            CallOptions c = call_in;
            c.distribution_rows = absl::GetFlag(FLAGS_dist_rows);
            // A selecting Fit may choose lambda > 0 only where the grid has it.
            const bool may_be_2a =
                config.lambda > 0 ||
                (c.selection.folds() >= 2 && n <= absl::GetFlag(FLAGS_select_2a_max_n));
            if (may_be_2a && n > absl::GetFlag(FLAGS_dist_max_train_2a)) {
              c.distribution = false;
              Log("fmnist %s N=%d: PredictDistribution (LINEARIZED) not run: N > "
                  "--dist_max_train_2a=%d", variant, n, absl::GetFlag(FLAGS_dist_max_train_2a));
            }
            absl::StatusOr<Evaluation> e = Evaluate(
                **client, absl::StrCat("eval-fmnist-", n), config, train, fm->test, 10, c);
            if (!e.ok()) {
              record_error(absl::StrCat("fmnist ", variant, " N=", n), e.status());
              return std::nullopt;
            }
            if (!c.distribution) {
              e->distribution_error = absl::StrCat(
                  "not run: LINEARIZED at N > ", absl::GetFlag(FLAGS_dist_max_train_2a),
                  " exceeds the time budget (C Cholesky factorizations and 13 C N^2 flops "
                  "per point; 13 N^2 doubles of factors)");
            }
            log_eval("fmnist " + variant, *e);
            runs.push_back(EvaluationJson("fmnist", variant, *e));
            write_json();
            return *std::move(e);
          });
        }
      }
    }
  }

  if (!write_json()) return 1;
  const std::string path = out_dir + "/ntk.json";
  Log("wrote %s", path);
  return 0;
}

}  // namespace
}  // namespace ntk::eval

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Evaluates NTK classifiers through ntk_server (docs/evaluation.md).");
  absl::ParseCommandLine(argc, argv);
  return ntk::eval::Main();
}
