"""A stand-in for deploy/grafana/telemetry.json: the dashboard's panels drawn with matplotlib
from `telemetryctl stats --watch --json` samples of a real run (scripts/dashboard-picture.sh).
Rates are counter differences between consecutive samples, as Prometheus' rate() would give."""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STAGES = ["ingestd", "decoded", "aggd", "emitd"]


def main(samples_path, out_path):
    samples = [json.loads(line) for line in open(samples_path) if line.strip()]
    t0 = samples[0]["time_unix_ms"]
    t = [(s["time_unix_ms"] - t0) / 1000 for s in samples]

    def stage(sample, name):
        return next((st for st in sample["stages"] if st["name"] == name), None)

    def series(fn):
        return [fn(s) for s in samples]

    def rate(values):
        out = [0.0]
        for i in range(1, len(values)):
            dt = t[i] - t[i - 1]
            out.append(max(values[i] - values[i - 1], 0) / dt if dt > 0 else 0.0)
        return out

    def by_key(field, names=STAGES):
        keys = sorted({(n, k) for s in samples for n in names if stage(s, n) for k in stage(s, n)[field]})
        return {f"{n} {k}": series(lambda s, n=n, k=k: (stage(s, n) or {}).get(field, {}).get(k, 0)) for n, k in keys}

    panels = []

    def panel(title, lines, ylabel, note=None, ylim=None):
        panels.append((title, lines, ylabel, note, ylim))

    panel("Messages in per stage (msg/s)",
          {n: rate(series(lambda s, n=n: stage(s, n)["received"])) for n in STAGES}, "msg/s")
    panel("Messages out per stage (msg/s)",
          {n: rate(series(lambda s, n=n: stage(s, n)["forwarded"])) for n in STAGES}, "msg/s")
    # Reasons that stayed at 0 are left out, as a Grafana panel shows no line for them either.
    drops = {k: rate(v) for k, v in by_key("dropped").items() if any(v)}
    errors = {k: rate(v) for k, v in by_key("errors").items() if any(v)}
    panel("Drops and errors by reason (msg/s)", {**{f"dropped {k}": v for k, v in drops.items()},
                                                 **{f"error {k}": v for k, v in errors.items()}}, "msg/s",
          None if drops or errors else "none in this run")
    rings = sorted({r["name"] for s in samples for r in s["rings"]})
    panel("Ring fill (depth / capacity)",
          {r: series(lambda s, r=r: next((x["depth"] or 0) / x["capacity"] for x in s["rings"] if x["name"] == r))
           for r in rings}, "fraction")
    restarts = {f"restarts {n}": series(lambda s, n=n: stage(s, n)["restarts"]) for n in STAGES}
    hangs = {f"hangs {n}": series(lambda s, n=n: stage(s, n)["hangs"]) for n in STAGES}
    panel("Restarts and hangs (total)", {**restarts, **hangs}, "count")
    keys = {"keys tracked": series(lambda s: stage(s, "aggd")["gauges"].get("keys_tracked", 0))}
    evictions = {c: rate(series(lambda s, c=c: stage(s, "aggd")["counters"].get(c, 0)))
                 for c in sorted({c for s in samples for c in stage(s, "aggd")["counters"] if c.startswith("evicted.")})}
    panel("aggd keys tracked, evictions (/s)", {**keys, **evictions}, "keys")
    backlog = {f"emitd {k}": v for k, v in by_key("gauges", ["emitd"]).items() if k.startswith("backlog.")}
    panel("emitd backlog per sink", backlog, "records",
          None if backlog else "emitd publishes no backlog gauge yet")
    wires = {k: v for k, v in by_key("gauges").items() if " connected." in k}
    panel("Connection state per wire", wires, "connected", None if wires else "no connection gauges", (-0.1, 1.1))

    fig, axes = plt.subplots(4, 2, figsize=(14, 14))
    for ax, (title, lines, ylabel, note, ylim) in zip(axes.flat, panels):
        for label, values in lines.items():
            ax.plot(t, values, label=label)
        ax.set_title(title)
        ax.set_xlabel("seconds")
        ax.set_ylabel(ylabel)
        if ylim:
            ax.set_ylim(*ylim)
        if note:
            ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center", color="gray")
        if lines:
            ax.legend(fontsize=7, loc="upper right")
        ax.grid(alpha=0.3)
    fig.suptitle("Stand-in for deploy/grafana/telemetry.json: matplotlib from `telemetryctl stats --watch --json`"
                 " of a real run (not Grafana)", fontsize=11)
    fig.tight_layout()
    fig.savefig(out_path, dpi=80)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
