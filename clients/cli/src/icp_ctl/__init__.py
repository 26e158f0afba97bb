"""A typed client for the Interloper /api (`Client`, `ApiError`) and the `interloper-ctl` command."""

from .client import ApiError, Client

__all__ = ["ApiError", "Client"]
