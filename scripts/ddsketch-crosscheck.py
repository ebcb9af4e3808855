#!/usr/bin/env python3
"""Reference for records/tests/ddsketch.rs: Datadog's DDSketch (PyPI `ddsketch`, written by
nobody here) over the samples on stdin, one per line, at relative accuracy argv[1].

Prints JSON: the zero count, the positive and negative buckets as {key: count} (DDSketch key k
holds (gamma^(k-1), gamma^k]: OpenTelemetry's bucket k - 1 at the same gamma), and, for each
1-based rank in argv[2:], the value DDSketch reads for the sample of that rank.
"""
import json
import os
import sys

# scripts/install-deps.sh installs ddsketch into target/test-python (pip --target works on a
# Debian python that refuses system-wide pip installs, PEP 668); one installed elsewhere works too.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "test-python"))

from ddsketch import DDSketch  # noqa: E402


def main():
    alpha = float(sys.argv[1])
    ranks = [int(r) for r in sys.argv[2:]]
    sketch = DDSketch(alpha)
    for line in sys.stdin:
        if line.strip():
            sketch.add(float(line))
    n = sketch.count

    def buckets(store):
        return {str(store.offset + i): int(c) for i, c in enumerate(store.bins) if c}

    def at_rank(r):
        # DDSketch reads rank q*(n-1), 0-based, and takes the first bucket whose running count
        # exceeds it: q = (r - 0.5)/(n - 1) names the r-th sample without rounding doubt.
        q = 1.0 if r >= n else (r - 0.5) / (n - 1)
        return sketch.get_quantile_value(min(q, 1.0))

    print(json.dumps({
        "zero": int(sketch._zero_count),
        "positive": buckets(sketch._store),
        "negative": buckets(sketch._negative_store),
        "values": [at_rank(r) for r in ranks],
    }))


if __name__ == "__main__":
    main()
