"""Metric labels of proxied requests: the owning service and its route template.

The gateway routes by prefix, so it knows no templates itself: it learns them from each upstream's
own OpenAPI document (the paths FastAPI matches there), so `/api/jobs/3f2c.../run` is counted as
`/api/jobs/{job_id}/run`, the very label the owning service uses. A path no template matches is
`UNKNOWN_ROUTE`: made-up paths never add series (bounded cardinality)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping

import aiohttp
from prometheus_client import Counter, Histogram

log = logging.getLogger(__name__)

UNKNOWN_ROUTE = "{unknown}"
"""The one label of every path no known template matches (typos, scans, upstream not learnt yet)."""
SPA_ROUTE = "{web-ui}"
"""The label of every path of the web UI (static files and its client-side routes)."""

REQUESTS = Counter(
    "icp_gateway_requests_total",
    "Requests through the gateway by owning service (upstream; `gateway` for its own), route template, status",
    ["upstream", "method", "route", "status"],
)
LATENCY = Histogram(
    "icp_gateway_request_duration_seconds",
    "Time to the end of the gateway's answer, by owning service and route template",
    ["upstream", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_PARAM = "{}"  # the trie's key for a path parameter segment


class RouteLabels:
    """Route templates per service, as a trie of path segments (one dict lookup per segment)."""

    def __init__(self) -> None:
        self._tries: dict[str, dict[str, object]] = {}

    def learn(self, service: str, templates: Iterable[str]) -> None:
        trie: dict[str, object] = {}
        for template in templates:
            node = trie
            for segment in _segments(template):
                key = _PARAM if segment.startswith("{") and segment.endswith("}") else segment
                node = node.setdefault(key, {})  # type: ignore[assignment]
            node[""] = template  # the end of a template: its label, spelt as the service spells it
        self._tries[service] = trie

    def known(self, service: str) -> bool:
        return service in self._tries

    def label(self, service: str, path: str) -> str:
        """The template of `service` matching `path` (a literal segment beats a parameter, as in
        the service's router), or UNKNOWN_ROUTE."""
        trie = self._tries.get(service)
        if trie is None:
            return UNKNOWN_ROUTE
        found = _match(trie, _segments(path))
        return found if found is not None else UNKNOWN_ROUTE


def _segments(path: str) -> list[str]:
    return path.strip("/").split("/")


def _match(node: Mapping[str, object], segments: list[str]) -> str | None:
    if not segments:
        end = node.get("")
        return end if isinstance(end, str) else None
    head, rest = segments[0], segments[1:]
    for key in (head, _PARAM):
        child = node.get(key)
        if isinstance(child, dict) and head:
            found = _match(child, rest)
            if found is not None:
                return found
    return None


def api_paths(openapi: Mapping[str, object]) -> list[str]:
    """The public (/api) path templates of an OpenAPI document."""
    paths = openapi.get("paths")
    return [p for p in paths if isinstance(p, str) and p.startswith("/api")] if isinstance(paths, dict) else []


async def learn_forever(
    labels: RouteLabels, http: aiohttp.ClientSession, upstreams: Mapping[str, str], *, refresh: float = 300.0
) -> None:
    """Fetch each upstream's templates: every 5 s until it answered, then every `refresh` seconds
    (a new version of a service brings its new routes without a gateway restart)."""
    while True:
        for service, url in upstreams.items():
            if not url:
                continue
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                async with http.get(f"{url}/openapi.json", timeout=aiohttp.ClientTimeout(total=5.0)) as response:
                    if response.status == 200:
                        labels.learn(service, api_paths(await response.json()))
                        continue
            if not labels.known(service):
                log.info("route templates of %s not learnt yet; its requests count as %s", service, UNKNOWN_ROUTE)
        missing = any(url and not labels.known(service) for service, url in upstreams.items())
        await asyncio.sleep(5.0 if missing else refresh)
