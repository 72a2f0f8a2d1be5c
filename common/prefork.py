"""Start Python scripts from a process that has already imported the heavy libraries.

A sweep starts one ``train.py`` per run, and a fresh interpreter spends seconds importing torch,
scikit-learn and matplotlib before its first step: on a short trial (or one pruned after an epoch)
as long as the training itself. A :class:`Preforker` starts one helper process that imports those
libraries once (never initialising CUDA or a thread pool, so forking it is safe) and forks a child
per script. The child is an ordinary new process -- its own pid and session, working directory,
environment, log file and stdin from /dev/null -- that runs the script as ``python SCRIPT ARGS``
would: ``__main__``, ``sys.argv``, exit status, an uncaught exception's traceback and exit 1, death
by a signal as a negative status (as :class:`subprocess.Popen` reports it). Only third-party modules
are preloaded: the script's own modules are imported by the child, after its environment is set --
except in a helper forked from the calling script itself (:func:`fork_helper_now`), which also carries
the modules that script had imported, as they read their environment then (the runs inherit it).

Where ``os.fork`` is missing, or the helper cannot start, :func:`launcher` gives a
:class:`FreshProcesses`: the same interface over :class:`subprocess.Popen`.

The helper is this file run as a script: it reads one JSON request per line on stdin and answers on
stdout with ``{"id", "pid"}`` when the child started and ``{"id", "rc"}`` when it ended. When its
parent goes away (stdin closes) it exits and leaves the children running; they see their parent
change (tracking.trial watches for it) and stop as on SIGTERM.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

# What a train.py run imports that takes long: measured with `python -X importtime train.py`.
# torch._dynamo is pulled in by torch's optimizers on their first step.
PRELOAD = (
    "torch",
    "torch._dynamo",
    "torchvision",
    "sklearn.datasets",
    "sklearn.model_selection",
    "matplotlib.pyplot",
    "optuna",
    "sqlalchemy",
    "yaml",
    "tqdm",
    "PIL.Image",
)


class Child:
    """A started script: ``pid``, ``send_signal(sig)``, ``wait() -> status`` (negative: killed by a signal)."""

    def __init__(self, pid: int, done: threading.Event, status: list[int]):
        self.pid = pid
        self._done, self._status = done, status

    def send_signal(self, sig: int) -> None:
        if not self._done.is_set():
            os.kill(self.pid, sig)

    def wait(self, timeout: float | None = None) -> int:
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(str(self.pid), timeout)
        return self._status[0]


class FreshProcesses:
    """Each script in a fresh interpreter (subprocess.Popen), in its own session."""

    def parent_pid(self) -> int:
        return os.getpid()

    def start(
        self, argv: list[str], env: dict[str, str], log: Path, cwd: Path | None = None, err: Path | None = None
    ) -> subprocess.Popen:
        with open(log, "ab") as out, open(err or os.devnull, "ab") as err_out:
            return subprocess.Popen(
                [sys.executable, *argv],
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=err_out if err else subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def close(self) -> None:
        pass


class _ForkedHelper:
    """The helper forked from this process (what :class:`Preforker` uses of a Popen): it starts with
    every module this process has imported, so only the rest of ``preload`` is left to import."""

    def __init__(self, preload: tuple[str, ...]):
        requests_r, requests_w = os.pipe()  # this process writes, the helper reads (its fd 0)
        answers_r, answers_w = os.pipe()  # the helper writes (its fd 1), this process reads
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the helper: never back into the caller's code
            try:
                os.close(requests_w)
                os.close(answers_r)
                os.dup2(requests_r, 0)
                os.dup2(answers_w, 1)
                os.close(requests_r)
                os.close(answers_w)
                request = _serve(list(preload), parent)
                if request is not None:
                    _become(request)  # ends the process
            except BaseException:  # noqa: BLE001 - the caller sees the helper gone and starts fresh processes
                os._exit(1)
            os._exit(0)
        os.close(requests_r)
        os.close(answers_w)
        self.pid = pid
        self.stdin = os.fdopen(requests_w, "wb", buffering=0)
        self.stdout = os.fdopen(answers_r, "rb", buffering=0)

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self) -> None:
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


class Preforker:
    """Scripts forked from one helper process that has imported ``preload`` (``forked``: a helper
    forked from this process rather than a new interpreter; see :func:`fork_helper_now`)."""

    def __init__(self, preload: tuple[str, ...] = PRELOAD, forked: bool = False):
        if forked:
            self._helper = _ForkedHelper(preload)
        else:
            self._helper = subprocess.Popen(
                [sys.executable, __file__, *preload], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
            )
        self._lock = threading.Lock()
        self._next = 0
        self._started: dict[int, list] = {}  # request id -> [event, pid or error]
        self._ended: dict[int, tuple[threading.Event, list[int]]] = {}
        self._pids: dict[int, int] = {}  # request id -> pid, until it ended
        self._reader: threading.Thread | None = None  # started once the helper said it is ready

    def _ensure_ready(self) -> None:
        """Wait (once) for the helper's imports: they overlap whatever the caller does before its first start."""
        with self._lock:
            if self._reader is not None:
                return
            ready = self._helper.stdout.readline()
            try:
                ok = json.loads(ready or b"{}").get("ready") is True
            except ValueError:
                ok = False
            if not ok:
                self._helper.kill()
                self._helper.wait()
                raise OSError("the preloading helper did not start")
            self._reader = threading.Thread(target=self._read, daemon=True, name="prefork-reader")
            self._reader.start()

    def parent_pid(self) -> int:
        """The pid a child sees as its parent (for a child that watches whether its parent lives)."""
        return self._helper.pid

    def start(
        self, argv: list[str], env: dict[str, str], log: Path, cwd: Path | None = None, err: Path | None = None
    ) -> Child:
        """Start ``python ARGV`` with stdout (and stderr, unless ``err`` is given) appended to ``log``;
        OSError when the helper cannot (the caller may use FreshProcesses)."""
        self._ensure_ready()
        with self._lock:
            self._next += 1
            rid = self._next
            started = self._started[rid] = [threading.Event(), None]
            self._ended[rid] = (threading.Event(), [0])
        request = {
            "id": rid,
            "argv": list(argv),
            "env": dict(env),
            "log": str(log),
            "err": str(err or log),
            "cwd": str(cwd or os.getcwd()),
        }
        try:
            with self._lock:
                self._helper.stdin.write(json.dumps(request).encode() + b"\n")
        except OSError as e:
            raise OSError(f"the preloading helper is gone: {e}") from None
        started[0].wait()
        if isinstance(started[1], str):
            raise OSError(started[1])
        done, status = self._ended[rid]
        return Child(started[1], done, status)

    def _read(self) -> None:
        try:
            self._read_answers()
        finally:
            self._helper_gone()

    def _read_answers(self) -> None:
        for line in self._helper.stdout:
            msg = json.loads(line)
            rid = msg["id"]
            with self._lock:
                if "rc" in msg:
                    done, status = self._ended.pop(rid)
                    self._pids.pop(rid, None)
                    status[0] = msg["rc"]
                    done.set()
                    continue
                started = self._started.pop(rid)
                if "pid" in msg:
                    self._pids[rid] = msg["pid"]
            started[1] = msg.get("pid", msg.get("error"))
            started[0].set()

    def _helper_gone(self) -> None:
        """The helper died (it never should): its children cannot be waited for any more; each is
        given up on as failed once it has ended, and nothing new starts."""
        with self._lock:
            for started in self._started.values():
                started[1] = "the preloading helper is gone"
                started[0].set()
            pending = [(self._pids.get(rid), ended) for rid, ended in self._ended.items()]
        for pid, (done, status) in pending:
            if pid is not None:
                _wait_gone(pid)
            status[0] = 1
            done.set()

    def close(self) -> None:
        """Stop the helper (running children go on to their end) and wait for it. One that never
        started a child is killed: it may still be importing, and would only see its pipe closed after."""
        if self._reader is None:
            self._helper.kill()
        try:
            self._helper.stdin.close()
        except OSError:
            pass
        self._helper.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)  # it has read the last answer (EOF) before its file is closed
        self._helper.stdout.close()


