"""The Dockerfiles keep the rules docs/images.md states (read as text: no engine needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from startbench.images import catalog
from startbench.images.context import DOCKERFILES, build_context

SLIM = sorted(DOCKERFILES.glob("*/slim.Dockerfile")) + [DOCKERFILES / "operator" / "Dockerfile"]
NAIVE = sorted(DOCKERFILES.glob("*/naive.Dockerfile"))


def _stages(text: str) -> list[str]:
    return re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]


@pytest.mark.parametrize("path", SLIM, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_slim_is_multistage_non_root_exec_form_and_lean(path):
    text = path.read_text()
    assert re.search(r"^ARG BASE_IMAGE=\S+", text, re.MULTILINE)
    stages = _stages(text)
    assert len(stages) >= 2
    final = stages[-1]
    assert final.startswith("${BASE_IMAGE}")
    user = re.findall(r"^USER (\S+)", final, re.MULTILINE)
    assert user and not user[-1].startswith(("0", "root"))
    assert re.search(r'^ENTRYPOINT \[".*"\]$', final, re.MULTILINE), "entry point must be exec form"
    # The final stage installs nothing and never sees the build CA or the requirements.
    assert "pip install" not in final and "apt-get" not in final and "build-ca" not in final
    assert re.findall(r"^COPY (?!--from=)", final, re.MULTILINE) == []
    for stage in stages[:-1]:
        if "pip install" in stage:
            assert "--no-cache-dir" in stage and "--no-deps -r" in stage and "pip check" in stage


@pytest.mark.parametrize("path", NAIVE, ids=lambda p: p.parent.name)
def test_naive_is_one_stage_with_the_workload_entry_point(path):
    text = path.read_text()
    assert len(_stages(text)) == 1
    assert 'ENTRYPOINT ["/opt/venv/bin/python", "-m", "startbench.workload"]' in text
    assert f"STARTBENCH_FRAMEWORK={path.parent.name}" in text


@pytest.mark.parametrize("path", sorted(DOCKERFILES.glob("*/requirements*.txt")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_requirements_are_pinned(path):
    lines = [l.strip() for l in path.read_text().splitlines() if l.strip() and not l.startswith("#")]
    packages = [l for l in lines if not l.startswith("--")]
    assert packages
    for line in packages:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[a-z0-9,\-]+\])?==[A-Za-z0-9.+\-]+", line), line
    names = [re.split(r"[=\[]", l)[0].lower().replace("_", "-") for l in packages]
    assert len(names) == len(set(names)), "a package is listed twice"


def test_context_holds_only_what_the_dockerfile_copies(tmp_path):
    import io
    import tarfile

    spec = catalog.resolve("jax", "slim", "cpu")
    data, dockerfile = build_context(spec.dockerfile, spec.framework_dir)
    names = tarfile.open(fileobj=io.BytesIO(data)).getnames()
    assert dockerfile == "dockerfiles/jax/slim.Dockerfile" and dockerfile in names
    assert "operator/startbench/workload/__main__.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith(("dockerfiles/pytorch", "operator/startbench/images"))]
    assert "dockerfiles/build-ca/ca.crt" not in names
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    with_ca, _ = build_context(spec.dockerfile, spec.framework_dir, ca_bundle=bundle)
    assert "dockerfiles/build-ca/ca.crt" in tarfile.open(fileobj=io.BytesIO(with_ca)).getnames()
    # Mounted from a ConfigMap the bundle is a symlink (ca.crt -> ..data/ca.crt): its content goes in, not a link.
    (tmp_path / "..data").mkdir()
    (tmp_path / "..data" / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nlinked\n")
    (tmp_path / "linked.crt").symlink_to("..data/ca.crt")
    linked, _ = build_context(spec.dockerfile, spec.framework_dir, ca_bundle=tmp_path / "linked.crt")
    member = tarfile.open(fileobj=io.BytesIO(linked)).getmember("dockerfiles/build-ca/ca.crt")
    assert member.isfile() and tarfile.open(fileobj=io.BytesIO(linked)).extractfile(member).read().endswith(b"linked\n")
    # Same inputs, same bytes: the engine's layer cache hits across runs.
    assert build_context(spec.dockerfile, spec.framework_dir)[0] == data
    op = catalog.resolve("operator", "slim", "cpu")
    op_names = tarfile.open(fileobj=io.BytesIO(build_context(op.dockerfile, op.framework_dir,
                                                             include_package=True)[0])).getnames()
    assert "operator/startbench/images/builder.py" in op_names
    assert "operator/startbench/runtime/handlers.py" in op_names and "operator/startbench/cli/main.py" in op_names
    assert not [n for n in op_names if n.startswith("operator/startbench/localcluster")], \
        "the operator image carries the development cluster"


def test_the_operator_image_works_without_the_development_cluster(tmp_path):
    """What the operator image holds (the package less localcluster/) imports the operator and builds the whole
    command line, as the Dockerfile's own check does."""
    import io
    import subprocess
    import sys
    import tarfile

    op = catalog.resolve("operator", "slim", "cpu")
    data, _ = build_context(op.dockerfile, op.framework_dir, include_package=True)
    tarfile.open(fileobj=io.BytesIO(data)).extractall(tmp_path, filter="data")
    assert not (tmp_path / "operator/startbench/localcluster").exists()
    check = ("import sys; sys.path.insert(0, sys.argv[1]); import startbench.runtime.handlers, startbench.cli.main; "
             "startbench.cli.main.build_parser(); assert startbench.__file__.startswith(sys.argv[1]), startbench.__file__; "
             "assert not [m for m in sys.modules if m.startswith('startbench.localcluster')]")
    done = subprocess.run([sys.executable, "-I", "-c", check, str(tmp_path / "operator")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Dockerfile" in op.dockerfile.name
    assert "rm -rf /opt/startbench/startbench/localcluster" in op.dockerfile.read_text()


def test_the_operator_image_builds_framework_images_from_its_own_files(tmp_path):
    """Laid out as the operator Dockerfile lays it out (/opt/startbench/{startbench,dockerfiles}), the package finds
    every framework's Dockerfiles beside itself and makes their build contexts without the repository."""
    import io
    import subprocess
    import sys
    import tarfile

    op = catalog.resolve("operator", "slim", "cpu")
    data, _ = build_context(op.dockerfile, op.framework_dir, include_package=True)
    names = tarfile.open(fileobj=io.BytesIO(data)).getnames()
    for framework in catalog.FRAMEWORKS:
        assert f"dockerfiles/{framework}/slim.Dockerfile" in names, framework
    assert "dockerfiles/build-ca/ca.crt" not in names
    extracted = tmp_path / "context"
    tarfile.open(fileobj=io.BytesIO(data)).extractall(extracted, filter="data")
    image = tmp_path / "opt" / "startbench"   # what the Dockerfile's COPY lines make of it
    image.mkdir(parents=True)
    (extracted / "operator" / "startbench").rename(image / "startbench")
    (extracted / "dockerfiles").rename(image / "dockerfiles")
    import shutil
    shutil.rmtree(image / "dockerfiles" / "operator")
    check = ("import io, sys, tarfile; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
             "from startbench.images import catalog, context; "
             "assert context.DOCKERFILES == Path(sys.argv[1]) / 'dockerfiles', context.DOCKERFILES; "
             "spec = catalog.resolve('jax', 'slim', 'cpu'); data, df = context.build_context(spec.dockerfile, spec.framework_dir); "
             "names = tarfile.open(fileobj=io.BytesIO(data)).getnames(); "
             "assert df in names and 'operator/startbench/workload/__main__.py' in names, names")
    done = subprocess.run([sys.executable, "-I", "-c", check, str(image)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    text = op.dockerfile.read_text()
    assert "COPY dockerfiles/ /opt/startbench/dockerfiles/" in text
    assert "/opt/startbench/dockerfiles/build-ca/ca.crt" in text  # removed in the builder stage
