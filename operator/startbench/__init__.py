"""startbench: how long from `kubectl apply` until a deep-learning pod trains, and why."""

GROUP = "startbench.dev"
VERSION = "v1alpha1"
__version__ = "0.1.0"