def _wait_gone(pid: int) -> None:
    import time

    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)


_forked: Preforker | None = None  # made by fork_helper_now, not yet handed out


def _wanted() -> bool:
    return hasattr(os, "fork") and os.environ.get("IMGCLF_PREFORK", "1") != "0"


def fork_helper_now() -> None:
    """Fork the helper from this process now, for :func:`launcher` to hand out later. Call it first
    thing in a script's ``__main__`` block, while the process has no thread and nothing initialised:
    the helper's imports then overlap the script's own start-up, and a script that was itself started
    from a helper (so has imported everything already) gets a helper with nothing left to import."""
    global _forked
    if _forked is None and _wanted() and threading.active_count() == 1:
        try:
            _forked = Preforker(PRELOAD, forked=True)
        except OSError:
            _forked = None
        else:
            atexit.register(_end_unclaimed)


def _end_unclaimed() -> None:
    """At exit, a helper never handed out (--help, a usage error, a dry run) is stopped at once rather
    than left importing, holding this process's stderr open."""
    global _forked
    if _forked is not None:
        _forked.close()
        _forked = None


def launcher(preload: tuple[str, ...] = PRELOAD) -> Preforker | FreshProcesses:
    """The helper :func:`fork_helper_now` made, else a new Preforker, where fork exists
    (``IMGCLF_PREFORK=0``: fresh processes, e.g. to compare)."""
    global _forked
    if not _wanted():
        return FreshProcesses()
    if _forked is not None:
        made, _forked = _forked, None
        return made
    try:
        return Preforker(preload)
    except OSError:
        return FreshProcesses()


