"""The source root is `operator/`, but `import operator` must still be the standard library; and the package's
folders are its layers (docs/architecture.md): each may import only what its layer allows."""

import ast
import importlib
import operator
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "operator" / "startbench"


def test_import_operator_is_the_standard_library():
    assert hasattr(operator, "itemgetter")
    assert "site-packages" not in (operator.__file__ or "") or operator.__name__ == "operator"
    assert not hasattr(operator, "startbench")


def test_startbench_package_imports_from_source_root():
    startbench = importlib.import_module("startbench")
    assert startbench.__version__
    assert startbench.__file__.replace("\\", "/").endswith("operator/startbench/__init__.py")


def imports_of(path: pathlib.Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports too), absolute names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; use absolute startbench.* imports"
            names.add(node.module or "")
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _under(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


# What each layer must never import: Kubernetes, Prometheus, Kopf, Docker and the layers above it.
FORBIDDEN = {
    "core": ("kubernetes", "kopf", "prometheus_client", "docker", "startbench.runtime", "startbench.cli",
             "startbench.localcluster", "startbench.images"),
    "workload": ("kubernetes", "kopf", "prometheus_client", "docker", "startbench.core", "startbench.runtime",
                 "startbench.cli", "startbench.localcluster", "startbench.images"),
    "images": ("kopf", "prometheus_client", "startbench.runtime", "startbench.cli", "startbench.localcluster"),
    "runtime": ("startbench.cli", "startbench.localcluster"),
    "localcluster": ("kopf", "prometheus_client", "startbench.runtime", "startbench.cli"),
    "report": ("kubernetes", "kopf", "prometheus_client", "docker", "startbench.runtime", "startbench.cli",
               "startbench.localcluster", "startbench.images"),
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_nothing_it_must_not(layer):
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files, f"no modules in {layer}/"
    bad = {f"{f.relative_to(PACKAGE)}: {name}" for f in files for name in imports_of(f)
           if _under(name, FORBIDDEN[layer])}
    assert not bad, f"{layer}/ imports what its layer must not: {sorted(bad)}"


def test_core_imports_only_the_standard_library_yaml_jsonschema_rich_and_itself():
    allowed = ("startbench.core", "startbench.workload.report", "yaml", "jsonschema", "rich")
    import sys
    third_party = set()
    for f in sorted((PACKAGE / "core").rglob("*.py")):
        for name in imports_of(f):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top == "__future__" or _under(name, allowed):
                continue
            if name == "startbench" or _under(name, ("startbench.core",)):
                continue
            third_party.add(f"{f.name}: {name}")
    assert not third_party, sorted(third_party)


def test_report_imports_only_the_standard_library_matplotlib_yaml_the_core_and_itself():
    """The report is pure rendering: records and a Benchmark in, HTML or figure bytes out."""
    import sys
    allowed = ("startbench.core", "startbench.report", "matplotlib", "yaml")
    bad = {f"{f.name}: {name}" for f in sorted((PACKAGE / "report").rglob("*.py")) for name in imports_of(f)
           if not (name.split(".")[0] in sys.stdlib_module_names or name in ("__future__", "startbench",
                                                                               "startbench.__version__")
                   or _under(name, allowed))}
    assert not bad, sorted(bad)


def test_every_module_sits_in_a_layer_folder():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert not loose, f"modules outside a layer folder: {loose}"


def test_every_kubernetes_call_of_the_operator_and_the_commands_goes_through_cluster_io():
    """runtime/kube.py (ClusterIO) is the one seam: elsewhere in runtime/ and cli/ the client library is only used
    to load a configuration (handlers, kubeaccess) or to read an API error's status."""
    allowed = {"kubernetes.client.rest", "kubernetes.client.rest.ApiException", "kubernetes.config",
               "kubernetes.config.ConfigException"}
    config_loaders = {"runtime/handlers.py", "cli/kubeaccess.py"}
    bad = []
    for layer in ("runtime", "cli"):
        for f in sorted((PACKAGE / layer).rglob("*.py")):
            rel = str(f.relative_to(PACKAGE))
            if rel == "runtime/kube.py":
                continue
            text = f.read_text()
            for api in ("CoreV1Api(", "CustomObjectsApi(", "ApiextensionsV1Api(", "AppsV1Api(", "stream("):
                if api in text:
                    bad.append(f"{rel}: {api}")
            for name in imports_of(f):
                if not _under(name, ("kubernetes",)) or name in allowed:
                    continue
                if rel in config_loaders and name in ("kubernetes", "kubernetes.client", "kubernetes.config"):
                    continue
                bad.append(f"{rel}: imports {name}")
    assert not bad, bad
