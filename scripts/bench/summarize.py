#!/usr/bin/env python3
"""Summarise a scripts/bench-pipeline.sh output folder.

usage: summarize.py OUT_DIR [--max-others S] [--chart PNG] [--also OTHER_OUT_DIR=LABEL ...]

--also adds the Rust series of another bench-pipeline.sh output (for example the same matrix
with another batch_budget_us) to the chart and as its own table.

Reads OUT_DIR/results.tsv (this pipeline), OUT_DIR/reference/results.tsv (the Go reference and
the null-subscriber ceiling, written by shared/reference/bench-seed.sh), OUT_DIR/inject.tsv
(broker-less) and OUT_DIR/cardinality.tsv. Prints markdown tables of medians per (qos, rate),
the targets of the benchmark issue with the figures that decide them, writes OUT_DIR/summary.md,
optionally a chart (needs matplotlib), and prints as its last line one machine-readable
`BENCH_SUMMARY {json}` line.

Runs whose others_cpu_s (host CPU used by processes the bench did not start) exceeds
--max-others (default 2.0 s) are dropped first, as in the reference's summarize.py; if no run of
a group is clean, the group keeps all its runs and is marked '*'. Runs whose note is not 'ok'
are never used.
"""
import csv
import json
import os
import statistics
import sys


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def rate_key(t):
    return float("inf") if t == "max" else float(t)


def groups(rows, key):
    g = {}
    for r in rows:
        g.setdefault(key(r), []).append(r)
    return g


def clean(runs, max_others):
    """Runs to take medians over, and a mark: '' undisturbed and ok, '*' disturbed (others CPU),
    '!' no run ended 'ok' (for example not drained): all runs kept so the figures still show."""
    ok = [r for r in runs if r.get("note", "ok") == "ok"]
    if not ok:
        return list(runs), "!"
    good = [r for r in ok if (num(r.get("others_cpu_s")) or 0) <= max_others]
    if good:
        return good, ""
    return ok, "*"


def med(runs, col):
    vals = [num(r.get(col)) for r in runs]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def rng(runs, col):
    vals = [num(r.get(col)) for r in runs]
    vals = [v for v in vals if v is not None]
    return (min(vals), max(vals)) if vals else None


def fmt(v, prec=0):
    if v is None:
        return "-"
    return f"{v:,.{prec}f}" if prec == 0 else f"{v:.{prec}f}"


