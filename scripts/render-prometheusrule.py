"""Write deploy/observability/kubernetes/prometheusrule.yaml from deploy/observability/prometheus/alerts.yml
(the one source of the alert rules): `uv run python scripts/render-prometheusrule.py`.
tests-deploy/test_observability.py fails when the committed file differs from what this renders."""

from __future__ import annotations

from pathlib import Path

import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "deploy/observability/prometheus/alerts.yml"
TARGET = ROOT / "deploy/observability/kubernetes/prometheusrule.yaml"
HEADER = (
    "# The alert rules of ../prometheus/alerts.yml for the Prometheus Operator, rendered by\n"
    "# scripts/render-prometheusrule.py (edit alerts.yml, then run it; a test compares the two).\n"
)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the PromQL expressions) as literal blocks, as in alerts.yml."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def render() -> str:
    groups = yaml.safe_load(SOURCE.read_text(encoding="utf-8"))["groups"]
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "interloper", "labels": {"app.kubernetes.io/part-of": "interloper"}},
        "spec": {"groups": groups},
    }
    return HEADER + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=120)


if __name__ == "__main__":
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
