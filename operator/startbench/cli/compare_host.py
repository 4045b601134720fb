"""`startbench compare-host`: the same workload on the host and in a container (local Docker engine),
interleaved, with each metric's container overhead in percent and a confidence interval
(workload/overhead.py says how). I/O only: running, collecting reports and printing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

from startbench.workload.frameworks import FRAMEWORKS
from startbench.workload.overhead import compare, format_table
from startbench.workload.perf import MODELS, PRECISIONS
from startbench.workload.report import ReportError, parse_report


class CompareError(RuntimeError):
    pass


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "compare-host", help="run the workload on the host and in a container, print the container's overhead",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--framework", choices=FRAMEWORKS, required=True)
    p.add_argument("--model", choices=MODELS, required=True)
    p.add_argument("--image", default=os.environ.get("STARTBENCH_COMPARE_IMAGE"),
                   help="framework image whose entry point is python -m startbench.workload "
                        "(default: env STARTBENCH_COMPARE_IMAGE)")
    p.add_argument("--repeats", type=int, default=5, help="measured pairs (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured runs on each side first (default 1)")
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--shape", choices=("imagenet", "tiny-imagenet"), default="tiny-imagenet")
    p.add_argument("--device", choices=("auto", "gpu", "cpu"), default="auto",
                   help="gpu passes every GPU to the container (NVIDIA container toolkit needed)")
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--python", default=sys.executable, help="host interpreter with the framework installed")
    p.add_argument("--entrypoint", help="override the image's entry point, e.g. 'python3 -m startbench.workload'")
    p.add_argument("--timeout", type=float, default=1800, help="seconds allowed for one run")
    p.add_argument("--json", metavar="PATH", help="also write every report and the table's rows as JSON")
    p.set_defaults(func=run_compare_host)


def workload_args(args) -> list[str]:
    return ["--framework", args.framework, "--model", args.model, "--steps", str(args.steps),
            "--batch-size", str(args.batch_size), "--precision", args.precision, "--shape", args.shape,
            "--device", args.device]


def _parse(side: str, text: str, detail: str) -> dict[str, Any]:
    try:
        report = parse_report(text)
    except ReportError as exc:
        raise CompareError(f"{side} run gave no valid report ({exc.reason}); {detail}") from None
    if not report["ok"]:
        raise CompareError(f"{side} run failed before {report['failed_phase']}: {report['error']}")
    return report


def _describe(report: dict[str, Any]) -> str:
    device = report.get("device") or {}
    return f"{device.get('kind')} ({device.get('name') or 'unnamed'})"


def check_same_device(host: dict[str, Any], container: dict[str, Any], requested: str) -> None:
    """Refuse a comparison whose two sides trained on different devices: a GPU host against a CPU container
    (what `--device auto` gives when the container is not handed the GPUs) measures the device, not the
    container. Kind and name must agree (the name of a MIG slice includes its profile)."""
    h, c = host.get("device") or {}, container.get("device") or {}
    if h.get("kind") == c.get("kind") and h.get("name") == c.get("name"):
        return
    fix = ("pass --device gpu (the container then gets the GPUs; needs the NVIDIA container toolkit) or "
           "--device cpu to compare like with like")
    if requested == "gpu" and c.get("kind") != "gpu":
        fix = ("the container saw no GPU although --device gpu handed it the GPUs: check the NVIDIA container "
               "toolkit (docker run --gpus all ... nvidia-smi) and that the image has a CUDA build of the framework")
    raise CompareError(f"device mismatch: the host ran on {_describe(host)}, the container on "
                       f"{_describe(container)} (--device {requested}); {fix}")


def run_host(args, wargs: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="startbench-compare-") as tmp:
        env = dict(os.environ, STARTBENCH_REPORT_PATH=os.path.join(tmp, "report.json"))
        env.pop("STARTBENCH_WORKLOAD_FAIL_AT", None)
        proc = subprocess.run([args.python, "-m", "startbench.workload", *wargs], env=env, capture_output=True,
                              text=True, timeout=args.timeout)
    return _parse("host", proc.stdout, f"exit code {proc.returncode}, stderr ends: {proc.stderr[-400:]!r}")


def docker_client():
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:
        raise CompareError(f"no Docker engine reachable ({exc}); start one or set DOCKER_HOST") from None
    return client


def run_container(client, args, wargs: list[str]) -> dict[str, Any]:
    import docker

    kwargs: dict[str, Any] = {"command": wargs, "detach": True,
                              "environment": {"STARTBENCH_REPORT_PATH": "/tmp/startbench-report.json"}}
    if args.entrypoint:
        kwargs["entrypoint"] = args.entrypoint.split()
    if args.device == "gpu":
        kwargs["device_requests"] = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
    container = client.containers.run(args.image, **kwargs)
    try:
        status = container.wait(timeout=args.timeout)
        stdout = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
        stderr = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")
    finally:
        container.remove(force=True)
    return _parse("container", stdout, f"exit code {status.get('StatusCode')}, stderr ends: {stderr[-400:]!r}")


def run_compare_host(args) -> int:
    if not args.image:
        print("compare-host: --image is required (or set STARTBENCH_COMPARE_IMAGE), e.g. "
              "--image 127.0.0.1:5000/startbench/pytorch:slim-cpu", file=sys.stderr)
        return 2
    if args.repeats < 1:
        print(f"compare-host: --repeats {args.repeats}: at least 1 (2 or more for a confidence interval)",
              file=sys.stderr)
        return 2
    wargs = workload_args(args)
    try:
        client = docker_client()
        try:
            client.images.get(args.image)
        except Exception:
            print(f"compare-host: pulling {args.image}", file=sys.stderr)
            try:
                client.images.pull(args.image)
            except Exception as exc:
                raise CompareError(f"image {args.image} is not on this engine and could not be pulled ({exc}); "
                                   "build it (dockerfiles/) or pass another --image") from None
        for i in range(args.warmup):
            print(f"compare-host: warm-up {i + 1}/{args.warmup}", file=sys.stderr)
            check_same_device(run_host(args, wargs), run_container(client, args, wargs), args.device)
        host, cont = [], []
        for i in range(args.repeats):
            # Alternate the order, so drift of the machine does not favour one side.
            order = ("host", "container") if i % 2 == 0 else ("container", "host")
            for side in order:
                print(f"compare-host: pair {i + 1}/{args.repeats}: {side}", file=sys.stderr)
                if side == "host":
                    host.append(run_host(args, wargs))
                else:
                    cont.append(run_container(client, args, wargs))
            check_same_device(host[-1], cont[-1], args.device)
    except (CompareError, subprocess.TimeoutExpired) as exc:
        print(f"compare-host: {exc}", file=sys.stderr)
        return 1
    rows = compare(host, cont, args.confidence)
    print(f"{args.framework} {args.model}, {args.repeats} pairs, host {sys.platform} vs container {args.image}")
    print("overhead > 0: the container is slower or does less work (workload/overhead.py)")
    print(format_table(rows, args.confidence))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"host": host, "container": cont, "rows": [r.__dict__ for r in rows]}, f, indent=1)
    return 0
