"""The in-pod workload: `python -m startbench.workload` (docs/workload.md).

Runs inside every benchmark pod. It imports no framework, no Kubernetes client and nothing outside
the standard library until its first timestamps are taken; the framework is imported as a measured
phase. `report` (parse_report, build_report) is stdlib-only so the operator can use it too.
"""
