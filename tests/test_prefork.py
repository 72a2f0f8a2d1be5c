"""common/prefork.py: a forked script behaves as `python SCRIPT ARGS` would, in both launchers."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from common import prefork

SCRIPT = r"""
import json, os, signal, sys, time
what = sys.argv[1]
if what == "report":
    print(json.dumps({
        "argv": sys.argv, "cwd": os.getcwd(), "env": os.environ.get("PF_TEST"), "name": __name__,
        "sid_is_pid": os.getsid(0) == os.getpid(), "stdin": sys.stdin.read(), "ppid": os.getppid(),
        "path0": sys.path[0], "sigint": str(signal.getsignal(signal.SIGINT)),
    }))
    sys.exit(int(sys.argv[2]))
if what == "raise":
    raise ValueError("boom from the script")
if what == "wait":
    open(sys.argv[2], "w").close()
    time.sleep(60)
if what == "ending":  # what the interpreter does at its end: executors' threads, atexit, sys.exit(str)
    import atexit
    from concurrent.futures import ThreadPoolExecutor
    atexit.register(print, "atexit ran", flush=True)
    ThreadPoolExecutor(1).submit(print, "task ran", flush=True)
    sys.exit("said on exit")
if what == "interrupt":
    raise KeyboardInterrupt
"""


@pytest.fixture(params=["preforked", "fresh"])
def launch(request):
    made = prefork.Preforker(preload=("json",)) if request.param == "preforked" else prefork.FreshProcesses()
    yield made
    made.close()


def read_report(log):
    return json.loads(log.read_text().strip().splitlines()[-1])


def test_argv_cwd_env_session_stdin_and_exit_status(tmp_path, launch):
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    work = tmp_path / "work"
    work.mkdir()
    log = tmp_path / "log.txt"
    log.write_text("earlier line\n")
    env = {**os.environ, "PF_TEST": "given"}
    # A process started in the background by a non-interactive shell inherits SIGINT ignored, and so
    # would a fresh child: give this one a terminal's disposition, as a user's shell would.
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        child = launch.start([str(script), "report", "7"], env, log, cwd=work)
        assert child.wait() == 7
    finally:
        signal.signal(signal.SIGINT, outer)
    got = read_report(log)
    assert log.read_text().startswith("earlier line\n")  # the log is appended to
    assert got["argv"][1:] == ["report", "7"] and os.path.samefile(got["argv"][0], script)
    assert got["cwd"] == str(work) and got["env"] == "given" and got["name"] == "__main__"
    assert got["sid_is_pid"] and got["stdin"] == "" and got["path0"] == str(tmp_path)
    assert got["ppid"] == launch.parent_pid()  # what a child watching its parent must compare with
    assert "default_int_handler" in got["sigint"]  # Ctrl-C raises KeyboardInterrupt, as in a fresh python
    # A script named relative to the working directory keeps that name in argv[0], as python keeps it.
    assert launch.start(["../s.py", "report", "0"], env, log, cwd=work).wait() == 0
    got = read_report(log)
    assert got["argv"][0] == "../s.py" and got["path0"] == str(tmp_path)


def test_a_missing_script_is_exit_2_naming_it(tmp_path, launch):
    log = tmp_path / "log.txt"
    assert launch.start([str(tmp_path / "absent.py")], dict(os.environ), log).wait() == 2
    assert "can't open file" in log.read_text() and "absent.py" in log.read_text()


def test_an_uncaught_exception_is_exit_1_with_its_traceback_in_the_log(tmp_path, launch):
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    log = tmp_path / "log.txt"
    assert launch.start([str(script), "raise"], dict(os.environ), log).wait() == 1
    text = log.read_text()
    assert "Traceback" in text and "ValueError: boom from the script" in text


def test_it_ends_as_the_interpreter_does(tmp_path, launch):
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    log = tmp_path / "log.txt"
    child = launch.start([str(script), "ending"], dict(os.environ), log)
    assert child.wait(timeout=30) == 1  # not held by the executor's idle thread
    text = log.read_text()
    assert "task ran" in text and "atexit ran" in text and "said on exit" in text
    assert launch.start([str(script), "interrupt"], dict(os.environ), log).wait(timeout=30) == -signal.SIGINT
    assert "KeyboardInterrupt" in log.read_text()


def test_a_signal_ends_it_with_minus_the_signal_number(tmp_path, launch):
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    mark = tmp_path / "started"
    child = launch.start([str(script), "wait", str(mark)], dict(os.environ), tmp_path / "log.txt")
    deadline = time.monotonic() + 30
    while not mark.exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child.send_signal(signal.SIGTERM)
    assert child.wait() == -signal.SIGTERM


def test_children_run_side_by_side_and_each_status_is_its_own(tmp_path):
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    launch = prefork.Preforker(preload=("json",))
    try:
        children = [
            launch.start([str(script), "report", str(code)], dict(os.environ), tmp_path / f"{code}.txt")
            for code in (0, 3, 5)
        ]
        assert [c.wait() for c in children] == [0, 3, 5]
        assert len({c.pid for c in children}) == 3
    finally:
        launch.close()


def test_the_helper_gone_is_an_oserror_then_fresh_processes_take_over(tmp_path):
    launch = prefork.Preforker(preload=("json",))
    launch._ensure_ready()
    os.kill(launch.parent_pid(), signal.SIGKILL)
    launch._helper.wait()
    launch._reader.join(timeout=10)
    with pytest.raises(OSError, match="helper"):
        launch.start([str(tmp_path / "s.py")], dict(os.environ), tmp_path / "log.txt")
    launch.close()


def test_prefork_0_in_the_environment_means_fresh_processes(monkeypatch):
    monkeypatch.setenv("IMGCLF_PREFORK", "0")
    assert isinstance(prefork.launcher(), prefork.FreshProcesses)


FORKING = r"""
import json, os, sys, threading
sys.path.insert(0, sys.argv[1])
from common import prefork
prefork.PRELOAD = ("json",)
prefork.fork_helper_now()  # as sweep.py does first thing
launch, again = prefork.launcher(), prefork.launcher(("json",))
out = {"first": type(launch._helper).__name__, "second": type(again._helper).__name__}
again.close()
out["rc"] = launch.start([sys.argv[2], "report", "4"], dict(os.environ), sys.argv[3]).wait()
out["helper"] = launch.parent_pid()
launch.close()
try:
    os.kill(out["helper"], 0)
    out["helper_left"] = True
except ProcessLookupError:
    out["helper_left"] = False
threading.Thread(target=threading.Event().wait, args=(1,)).start()
prefork.fork_helper_now()
out["forked_with_a_thread"] = prefork._forked is not None
print(json.dumps(out))
"""


def test_a_helper_forked_from_the_script_itself_is_handed_out_once_and_ends_with_close(tmp_path):
    import subprocess
    import sys

    script, log = tmp_path / "s.py", tmp_path / "log.txt"
    script.write_text(SCRIPT)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(
        [sys.executable, "-c", FORKING, root, str(script), str(log)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["first"] == "_ForkedHelper" and out["second"] == "Popen"  # later launchers: a new helper
    assert out["rc"] == 4 and read_report(log)["ppid"] == out["helper"]
    assert not out["helper_left"]  # close() ended it and waited for it
    assert not out["forked_with_a_thread"]  # a process with threads is not forked
