"""Images a Benchmark asks the operator to build: build and push them through the Docker engine (the images
package), and describe each for the Benchmark's status.images and the image metrics.

The reconciler calls the function `builder(config, metrics)` returns; it blocks (the Docker SDK is
synchronous) and runs in the Benchmark's daemon thread, never on Kopf's event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from startbench.runtime.config import Config
from startbench.runtime.metrics import Metrics
from startbench.core.spec import BenchmarkSpec

Progress = Callable[[str], None]


def status_entry(record) -> dict[str, Any]:
    """An images.ImageRecord as the CRD's status.images value (camelCase; layers is a count)."""
    return {"reference": record.reference, "digest": record.digest, "framework": record.framework,
            "variant": record.variant, "flavour": record.flavour, "compressedBytes": record.compressed_bytes,
            "uncompressedBytes": record.uncompressed_bytes, "layers": record.layer_count,
            "layerMediaTypes": sorted({layer.media_type for layer in record.layers if layer.media_type})}


def builder(config: Config, metrics: Metrics) -> Callable[[Any, BenchmarkSpec, Progress], dict[str, dict]]:
    def build(ref, spec: BenchmarkSpec, progress: Progress) -> dict[str, dict]:
        from startbench import images

        if not config.build_registry:
            raise images.ImageBuildError(
                "spec.images has build entries but the operator has no registry to push them to; set "
                "STARTBENCH_BUILD_REGISTRY (chart value build.registry, with builder.enabled or a Docker engine in "
                "STARTBENCH_DOCKER_HOST) to a registry the nodes can pull from")
        built: dict[str, dict] = {}
        for entry in spec.unbuilt_images:
            flavour = entry.build.flavour or "cpu"
            record = images.build_and_push(
                entry.build.framework, entry.build.variant, flavour, config.build_registry, progress=progress,
                base_image=config.build_base_image or None, ca_bundle=config.build_ca_bundle or None,
                docker_host=config.docker_host or None, record=False)
            built[entry.name] = status_entry(record)
            metrics.set_image(ref.name, entry.name, record.framework, record.variant, record.compressed_bytes,
                              record.uncompressed_bytes, record.layer_count)
            progress(f"built {entry.name}: {record.reference} ({record.compressed_bytes} bytes compressed)")
        return built

    return build
