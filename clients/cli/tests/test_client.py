"""The typed client and the config file, against httpx's in-process transport (no server)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from icp_ctl import ApiError, Client
from icp_ctl.client import error_detail, log_page
from icp_ctl.config import ConfigError, read_file, resolve, write_file


def test_requests_carry_the_bearer_token_and_decode_json() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[{"id": "j1"}])

    with Client("http://api.example:8080/", "ilp_secret", transport=httpx.MockTransport(handler)) as client:
        assert client.jobs() == [{"id": "j1"}]
        client.runs(job_id="j1", limit=5)
    assert seen[0].headers["authorization"] == "Bearer ilp_secret"
    assert seen[0].url == "http://api.example:8080/api/jobs"
    assert seen[1].url.params == httpx.QueryParams({"job_id": "j1", "limit": "5", "offset": "0"})  # None left out


@pytest.mark.parametrize(
    ("response", "detail"),
    [
        (httpx.Response(404, json={"detail": "Job x not found"}), "Job x not found"),
        (
            httpx.Response(
                422, json={"detail": [{"loc": ["body", "partition_date"], "msg": "Input should be a valid date"}]}
            ),
            "body.partition_date: Input should be a valid date",
        ),
        (httpx.Response(500, text="Internal Server Error\n"), "Internal Server Error"),
        (httpx.Response(403, json={"detail": "two\nlines"}), "two lines"),
    ],
)
def test_error_answers_become_one_line_api_errors(response: httpx.Response, detail: str) -> None:
    assert error_detail(response) == detail
    client = Client("http://api.example", "t", transport=httpx.MockTransport(lambda _: response))
    with pytest.raises(ApiError) as caught:
        client.job("x")
    assert (caught.value.status, caught.value.detail) == (response.status_code, detail)
    assert "\n" not in str(caught.value)


def test_reads_and_triggers_are_retried_with_one_idempotency_key_but_cancel_is_not() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(503, json={"detail": "Service unavailable: pipelines"})
        return httpx.Response(200, json={"status": "queued", "run_id": "r1"})

    client = Client("http://api.example", "t", transport=httpx.MockTransport(handler))
    assert client.run_job("j1", "2024-01-01") == {"status": "queued", "run_id": "r1"}
    assert len(calls) == 2
    keys = {c.headers["idempotency-key"] for c in calls}
    assert len(keys) == 1 and json.loads(calls[1].content) == {"partition_date": "2024-01-01"}

    calls.clear()
    with pytest.raises(ApiError) as caught:
        client.cancel_run("r1")
    assert caught.value.status == 503 and len(calls) == 1


def test_an_unreachable_server_is_an_api_error_with_status_0() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = Client("http://api.example", "t", transport=httpx.MockTransport(handler))
    with pytest.raises(ApiError) as caught:
        client.organisations()
    assert caught.value.status == 0 and "cannot reach http://api.example" in str(caught.value)


def test_ws_url_asks_for_ids_and_resumes_after_since() -> None:
    assert Client("http://h:8080/", "t").ws_url() == "ws://h:8080/api/ws?resume=1&subscribe=run_logs"
    assert Client("https://h/", "t").ws_url(since=41, subscribe=()) == "wss://h/api/ws?resume=1&since=41"


def test_retry_run_reruns_the_job_and_partition_of_a_finished_run_only() -> None:
    runs = {
        "done": {"id": "done", "job_id": "j1", "status": "failed", "partition_date": "2024-03-01"},
        "busy": {"id": "busy", "job_id": "j1", "status": "running", "partition_date": None},
        "orphan": {"id": "orphan", "job_id": None, "status": "failed", "partition_date": None},
    }
    posted: list[tuple[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posted.append((request.url.path, json.loads(request.content)))
            return httpx.Response(200, json={"status": "queued", "run_id": "new"})
        return httpx.Response(200, json=runs[request.url.path.rsplit("/", 1)[1]])

    client = Client("http://api.example", "t", transport=httpx.MockTransport(handler))
    assert client.retry_run("done")["run_id"] == "new"
    assert posted == [("/api/jobs/j1/run", {"partition_date": "2024-03-01"})]
    for run_id, text in (("busy", "has not finished"), ("orphan", "has no job")):
        with pytest.raises(ApiError, match=text):
            client.retry_run(run_id)
    assert len(posted) == 1


def test_log_pages_of_either_shape() -> None:
    lines = [{"seq": 1, "message": "a"}, {"seq": 2, "message": "b"}]
    assert log_page({"items": lines, "next_cursor": 2}) == (lines, 2)
    assert log_page({"items": lines, "next_cursor": None}) == (lines, 2)  # not a full page: still the newest seq
    assert log_page(lines) == (lines, 2)
    assert log_page({"lines": []}) == ([], None)


def test_iter_run_logs_follows_the_cursor() -> None:
    pages: dict[str | None, dict[str, Any]] = {None: {"items": [{"seq": 1, "message": "a"}], "next_cursor": 1}}
    pages["1"] = {"items": [{"seq": 2, "message": "b"}], "next_cursor": None}
    pages["2"] = {"items": [], "next_cursor": None}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params.get("after")])

    client = Client("http://api.example", "t", transport=httpx.MockTransport(handler))
    assert [x["message"] for x in client.iter_run_logs("r")] == ["a", "b"]


# ---- config ------------------------------------------------------------------------------


def test_the_config_file_is_written_0600_and_a_wider_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "interloper" / "ctl.json"
    path.parent.mkdir()
    path.write_text("{}")
    path.chmod(0o644)
    write_file("http://h", "ilp_x", path)  # an existing wider file is narrowed
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_file(path) == {"url": "http://h", "token": "ilp_x"}
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_file(path)
    assert read_file(tmp_path / "absent.json") == {}


def test_resolve_prefers_flags_then_environment_then_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    for name in ("INTERLOPER_URL", "INTERLOPER_TOKEN", "INTERLOPER_SESSION"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="interloper-ctl login"):
        resolve(None, None)
    write_file("http://file", "ilp_file")
    assert os.path.exists(tmp_path / "interloper" / "ctl.json")
    assert (resolve(None, None).url, resolve(None, None).token) == ("http://file", "ilp_file")
    monkeypatch.setenv("INTERLOPER_URL", "http://env/")
    monkeypatch.setenv("INTERLOPER_TOKEN", "ilp_env")
    assert (resolve(None, None).url, resolve(None, None).token) == ("http://env", "ilp_env")
    assert (resolve("http://flag", "ilp_flag").url, resolve("http://flag", "ilp_flag").token) == (
        "http://flag",
        "ilp_flag",
    )


def test_the_stored_token_is_sent_only_to_its_own_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    for name in ("INTERLOPER_URL", "INTERLOPER_TOKEN", "INTERLOPER_SESSION"):
        monkeypatch.delenv(name, raising=False)
    write_file("http://mine:8080", "ilp_file")
    assert resolve("http://mine:8080/", None).token == "ilp_file"
    with pytest.raises(ConfigError):
        resolve("http://elsewhere", None)  # not the stored token
    monkeypatch.setenv("INTERLOPER_URL", "http://elsewhere")
    assert resolve(None, None, need_token=False).token is None
