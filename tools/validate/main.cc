// ntk_validate: real finite-width networks trained by gradient descent
// against the NTK model of docs/model-contract.md (docs/validation.md describes the
// experiments, the command and its output).
//
//   ntk_validate                          # E1-E4 at the documented sizes
//   ntk_validate --experiments=e1,e3 --widths=64,256,1024 --seeds=2
//
// Prints one table per experiment, writes CSV files to --csv_dir and, with
// --plot, runs tools/validate/plot.py to draw PNGs into --img_dir.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/numerics/huge_pages.h"
#include "tools/common/list_flags.h"
#include "tools/validate/experiments.h"

ABSL_FLAG(std::string, experiments, "e1,e2,e3,e4", "comma-separated subset of e1,e2,e3,e4");
// Data.
ABSL_FLAG(int, n_train, 48, "training points N");
ABSL_FLAG(int, n_test, 32, "test points M");
ABSL_FLAG(int, dim, 16, "features d");
ABSL_FLAG(int, classes, 3, "classes C");
ABSL_FLAG(double, separation, 1.0, "class-center scale of the synthetic data");
ABSL_FLAG(uint64_t, data_seed, 1, "seed of the synthetic data");
// Architecture.
ABSL_FLAG(std::string, activation, "erf", "erf or relu (relu GD stalls at an O(1/sqrt(n)) gradient, see finite_mlp.h)");
ABSL_FLAG(int, depth, 1, "hidden layers L");
ABSL_FLAG(double, weight_variance, 2.0, "sw^2");
ABSL_FLAG(double, bias_variance, 0.1, "sb^2");
// Objectives.
ABSL_FLAG(double, lambda, 1.0, "regularization of the 2a setting (E1, E4)");
ABSL_FLAG(double, label_smoothing, 0.1, "label smoothing of the 2b setting (E2, E4)");
// E1/E2.
ABSL_FLAG(std::string, widths, "64,128,256,512,1024,2048,4096,8192", "widths of E1/E2");
ABSL_FLAG(int, seeds, 3, "network seeds per width (E1/E2)");
ABSL_FLAG(int, max_steps, 20000, "GD step cap per training run (E1, E2; E4 uses 3x)");
ABSL_FLAG(double, gradient_tolerance, 1e-6, "stop when ||dL/dtheta|| <= this (E1, E2, E4)");
ABSL_FLAG(double, momentum, 0.9,
          "heavy-ball momentum for E1/E2 (same limit as plain GD for lambda > 0; for lambda = 0 a "
          "different minimizer at O(1/sqrt(n)) distance, docs/validation.md)");
// E3.
ABSL_FLAG(int, e3_width, 1024, "width of E3");
ABSL_FLAG(int, e3_steps, 10000, "plain GD steps of E3");
ABSL_FLAG(int, e3_records, 30, "log-spaced records of E3");
// E4.
ABSL_FLAG(int, e4_width, 1024, "width of the E4 ensemble");
ABSL_FLAG(int, e4_seeds, 60, "networks in the E4 ensemble");
ABSL_FLAG(int, e4_samples, 20000, "PredictDistribution num_samples for EXACT/LINEARIZED");
ABSL_FLAG(int, e4_mc_samples, 4000, "PredictDistribution num_samples for MONTE_CARLO");
ABSL_FLAG(std::string, e4_settings, "2b,2a", "which E4 ensembles: 2b (lambda=0, smoothing) and/or 2a");
ABSL_FLAG(double, e4_momentum, 0.0,
          "E4 heavy-ball momentum. 0 (plain GD) by default: with lambda = 0 a finite network's "
          "minimizers form a manifold and momentum ends at a different point of it, which "
          "biases the ensemble's spread (docs/validation.md)");
ABSL_FLAG(double, e4_gradient_tolerance, 1e-3,
          "E4 stopping ||dL/dtheta|| (the logit change left, ~1e-3, is far below the "
          "ensemble's standard error ~0.04)");
// Output.
ABSL_FLAG(std::string, csv_dir, "validate_out", "directory for CSV tables");
ABSL_FLAG(std::string, img_dir, NTK_SOURCE_DIR "/docs/img", "directory for PNGs");
ABSL_FLAG(bool, plot, true, "run plot.py on the CSVs");
ABSL_FLAG(std::string, python, "/usr/bin/python3", "python with matplotlib");

