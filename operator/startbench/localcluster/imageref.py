"""Image references and registry look-ups for the pull simulator: where an image lives and how many
compressed bytes a node pulls for it (its config plus layers, from the registry's own manifest, read with
startbench.images.manifest)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

from startbench.images import manifest
from startbench.core.reference import ImageRef, InvalidReference, parse as parse_reference


class RegistryError(Exception):
    """A pull would fail; `reason` is the kubelet's kind of failure (NotFound, Unauthorized, Unreachable)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def parse(ref: str) -> ImageRef:
    try:
        return parse_reference(ref)
    except InvalidReference as err:
        raise RegistryError("InvalidImageName", str(err)) from None


def default_pull_policy(ref: str) -> str:
    """The API server's default when a container sets none: Always for :latest or no tag, else IfNotPresent."""
    try:
        parsed = parse(ref)
    except RegistryError:
        return "IfNotPresent"
    return "Always" if parsed.is_latest and "@" not in ref else "IfNotPresent"


class RegistryClient:
    """Reads manifests from registries on this machine (loopback only: nodes here reach nothing else)."""

    def __init__(self, timeout: float = 5.0):
        self.timeout = timeout

    def _get(self, ref: ImageRef, reference: str, auth: tuple[str, str] | None) -> tuple[dict, str]:
        url = f"http://{ref.host}/v2/{ref.repository}/manifests/{reference}"
        request = urllib.request.Request(url, headers={"Accept": manifest.ACCEPT})
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read()), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            full = f"{ref.host}/{ref.repository}:{ref.reference}"
            if err.code == 404:
                raise RegistryError("NotFound", f'rpc error: code = NotFound desc = failed to pull and unpack image '
                                    f'"{full}": failed to resolve reference "{full}": {full}: not found') from None
            if err.code in (401, 403):
                raise RegistryError("Unauthorized", f'rpc error: code = Unknown desc = failed to pull and unpack '
                                    f'image "{full}": failed to resolve reference "{full}": pull access denied, '
                                    f'repository does not exist or may require authorization: authorization '
                                    f'failed: no basic auth credentials') from None
            raise RegistryError("Unreachable", f"registry {ref.host} answered HTTP {err.code}") from None
        except (urllib.error.URLError, OSError) as err:
            raise RegistryError("Unreachable", f"dial tcp {ref.host}: {err}") from None

    def pull_bytes(self, image: str, auth: tuple[str, str] | None = None) -> int:
        ref = parse(image)
        host = ref.host.split(":")[0]
        if host not in ("127.0.0.1", "localhost"):
            raise RegistryError("Unreachable", f'rpc error: code = Unavailable desc = failed to pull image "{image}": '
                                f"registry {ref.host} is not reachable from the simulated nodes (only registries "
                                f"on 127.0.0.1 are); annotate the pod sim.startbench.dev/image-bytes to simulate "
                                f"the pull of an image held elsewhere")
        doc, content_type = self._get(ref, ref.reference, auth)
        try:
            if manifest.is_index(doc, content_type):
                doc, content_type = self._get(ref, manifest.select_platform(doc, content_type=content_type)["digest"],
                                              auth)
            sizes = manifest.sizes(doc, content_type)
        except manifest.ManifestError as err:
            raise RegistryError("NotFound", f'failed to pull image "{image}": {err}') from None
        # A pull transfers the config blob and every layer.
        return sizes.config_size + sizes.compressed_bytes


def credentials_for(host: str, dockerconfigs: list[dict]) -> tuple[str, str] | None:
    """User and password for `host` from pull secrets' .dockerconfigjson documents, or None."""
    for config in dockerconfigs:
        for server, entry in (config.get("auths") or {}).items():
            server_host = server.split("://")[-1].split("/")[0]
            if server_host != host:
                continue
            if entry.get("username") is not None:
                return entry["username"], entry.get("password", "")
            if entry.get("auth"):
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                return user, password
    return None
