"""bench/issue10_tables.py: the Markdown tables of issue 10's benchmarks,
from their JSON results (standard library only, so bench/summarize.py can
use it): table() for bench/targets.py, e2e_markdown() for
bench/e2e_vs_numpy.py.
"""
import os

GIB = 1 << 30


def ratio(x, y):
    return None if x is None or y is None or y == 0 else x / y


def fmt_x(r):
    return "-" if r is None else "%.2fx" % r


def fmt_s(s):
    return "-" if s is None else ("%.2f s" % s if s >= 1 else "%.1f ms" % (s * 1e3))


def verdict(ok, error=None):
    """MET / MISSED / - (not measured); a call that failed is FAILED, never MET."""
    if error:
        return "FAILED"
    return "-" if ok is None else ("MET" if ok else "MISSED")


def table(res):
    rows = []
    a = res.get("exact")
    if a:
        r = ratio(a["first_s"], a["fit_s"])
        rows.append(("(a) 2b EXACT first call (500 rows) / Fit, N = %d" % a["n"],
                     "%s (%s / %s)%s" % (fmt_x(r), fmt_s(a["first_s"]), fmt_s(a["fit_s"]),
                                         "" if not a["error"] else " " + a["error"]),
                     "<= 0.2x", verdict(None if r is None else r <= 0.2, a["error"])))
    b = res.get("lin")
    if b:
        r = ratio(b["linearized_s"], b["fit_s"])
        rows.append(("(b) LINEARIZED first call (100 rows) / 2a Fit, N = %d" % b["n"],
                     "%s (%s / %s)%s" % (fmt_x(r), fmt_s(b["linearized_s"]), fmt_s(b["fit_s"]),
                                         "" if not b["linearized_error"] else
                                         " " + b["linearized_error"]),
                     "<= 1x", verdict(None if r is None else r <= 1, b["linearized_error"])))
    big = res.get("big")
    if big:
        rss = big["peak_rss_bytes"]
        ok = None if big["linearized_s"] is None else (
            rss is not None and rss <= 12 * GIB and big["linearized_s"] <= 600)
        rows.append(("(b) LINEARIZED first call at N = %d: peak RSS, wall time" % big["n"],
                     "%s, %s (Fit %s)%s" % ("-" if rss is None else "%.2f GiB" % (rss / GIB),
                                            fmt_s(big["linearized_s"]), fmt_s(big["fit_s"]),
                                            "" if not big["error"] else " " + big["error"]),
                     "<= 12 GiB, <= 600 s", verdict(ok, big["error"])))
    elif b:
        rows.append(("(b) LINEARIZED first call at N = 20000", "not run (--n_big=0)",
                     "<= 12 GiB, <= 600 s", "-"))
    if b:
        r = ratio(b["mc_s"], b["fit_s"])
        rows.append(("(c) MONTE_CARLO S = %d first call / 2a Fit, N = %d" % (
            b["mc_samples"], b["n"]),
            "%s (%s / %s)%s" % (fmt_x(r), fmt_s(b["mc_s"]), fmt_s(b["fit_s"]),
                                "" if not b["mc_error"] else " " + b["mc_error"]),
            "<= 10x", verdict(None if r is None else r <= 10, b["mc_error"])))
    e2e = res.get("e2e")
    if e2e:
        for c in e2e["cases"]:
            for enc, r in c["ratio"].items():
                rows.append(("(d) end to end vs NumPy, %s N = %d (%s), %s encoding" % (
                    c["case"], c["n"], c["method"], enc),
                    "%.2fx (NumPy %.2f s / service %.2f s)" % (
                        r, c["numpy"]["total_s"], c["service"][enc]["total_s"]),
                    ">= 5x", verdict(r >= 5)))
    lat = res.get("latency")
    if lat:
        for k in ("Predict", "PredictDistribution"):
            v = lat[k]
            r = ratio(v["loaded_p50_s"], v["idle_p50_s"])
            rows.append(("(e) %s p50 (1 row, N = %d warm) during a first LINEARIZED "
                         "(N = %d) / idle" % (k, lat["n_warm"], lat["n_load"]),
                         "%s (%s / %s; idle before %s, after %s; %d / %d calls)" % (
                             fmt_x(r), fmt_s(v["loaded_p50_s"]), fmt_s(v["idle_p50_s"]),
                             fmt_s(v.get("idle_before_p50_s")),
                             fmt_s(v.get("idle_after_p50_s")),
                             v["loaded_count"], v["idle_count"]),
                         "<= 2x", verdict(None if r is None else r <= 2)))
    out = ["| target | measured | goal | verdict |", "|---|---|---|---|"]
    out += ["| %s | %s | %s | %s |" % r for r in rows]
    la = res.get("load_average")
    if la:
        out.append("")
        out.append("Load average (1, 5, 15 min) at start %s, at end %s; %s cores. Server "
                   "flags: defaults%s." % (la[0], la[1], os.cpu_count(),
                                           (" + " + res["server_args"]) if res.get("server_args")
                                           else ""))
    return "\n".join(out)


def e2e_markdown(res):
    out = []
    w = out.append
    w("| case | side | encode | RPC wall | of which server | decode | total | NumPy / this |")
    w("|---|---|---|---|---|---|---|---|")
    for c in res["cases"]:
        np_total = c["numpy"]["total_s"]
        s = c["numpy"]["stages"]
        w("| %s N = %d | NumPy (%s) | | | | | %.2f s | 1.00x |" % (
            c["case"], c["n"], ", ".join("%s %.2f" % (k, v) for k, v in s.items()), np_total))
        for enc, sv in c["service"].items():
            st = sv["stages"]
            enc_s = sum(v["encode"] for v in st.values())
            rpc_s = sum(v["rpc"] for v in st.values())
            srv = [v["server"] for v in st.values()]
            srv_s = sum(srv) if None not in srv else None
            dec_s = sum(v["decode"] for v in st.values())
            w("| %s N = %d | service, %s | %.2f s | %.2f s | %s | %.2f s | %.2f s | %.2fx |" % (
                c["case"], c["n"], enc, enc_s, rpc_s,
                "-" if srv_s is None else "%.2f s" % srv_s, dec_s, sv["total_s"],
                np_total / sv["total_s"]))
            w("| | per RPC | %s |||||| " % "; ".join(
                "%s: enc %.3f, rpc %.3f (server %s), dec %.3f" % (
                    k, v["encode"], v["rpc"],
                    "-" if v["server"] is None else "%.3f" % v["server"], v["decode"])
                for k, v in st.items()))
    return "\n".join(out)