def main():
    args = sys.argv[1:]
    max_others, chart = 2.0, None
    if "--max-others" in args:
        i = args.index("--max-others")
        max_others = float(args[i + 1])
        del args[i : i + 2]
    also = []
    while "--also" in args:
        i = args.index("--also")
        d, _, label = args[i + 1].partition("=")
        also.append((read_tsv(os.path.join(d, "results.tsv")), label or d))
        del args[i : i + 2]
    if "--chart" in args:
        i = args.index("--chart")
        chart = args[i + 1]
        del args[i : i + 2]
    if not args:
        print(__doc__)
        sys.exit(2)
    out = args[0]
    rust = read_tsv(os.path.join(out, "results.tsv"))
    ref = read_tsv(os.path.join(out, "reference", "results.tsv"))
    inj = read_tsv(os.path.join(out, "inject.tsv"))
    card = read_tsv(os.path.join(out, "cardinality.tsv"))
    go = [r for r in ref if r["mode"] == "pipeline"]
    ceil = [r for r in ref if r["mode"] != "pipeline"]

    rg = groups(rust, lambda r: (r["qos"], r["target"]))
    gg = groups(go, lambda r: (r["qos"], r["target"]))
    cg = groups(ceil, lambda r: (r["mode"], r["qos"]))
    lines = []
    p = lines.append
    summary = {"out": out, "max_others_cpu_s": max_others, "rows": [], "ceiling": {}, "targets": {}}

    # ---- per rate: this pipeline and the Go reference side by side ----
    p("### Pipeline runs: this pipeline (Rust) vs the Go reference, medians per (QoS, rate)")
    p("")
    p("`n` runs kept (`*`: none was undisturbed, all kept; `!`: no run ended ok, e.g. not drained within "
      "DRAIN_MAX, all kept). `lost` = sent - received at the end of the run: messages that never reached the "
      "pipeline, either still queued in the broker when a not-drained run was stopped, or discarded by the broker "
      "(it drops a clean session's queue when the subscriber's connection drops). CPU = user+system of the supervisor and "
      "the four stages (Rust) or of the seed-go process (Go), from /proc, per message received; "
      "RSS = VmHWM summed over those processes.")
    p("")
    hdr = ["QoS", "rate", "n", "pub msg/s", "sent", "received", "lost", "dropped", "decoded", "aggs published",
           "rx msg/s", "CPU µs/msg", "RSS MB", "aggd RSS MB", "mosq CPU s", "mosq µs/msg", "others CPU s",
           "Go n", "Go pub msg/s", "Go rx msg/s", "Go dropped", "Go CPU µs/msg", "Go RSS MB",
           "Go others CPU s", "CPU ratio Rust/Go"]
    p("| " + " | ".join(hdr) + " |")
    p("|" + "---|" * len(hdr))
    keys = sorted(set(rg) | set(gg), key=lambda k: (k[0], rate_key(k[1])))
    for k in keys:
        rr, rm = clean(rg.get(k, []), max_others)
        gr, gm = clean(gg.get(k, []), max_others)
        rc, gc = med(rr, "cpu_us_msg"), med(gr, "cpu_us_msg")
        ratio = rc / gc if rc is not None and gc else None
        cr = rng(rr, "cpu_us_msg")
        cpu_s = fmt(rc, 2) + (f" ({cr[0]:.2f}-{cr[1]:.2f})" if cr and len(rr) > 1 else "")
        row = {
            "qos": int(k[0]), "rate": k[1],
            "rust": {c: med(rr, c) for c in ("pub_rate", "sent", "received", "dropped", "decoded", "aggs_published",
                                              "rx_rate", "cpu_us_msg", "rss_mb", "aggd_rss_mb", "mosq_cpu_s",
                                              "mosq_us_msg", "others_cpu_s")} | {"n": len(rr)},
            "go": {c: med(gr, c) for c in ("pub_rate", "sent", "received", "dropped", "rx_rate", "cpu_us_msg", "rss_mb",
                                            "others_cpu_s")} | {"n": len(gr)},
            "cpu_ratio": ratio,
        }
        for side in ("rust", "go"):
            x = row[side]
            x["lost"] = x["sent"] - x["received"] if x["sent"] is not None and x["received"] is not None else None
        summary["rows"].append(row)
        R, G = row["rust"], row["go"]
        p("| " + " | ".join([
            k[0], k[1], f"{len(rr)}{rm}", fmt(R["pub_rate"]), fmt(R["sent"]), fmt(R["received"]), fmt(R["lost"]),
            fmt(R["dropped"]), fmt(R["decoded"]),
            fmt(R["aggs_published"]), fmt(R["rx_rate"]), cpu_s, fmt(R["rss_mb"]), fmt(R["aggd_rss_mb"]),
            fmt(R["mosq_cpu_s"], 2), fmt(R["mosq_us_msg"], 2), fmt(R["others_cpu_s"], 2),
            f"{len(gr)}{gm}", fmt(G["pub_rate"]), fmt(G["rx_rate"]), fmt(G["dropped"]), fmt(G["cpu_us_msg"], 2),
            fmt(G["rss_mb"]), fmt(G["others_cpu_s"], 2), fmt(ratio, 3)]) + " |")
    p("")

    # ---- other Rust series (--also) against the same Go runs ----
    for rows_b, label in also:
        bg = groups(rows_b, lambda r: (r["qos"], r["target"]))
        p(f"### This pipeline with {label}, against the Go runs above")
        p("")
        p("| QoS | rate | n | pub msg/s | sent | received | lost | dropped | aggs published | rx msg/s | CPU µs/msg | "
          "RSS MB | mosq µs/msg | others CPU s | Go CPU µs/msg | CPU ratio |")
        p("|" + "---|" * 16)
        summary.setdefault("also", {})[label] = []
        for k in sorted(bg, key=lambda k: (k[0], rate_key(k[1]))):
            br, bm = clean(bg[k], max_others)
            gr, _ = clean(gg.get(k, []), max_others)
            B = {c: med(br, c) for c in ("pub_rate", "sent", "received", "dropped", "aggs_published", "rx_rate",
                                          "cpu_us_msg", "rss_mb", "mosq_us_msg", "others_cpu_s")}
            B["lost"] = B["sent"] - B["received"] if B["sent"] is not None and B["received"] is not None else None
            gc = med(gr, "cpu_us_msg")
            ratio = B["cpu_us_msg"] / gc if B["cpu_us_msg"] is not None and gc else None
            summary["also"][label].append({"qos": int(k[0]), "rate": k[1], "n": len(br), **B, "go_cpu_us_msg": gc,
                                           "cpu_ratio": ratio})
            p("| " + " | ".join([k[0], k[1], f"{len(br)}{bm}", fmt(B["pub_rate"]), fmt(B["sent"]), fmt(B["received"]),
                                 fmt(B["lost"]), fmt(B["dropped"]), fmt(B["aggs_published"]), fmt(B["rx_rate"]),
                                 fmt(B["cpu_us_msg"], 2), fmt(B["rss_mb"]), fmt(B["mosq_us_msg"], 2),
                                 fmt(B["others_cpu_s"], 2), fmt(gc, 2), fmt(ratio, 3)]) + " |")
        p("")

    # ---- per process: CPU split and wake-ups (medians of the per-run values) ----
    names = ["supervisor", "ingestd", "decoded", "aggd", "emitd"]

    def per_stage_table(title, column, extra_heads, extras, digits, extra_digits):
        """One row per (QoS, rate): the median per process of `column` ("name:value,..."), then
        the medians of `extras(per-process dict, received)` (one value each, or None)."""
        for rows_s, label in [(rust, "")] + [(r, f", {l}") for r, l in also]:
            if not rows_s or not any(r.get(column) for r in rows_s):
                continue
            rg_s = groups(rows_s, lambda r: (r["qos"], r["target"]))
            p(title.format(label=label))
            p("")
            p("| QoS | rate | " + " | ".join(names + extra_heads) + " |")
            p("|" + "---|" * (len(names) + len(extra_heads) + 2))
            for k in sorted(rg_s, key=lambda k: (k[0], rate_key(k[1]))):
                rr, _ = clean(rg_s[k], max_others)
                split = {n: [] for n in names}
                more = [[] for _ in extra_heads]
                for r in rr:
                    d = {n: float(v) for n, v in (x.split(":") for x in (r.get(column) or "").split(",") if ":" in x)}
                    for n in names:
                        if n in d:
                            split[n].append(d[n])
                    for i, v in enumerate(extras(d, num(r["received"]))):
                        if v is not None:
                            more[i].append(v)
                cells = [fmt(statistics.median(split[n]), digits) if split[n] else "-" for n in names]
                cells += [fmt(statistics.median(m), extra_digits) if m else "-" for m in more]
                p("| " + " | ".join([k[0], k[1]] + cells) + " |")
            p("")

    per_stage_table("### Where the CPU goes (Rust{label}, CPU seconds per process over the run, medians)",
                    "stage_cpu", ["ingestd µs/msg", "decoded+aggd µs/msg"],
                    lambda d, rec: [d.get("ingestd", 0) * 1e6 / rec if rec else None,
                                    (d.get("decoded", 0) + d.get("aggd", 0)) * 1e6 / rec if rec else None], 2, 2)
    per_stage_table("### Wake-ups (Rust{label}: context switches per process over the run, all threads, medians)",
                    "stage_cs", ["messages per ingestd wake-up"],
                    lambda d, rec: [rec / d["ingestd"] if rec and d.get("ingestd") else None], 0, 0)

    # ---- ceiling ----
    if ceil:
        p("### Broker ceiling: the reference's null subscriber (mqttcount), flat out")
        p("")
        p("| mode | QoS | n | pub msg/s | received | rx msg/s | subscriber CPU µs/msg | mosq CPU s | others CPU s |")
        p("|---|---|---|---|---|---|---|---|---|")
        for k in sorted(cg):
            cr, cm = clean(cg[k], max_others)
            c = {col: med(cr, col) for col in ("pub_rate", "received", "rx_rate", "cpu_us_msg", "mosq_cpu_s", "others_cpu_s")}
            summary["ceiling"][f"{k[0]}-q{k[1]}"] = c
            p(f"| {k[0]} | {k[1]} | {len(cr)}{cm} | {fmt(c['pub_rate'])} | {fmt(c['received'])} | {fmt(c['rx_rate'])} | "
              f"{fmt(c['cpu_us_msg'], 2)} | {fmt(c['mosq_cpu_s'], 2)} | {fmt(c['others_cpu_s'], 2)} |")
        p("")

    # ---- broker-less ----
    inj_rate = None
    if inj:
        p("### Broker-less: `inject` → raw ring → decoded → aggd")
        p("")
        cols = ["rep", "records", "done_s", "rate", "cpu_s", "per_core", "cores_used", "decoded_cpu_s",
                "aggd_cpu_s", "inject_cpu_s", "decoded_rss_mb", "aggd_rss_mb", "others_cpu_s", "note"]
        p("| " + " | ".join(cols) + " |")
        p("|" + "---|" * len(cols))
        for r in inj:
            p("| " + " | ".join(r.get(c, "-") for c in cols) + " |")
        ok, m = clean(inj, max_others)
        inj_rate, per_core = med(ok, "rate"), med(ok, "per_core")
        summary["broker_less"] = {"n": len(ok), "rate": inj_rate, "per_core": per_core,
                                  "cores_used": med(ok, "cores_used"), "inject_cpu_s": med(ok, "inject_cpu_s")}
        p(f"| median{m} | | | {fmt(inj_rate)} | | {fmt(per_core)} | {fmt(med(ok, 'cores_used'), 2)} | | | | | | | |")
        p("")

    # ---- cardinality ----
    if card:
        c = card[-1]
        p("### Cardinality: distinct keys through decoded + aggd (aggd.max_keys = %s)" % c.get("max_keys"))
        p("")
        cols = list(c.keys())
        p("| " + " | ".join(cols) + " |")
        p("|" + "---|" * len(cols))
        p("| " + " | ".join(c[k] for k in cols) + " |")
        p("")
        summary["cardinality"] = {k: (num(v) if num(v) is not None else v) for k, v in c.items()}

    # ---- targets ----
    t = summary["targets"]
    rows = summary["rows"]

    def rrow(q, rate):
        for r in rows:
            if r["qos"] == q and r["rate"] == rate:
                return r
        return None

    ceil0 = summary["ceiling"].get("null-raw-q0", {}).get("rx_rate")
    mx = rrow(0, "max")
    if mx and ceil0:
        R = mx["rust"]
        ok = (R["dropped"] == 0 and not R.get("lost") and R["rx_rate"] is not None
              and R["rx_rate"] >= 0.95 * ceil0)
        t["sustain_ceiling_q0"] = {"met": ok, "rust_rx_rate": R["rx_rate"], "rust_dropped": R["dropped"],
                                   "rust_lost": R.get("lost"),
                                   "ceiling_rx_rate": ceil0,
                                   "ratio": R["rx_rate"] / ceil0 if R["rx_rate"] else None}

    def zero_drop_rate(side):
        best = None
        for r in rows:
            s = r[side]
            if r["qos"] == 0 and s.get("n") and s["dropped"] == 0 and not s.get("lost") and s["rx_rate"]:
                best = max(best or 0, s["rx_rate"])
        return best

    zr, zg = zero_drop_rate("rust"), zero_drop_rate("go")
    if zr and zg:
        t["zero_drop_rate_vs_go_q0"] = {"met": zr >= 1.5 * zg, "rust": zr, "go": zg, "ratio": zr / zg}
    band = [r for r in rows if r["qos"] == 0 and r["rate"] != "max" and 50000 <= float(r["rate"]) <= 200000
            and r["rust"]["cpu_us_msg"] is not None]
    if band:
        worst = max(r["rust"]["cpu_us_msg"] for r in band)
        t["cpu_le_1.5us_q0_50k_200k"] = {"met": worst <= 1.5, "worst_us_msg": worst,
                                        "by_rate": {r["rate"]: r["rust"]["cpu_us_msg"] for r in band}}
    ratios = {f"q{r['qos']}-{r['rate']}": r["cpu_ratio"] for r in rows if r["cpu_ratio"] is not None}
    if ratios:
        t["cpu_le_25pct_of_go"] = {"met": all(v <= 0.25 for v in ratios.values()),
                                   "worst_ratio": max(ratios.values()), "by_run": ratios}
    if card:
        c = summary["cardinality"]
        bpk = (c.get("table_bytes_per_key") or 0) + (c.get("heap_bytes_per_key") or 0)
        t["bytes_per_key_le_256"] = {"met": bpk <= 256, "bytes_per_key": bpk,
                                     "table_bytes_per_key": c.get("table_bytes_per_key"),
                                     "heap_bytes_per_key": c.get("heap_bytes_per_key"),
                                     "aggd_hwm_bytes_per_key": c.get("hwm_bytes_per_key")}
        t["aggd_rss_1M_keys_le_512MB"] = {"met": (c.get("aggd_hwm_mb") or 1e9) <= 512 and (c.get("keys") or 0) >= 1e6,
                                          "aggd_hwm_mb": c.get("aggd_hwm_mb"), "keys": c.get("keys")}
    if inj_rate:
        t["broker_less_ge_2M"] = {"met": inj_rate >= 2e6, "rate": inj_rate,
                                  "per_core": summary["broker_less"]["per_core"]}
    p("### Targets")
    p("")
    p("| target | met | figures |")
    p("|---|---|---|")
    for name, v in t.items():
        figs = ", ".join(f"{k}={(f'{x:.3g}' if isinstance(x, float) else x)}" for k, x in v.items()
                         if k != "met" and not isinstance(x, dict))
        p(f"| {name} | {'yes' if v['met'] else '**no**'} | {figs} |")
    p("")

    if chart:
        try:
            plot(chart, rust, go, max_others, also)
            summary["chart"] = chart
        except ImportError:
            print("(no matplotlib: no chart)", file=sys.stderr)

    text = "\n".join(lines)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    print("BENCH_SUMMARY " + json.dumps(summary, separators=(",", ":"), default=str))


