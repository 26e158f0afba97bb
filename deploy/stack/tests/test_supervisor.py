"""The asyncio supervisor with tiny Python children."""

import asyncio
import io
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from icp_stack.infra.process import ProcessSpec, http_ok
from icp_stack.ports import free_port
from icp_stack.supervisor import Supervisor

FAKE = str(Path(__file__).with_name("fake_service.py"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _http_child(name: str) -> ProcessSpec:
    port = free_port()
    env = dict(os.environ, INTERLOPER_HTTP_PORT=str(port))
    return ProcessSpec(
        name=name,
        argv=[sys.executable, FAKE, "serve"],
        env=env,
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/readyz"),
        ready_timeout=20,
        address=f"http://127.0.0.1:{port}",
    )


async def _wait(predicate: Callable[[], bool], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_restarts_a_crashed_child_and_stops_everything(tmp_path: Path) -> None:
    out = io.StringIO()
    sup = Supervisor(out=out, log_dir=tmp_path, backoff_initial=0.1, color=False)
    sup.add(_http_child("alpha"))
    sup.add(_http_child("beta"), deps=["alpha"])
    await sup.start_all()
    try:
        alpha = sup.children["alpha"]
        first = alpha.pid
        assert first and sup.children["beta"].pid
        os.kill(first, signal.SIGKILL)
        await _wait(lambda: alpha.state == "ready" and alpha.pid not in (None, first))
        assert "restarting alpha (exit code -9 (SIGKILL))" in out.getvalue()
        assert alpha.restarts == 1
        assert "alpha is ready again" in out.getvalue()
        # Output is multiplexed with a fixed-width prefix and kept in the log file.
        assert "alpha | fake_service.py serve listening on" in out.getvalue()
        assert "listening on" in (tmp_path / "alpha.log").read_text()
    finally:
        pids = [c.pid for c in sup.children.values() if c.pid]
        t0 = time.monotonic()
        await sup.stop_all()
        assert time.monotonic() - t0 < 10
    assert pids and not any(_alive(p) for p in pids)
    # Dependents stop first.
    text = out.getvalue()
    assert text.index("beta stopped") < text.index("alpha stopped")


async def test_stop_kills_a_child_that_ignores_sigterm_within_the_budget(tmp_path: Path) -> None:
    stubborn = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        "print('GC' + '-PID', child.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    out = io.StringIO()
    sup = Supervisor(out=out, color=False)
    sup.add(ProcessSpec(name="stubborn", argv=[sys.executable, "-c", stubborn]))
    await sup.start_all()
    await _wait(lambda: "GC-PID" in out.getvalue())
    grandchild = int(out.getvalue().split("GC-PID ")[1].split()[0])
    pid = sup.children["stubborn"].pid
    assert pid is not None
    t0 = time.monotonic()
    await sup.stop_all(budget=3.0)
    assert time.monotonic() - t0 < 5
    assert "did not stop within" in out.getvalue()
    assert not _alive(pid)
    await _wait(lambda: not _alive(grandchild), 3)  # the whole process group is killed


async def test_start_failure_names_the_component_with_its_log(tmp_path: Path) -> None:
    sup = Supervisor(out=io.StringIO(), log_dir=tmp_path, color=False)
    spec = _http_child("broken")
    assert spec.env is not None
    spec.env = dict(spec.env, FAKE_EXIT_CODE="3")
    sup.add(spec)
    sup.add(_http_child("after"), deps=["broken"])
    try:
        await sup.start_all()
    except Exception as exc:
        message = str(exc)
    else:
        raise AssertionError("start_all should fail")
    finally:
        await sup.stop_all()
    assert message.startswith("broken: exited while starting (exit code 3)")
    assert "failing on purpose" in message
    assert str(tmp_path / "broken.log") in message
    assert sup.children["after"].proc is None  # never started


async def test_not_ready_times_out_with_a_clear_error(tmp_path: Path) -> None:
    sup = Supervisor(out=io.StringIO(), color=False)
    spec = _http_child("slow")
    spec.ready_timeout = 1.0
    assert spec.env is not None
    spec.env = dict(spec.env, FAKE_READY_DELAY="30")
    sup.add(spec)
    try:
        await sup.start_all()
    except Exception as exc:
        assert "slow: not ready after 1 s" in str(exc)
    else:
        raise AssertionError("start_all should fail")
    finally:
        await sup.stop_all()


async def test_restarted_child_that_is_not_ready_yet_is_watched_until_ready(tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    flag.touch()
    out = io.StringIO()
    sup = Supervisor(out=out, backoff_initial=0.1, color=False)
    spec = ProcessSpec(
        name="lazy",
        argv=[sys.executable, "-c", "import time; time.sleep(300)"],
        ready=flag.exists,
        ready_timeout=0.5,
    )
    sup.add(spec)
    await sup.start_all()
    child = sup.children["lazy"]
    try:
        first = child.pid
        assert first is not None
        flag.unlink()
        os.kill(first, signal.SIGKILL)
        await _wait(lambda: child.state == "unready")
        assert "lazy (pid" in out.getvalue() and "is running but not ready" in out.getvalue()
        flag.touch()
        await _wait(lambda: child.state == "ready")
        assert child.pid not in (None, first)
    finally:
        await sup.stop_all()
