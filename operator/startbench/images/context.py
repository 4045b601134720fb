"""The build context of a framework image: only the files its Dockerfile copies, as an in-memory tar.

Paths inside the context are the repository's own (dockerfiles/<framework>/..., operator/startbench/...),
so the same Dockerfile also builds by hand from the repository root. An optional CA bundle for the build
machine's TLS proxy goes in as dockerfiles/build-ca/ca.crt; the Dockerfiles use it only for the pip step.

The files come from the repository, or, in the operator image (which builds the images Benchmarks ask for),
from beside the package: the image holds /opt/startbench/startbench (the package) and /opt/startbench/dockerfiles
(every framework's Dockerfiles, copied by dockerfiles/operator/Dockerfile).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # .../startbench
REPO_ROOT = Path(__file__).resolve().parents[3]


def _dockerfiles_dir() -> Path:
    """dockerfiles/ beside the package (the operator image's layout), else the repository's."""
    beside = PACKAGE_DIR.parent / "dockerfiles"
    return beside if (beside / "prune-venv.sh").is_file() else REPO_ROOT / "dockerfiles"


DOCKERFILES = _dockerfiles_dir()
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".hypothesis"}
# What the operator image leaves out of the package: the development cluster (startbench cluster ...) is not
# the operator's, and nothing the operator imports needs it (tests/unit/test_layout.py checks runtime/).
OPERATOR_LEAVES_OUT = ("localcluster",)


def _add_tree(tar: tarfile.TarFile, src: Path, arcname: str, leave_out: tuple[str, ...] = ()) -> None:
    if src.is_file():
        tar.add(src, arcname=arcname, recursive=False, filter=_normalise)
        return
    tar.add(src, arcname=arcname, recursive=False, filter=_normalise)
    for child in sorted(src.iterdir()):
        if (child.name in SKIP_DIRS or child.name in leave_out or child.suffix == ".pyc"
                or child.name.endswith(".egg-info")):
            continue
        _add_tree(tar, child, f"{arcname}/{child.name}")


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # Same bytes for the same files, whoever builds: the builder's layer cache then hits across machines.
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def build_context(dockerfile: Path, framework_dir: Path, package_dir: Path = PACKAGE_DIR,
                  ca_bundle: Path | None = None, include_package: bool = False) -> tuple[bytes, str]:
    """(tar bytes, path of the Dockerfile inside the context).

    framework_dir is dockerfiles/<framework>/ (all of it goes in); the workload package always goes in
    (operator/startbench/__init__.py and operator/startbench/workload/). With include_package (the operator
    image): the whole package but OPERATOR_LEAVES_OUT, and every framework's Dockerfiles, so that the operator
    builds the images Benchmarks ask for from its image.
    """
    buf = io.BytesIO()
    dockerfiles = framework_dir.parent
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add_tree(tar, framework_dir, f"dockerfiles/{framework_dir.name}")
        if include_package:
            for other in sorted(p for p in dockerfiles.iterdir()
                                if p.is_dir() and p.name not in ("build-ca", framework_dir.name, *SKIP_DIRS)):
                _add_tree(tar, other, f"dockerfiles/{other.name}")
        for shared in ("prune-venv.sh", "build-ca/README.md"):
            path = dockerfiles / shared
            if not path.exists():
                path = DOCKERFILES / shared
            _add_tree(tar, path, f"dockerfiles/{shared}")
        package = package_dir
        if include_package:
            _add_tree(tar, package, "operator/startbench", leave_out=OPERATOR_LEAVES_OUT)
        else:
            _add_tree(tar, package / "__init__.py", "operator/startbench/__init__.py")
            _add_tree(tar, package / "workload", "operator/startbench/workload")
        if ca_bundle is not None:
            # Its content, not the path: a bundle mounted from a ConfigMap is a symlink (ca.crt -> ..data/ca.crt),
            # which tar would add as a link to nothing in the context.
            data = Path(ca_bundle).read_bytes()
            info = _normalise(tarfile.TarInfo("dockerfiles/build-ca/ca.crt"))
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue(), f"dockerfiles/{framework_dir.name}/{dockerfile.name}"
