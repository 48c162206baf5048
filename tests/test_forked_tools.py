"""tests/forked_tools.run_tool against ``subprocess.run([sys.executable, script, ...])``: the
same exit status, stdout and stderr for what a script can do at its end, the run's own
directory, environment, ``sys.argv`` and ``sys.path[0]``, and a timeout."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

from forked_tools import run_tool

ENDINGS = {
    "returns": "print('done')",
    "exit-code": "import sys; print('out'); sys.exit(3)",
    "exit-message": "import sys; sys.exit('error: one line')",
    "exit-none": "import sys; sys.exit()",
    "raises": "def f():\n    raise ValueError('boom')\nf()",
    "atexit": "import atexit; atexit.register(print, 'at exit')",
    "stderr": "import sys; sys.stderr.write('warn\\n'); print('x', end='')",
}


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_ends_as_the_interpreter_does(ending, tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(ENDINGS[ending]) + "\n")
    got = run_tool([str(script)], cwd=str(tmp_path))
    expected = subprocess.run(
        [sys.executable, str(script)], cwd=str(tmp_path), capture_output=True, text=True
    )
    assert (got.returncode, got.stdout) == (expected.returncode, expected.stdout)
    if ending == "raises":  # the traceback's last lines (the server's frames come first)
        assert got.stderr.splitlines()[-3:] == expected.stderr.splitlines()[-3:]
        assert got.stderr.startswith("Traceback (most recent call last):")
    else:
        assert got.stderr == expected.stderr


def test_runs_in_its_directory_and_environment_with_its_argv(tmp_path):
    folder = tmp_path / "tools"
    folder.mkdir()
    (folder / "sibling.py").write_text("NAME = 'sibling'\n")
    script = folder / "script.py"
    script.write_text(
        "import json, os, sys, sibling\n"
        "print(json.dumps([os.getcwd(), os.environ.get('PROBE'), sys.argv, sys.path[0],"
        " sibling.NAME, __name__, 'OTHER_PROBE' in os.environ]))\n"
    )
    env = dict(os.environ, PROBE="value")
    env.pop("OTHER_PROBE", None)
    os.environ["OTHER_PROBE"] = "not passed"
    try:
        got = run_tool([str(script), "a", "--b"], cwd=str(tmp_path), env=env)
    finally:
        del os.environ["OTHER_PROBE"]
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == (
        f'["{tmp_path}", "value", ["{script}", "a", "--b"], "{folder}", "sibling", '
        '"__main__", false]'
    )


def test_timeout_kills_the_run_and_the_next_run_works(tmp_path):
    script = tmp_path / "sleeps.py"
    script.write_text("import time\ntime.sleep(60)\n")
    with pytest.raises(subprocess.TimeoutExpired):
        run_tool([str(script)], cwd=str(tmp_path), timeout=1)
    (tmp_path / "ok.py").write_text("print('ok')\n")
    assert run_tool([str(tmp_path / "ok.py")], cwd=str(tmp_path)).stdout == "ok\n"


def test_a_run_that_ends_before_its_reply_is_read(tmp_path, monkeypatch):
    """On a busy machine the test process may read the server's pid line only after the run
    has ended, its status line already in the same buffer: that status is the answer (not a
    timeout waited out on an empty pipe)."""
    import forked_tools

    script = tmp_path / "quick.py"
    script.write_text("print('ok')\n")
    run_tool([str(script)], cwd=str(tmp_path))  # the server is up
    read, calls = forked_tools._read_reply, []

    def stalled_first_read(server):
        if not calls:
            time.sleep(1.5)  # the run ends meanwhile
        calls.append(1)
        return read(server)

    monkeypatch.setattr(forked_tools, "_read_reply", stalled_first_read)
    start = time.monotonic()
    proc = run_tool([str(script)], cwd=str(tmp_path), timeout=10)
    assert (proc.returncode, proc.stdout) == (0, "ok\n")
    assert time.monotonic() - start < 8