# --- the helper process ----------------------------------------------------------------------------


def _serve(preload: list[str], parent: int | None = None) -> dict | None:
    """Answer requests until stdin closes (returns None); in a forked child, return its request.
    ``parent``: stop importing as soon as that process is gone (it ended before needing a child)."""
    import gc
    import importlib
    import select

    # A terminal's Ctrl-C, or a SIGTERM/SIGHUP to the whole process group, is the parent's to forward
    # to the runs: the helper ends when its parent closes the requests' pipe.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    # Answers go to a copy of stdout; stdout itself to stderr, so that a library printing on import
    # cannot write into the answers' pipe.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    for name in preload:
        if parent is not None and os.getppid() != parent:
            return None
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional library missing: the child imports what it needs
            pass
    gc.freeze()  # the children's collections skip what is inherited: no page is copied to walk it
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select through the wakeup fd

    def say(msg: dict) -> None:
        out.write(json.dumps(msg).encode() + b"\n")

    say({"ready": True})
    children: dict[int, int] = {}  # pid -> request id
    pending = b""
    while True:
        ready, _, _ = select.select([0, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
        while children:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            say({"id": children.pop(pid), "rc": os.waitstatus_to_exitcode(wait_status)})
        if 0 not in ready:
            continue
        data = os.read(0, 1 << 16)
        if not data:
            return None  # the parent is gone; the children go on and notice it
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            try:
                pid = os.fork()
            except OSError as e:
                say({"id": request["id"], "error": f"cannot start {request['argv'][0]}: {e}"})
                continue
            if pid == 0:
                signal.set_wakeup_fd(-1)
                os.close(wake_r)
                os.close(wake_w)
                out.close()
                return request
            children[pid] = request["id"]
            say({"id": request["id"], "pid": pid})


def _become(request: dict) -> None:
    """In the forked child: turn into ``python ARGV`` run in the request's folder, environment and log."""
    import builtins
    import io
    import random
    import traceback
    import types

    os.setsid()
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for fd, path in ((1, request["log"]), (2, request["err"])):
        opened = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=unbuffered, line_buffering=True)
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), write_through=True, line_buffering=True, errors="backslashreplace"
    )
    random.seed()  # a fresh interpreter's random state is its own, not the helper's
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    script = os.path.abspath(request["argv"][0])
    sys.argv = list(request["argv"])  # argv[0] as given, as python keeps it (a printed command repeats it)
    sys.path.insert(0, os.path.dirname(script))
    # What python does for a script (runpy.run_path would put the absolute path in argv[0]).
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=script, __builtins__=builtins, __cached__=None, __loader__=None, __spec__=None)
    sys.modules["__main__"] = main
    try:
        with open(script, "rb") as f:
            source = f.read()
    except OSError as e:
        print(f"{sys.executable}: can't open file {script!r}: [Errno {e.errno}] {e.strerror}", file=sys.stderr)
        _leave(2)
    try:
        exec(compile(source, script, "exec"), main.__dict__)
        status = 0
    except SystemExit as e:
        status = _exit_status(e.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        _leave(None)  # as python does: the parent sees it killed by SIGINT
    except BaseException:  # noqa: BLE001 - an uncaught error, reported as python reports it
        sys.excepthook(*sys.exc_info())
        status = 1
    _leave(status)


def _exit_status(code) -> int:
    """What ``sys.exit(code)`` makes the interpreter's exit status."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _leave(status: int | None) -> None:
    """End the child as the interpreter's shutdown would (non-daemon threads joined, atexit
    functions run, stdout and stderr flushed) but without tearing down every inherited module:
    that teardown writes to each of the helper's objects, copying all of their memory pages
    (1.4 s per child measured, 0.04 s without). ``None``: end by SIGINT."""
    threading._shutdown()  # what the interpreter does first: threading's exit hooks (executors), then the joins
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if status is None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(status if status is not None else 130)


if __name__ == "__main__":
    sys.path.pop(0)  # this file's folder: the children's scripts import their own packages
    child_request = _serve(sys.argv[1:])
    if child_request is not None:
        _become(child_request)
