"""Reading manifests from a registry over the Distribution HTTP API (I/O only; sizes come from manifest.py).

Loopback registries (127.0.0.0/8, localhost, ::1) and those named by `allow_plain_http` (the operator's
STARTBENCH_INSECURE_REGISTRIES, as a Docker engine's `--insecure-registry`) are spoken to over plain HTTP, others
over HTTPS. Auth:
anonymous first; on 401 the challenge decides: Basic (htpasswd registries) or Bearer (a token service:
Docker Hub, GHCR, Harbor...), with the given credentials or, without any, for an anonymous token (public
repositories).
"""

from __future__ import annotations

import re

import requests

from startbench.images import manifest
from startbench.images.credentials import Credentials

TIMEOUT_S = 30


class RegistryAPIError(RuntimeError):
    """The registry did not serve what was asked; the message names the reference and what to change."""


_PLAIN_HTTP: set[str] = set()


def allow_plain_http(registries) -> None:
    """Speak plain HTTP to these registries (host[:port], as written in image references) from now on, in this
    process: registries the nodes and the builder use without TLS, e.g. one on a cluster's internal address."""
    _PLAIN_HTTP.update(r.strip().rstrip("/") for r in registries if r.strip())


def base_url(registry: str) -> str:
    host = registry.split(":")[0] if not registry.startswith("[") else registry
    plain = host in ("localhost", "[::1]") or host.startswith("127.") or registry in _PLAIN_HTTP
    return f"{'http' if plain else 'https'}://{registry}"


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', rest))


def _get(session: requests.Session, url: str, headers: dict, creds: Credentials | None, what: str,
         timeout: float = TIMEOUT_S):
    try:
        resp = session.get(url, headers=headers, timeout=timeout)
        if resp.status_code == 401:
            scheme, params = _challenge(resp.headers.get("WWW-Authenticate", ""))
            auth = (creds.username, creds.password) if creds is not None else None
            if scheme == "basic" and auth:
                resp = session.get(url, headers=headers, auth=auth, timeout=timeout)
            elif scheme == "bearer" and params.get("realm"):
                # A token service (Docker Hub, GHCR, nvcr.io...): anonymous tokens read public repositories.
                query = {k: v for k, v in params.items() if k in ("service", "scope")}
                token = session.get(params["realm"], params=query, auth=auth, timeout=timeout)
                if token.status_code != 200 and auth:
                    raise RegistryAPIError(
                        f"the token service of {what} refused the credentials of {creds} "
                        f"(HTTP {token.status_code}); check the user and password"
                    )
                if token.status_code == 200:
                    body = token.json()
                    bearer = body.get("token") or body.get("access_token")
                    resp = session.get(url, headers={**headers, "Authorization": f"Bearer {bearer}"},
                                       timeout=timeout)
    except requests.RequestException as exc:
        raise RegistryAPIError(f"cannot reach the registry for {what}: {exc.__class__.__name__}; "
                               "check the address and that the registry runs") from None
    if resp.status_code == 401:
        raise RegistryAPIError(f"the registry refused to serve {what} without valid credentials (HTTP 401); "
                               "pass credentials for it")
    if resp.status_code == 404:
        raise RegistryAPIError(f"the registry has no {what} (HTTP 404); was it pushed?")
    if resp.status_code != 200:
        raise RegistryAPIError(f"the registry answered HTTP {resp.status_code} for {what}")
    return resp


def fetch_manifest(registry: str, repository: str, reference: str, credentials: Credentials | None = None,
                   platform: tuple[str, str] = ("linux", "amd64"), timeout: float = TIMEOUT_S
                   ) -> tuple[bytes, str, str]:
    """(raw manifest bytes, media type, digest) for repository:reference; an index is resolved to `platform`."""
    what = f"manifest {registry}/{repository}:{reference}"
    with requests.Session() as session:
        url = f"{base_url(registry)}/v2/{repository}/manifests/{reference}"
        resp = _get(session, url, {"Accept": manifest.ACCEPT}, credentials, what, timeout)
        raw, content_type = resp.content, resp.headers.get("Content-Type", "")
        media_type = manifest.media_type_of(manifest.load(raw), content_type)
        if media_type in manifest.INDEX_TYPES:
            entry = manifest.select_platform(raw, *platform, content_type=content_type)
            url = f"{base_url(registry)}/v2/{repository}/manifests/{entry['digest']}"
            resp = _get(session, url, {"Accept": manifest.ACCEPT}, credentials, f"{what} ({'/'.join(platform)})",
                        timeout)
            raw, content_type = resp.content, resp.headers.get("Content-Type", "")
            media_type = manifest.media_type_of(manifest.load(raw), content_type)
        digest = resp.headers.get("Docker-Content-Digest") or manifest.digest_of(raw)
        if digest != manifest.digest_of(raw):
            raise RegistryAPIError(f"{what}: the registry's digest {digest} does not match the bytes it sent")
        return raw, media_type, digest
