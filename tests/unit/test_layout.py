"""The source root is `operator/`, but `import operator` must still be the standard library."""

import importlib
import operator


def test_import_operator_is_the_standard_library():
    assert hasattr(operator, "itemgetter")
    assert "site-packages" not in (operator.__file__ or "") or operator.__name__ == "operator"
    assert not hasattr(operator, "startbench")


def test_startbench_package_imports_from_source_root():
    startbench = importlib.import_module("startbench")
    assert startbench.GROUP == "startbench.dev"
    assert startbench.__file__.replace("\\", "/").endswith("operator/startbench/__init__.py")
