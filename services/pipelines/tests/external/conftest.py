"""The OAuth tests' fixtures (fake provider server, provider apps, callers)."""

from ..oauth.conftest import anonymous, bare_app, fake, fresh_fake, provider_app, viewer  # noqa: F401
