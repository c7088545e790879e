#!/usr/bin/env python3
"""Summarises scripts/bench.sh runs: medians per workload and tool, the egressfwd/testpmd
ratio of each run (measured minutes apart on the same input) and their median, as markdown,
plus two charts.

  bench_report.py RESULTS.csv OUT_DIR [EARLIER.csv ...]

The paired table-size sweep rounds of EARLIER files (runs of the same code) are pooled with
this run's for one more estimate of the table-size cost.
"""
import csv
import os
import random
import statistics
import sys
from collections import defaultdict

rows = list(csv.DictReader(open(sys.argv[1])))
out = sys.argv[2]
earlier = sys.argv[3:]
mpps = defaultdict(list)
by_run = defaultdict(dict)
for r in rows:
    key = (r["workload"], int(r["addresses"]))
    mpps[key + (r["tool"],)].append(float(r["mpps"]))
    by_run[key + (r["run"],)][r["tool"]] = float(r["mpps"])


def median(v):
    return statistics.median(v) if v else float("nan")


def median_interval(values, resamples=10000):
    """95% bootstrap interval of the median (fixed seed: the same input gives the same text)."""
    rng = random.Random(1)
    medians = sorted(median(rng.choices(values, k=len(values))) for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def sweep_rounds(rows, source=""):
    """Per round of the paired sweep, throughput by table size."""
    rounds = defaultdict(dict)
    for r in rows:
        if r["tool"] == "egressfwd-sweep":
            rounds[(source, r["run"])][int(r["addresses"])] = float(r["mpps"])
    return rounds


def changes_from(rounds, smallest, size):
    """Per round, the change from the smallest size to `size`, in percent."""
    return [100 * (by_size[size] / by_size[smallest] - 1) for by_size in rounds.values()
            if by_size.get(size) and by_size.get(smallest)]


def ratios(key, tool):
    return [runs["egressfwd"] / runs[tool] for (w, a, _), runs in by_run.items()
            if (w, a) == key and runs.get(tool) and "egressfwd" in runs]


# Workloads of the side-by-side phase (empty when only the sweep ran: REPEATS=0).
cases = sorted({(r["workload"], int(r["addresses"])) for r in rows if r["tool"] in ("egressfwd", "macswap", "5tswap")},
               key=lambda k: (k[0] != "local", k[0], k[1]))
lines = ["| workload | IPv4 egress addresses | egressfwd Mpps | testpmd macswap Mpps | testpmd 5tswap Mpps "
         "| egressfwd / macswap | egressfwd / 5tswap |",
         "|---|---:|---:|---:|---:|---:|---:|"]
for key in cases:
    e, m, f = (median(mpps[key + (t,)]) for t in ("egressfwd", "macswap", "5tswap"))
    rm, rf = ratios(key, "macswap"), ratios(key, "5tswap")
    lines.append(f"| {key[0]} | {key[1]:,} | {e:.2f} | {m:.2f} | {f:.2f} | {median(rm):.2f} "
                 f"({', '.join(f'{x:.2f}' for x in rm)}) | {median(rf):.2f} ({', '.join(f'{x:.2f}' for x in rf)}) |")
sweep = sorted((a, median(mpps[("mix", a, "egressfwd")])) for (w, a) in cases if w == "mix")
notes = []
if len(sweep) >= 2:
    base = dict(sweep)
    smallest = sweep[0]
    for a, v in sweep[1:]:
        notes.append(f"- mix, {smallest[0]:,} -> {a:,} addresses: throughput {100 * (v / smallest[1] - 1):+.1f}% "
                     f"({smallest[1]:.2f} -> {v:.2f} Mpps)")
# The paired sweep: per round, each size's throughput over the smallest size's.
paired = sweep_rounds(rows)
paired_sizes = sorted({a for by_size in paired.values() for a in by_size})
if len(paired_sizes) >= 2:
    smallest = paired_sizes[0]
    notes.append(f"- the mix table-size sweep, paired ({len(paired)} rounds of every size back to back; per round, "
                 f"the change from {smallest:,} addresses; their median first, with the 95% bootstrap "
                 f"interval of the median):")
    for a in paired_sizes[1:]:
        changes = changes_from(paired, smallest, a)
        low, high = median_interval(changes)
        notes.append(f"  - {smallest:,} -> {a:,} addresses: {median(changes):+.1f}% [{low:+.1f}, {high:+.1f}] "
                     f"({', '.join(f'{c:+.1f}' for c in changes)}); "
                     f"median Mpps {median([b[smallest] for b in paired.values() if smallest in b]):.2f} -> "
                     f"{median([b[a] for b in paired.values() if a in b]):.2f}")
    if earlier:
        pooled = dict(paired)
        for i, path in enumerate(earlier, 1):
            pooled.update(sweep_rounds(list(csv.DictReader(open(path))), source=str(i)))
        notes.append(f"  - pooled with the paired rounds of {', '.join(earlier)}:")
        for a in paired_sizes[1:]:
            changes = changes_from(pooled, smallest, a)
            low, high = median_interval(changes)
            notes.append(f"    - {smallest:,} -> {a:,} addresses, {len(changes)} rounds: "
                         f"{median(changes):+.1f}% [{low:+.1f}, {high:+.1f}]")
sleepy = median(mpps[("mix", 1_000_000, "egressfwd-idle-sleep")])
if sleepy == sleepy:  # not NaN
    busy = median(mpps[("mix", 1_000_000, "egressfwd")])
    notes.append(f"- idle back-off (idle_sleep_us = 100, the default) under full load: {sleepy:.2f} Mpps "
                 f"against {busy:.2f} busy-polling ({100 * (sleepy / busy - 1):+.1f}%)")
# The worker floor: per round, egressfwd built without its pipeline against testpmd and egressfwd.
floor = defaultdict(dict)
for r in rows:
    if r["tool"].startswith("floor:"):
        floor[r["run"]][r["tool"][len("floor:"):]] = float(r["mpps"])
FLOOR_TOOLS = ("egressfwd-no-pipeline", "egressfwd", "io", "macswap")
if floor:
    def per_round(f):  # rounds where every tool ran and measured something
        return [f(t) for t in floor.values() if all(t.get(tool) for tool in FLOOR_TOOLS)]

    def listed(values, fmt):
        return f"{fmt(median(values))} ({', '.join(fmt(v) for v in values)})"

    def two_places(v):
        return f"{v:.2f}"

    def nanoseconds(v):
        return f"{round(v)} ns"  # an int: no "-0"

    notes.append(f"- the worker floor (mix, 1,000,000 addresses, {len(floor)} rounds of four runs back to back; "
                 f"median first, then each round's):")
    notes.append("  - egressfwd built with `--features bench-floor` (every packet passed unprocessed): "
                 + listed(per_round(lambda t: t["egressfwd-no-pipeline"]), two_places) + " Mpps; "
                 + "egressfwd " + listed(per_round(lambda t: t["egressfwd"]), two_places) + " Mpps; "
                 + "testpmd io " + listed(per_round(lambda t: t["io"]), two_places) + ", macswap "
                 + listed(per_round(lambda t: t["macswap"]), two_places) + " Mpps")
    notes.append("  - floor / testpmd macswap: "
                 + listed(per_round(lambda t: t["egressfwd-no-pipeline"] / t["macswap"]), two_places)
                 + "; floor / testpmd io: "
                 + listed(per_round(lambda t: t["egressfwd-no-pipeline"] / t["io"]), two_places)
                 + "; egressfwd / floor: "
                 + listed(per_round(lambda t: t["egressfwd"] / t["egressfwd-no-pipeline"]), two_places))
    notes.append("  - per packet: the floor "
                 + listed(per_round(lambda t: 1e3 / t["egressfwd-no-pipeline"]), nanoseconds)
                 + ", the pipeline on top of it "
                 + listed(per_round(lambda t: 1e3 / t["egressfwd"] - 1e3 / t["egressfwd-no-pipeline"]), nanoseconds)
                 + "; 0.8x macswap leaves the pipeline "
                 + listed(per_round(lambda t: 1e3 / (0.8 * t["macswap"]) - 1e3 / t["egressfwd-no-pipeline"]),
                          nanoseconds))
# Before and after a change (BEFORE=COMMIT): per round, this build's egressfwd over the earlier one's.
paired = defaultdict(dict)
for r in rows:
    if r["tool"].startswith("paired:"):
        paired[r["run"]][r["tool"][len("paired:"):]] = float(r["mpps"])
rounds = [t for t in paired.values() if t.get("before") and t.get("after")]
if rounds:
    before_commit = os.environ.get("BEFORE") or "an earlier commit"
    change = [t["after"] / t["before"] for t in rounds]
    notes.append(f"- this build against {before_commit} (mix, 1,000,000 addresses, {len(rounds)} rounds of two runs "
                 f"back to back): after / before {median(change):.3f} "
                 f"({', '.join(f'{c:.3f}' for c in change)}); before "
                 f"{median([t['before'] for t in rounds]):.2f} Mpps, after {median([t['after'] for t in rounds]):.2f} Mpps")
runs = len({r["run"] for r in rows
            if r["tool"] != "egressfwd-sweep" and not r["tool"].startswith(("floor:", "paired:"))})
text = ""
if cases:
    text = ("Median of %d runs; ratios are per run (tools run back to back on the same input), "
            "their median first, then each run's.\n\n" % runs) + "\n".join(lines) + "\n"
if notes:
    text += "\negressfwd alone:\n\n" + "\n".join(notes) + "\n"
open(f"{out}/results.md", "w").write(text)
print(text)

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit("matplotlib missing (apt-get install python3-matplotlib): no charts")

main_cases = [k for k in cases if k[1] == 1_000_000]
if main_cases:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.27
    for i, tool in enumerate(("egressfwd", "macswap", "5tswap")):
        values = [median(mpps[k + (tool,)]) for k in main_cases]
        label = tool if tool == "egressfwd" else f"testpmd {tool}"
        ax.bar([x + (i - 1) * width for x in range(len(main_cases))], values, width, label=label)
    ax.set_xticks(range(len(main_cases)), [k[0] for k in main_cases])
    ax.set_ylabel("Mpps (median)")
    ax.set_title("One forwarding core, net_pcap infinite_rx, 1M-address table")
    ax.legend()
    fig.tight_layout()
    fig.savefig(f"{out}/throughput.png", dpi=110)

if sweep or paired_sizes:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([a for a, _ in sweep], [v for _, v in sweep], marker="o", label="egressfwd (mix)")
    mac = [median(mpps[("mix", a, "macswap")]) for a, _ in sweep]
    ax.plot([a for a, _ in sweep], mac, marker="s", linestyle="--", label="testpmd macswap (same pcap)")
    if paired_sizes:
        ax.plot(paired_sizes, [median([b[a] for b in paired.values() if a in b]) for a in paired_sizes],
                marker="^", linestyle=":", label="egressfwd (mix), paired rounds")
    ax.set_xscale("log")
    ax.set_xlabel("IPv4 egress addresses in the topology")
    ax.set_ylabel("Mpps (median)")
    ax.set_ylim(bottom=0)
    ax.set_title("Table-size sweep, mix workload")
    ax.legend()
    fig.tight_layout()
    fig.savefig(f"{out}/sweep.png", dpi=110)
