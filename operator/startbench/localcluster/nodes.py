"""Manifests of the simulated nodes (pure). KWOK manages every node annotated `kwok.x-k8s.io/node: fake`:
it keeps them Ready with leases and drives their pods through our stages (stages.py)."""

from __future__ import annotations

import dataclasses

from startbench.core.contracts import SIM_CACHED_IMAGES, SIMULATED_NODE_ANNOTATION

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
PULL_BANDWIDTH = "sim.startbench.dev/pull-bandwidth"  # bytes per second this node pulls at, alone
CACHED_IMAGES = SIM_CACHED_IMAGES                     # JSON list of image references on the node


@dataclasses.dataclass(frozen=True)
class NodePool:
    """One kind of simulated node: how many, what they hold, and how fast they pull."""
    prefix: str
    count: int
    gpus: int = 0
    gpu_product: str = "NVIDIA-H100-80GB-HBM3"
    gpu_memory_mib: int = 81559
    instance_type: str = "p5.48xlarge"
    cpu: str = "192"
    memory: str = "2048Gi"
    pull_bandwidth_bytes_per_s: int = 125_000_000  # 1 Gbit/s

    def names(self) -> list[str]:
        width = max(2, len(str(max(self.count - 1, 0))))
        return [f"{self.prefix}-{i:0{width}d}" for i in range(self.count)]


def default_pools(gpu_nodes: int = 4, cpu_nodes: int = 2, pull_bandwidth: int = 125_000_000) -> list[NodePool]:
    return [
        NodePool("sim-gpu", gpu_nodes, gpus=8, pull_bandwidth_bytes_per_s=pull_bandwidth),
        NodePool("sim-cpu", cpu_nodes, gpus=0, instance_type="m6i.8xlarge", cpu="32", memory="128Gi",
                 pull_bandwidth_bytes_per_s=pull_bandwidth),
    ]


def node_manifest(pool: NodePool, name: str) -> dict:
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": pool.instance_type,
        "type": "kwok",
        "startbench.dev/pool": "gpu" if pool.gpus else "cpu",
    }
    resources = {"cpu": pool.cpu, "memory": pool.memory, "pods": "110", "ephemeral-storage": "1Ti"}
    taints = []
    if pool.gpus:
        labels["nvidia.com/gpu.product"] = pool.gpu_product
        labels["nvidia.com/gpu.memory"] = str(pool.gpu_memory_mib)
        labels["nvidia.com/gpu.count"] = str(pool.gpus)
        resources["nvidia.com/gpu"] = str(pool.gpus)
        taints.append(dict(GPU_TAINT))
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                SIMULATED_NODE_ANNOTATION[0]: SIMULATED_NODE_ANNOTATION[1],
                "node.alpha.kubernetes.io/ttl": "0",
                PULL_BANDWIDTH: str(pool.pull_bandwidth_bytes_per_s),
            },
        },
        "spec": {"taints": taints},
        "status": {
            "allocatable": dict(resources),
            "capacity": dict(resources),
        },
    }


def manifests(pools: list[NodePool]) -> list[dict]:
    return [node_manifest(pool, name) for pool in pools for name in pool.names()]
