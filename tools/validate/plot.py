#!/usr/bin/python3
"""Draws the PNGs of docs/validation.md from ntk_validate's CSV tables.

Usage: /usr/bin/python3 tools/validate/plot.py --csv_dir DIR --img_dir DIR

Each figure is drawn only if its CSV exists (ntk_validate --experiments may
run a subset):
  e12_runs.csv + e12_summary.csv -> e1_e2_width.png
  e3_trajectory.csv              -> e3_dynamics.png
  e4_points.csv                  -> e4_distribution.png
"""
import argparse
import csv
import math
import os
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def save_figure(fig, title, img_dir, name):
    """Titles, lays out, writes img_dir/name (110 dpi) and closes the figure."""
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(os.path.join(img_dir, name), dpi=110)
    plt.close(fig)


def slope(xs, ys):
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx if sxx else 0.0


def plot_width(csv_dir, img_dir):
    runs = read_csv(os.path.join(csv_dir, "e12_runs.csv"))
    summary = read_csv(os.path.join(csv_dir, "e12_summary.csv"))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {}
    for ax, key, title in [(axes[0], "logit_rms", "centered test logits"),
                           (axes[1], "prob_rms", "test probabilities")]:
        settings = []
        for r in summary:
            if r["setting"] not in settings:
                settings.append(r["setting"])
        for i, s in enumerate(settings):
            color = colors.setdefault(s, "C%d" % i)
            pts = [r for r in runs if r["setting"] == s]
            ax.scatter([float(r["width"]) for r in pts], [float(r[key]) for r in pts],
                       s=10, alpha=0.35, color=color)
            rows = [r for r in summary if r["setting"] == s]
            w = [float(r["width"]) for r in rows]
            e = [float(r[key]) for r in rows]
            ax.plot(w, e, "o-", color=color, label="%s (slope %.2f)" % (s, slope(w, e)))
        allw = sorted({float(r["width"]) for r in summary})
        if allw:
            e0 = max(float(r[key]) for r in summary if float(r["width"]) == allw[0])
            ax.plot(allw, [e0 * math.sqrt(allw[0] / w) for w in allw], "k--", lw=1,
                    label="slope -1/2")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("width n")
        ax.set_ylabel("rms(trained net - NTK prediction)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, "E1/E2: finite network vs. NTK prediction with the same initial outputs", img_dir, "e1_e2_width.png")


def plot_dynamics(csv_dir, img_dir):
    rows = read_csv(os.path.join(csv_dir, "e3_trajectory.csv"))
    by = defaultdict(list)
    for r in rows:
        by[r["setting"]].append(r)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for i, (s, pts) in enumerate(by.items()):
        pts = [p for p in pts if float(p["time"]) > 0]
        t = [float(p["time"]) for p in pts]
        axes[0].plot(t, [float(p["logit_rms"]) for p in pts], "o-", ms=3, color="C%d" % i, label=s)
        axes[1].plot(t, [float(p["ntk_change"]) for p in pts], "o-", ms=3, color="C%d" % i,
                     label=s)
        axes[2].plot(t, [float(p["gradient_norm"]) for p in pts], "o-", ms=3, color="C%d" % i,
                     label=s)
    axes[0].set_ylabel("rms centered training logit")
    axes[1].set_ylabel("||Theta_t - Theta_0||_F / ||Theta_0||_F")
    axes[2].set_ylabel("||dL/dtheta||")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("gradient-flow time t")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[1].set_yscale("log")
    axes[2].set_yscale("log")
    save_figure(fig, "E3: logits and NTK drift during plain gradient descent (same width)", img_dir, "e3_dynamics.png")


def plot_distribution(csv_dir, img_dir):
    rows = read_csv(os.path.join(csv_dir, "e4_points.csv"))
    if not rows:
        return False
    settings = []
    for r in rows:
        if r["setting"] not in settings:
            settings.append(r["setting"])
    fig, axes = plt.subplots(len(settings), 2, figsize=(10, 4.4 * len(settings)),
                             squeeze=False)
    markers = {"EXACT": "o", "LINEARIZED": "x", "MONTE_CARLO": "+"}
    for row, s in enumerate(settings):
        pts = [r for r in rows if r["setting"] == s]
        methods = []
        for r in pts:
            if r["method"] not in methods:
                methods.append(r["method"])
        for j, (a, b, label) in enumerate([("ens_prob_mean", "pred_prob_mean", "mean p_c(x)"),
                                           ("ens_prob_sd", "pred_prob_sd", "sd of p_c(x)")]):
            ax = axes[row][j]
            lo, hi = float("inf"), 0.0
            for k, m in enumerate(methods):
                mp = [r for r in pts if r["method"] == m]
                x = [float(r[b]) for r in mp]
                y = [float(r[a]) for r in mp]
                lo, hi = min([lo] + x + y), max([hi] + x + y)
                ax.scatter(x, y, marker=markers.get(m, "."), s=22, color="C%d" % k,
                           alpha=0.7, label=m)
            ax.plot([lo, hi], [lo, hi], "k--", lw=1)
            ax.set_xlabel("PredictDistribution: " + label)
            ax.set_ylabel("ensemble of trained nets: " + label)
            ax.set_title(s)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
    save_figure(fig, "E4: spread over random initializations vs. PredictDistribution", img_dir, "e4_distribution.png")
    return True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--csv_dir", required=True)
    p.add_argument("--img_dir", required=True)
    a = p.parse_args()
    os.makedirs(a.img_dir, exist_ok=True)
    drawn = []
    if all(os.path.exists(os.path.join(a.csv_dir, f)) for f in ("e12_runs.csv", "e12_summary.csv")):
        plot_width(a.csv_dir, a.img_dir)
        drawn.append("e1_e2_width.png")
    if os.path.exists(os.path.join(a.csv_dir, "e3_trajectory.csv")):
        plot_dynamics(a.csv_dir, a.img_dir)
        drawn.append("e3_dynamics.png")
    if os.path.exists(os.path.join(a.csv_dir, "e4_points.csv")):
        if plot_distribution(a.csv_dir, a.img_dir):
            drawn.append("e4_distribution.png")
    print("plot.py: wrote %s to %s" % (", ".join(drawn) or "nothing", a.img_dir))


if __name__ == "__main__":
    main()
