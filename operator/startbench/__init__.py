"""startbench: how long from `kubectl apply` until a deep-learning pod trains, and why."""

__version__ = "0.1.0"
