"""Server-rendered pages of OpenID Connect sign-in: the provider list (where the web UI's only
sign-in button, "Sign in with Google", lands when Google is not configured) and the page a
failed sign-in ends on. Every value is HTML-escaped."""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

from ..settings import OidcProvider
from .dev_login_page import _STYLE

_EXTRA_STYLE = """
.providers{display:flex;flex-direction:column;gap:.75rem;padding:1.5rem}
a.button{display:block;text-align:center;text-decoration:none;font-size:.875rem;font-weight:500;padding:.5rem .75rem;
  border-radius:.375rem;background:#18181b;color:#fff}
a.button:hover{background:#27272a}
a.secondary{background:transparent;color:inherit;border:1px solid #d4d4d8}
.error{margin:0;padding:.625rem .75rem;border-radius:.5rem;background:#fef2f2;color:#991b1b;font-size:.875rem}
@media (prefers-color-scheme:dark){a.button{background:#fafafa;color:#18181b}
  a.secondary{background:transparent;color:inherit;border-color:#3f3f46}
  .error{background:#450a0a;color:#fecaca}}
"""


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} — Interloper</title>
<style>{_STYLE}{_EXTRA_STYLE}</style>
</head><body>
<main class="card">
<header><h1>Interloper</h1><p class="muted">{escape(title)}</p></header>
{body}
</main>
</body></html>
"""


def providers_page(providers: list[OidcProvider], redirect: str, *, dev_login: bool) -> str:
    query = f"?{urlencode({'redirect': redirect})}" if redirect != "/" else ""
    links = [
        f'<a class="button" href="/api/auth/oidc/{escape(p.name)}/login{escape(query)}">'
        f"Sign in with {escape(p.label)}</a>"
        for p in providers
    ]
    if dev_login:
        links.append(f'<a class="button secondary" href="/api/auth/dev-login{escape(query)}">Local login</a>')
    return _page("Sign in to your account to continue", f'<nav class="providers">{"".join(links)}</nav>')


def error_page(reason: str) -> str:
    body = (
        f'<div class="providers"><p class="error" role="alert">Sign-in failed: {escape(reason)}</p>'
        '<a class="button" href="/login">Back to sign-in</a></div>'
    )
    return _page("Sign-in failed", body)
