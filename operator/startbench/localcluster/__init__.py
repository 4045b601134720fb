"""The local development cluster: a real control plane built from source, simulated GPU and CPU nodes (KWOK),
a pull simulator that behaves like a kubelet's image puller, a Docker engine and local registries.

`startbench cluster up | down | status | kubeconfig` (see cli.py) drives it; tests reach it through
tests/cluster/conftest.py.
"""
