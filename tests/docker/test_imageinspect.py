"""imageinspect.describe against the real local registries: what the operator records for an `image:` entry."""

from __future__ import annotations

from startbench.runtime.imageinspect import describe
from startbench.core.spec import ImageEntry
from tests.support.registry_http import manifest_of


def test_an_image_entry_is_described_from_its_registry_manifest(base_image):
    doc, digest = manifest_of(base_image)
    described = describe(ImageEntry("base", "none", "naive", image=base_image))
    assert "message" not in described, described["message"]
    assert described == {"reference": base_image, "framework": "none", "variant": "naive", "digest": digest,
                         "compressedBytes": sum(layer["size"] for layer in doc["layers"]),
                         "layers": len(doc["layers"]),
                         "layerMediaTypes": sorted({layer["mediaType"] for layer in doc["layers"]})}
    # The engine pushes gzip layers: the status says how the image is delivered.
    assert all(t.endswith("gzip") for t in described["layerMediaTypes"])


def test_a_registry_that_wants_credentials_is_a_message_not_a_size(registries):
    reference = f"{registries['auth']}/startbench/base:bookworm"
    described = describe(ImageEntry("private", "pytorch", "slim", image=reference))
    assert "compressedBytes" not in described and "digest" not in described
    assert "HTTP 401" in described["message"] and "credentials" in described["message"]
    assert described["reference"] == reference


def test_a_missing_image_and_an_unreachable_registry_say_why(registries):
    missing = describe(ImageEntry("missing", "jax", "slim", image=f"{registries['noauth']}/startbench/nothing:v0"))
    assert "HTTP 404" in missing["message"] and "compressedBytes" not in missing
    # Port 9 on loopback: nothing listens there, the connection is refused at once.
    unreachable = describe(ImageEntry("far", "jax", "slim", image="127.0.0.1:9/startbench/base:bookworm"))
    assert "cannot reach the registry" in unreachable["message"]
