#!/usr/bin/env python3
"""Naive versus slim framework images, built side by side in one run, sizes from the registry.

For each framework: build the naive image on a general-purpose base (locally: startbench/base-full, a
debootstrap equivalent of python:3.11) and the slim one on the lean base (startbench/base, like
python:3.11-slim), push both to the local registry, and print
  * slim/naive size ratios (uncompressed and compressed): goal <= 0.60 (slim at least 40 % smaller);
  * each image's size over the installed size of its Python packages (du of site-packages as pip
    installed them: the naive image's own venv, the slim Dockerfile's `installed` stage): goal < 1.15 for slim.

  python3 bench/images_sizes.py --frameworks jax --flavour cpu [--ca-bundle /etc/ssl/certs/ca-certificates.crt]
  python3 bench/images_sizes.py --frameworks pytorch,jax,tensorflow --flavour cuda --json out.json

The result is kept under bench/results/ (bench/keep.py), or at --json.

Gigabytes of downloads and disk per framework: not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime
import io
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from startbench.images import catalog  # noqa: E402
from startbench.images.builder import build_and_push  # noqa: E402
from startbench.images.context import build_context  # noqa: E402
from startbench.images.records import human_bytes  # noqa: E402
from startbench.localcluster import baseimage, docker_engine, registry  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from keep import Keeper  # noqa: E402  (bench/keep.py: results under bench/results/)

SITE = "/opt/venv/lib/python3.11/site-packages"
SLIM_GOAL, PACKAGES_GOAL = 0.60, 1.15


def du(client, image: str) -> int:
    out = client.containers.run(image, entrypoint=["du", "-sb", SITE], remove=True, network_disabled=True, user="0")
    return int(out.split()[0])


def installed_stage(client, framework: str, flavour: str, base: str, ca_bundle: Path | None) -> str:
    """Build the slim Dockerfile's `installed` stage (cached from the slim build) and return its tag."""
    spec = catalog.resolve(framework, "slim", flavour)
    context, dockerfile = build_context(spec.dockerfile, spec.framework_dir, ca_bundle=ca_bundle)
    tag = f"startbench-bench/{framework}-installed:{flavour}"
    for chunk in client.api.build(fileobj=io.BytesIO(context), custom_context=True, dockerfile=dockerfile, tag=tag,
                                  target="installed", buildargs={"FLAVOUR": flavour, "BASE_IMAGE": base},
                                  decode=True, rm=True):
        if "error" in chunk:
            raise RuntimeError(chunk["error"])
    return tag


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frameworks", default="pytorch,jax,tensorflow")
    p.add_argument("--flavour", default="cpu", choices=catalog.FLAVOURS)
    p.add_argument("--registry", default="127.0.0.1:5000")
    p.add_argument("--ca-bundle", type=Path, help="CA bundle for the pip step (this machine's TLS proxy)")
    p.add_argument("--json", type=Path, help="keep the results here instead of bench/results/images_sizes-DATE.json")
    p.add_argument("--verbose", action="store_true", help="print the build log")
    p.add_argument("--remove-images", action="store_true",
                   help="remove each framework's images from the engine once measured (the registry keeps its "
                        "copies): CUDA flavours take 15-20 GB of disk per framework")
    args = p.parse_args(argv)

    host = docker_engine.ensure()
    registry.ensure()
    lean = baseimage.ensure(baseimage.DEFAULT_TAG, docker_host=host)
    full = baseimage.ensure(baseimage.FULL_TAG, docker_host=host)
    import docker

    client = docker.DockerClient(base_url=host, timeout=3600)
    progress = (lambda m: print(m, file=sys.stderr, flush=True)) if args.verbose else (lambda m: None)
    rows, t_start, kept = [], time.monotonic(), None
    keeper = Keeper("images_sizes", ["bench/images_sizes.py", *(sys.argv[1:] if argv is None else argv)])
    for framework in [f.strip() for f in args.frameworks.split(",") if f.strip()]:
        result = {"framework": framework, "flavour": args.flavour}
        for variant, base in (("naive", full), ("slim", lean)):
            print(f"== {framework} {variant} {args.flavour} on {base}", file=sys.stderr, flush=True)
            rec = build_and_push(framework, variant, args.flavour, args.registry, progress=progress, base_image=base,
                                 ca_bundle=args.ca_bundle, docker_host=host)
            measured = rec.reference if variant == "naive" else installed_stage(client, framework, args.flavour, lean,
                                                                                 args.ca_bundle)
            packages = du(client, measured)
            result[variant] = {**rec.to_dict(), "packages_bytes": packages}
            print(f"   {rec.reference}: {human_bytes(rec.uncompressed_bytes)} uncompressed, "
                  f"{human_bytes(rec.compressed_bytes)} compressed, {rec.layer_count} layers, "
                  f"packages {human_bytes(packages)}; build {rec.build_s:.0f}s push {rec.push_s:.0f}s",
                  file=sys.stderr, flush=True)
        n, s = result["naive"], result["slim"]
        result["slim_over_naive_uncompressed"] = s["uncompressed_bytes"] / n["uncompressed_bytes"]
        result["slim_over_naive_compressed"] = s["compressed_bytes"] / n["compressed_bytes"]
        result["naive_over_packages"] = n["uncompressed_bytes"] / n["packages_bytes"]
        result["slim_over_packages"] = s["uncompressed_bytes"] / s["packages_bytes"]
        rows.append(result)
        # Kept after each framework, in one file: a later one that fails (a full disk) loses nothing measured.
        kept = keeper.keep({"flavour": args.flavour, "results": rows}, args.json or kept)
        if args.remove_images:
            for image in (n["reference"], s["reference"], measured):  # measured: the slim `installed` stage
                client.images.remove(image, noprune=False)
            client.images.prune(filters={"dangling": True})
    client.close()

    print(f"\nimage sizes, {args.flavour} flavour, {datetime.date.today()} on {platform.node()} "
          f"({platform.machine()}), {time.monotonic() - t_start:.0f}s in all")
    width = max([len("repository")] + [len(r[v]["repository"]) for r in rows for v in ("naive", "slim")])
    print(f"{'repository':<{width}} {'tag':<11} {'uncompressed':>12} {'compressed':>11} {'layers':>6} "
          f"{'packages':>10} {'image/pkgs':>10}")
    for r in rows:
        for variant in ("naive", "slim"):
            v = r[variant]
            print(f"{v['repository']:<{width}} {v['tag']:<11} {human_bytes(v['uncompressed_bytes']):>12} "
                  f"{human_bytes(v['compressed_bytes']):>11} {v['layer_count']:>6} "
                  f"{human_bytes(v['packages_bytes']):>10} {v['uncompressed_bytes'] / v['packages_bytes']:>10.2f}")
    print()
    ok = True
    for r in rows:
        goal_slim = r["slim_over_naive_uncompressed"] <= SLIM_GOAL and r["slim_over_naive_compressed"] <= SLIM_GOAL
        goal_pkgs = r["slim_over_packages"] < PACKAGES_GOAL
        ok &= goal_slim and goal_pkgs
        print(f"{r['framework']:<11} slim/naive {r['slim_over_naive_uncompressed']:.2f} uncompressed, "
              f"{r['slim_over_naive_compressed']:.2f} compressed (goal <= {SLIM_GOAL:.2f}: "
              f"{'met' if goal_slim else 'MISSED'}); slim/packages {r['slim_over_packages']:.2f} "
              f"(goal < {PACKAGES_GOAL}: {'met' if goal_pkgs else 'MISSED'}); naive/packages "
              f"{r['naive_over_packages']:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