namespace ntk {
namespace validate {
namespace {

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

using ::ntk::tools::ListHas;

void Die(const absl::Status& s) {
  std::fprintf(stderr, "ntk_validate: %s\n", s.ToString().c_str());
  std::exit(1);
}

std::ofstream OpenCsv(const std::string& name) {
  const std::string path = absl::GetFlag(FLAGS_csv_dir) + "/" + name;
  std::ofstream f(path);
  if (!f) Die(absl::InternalError("cannot write " + path));
  return f;
}

KernelSpec KernelFromFlags() {
  KernelSpec k;
  const std::string act = absl::GetFlag(FLAGS_activation);
  if (act == "erf") {
    k.activation = Activation::kErf;
  } else if (act == "relu") {
    k.activation = Activation::kRelu;
  } else {
    Die(absl::InvalidArgumentError("--activation: erf or relu, got " + act));
  }
  k.depth = absl::GetFlag(FLAGS_depth);
  k.weight_variance = absl::GetFlag(FLAGS_weight_variance);
  k.bias_variance = absl::GetFlag(FLAGS_bias_variance);
  if (absl::Status s = ValidateKernelSpec(k); !s.ok()) Die(s);
  return k;
}

TrainConfig TrainFromFlags() {
  TrainConfig c;
  c.max_steps = absl::GetFlag(FLAGS_max_steps);
  c.gradient_tolerance = absl::GetFlag(FLAGS_gradient_tolerance);
  c.momentum = absl::GetFlag(FLAGS_momentum);
  return c;
}

// E1 / E2: error vs. width for one setting.
void RunWidthSweep(const Setting& s, const Dataset& data, const std::vector<int>& widths,
                   std::ofstream* runs_csv, std::ofstream* summary_csv) {
  const int seeds = absl::GetFlag(FLAGS_seeds);
  const TrainConfig cfg = TrainFromFlags();
  std::printf("\n%s: trained width-n network vs. kernel prediction with the same F0, f0\n",
              s.name.c_str());
  std::printf("(centered test logits; mean over %d seeds; logit scale = rms kernel logit)\n",
              seeds);
  std::printf("%7s %12s %12s %12s %12s %8s %10s %6s %8s\n", "width", "logit_rms",
              "logit_max", "prob_rms", "prob_max", "steps", "max|grad|", "conv", "sec");
  std::vector<double> w, lr, pr;
  double scale = 0;
  for (int width : widths) {
    Deviation logit, prob;  // means over the seeds
    double gmax = 0, sec = 0, steps = 0;
    int conv = 0;
    // Seeds in parallel (one network per thread; run with
    // OPENBLAS_NUM_THREADS=1 so the BLAS does not oversubscribe).
    std::vector<absl::StatusOr<WidthResult>> results(seeds, absl::UnknownError("not run"));
#pragma omp parallel for schedule(dynamic)
    for (int k = 0; k < seeds; ++k) results[k] = RunWidth(s, data, width, 1000 + k, cfg);
    for (int k = 0; k < seeds; ++k) {
      const absl::StatusOr<WidthResult>& r = results[k];
      if (!r.ok()) Die(r.status());
      logit.rms += r->logit.rms / seeds;
      logit.max += r->logit.max / seeds;
      prob.rms += r->prob.rms / seeds;
      prob.max += r->prob.max / seeds;
      steps += static_cast<double>(r->steps) / seeds;
      gmax = std::max(gmax, r->gradient_norm);
      conv += r->converged ? 1 : 0;
      sec += r->seconds;
      scale = r->logit_scale;
      *runs_csv << absl::StrFormat("%s,%d,%d,%.9g,%.9g,%.9g,%.9g,%d,%.6g,%d,%.4g\n",
                                   s.name, width, r->seed, r->logit.rms, r->logit.max,
                                   r->prob.rms, r->prob.max, r->steps, r->gradient_norm,
                                   r->converged ? 1 : 0, r->seconds);
    }
    std::printf("%7d %12.4e %12.4e %12.4e %12.4e %8.0f %10.2e %3d/%-2d %8.2f\n", width,
                logit.rms, logit.max, prob.rms, prob.max, steps, gmax, conv, seeds, sec);
    *summary_csv << absl::StrFormat("%s,%d,%.9g,%.9g,%.9g,%.9g\n", s.name, width, logit.rms,
                                    logit.max, prob.rms, prob.max);
    w.push_back(width);
    lr.push_back(logit.rms);
    pr.push_back(prob.rms);
  }
  std::printf("kernel logit scale (rms centered test logit): %.3f\n", scale);
  std::printf("log-log slope of logit_rms vs width: %.3f (all widths)", LogLogSlope(w, lr));
  std::vector<double> w2, lr2, pr2;
  for (size_t i = 0; i < w.size(); ++i) {
    if (w[i] >= 512) {
      w2.push_back(w[i]);
      lr2.push_back(lr[i]);
      pr2.push_back(pr[i]);
    }
  }
  if (w2.size() >= 2) std::printf(", %.3f (widths >= 512)", LogLogSlope(w2, lr2));
  std::printf("\nlog-log slope of prob_rms  vs width: %.3f (all widths)", LogLogSlope(w, pr));
  if (w2.size() >= 2) std::printf(", %.3f (widths >= 512)", LogLogSlope(w2, pr2));
  std::printf("   [theory: -0.5]\n");
}

void RunE3(const std::vector<Setting>& settings, const Dataset& data) {
  const int width = absl::GetFlag(FLAGS_e3_width);
  const int steps = absl::GetFlag(FLAGS_e3_steps);
  std::ofstream csv = OpenCsv("e3_trajectory.csv");
  csv << "setting,step,time,loss,gradient_norm,logit_rms,logit_max,ntk_change\n";
  std::printf("\nE3: plain GD at width %d for %d steps: centered training-logit size and\n"
              "relative NTK change ||Theta_t - Theta_0||_F / ||Theta_0||_F (output 0)\n",
              width, steps);
  std::printf("%-28s %10s %10s %10s %10s %12s\n", "setting", "time", "logit_rms", "logit_max",
              "ntk_change", "|grad|");
  const int n = static_cast<int>(settings.size());
  std::vector<absl::StatusOr<std::vector<TrajectoryPoint>>> runs(n, absl::UnknownError("not run"));
  std::vector<double> seconds(n);
  const int records = absl::GetFlag(FLAGS_e3_records);
#pragma omp parallel for schedule(dynamic)
  for (int k = 0; k < n; ++k) {
    const auto start = std::chrono::steady_clock::now();
    runs[k] = RunTrajectory(settings[k], data, width, 1000, steps, records);
    seconds[k] = Seconds(start);
  }
  for (int k = 0; k < n; ++k) {
    const Setting& s = settings[k];
    const absl::StatusOr<std::vector<TrajectoryPoint>>& tr = runs[k];
    if (!tr.ok()) Die(tr.status());
    for (const TrajectoryPoint& p : *tr) {
      csv << absl::StrFormat("%s,%d,%.9g,%.9g,%.6g,%.9g,%.9g,%.9g\n", s.name, p.step, p.time,
                             p.loss, p.gradient_norm, p.logit.rms, p.logit.max, p.ntk_change);
    }
    // Print a few rows: decades of time.
    double next_print = 0;
    for (size_t i = 0; i < tr->size(); ++i) {
      const TrajectoryPoint& p = (*tr)[i];
      if (p.time >= next_print || i + 1 == tr->size()) {
        std::printf("%-28s %10.3g %10.4f %10.4f %10.3e %12.3e\n", s.name.c_str(), p.time,
                    p.logit.rms, p.logit.max, p.ntk_change, p.gradient_norm);
        next_print = p.time > 0 ? p.time * 10 : 1;
      }
    }
    std::printf("%-28s (%.1f s)\n", "", seconds[k]);
  }
}

void RunE4(const std::vector<Setting>& settings, const Dataset& data) {
  const int width = absl::GetFlag(FLAGS_e4_width);
  const int seeds = absl::GetFlag(FLAGS_e4_seeds);
  TrainConfig cfg = TrainFromFlags();
  cfg.gradient_tolerance = absl::GetFlag(FLAGS_e4_gradient_tolerance);
  cfg.momentum = absl::GetFlag(FLAGS_e4_momentum);
  cfg.max_steps = 3 * cfg.max_steps;  // plain GD needs ~10x the momentum steps
  std::printf("\nE4 training: GD momentum %g, ||grad|| <= %g, at most %d steps\n", cfg.momentum,
              cfg.gradient_tolerance, cfg.max_steps);
  std::ofstream csv = OpenCsv("e4_comparison.csv");
  csv << "setting,method,quantity,max_abs_z,rms_z,max_abs_diff,scale,count\n";
  std::ofstream pts = OpenCsv("e4_points.csv");
  pts << "setting,method,point,class,ens_prob_mean,pred_prob_mean,ens_prob_sd,pred_prob_sd,"
         "ens_logit_mean,pred_logit_mean,ens_logit_sd,pred_logit_sd\n";
  std::printf("\nE4: %d networks of width %d trained to convergence vs. PredictDistribution\n"
              "(F0 = 0 model); z = (ensemble - predicted) / standard error, over %d test points\n"
              "x C entries (expect rms z ~ 1, max |z| ~ 3-4 if they agree)\n",
              seeds, width, static_cast<int>(data.x_test.rows()));
  std::printf("%-22s %-12s %-11s %9s %8s %12s %10s\n", "setting", "method", "quantity",
              "max|z|", "rms z", "max|diff|", "scale");
  for (const Setting& s : settings) {
    const auto start = std::chrono::steady_clock::now();
    int not_converged = 0;
    double gmax = 0;
    absl::StatusOr<std::vector<Eigen::MatrixXd>> ens =
        TrainEnsemble(s, data, width, 5000, seeds, cfg, &not_converged, &gmax);
    if (!ens.ok()) Die(ens.status());
    absl::StatusOr<std::unique_ptr<FittedModel>> model = FitKernelModel(s, data, {});
    if (!model.ok()) Die(model.status());
    std::vector<DistributionMethod> methods;
    if (s.lambda == 0) {
      methods = {DistributionMethod::kExact, DistributionMethod::kLinearized,
                 DistributionMethod::kMonteCarlo};
    } else {
      methods = {DistributionMethod::kLinearized, DistributionMethod::kMonteCarlo};
    }
    for (DistributionMethod m : methods) {
      const char* method_name = DistributionMethodName(m);
      const int samples = m == DistributionMethod::kMonteCarlo
                              ? absl::GetFlag(FLAGS_e4_mc_samples)
                              : absl::GetFlag(FLAGS_e4_samples);
      absl::StatusOr<DistributionComparison> c =
          CompareDistribution(s, data, **model, *ens, m, samples, 77);
      if (!c.ok()) Die(c.status());
      const std::pair<const char*, const Agreement*> rows[] = {
          {"logit_mean", &c->logit_mean},
          {"logit_cov", &c->logit_cov},
          {"prob_mean", &c->prob_mean},
          {"prob_cov", &c->prob_cov}};
      for (const auto& [q, a] : rows) {
        std::printf("%-22s %-12s %-11s %9.2f %8.2f %12.3e %10.3e\n", s.name.c_str(),
                    method_name, q, a->max_abs_z, a->rms_z, a->max_abs_diff, a->scale);
        csv << absl::StrFormat("%s,%s,%s,%.6g,%.6g,%.6g,%.6g,%d\n", s.name, method_name, q,
                               a->max_abs_z, a->rms_z, a->max_abs_diff, a->scale, a->count);
      }
      std::printf("%-22s %-12s spread ratio ensemble/predicted: logit var %.3f, prob var %.3f\n",
                  s.name.c_str(), method_name, c->logit_var_ratio, c->prob_var_ratio);
      csv << absl::StrFormat("%s,%s,logit_var_ratio,%.6g,,,,\n%s,%s,prob_var_ratio,%.6g,,,,\n",
                             s.name, method_name, c->logit_var_ratio, s.name, method_name,
                             c->prob_var_ratio);
      // Per-point values for the scatter plots.
      DistributionOptions opt;
      opt.method = m;
      opt.num_samples = samples;
      opt.seed = 77;
      absl::StatusOr<DistributionResult> pred = (*model)->PredictDistribution(data.x_test, opt);
      if (!pred.ok()) Die(pred.status());
      for (int i = 0; i < data.x_test.rows(); ++i) {
        std::vector<Eigen::VectorXd> lg, pr;
        for (const auto& e : *ens) {
          lg.push_back(e.row(i).transpose());
          pr.push_back(SoftmaxRows(e.row(i)).transpose());
        }
        const Moments ml = SampleMoments(lg), mp = SampleMoments(pr);
        const PointDistribution& pd = pred->points[i];
        for (int k = 0; k < data.num_classes; ++k) {
          pts << absl::StrFormat(
              "%s,%s,%d,%d,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g\n", s.name, method_name, i,
              k, mp.mean[k], pd.probability_mean[k], std::sqrt(mp.cov(k, k)),
              std::sqrt(std::max(0.0, pd.probability_covariance(k, k))), ml.mean[k],
              pd.logit_mean[k], std::sqrt(ml.cov(k, k)),
              std::sqrt(std::max(0.0, pd.logit_covariance(k, k))));
        }
      }
    }
    std::printf("%-22s ensemble: %d/%d runs reached ||grad|| <= %.0e (largest %.2e); %.1f s\n",
                s.name.c_str(), seeds - not_converged, seeds, cfg.gradient_tolerance, gmax,
                Seconds(start));
  }
}

int Main() {
  const auto start = std::chrono::steady_clock::now();
  const std::string exps = absl::GetFlag(FLAGS_experiments);
  const std::string csv_dir = absl::GetFlag(FLAGS_csv_dir);
  if (std::system(("mkdir -p '" + csv_dir + "'").c_str()) != 0) {
    Die(absl::InternalError("cannot create " + csv_dir));
  }
  const Dataset data = MakeDataset(absl::GetFlag(FLAGS_n_train), absl::GetFlag(FLAGS_n_test),
                                   absl::GetFlag(FLAGS_dim), absl::GetFlag(FLAGS_classes),
                                   absl::GetFlag(FLAGS_separation), absl::GetFlag(FLAGS_data_seed));
  const KernelSpec kernel = KernelFromFlags();
  const double lambda = absl::GetFlag(FLAGS_lambda);
  const double eps = absl::GetFlag(FLAGS_label_smoothing);
  const Setting e1{absl::StrFormat("E1 2a lambda=%g", lambda), kernel, lambda, 0.0};
  const Setting e2{absl::StrFormat("E2 2b smoothing=%g", eps), kernel, 0.0, eps};
  const Setting e3{"E3 lambda=0 hard labels", kernel, 0.0, 0.0};
  std::printf("ntk_validate: N=%d train, M=%d test, d=%d, C=%d; %s depth %d sw^2=%g sb^2=%g\n",
              static_cast<int>(data.x_train.rows()), static_cast<int>(data.x_test.rows()),
              static_cast<int>(data.x_train.cols()), data.num_classes,
              absl::GetFlag(FLAGS_activation).c_str(), kernel.depth, kernel.weight_variance,
              kernel.bias_variance);
  std::printf("to-convergence runs: GD with momentum %g, ||grad|| <= %g, at most %d steps\n",
              absl::GetFlag(FLAGS_momentum), absl::GetFlag(FLAGS_gradient_tolerance),
              absl::GetFlag(FLAGS_max_steps));

  const absl::StatusOr<std::vector<int>> widths =
      ntk::tools::ParsePositiveIntList("widths", absl::GetFlag(FLAGS_widths));
  if (!widths.ok()) Die(widths.status());
  if (ListHas(exps, "e1") || ListHas(exps, "e2")) {
    std::ofstream runs = OpenCsv("e12_runs.csv");
    runs << "setting,width,seed,logit_rms,logit_max,prob_rms,prob_max,steps,gradient_norm,"
            "converged,seconds\n";
    std::ofstream summary = OpenCsv("e12_summary.csv");
    summary << "setting,width,logit_rms,logit_max,prob_rms,prob_max\n";
    for (const Setting* s : {&e1, &e2}) {
      if (!ListHas(exps, s == &e1 ? "e1" : "e2")) continue;
      const auto t = std::chrono::steady_clock::now();
      RunWidthSweep(*s, data, *widths, &runs, &summary);
      std::printf("(%.1f s)\n", Seconds(t));
    }
  }
  if (ListHas(exps, "e3")) RunE3({e1, e2, e3}, data);
  if (ListHas(exps, "e4")) {
    std::vector<Setting> e4;
    if (ListHas(absl::GetFlag(FLAGS_e4_settings), "2b")) e4.push_back(e2);
    if (ListHas(absl::GetFlag(FLAGS_e4_settings), "2a")) e4.push_back(e1);
    RunE4(e4, data);
  }
  std::printf("\ntotal %.1f s\n", Seconds(start));
  std::fflush(stdout);
  if (absl::GetFlag(FLAGS_plot)) {
    const std::string cmd = absl::StrFormat("'%s' '%s' --csv_dir '%s' --img_dir '%s'",
                                            absl::GetFlag(FLAGS_python), NTK_VALIDATE_PLOT_SCRIPT,
                                            csv_dir, absl::GetFlag(FLAGS_img_dir));
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "ntk_validate: plotting failed: %s\n", cmd.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace validate
}  // namespace ntk

int main(int argc, char** argv) {
  ntk::ReexecWithHugePageMalloc(argv);  // core/numerics/huge_pages.h
  absl::ParseCommandLine(argc, argv);
  return ntk::validate::Main();
}
