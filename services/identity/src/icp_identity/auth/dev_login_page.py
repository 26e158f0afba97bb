"""The local login page (INTERLOPER_AUTH_DEV_LOGIN=true and no Google credentials): where the
web UI's "Login with Google" button lands. It looks and speaks like the UI's own login card, and
says plainly why it is not Google."""

from __future__ import annotations

from html import escape

_STYLE = """
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;padding:1.5rem;
  font-family:Inter,ui-sans-serif,system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
  background:#fafafa;color:#18181b}
.card{width:100%;max-width:24rem;background:#fff;border:1px solid #e4e4e7;border-radius:.75rem;
  box-shadow:0 1px 2px rgba(0,0,0,.05)}
header{padding:1.25rem 1.5rem;border-bottom:1px solid #e4e4e7;text-align:center}
h1{margin:0;font-size:1.5rem;font-weight:600}
.muted{color:#71717a;font-size:.875rem;margin:.25rem 0 0}
form{display:flex;flex-direction:column;gap:1rem;padding:1.5rem}
.note{margin:0;padding:.625rem .75rem;border-radius:.5rem;background:#f4f4f5;color:#3f3f46;font-size:.8125rem;
  line-height:1.4}
label{display:flex;flex-direction:column;gap:.375rem;font-size:.875rem;font-weight:500}
.optional{color:#71717a;font-weight:400}
input{font:inherit;font-size:.875rem;padding:.5rem .75rem;border:1px solid #d4d4d8;border-radius:.375rem;
  background:#fff;color:inherit}
input:focus{outline:2px solid #18181b;outline-offset:-1px}
button{font:inherit;font-size:.875rem;font-weight:500;padding:.5rem .75rem;border:0;border-radius:.375rem;
  background:#18181b;color:#fff;cursor:pointer}
button:hover{background:#27272a}
@media (prefers-color-scheme:dark){
  body{background:#09090b;color:#fafafa}
  .card{background:#18181b;border-color:#27272a}
  header{border-color:#27272a}
  .note{background:#27272a;color:#d4d4d8}
  input{background:#09090b;border-color:#3f3f46}
  input:focus{outline-color:#fafafa}
  button{background:#fafafa;color:#18181b}
  button:hover{background:#e4e4e7}
}
"""


def dev_login_form(redirect: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Login — Interloper</title>
<style>{_STYLE}</style>
</head><body>
<main class="card">
<header><h1>Interloper</h1><p class="muted">Sign in to your account to continue</p></header>
<form method="get" action="/api/auth/dev-login">
<p class="note">Local login: Google login is not configured on this server (development only).
Any e-mail address works; its account is created the first time.</p>
<label>E-mail <input name="email" type="email" required autofocus placeholder="you@example.com"></label>
<label><span>Name <span class="optional">(optional)</span></span>
<input name="name" type="text" placeholder="Your name"></label>
<input type="hidden" name="redirect" value="{escape(redirect)}">
<button type="submit">Login</button>
</form>
</main>
</body></html>
"""
