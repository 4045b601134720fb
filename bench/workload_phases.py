#!/usr/bin/env python3
"""Where the seconds before the first training step go, per framework, on this machine.

Runs `python -m startbench.workload` --repeats times per framework (CPU unless --device says otherwise) and
prints, per framework, the median of each phase as a share of process-start-to-first-step, and the median
steady-state throughput relative to the first framework's. Ratios only: absolute numbers depend on the
machine and its load; the raw reports are kept under bench/results/ (bench/keep.py: with the date,
commit, machine and load average), or at --json.

  python3 bench/workload_phases.py --frameworks pytorch,jax,tensorflow --repeats 3
  python3 bench/workload_phases.py --frameworks pytorch,jax --device gpu --shape imagenet --batch-size 64 --steps 30

Needs the frameworks installed (hack/ci/setup-20-workload.sh); not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from startbench.workload.marks import PHASES, phase_durations_ms  # noqa: E402
from startbench.workload.report import parse_report  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from keep import Keeper  # noqa: E402


def run_once(args, framework: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, STARTBENCH_REPORT_PATH=str(Path(tmp) / "report.json"))
        proc = subprocess.run([sys.executable, "-m", "startbench.workload", "--framework", framework, "--model",
                               args.model, "--steps", str(args.steps), "--batch-size", str(args.batch_size),
                               "--shape", args.shape, "--device", args.device, "--precision", args.precision],
                              env=env, capture_output=True, text=True, timeout=3600)
    report = parse_report(proc.stdout)
    if not report["ok"]:
        raise SystemExit(f"{framework}: failed before {report['failed_phase']}: {report['error']}")
    return report


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frameworks", default="pytorch,jax,tensorflow")
    p.add_argument("--model", default="resnet18")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--shape", default="tiny-imagenet")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--json", help="keep every report here instead of bench/results/workload_phases-DATE.json")
    args = p.parse_args()
    keeper = Keeper("workload_phases")
    reports: dict[str, list[dict]] = {}
    for i in range(args.repeats):
        for fw in args.frameworks.split(","):  # interleaved: drift spreads over every framework
            print(f"run {i + 1}/{args.repeats}: {fw}", file=sys.stderr)
            reports.setdefault(fw, []).append(run_once(args, fw))
    names = [name for name, _s, _e in PHASES if name != "steady"]
    print(f"model {args.model}, {args.shape}, batch {args.batch_size}, device {args.device}, "
          f"median of {args.repeats}; phases as a share of process start -> first step")
    print(f"{'framework':<11}" + "".join(f"{n:>12}" for n in names) + f"{'throughput':>12}")
    base_sps = None
    for fw, runs in reports.items():
        shares = {n: [] for n in names}
        for r in runs:
            d = phase_durations_ms(r["marks_ms"])
            total = r["marks_ms"]["first_step"] - r["marks_ms"]["process_start"]
            for n in names:
                shares[n].append(d[n] / total)
        sps = statistics.median(r["metrics"]["samples_per_s"] for r in runs)
        base_sps = base_sps or sps
        print(f"{fw:<11}" + "".join(f"{statistics.median(shares[n]):>12.2f}" for n in names) + f"{sps / base_sps:>12.2f}")
    keeper.keep({"model": args.model, "shape": args.shape, "batchSize": args.batch_size, "device": args.device,
                 "precision": args.precision, "steps": args.steps, "repeats": args.repeats, "reports": reports},
                Path(args.json) if args.json else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
