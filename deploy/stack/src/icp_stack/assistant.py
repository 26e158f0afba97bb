"""The assistant's line of the start-up table: whether the chat has a model (asked from the
running agent, which alone knows how it reads its settings)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

HINT = "set GOOGLE_API_KEY, or INTERLOPER_AGENT_MODEL=demo to try it offline (README: The assistant)"


def assistant_status(agent_url: str | None, timeout: float = 2.0) -> str:
    if agent_url is None:
        return "not running (left out with --without)"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{agent_url}/assistant", timeout=timeout) as response:
            status = json.loads(response.read())
    except (OSError, ValueError):
        return "unknown (the agent did not say)"
    if status.get("chat"):
        return f"model {status.get('model')}"
    return f"disabled (no model: {status.get('problem')}); {HINT}"
