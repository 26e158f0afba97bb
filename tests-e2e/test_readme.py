"""The README's commands work as written, in a new shell (issue 23): every `make` target it names
exists, every command of its shell blocks is found with the PATH the block itself sets up (a new
shell has neither `.tools/bin` nor `.venv/bin`), its `--help` lines run, and its "Using the API
from scripts" block runs against the stack, as written."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from icp_stack.pytest_plugin import StackHandle

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
SHELL_WORDS = {"export", "cd", "set"}


def new_shell_path() -> str:
    """The PATH of a shell that has not been set up for this repository."""
    ours = (str(ROOT / ".tools"), str(ROOT / ".venv"))
    return os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if not p.startswith(ours))


def make_targets() -> set[str]:
    targets = set()
    for path in [ROOT / "Makefile", *sorted((ROOT / "mk").glob("*.mk"))]:
        targets |= set(re.findall(r"^([a-z0-9][a-z0-9-]*):", path.read_text(encoding="utf-8"), flags=re.M))
    return targets


def commands(block: str) -> list[list[str]]:
    """Each line's words, without comments and leading VAR=value assignments."""
    found = []
    for line in block.splitlines():
        line = re.sub(r"^[A-Za-z_][A-Za-z0-9_]*=\$\(", "", line)  # VAR=$(command ...): the command
        words = shlex.split(line, comments=True)
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            words = words[1:]
        if words:
            found.append(words)
    return found


def block_path(block: str) -> str:
    """The PATH after the block's own `export PATH=...` lines, run from the repository root."""
    path = new_shell_path()
    for line in block.splitlines():
        if line.startswith("export PATH="):
            value = shlex.split(line[len("export PATH=") :], comments=True)[0]
            path = value.replace("$PWD", str(ROOT)).replace("$PATH", path)
    return path


def test_every_make_target_named_exists() -> None:
    named = set(re.findall(r"`make ([a-z0-9-]+)", README))
    for block in BLOCKS:
        named |= {words[1] for words in commands(block) if words[0] == "make" and len(words) > 1}
    assert named >= {"run", "test", "fresh"}
    assert sorted(named - make_targets()) == []


def test_prose_names_no_command_that_needs_a_set_up_shell() -> None:
    """`uv ...` in running text failed in a new shell ("uv: command not found"): prose names make
    targets; shell blocks that call uv put it on the PATH first."""
    inline = re.findall(r"(?<!`)`(uv [^`]*)`", re.sub(r"```.*?```", "", README, flags=re.S))
    assert inline == []


def test_every_command_of_the_shell_blocks_is_found() -> None:
    missing = []
    for block in BLOCKS:
        path = block_path(block)
        for words in commands(block):
            command = words[0]
            if command in SHELL_WORDS or command.startswith("$"):
                continue
            if shutil.which(command, path=path) is None:
                missing.append(f"{command} (in: {' '.join(words)})")
            elif command == "uv" and words[1] == "run" and shutil.which(words[2], path=path) is None:
                missing.append(f"{words[2]} (in: {' '.join(words)})")
    assert missing == []


def test_the_help_lines_run_in_a_new_shell() -> None:
    ran = 0
    for block in BLOCKS:
        exports = [line for line in block.splitlines() if line.startswith("export ")]
        for line in block.splitlines():
            if line.strip().endswith("--help"):
                script = "\n".join(["set -e", *exports, line])
                result = subprocess.run(
                    ["bash", "-c", script],
                    cwd=ROOT,
                    env={**os.environ, "PATH": new_shell_path()},
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert result.returncode == 0, (line, result.stderr[-2000:])
                assert "usage:" in result.stdout, line
                ran += 1
    assert ran >= 1


def test_the_scripts_block_works_as_written(stack: StackHandle, tmp_path: Path) -> None:
    [block] = [b for b in BLOCKS if b.startswith("API=http://127.0.0.1:8080/api\n")]
    script = block.replace("API=http://127.0.0.1:8080/api", f"API={stack.base_url}/api", 1)
    # Every call must succeed: a failing HTTP status fails the run (with the body, for the reader).
    prelude = 'set -e\ncurl() { command curl --fail-with-body "$@"; echo; }\n'
    result = subprocess.run(
        ["bash", "-c", prelude + script],
        cwd=tmp_path,
        env={**os.environ, "PATH": new_shell_path()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
    assert '"name":"Scripts"' in result.stdout.replace(" ", "")
    assert '"key":"demo_ping"' in result.stdout.replace(" ", "")
