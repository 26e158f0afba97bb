"""Errors of a chat turn whose message can be shown to the client in the SSE error frame."""

from __future__ import annotations


class AssistantError(Exception):
    """Raised while running a chat turn; `str(exc)` is safe to show to the user."""