def plot(path, rust, go, max_others, also=()):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    styles = {("rust", "0"): ("tab:orange", "o", "-"), ("rust", "1"): ("tab:orange", "s", "--"),
              ("go", "0"): ("tab:blue", "o", "-"), ("go", "1"): ("tab:blue", "s", "--")}
    series = [("rust", rust, "this pipeline (Rust)"), ("go", go, "Go reference (seed-go)")]
    series += [(f"also{i}", rows, f"this pipeline, {label}") for i, (rows, label) in enumerate(also)]
    extra = ["tab:green", "tab:red", "tab:purple"]
    for i, _ in enumerate(also):
        styles[(f"also{i}", "0")] = (extra[i % 3], "^", "-")
        styles[(f"also{i}", "1")] = (extra[i % 3], "v", "--")
    for side, rows, name in series:
        g = groups(rows, lambda r: (r["qos"], r["target"]))
        for q in ("0", "1"):
            pts = []
            for (qq, tgt), runs in g.items():
                if qq != q:
                    continue
                ok, _ = clean(runs, max_others)
                x, y = med(ok, "rx_rate"), med(ok, "cpu_us_msg")
                if x and y:
                    pts.append((x, y, tgt))
            if not pts:
                continue
            pts.sort()
            c, m, ls = styles[(side, q)]
            label = f"{name}, QoS {q}"
            ax.plot([p[0] / 1000 for p in pts], [p[1] for p in pts], color=c, marker=m, linestyle=ls, label=label)
            for x, y, tgt in pts:
                if tgt == "max":
                    ax.annotate("max", (x / 1000, y), textcoords="offset points", xytext=(4, 4), fontsize=8, color=c)
    ax.axhline(1.5, color="gray", linestyle=":", linewidth=1)
    ax.text(ax.get_xlim()[0], 1.55, " target 1.5 µs/msg (QoS 0, 50k-200k)", fontsize=8, color="gray")
    ax.set_yscale("log")
    ax.set_xlabel("messages received per second (thousands), median per target rate")
    ax.set_ylabel("pipeline CPU per message (µs, user+system, log scale)")
    ax.set_title("CPU per message vs rate, 10,000 keys, 4 publishers, 2-vCPU VM")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
