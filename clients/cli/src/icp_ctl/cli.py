"""`interloper-ctl`: the Interloper /api from a terminal, with an API token.

Exit status: 0 done (a followed run or backfill succeeded), 1 an API error or a followed run or
backfill that failed or was canceled, 2 a usage or configuration error, 130 Ctrl-C (following
stopped; the run goes on).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import Any, TextIO

from .client import ApiError, Client, Json
from .config import ConfigError, Settings, cleartext, resolve, write_file
from .follow import BackfillFollower, Follower, RunFollower
from .output import log_text, render

PROG = "interloper-ctl"
Handler = Callable[[argparse.Namespace, Client, TextIO], int]


class UsageError(Exception):
    """A wrong invocation the parser could not see (exit status 2)."""


# ---- commands ----------------------------------------------------------------------------


def cmd_login(args: argparse.Namespace) -> int:
    url = args.url or input(f"Interloper URL [{resolve_url()}]: ").strip() or resolve_url()
    token = args.token or getpass.getpass("API token (ilp_...): ").strip()
    if not token:
        raise UsageError("no token given")
    warn_cleartext(url)
    with Client(url, token) as client:
        me = client.me()
    path = write_file(url.rstrip("/"), token)
    org = me.get("organisation") or {}
    print(f"logged in to {url} as {me.get('email')} ({org.get('name', 'no organisation')}, {me.get('role')})")
    print(f"saved to {path} (mode 600)")
    return 0


def warn_cleartext(url: str) -> None:
    if cleartext(url):
        sys.stderr.write(f"{PROG}: warning: {url} is not https: the token travels unencrypted\n")


def resolve_url() -> str:
    return resolve(None, None, need_token=False).url


def cmd_whoami(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    me = client.me()
    if args.output == "json":
        render(me, "user", "json", out)
    else:
        org = me.get("organisation") or {}
        out.write(f"{me.get('email')}  {org.get('name', '-')} ({org.get('id', '-')})  role {me.get('role')}\n")
    return 0


def cmd_orgs(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    render(client.organisations(), "organisation", args.output, out)
    return 0


def lister(kind: str, fetch: Callable[[Client], Any]) -> Handler:
    def handler(args: argparse.Namespace, client: Client, out: TextIO) -> int:
        render(fetch(client), kind, args.output, out)
        return 0

    return handler


def cmd_jobs_get(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    render(client.job(args.job_id), "job", args.output, out)
    return 0


def cmd_jobs_run(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    queued = client.run_job(args.job_id, args.partition)
    return queued_run(args, client, out, queued)


def queued_run(args: argparse.Namespace, client: Client, out: TextIO, queued: Json) -> int:
    run_id = str(queued["run_id"])
    if not args.follow:
        if args.output == "json":
            render(queued, "run", "json", out)
        else:
            out.write(f"run {run_id} queued\n")
        return 0
    return follow(args, RunFollower(client, *follow_stream(args, out), run_id), out)


def follow_stream(args: argparse.Namespace, out: TextIO) -> tuple[TextIO, bool]:
    """Where the live lines go: stdout, or stderr with `--output json` (stdout then holds one
    JSON document, the final state). The progress line only on a terminal."""
    stream = sys.stderr if args.output == "json" else out
    return stream, stream.isatty()


def follow(args: argparse.Namespace, follower: Follower, out: TextIO) -> int:
    try:
        follower.follow()
    except KeyboardInterrupt:
        follower.display.end()
        what, ident = follower.kind, follower.ident
        sys.stderr.write(f"{PROG}: stopped following; the {what} {ident} goes on ({what}s cancel {ident} stops it)\n")
        return 130
    if args.output == "json":
        render(follower.state, follower.kind, "json", out)
    else:
        out.write(follower.summary() + "\n")
    return 0 if follower.status == "success" else 1


def cmd_runs_list(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    runs = client.runs(job_id=args.job, backfill_id=args.backfill, status=args.status, limit=args.limit)
    render(runs, "run", args.output, out)
    return 0


def cmd_runs_get(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    if args.follow:
        return follow(args, RunFollower(client, *follow_stream(args, out), args.run_id), out)
    render(client.run(args.run_id), "run", args.output, out)
    return 0


def cmd_runs_events(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    render(client.run_events(args.run_id, limit=args.limit), "event", args.output, out)
    return 0


def cmd_runs_logs(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    client.run(args.run_id)  # a 404 here is the run's (unknown, another organisation's)
    try:
        lines = client.iter_run_logs(args.run_id)
    except ApiError as error:
        if error.status == 404:
            raise ApiError(404, "this server has no run logs (GET /api/runs/{id}/logs); upgrade it") from error
        raise
    if args.output == "table":
        lines = [{**line, "message": log_text(line)} for line in lines]
    render(lines, "log", args.output, out)
    return 0


def cmd_runs_cancel(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    render(client.cancel_run(args.run_id), "run", args.output, out)
    return 0


def cmd_runs_retry(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    return queued_run(args, client, out, client.retry_run(args.run_id))


def cmd_backfills_list(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    render(client.backfills(active_only=args.active), "backfill", args.output, out)
    return 0


def cmd_backfills_create(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    queued = client.backfill_job(
        args.job_id, args.start, args.end, concurrency=args.concurrency, fail_fast=args.fail_fast
    )
    backfill_id = str(queued["backfill_id"])
    if not args.follow:
        if args.output == "json":
            render(queued, "backfill", "json", out)
        else:
            out.write(f"backfill {backfill_id} queued\n")
        return 0
    return follow(args, BackfillFollower(client, *follow_stream(args, out), backfill_id), out)


def cmd_backfills_get(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    if args.follow:
        return follow(args, BackfillFollower(client, *follow_stream(args, out), args.backfill_id), out)
    render(client.backfill(args.backfill_id), "backfill", args.output, out)
    return 0


def cmd_backfills_cancel(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    render(client.cancel_backfill(args.backfill_id), "backfill", args.output, out)
    return 0


def cmd_backfills_retry(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    backfill = client.retry_backfill(args.backfill_id)
    if args.follow:
        return follow(args, BackfillFollower(client, *follow_stream(args, out), args.backfill_id), out)
    render(backfill, "backfill", args.output, out)
    return 0


def cmd_tokens_create(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    days = None if args.never_expires else args.expires_in_days
    token = client.create_token(args.name, args.role, expires_in_days=days, service_account=args.service_account)
    if args.output == "json":
        render(token, "token", "json", out)
    else:
        out.write(f"{token['token']}\n")
        sys.stderr.write(f"token {token['id']} ({token['role']}); the secret above is shown only once\n")
    return 0


def cmd_tokens_list(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    render(client.tokens(), "token", args.output, out)
    return 0


def cmd_tokens_revoke(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    client.revoke_token(args.token_id)
    if args.output == "json":
        render({"status": "revoked", "id": args.token_id}, "token", "json", out)
    else:
        out.write(f"token {args.token_id} revoked\n")
    return 0


# ---- parser ------------------------------------------------------------------------------


def common_options() -> argparse.ArgumentParser:
    """Options every command accepts (before or after the command's name)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--output", "-o", choices=("table", "json"), default=argparse.SUPPRESS, help="table (default) or json"
    )
    common.add_argument("--url", default=argparse.SUPPRESS, help="the API's base URL (else INTERLOPER_URL, else login)")
    common.add_argument("--token", default=argparse.SUPPRESS, help="an API token (else INTERLOPER_TOKEN, else login)")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[common],
        description="Operate Interloper jobs, runs and backfills from a terminal with an API token.",
        epilog="Configuration: --url/--token, INTERLOPER_URL/INTERLOPER_TOKEN, or `interloper-ctl login`. "
        "Exit status: 0 ok, 1 API error or failed/canceled run, 2 usage error, 130 interrupted.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(parent: Any, name: str, handler: Handler | None, help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = parent.add_parser(name, parents=[common], help=help_text, description=help_text)
        if handler is not None:
            sub.set_defaults(handler=handler)
        return sub

    def group(name: str, help_text: str) -> Any:
        sub = command(commands, name, None, help_text)
        return sub.add_subparsers(dest="action", metavar="ACTION", required=True)

    login = command(commands, "login", None, "Verify a token (GET /api/auth/me) and store URL and token (mode 600)")
    login.set_defaults(login=True)
    command(commands, "whoami", cmd_whoami, "The token's user, organisation and role")
    command(commands, "orgs", cmd_orgs, "Organisations you can see")

    jobs = group("jobs", "Jobs: list, get, run")
    command(jobs, "list", lister("job", Client.jobs), "List the organisation's jobs")
    command(jobs, "get", cmd_jobs_get, "Show a job").add_argument("job_id")
    run = command(jobs, "run", cmd_jobs_run, "Trigger a run of a job (editor)")
    run.add_argument("job_id")
    run.add_argument("--partition", metavar="YYYY-MM-DD", help="the partition date (partitioned jobs)")
    add_follow(run)

    runs = group("runs", "Runs: list, get, events, logs, cancel, retry")
    listing = command(runs, "list", cmd_runs_list, "List runs, newest first")
    listing.add_argument("--job", metavar="JOB_ID")
    listing.add_argument("--backfill", metavar="BACKFILL_ID")
    listing.add_argument(
        "--status", choices=("pending", "queued", "dispatched", "running", "success", "failed", "canceled")
    )
    listing.add_argument("--limit", type=int, default=50)
    get = command(runs, "get", cmd_runs_get, "Show a run")
    get.add_argument("run_id")
    add_follow(get)
    events = command(runs, "events", cmd_runs_events, "A run's events, in order")
    events.add_argument("run_id")
    events.add_argument("--limit", type=int, default=None)
    command(runs, "logs", cmd_runs_logs, "What a run's code wrote (stdout, stderr, logging)").add_argument("run_id")
    command(runs, "cancel", cmd_runs_cancel, "Cancel a run (editor)").add_argument("run_id")
    retry = command(runs, "retry", cmd_runs_retry, "Run a finished run's job again, same partition (editor)")
    retry.add_argument("run_id")
    add_follow(retry)

    backfills = group("backfills", "Backfills: list, create, get, cancel, retry")
    backfill_list = command(backfills, "list", cmd_backfills_list, "List backfills, newest first")
    backfill_list.add_argument("--active", action="store_true", help="only running or queued ones")
    create = command(backfills, "create", cmd_backfills_create, "Backfill a job over a date range (editor)")
    create.add_argument("job_id")
    create.add_argument("--start", required=True, metavar="YYYY-MM-DD")
    create.add_argument("--end", required=True, metavar="YYYY-MM-DD")
    create.add_argument("--concurrency", type=int, default=1)
    create.add_argument("--fail-fast", action="store_true", help="cancel the rest at the first failure")
    add_follow(create)
    backfill_get = command(backfills, "get", cmd_backfills_get, "Show a backfill")
    backfill_get.add_argument("backfill_id")
    add_follow(backfill_get)
    command(backfills, "cancel", cmd_backfills_cancel, "Cancel a backfill's unfinished runs (editor)").add_argument(
        "backfill_id"
    )
    backfill_retry = command(
        backfills, "retry", cmd_backfills_retry, "Run a backfill's failed partitions again (editor)"
    )
    backfill_retry.add_argument("backfill_id")
    add_follow(backfill_retry)

    tokens = group("tokens", "API tokens (need a signed-in session: INTERLOPER_SESSION)")
    token_create = command(tokens, "create", cmd_tokens_create, "Create a token; prints the secret once")
    token_create.add_argument("--name", required=True)
    token_create.add_argument("--role", required=True, choices=("viewer", "editor", "admin"))
    token_create.add_argument("--expires-in-days", type=int, default=90)
    token_create.add_argument("--never-expires", action="store_true", help="admins only")
    token_create.add_argument("--service-account", action="store_true", help="owned by the organisation; admins only")
    command(tokens, "list", cmd_tokens_list, "Your tokens (an admin: the organisation's)")
    command(tokens, "revoke", cmd_tokens_revoke, "Revoke a token").add_argument("token_id")

    for name, fetch in (("sources", Client.sources), ("destinations", Client.destinations), ("assets", Client.assets)):
        sub = group(name, f"{name.capitalize()} of the organisation")
        command(sub, "list", lister(name[:-1], fetch), f"List {name}")
    return parser


def add_follow(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="stream status, events and logs until it ends (Ctrl-C stops following)",
    )


# ---- entry point -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on a usage error
    args.output = getattr(args, "output", "table")
    url, token = getattr(args, "url", None), getattr(args, "token", None)
    try:
        if getattr(args, "login", False):
            args.url, args.token = url, token
            return cmd_login(args)
        settings = resolve(url, token)
        warn_cleartext(settings.url)
        with make_client(settings, tokens=args.command == "tokens") as client:
            code: int = args.handler(args, client, sys.stdout)
            return code
    except (ConfigError, UsageError) as error:
        sys.stderr.write(f"{PROG}: error: {error}\n")
        return 2
    except ApiError as error:
        sys.stderr.write(f"{PROG}: error: {error}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130


def make_client(settings: Settings, *, tokens: bool) -> Client:
    """A token cannot manage tokens (the API answers 403): those commands use a session cookie
    (`INTERLOPER_SESSION`) when one is given."""
    if tokens and settings.session:
        return Client(settings.url, session=settings.session)
    return Client(settings.url, settings.token, session=settings.session)


if __name__ == "__main__":
    sys.exit(main())
