"""`startbench images build | sizes`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from startbench.images import catalog, store
from startbench.images.records import format_table

_EPILOG = """examples:
  startbench images build --framework jax --variant slim --flavour cpu --push 127.0.0.1:5000
  startbench images build --framework pytorch --variant naive --push ghcr.io/myorg --credentials-secret ci/ghcr
  startbench images sizes --format json
  startbench images convert 127.0.0.1:5000/startbench-jax:slim-cpu --to zstd --push 127.0.0.1:5000/startbench-jax:slim-cpu-zstd
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("images", help="build and push framework images; show their sizes",
                              description=__doc__, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="images_command", required=True, metavar="ACTION")

    b = sub.add_parser("build", help="build, push and record one image")
    b.add_argument("--framework", required=True, help=f"one of {', '.join(catalog.FRAMEWORKS)} (or operator)")
    b.add_argument("--variant", required=True, choices=catalog.VARIANTS)
    b.add_argument("--flavour", default="cpu", choices=catalog.FLAVOURS, help="cpu or cuda wheels (default cpu)")
    b.add_argument("--push", required=True, metavar="REGISTRY", help="host[:port][/namespace] to push to")
    b.add_argument("--base-image", help="BASE_IMAGE build argument (default: the Dockerfile's)")
    b.add_argument("--ca-bundle", type=Path, help="CA bundle for the pip step only (a TLS-intercepting proxy)")
    b.add_argument("--credentials-secret", metavar="NAMESPACE/NAME",
                   help="read registry credentials from this Kubernetes Secret (default: the Docker config)")
    b.add_argument("--username", help="registry user; the password is read from stdin (--password-stdin)")
    b.add_argument("--password-stdin", action="store_true", help="read the registry password from stdin")
    b.add_argument("--dockerfiles", type=Path, help="directory of <framework>/<variant>.Dockerfile (default: the repo's)")
    b.add_argument("--quiet", action="store_true", help="print only the result")
    b.add_argument("--format", choices=("text", "json"), default="text")
    b.set_defaults(func=_build)

    c = sub.add_parser("convert", help="push the same image with its layers compressed another way (zstd, gzip)")
    c.add_argument("source", metavar="SRC", help="the image to convert, REGISTRY/REPOSITORY:TAG")
    c.add_argument("--to", required=True, choices=("zstd", "gzip", "estargz"), help="the layers' new compression")
    c.add_argument("--level", type=int, help="compression level (default: zstd 3, gzip 6)")
    c.add_argument("--push", required=True, metavar="DEST", help="where to push it, REGISTRY/REPOSITORY:TAG")
    c.add_argument("--username", help="registry user; the password is read from stdin (--password-stdin)")
    c.add_argument("--password-stdin", action="store_true", help="read the registry password from stdin")
    c.add_argument("--credentials-secret", metavar="NAMESPACE/NAME", help="read credentials from this Secret")
    c.add_argument("--format", choices=("text", "json"), default="text")
    c.set_defaults(func=_convert)

    s = sub.add_parser("sizes", help="table of recorded images: repository, tag, uncompressed, compressed, layers")
    s.add_argument("--format", choices=("table", "json"), default="table")
    s.add_argument("--store", type=Path, help=f"record file (default {store.default_path()})")
    s.set_defaults(func=_sizes)


def _credentials(args, registry: str):
    from startbench.images.credentials import Credentials, from_secret, registry_host

    host = registry_host(f"{registry}/x")
    if args.password_stdin or args.username:
        if not (args.password_stdin and args.username):
            raise SystemExit("give --username and --password-stdin together")
        return Credentials(host, args.username, sys.stdin.readline().rstrip("\n"), source="--password-stdin")
    if args.credentials_secret:
        namespace, _, name = args.credentials_secret.partition("/")
        if not name:
            raise SystemExit(f"--credentials-secret {args.credentials_secret!r} is not NAMESPACE/NAME")
        from startbench.cli.kubeaccess import connect

        io, _ = connect(getattr(args, "kubeconfig", None))
        return from_secret(io.read_secret(namespace, name), host)
    return None


def _build(args) -> int:
    from startbench.images.builder import build_and_push
    from startbench.images.credentials import CredentialsError
    from startbench.images.errors import ImageBuildError

    def progress(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    try:
        record = build_and_push(args.framework, args.variant, args.flavour, args.push,
                                credentials=_credentials(args, args.push), progress=progress,
                                base_image=args.base_image, ca_bundle=args.ca_bundle, dockerfiles=args.dockerfiles)
    except (ImageBuildError, CredentialsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(record.to_dict(), indent=1))
    else:
        print(format_table([record]))
    return 0


def _convert(args) -> int:
    from startbench.images.convert import ConvertError, convert
    from startbench.images.credentials import CredentialsError
    from startbench.images.records import human_bytes
    from startbench.images.registry_api import RegistryAPIError

    try:
        done = convert(args.source, args.to, args.push, args.level, _credentials(args, args.push),
                       progress=lambda m: print(m, file=sys.stderr, flush=True))
    except (ConvertError, RegistryAPIError, CredentialsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(done.to_dict(), indent=1))
        return 0
    ratio = done.compressed_bytes / done.source_bytes if done.source_bytes else float("nan")
    print(f"{done.reference} ({done.digest}): {done.compression} level {done.level}, {len(done.layers)} layers, "
          f"{human_bytes(done.compressed_bytes)} (was {human_bytes(done.source_bytes)}, {ratio:.2f}x)")
    return 0


def _sizes(args) -> int:
    records = store.load(args.store)
    if args.format == "json":
        print(json.dumps([r.to_dict() for r in records], indent=1))
    elif not records:
        print("no images recorded yet; build one with `startbench images build`", file=sys.stderr)
    else:
        print(format_table(records))
    return 0
