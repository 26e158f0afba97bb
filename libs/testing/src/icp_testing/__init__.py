"""Test helpers of the Interloper control plane: fake third-party servers (Google sign-in, the ad
platforms' OAuth and account APIs) and the fixtures the services' test suites share.

A dev-only workspace package (the root project's dev dependency group): no service depends on it,
so no service image contains it."""
