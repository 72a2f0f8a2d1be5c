"""A web page for predictions: pick a run, upload images, see the top classes and the Grad-CAM heat map.

Streamlit serves ``webapp/page.py``. The page lists the runs under ``--checkpoint_dir`` (and the
leaderboard of its results database, when present), and opens no file outside that folder. It
listens on 127.0.0.1 only, unless ``--host`` says otherwise; it has no login, so another host
gets a warning. Uploads that are not images, or larger than ``--max_upload_mb``, are refused
with a message on the page.

Examples:
    python app.py                                        # http://127.0.0.1:7860, runs in checkpoints/
    python app.py --checkpoint_dir runs --port 8501
    python app.py --host 0.0.0.0 --max_upload_mb 20      # reachable from the network (warned)
"""
from __future__ import annotations

import ipaddress
import math
import os
import sys
from pathlib import Path
from typing import Sequence

from common.errors import AppError, UsageError, run_cli
from common.cli import cli_parser

PAGE = Path(__file__).resolve().parent / "webapp" / "page.py"
LOOPBACK_NAMES = {"localhost"}


def build_parser():
    p = cli_parser(__doc__)
    p.add_argument("--checkpoint_dir", default="checkpoints", metavar="DIR", help="runs to offer (default: checkpoints)")
    p.add_argument("--port", type=int, default=7860, help="(default: 7860)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--max_upload_mb", type=float, default=10, metavar="MB", help="largest upload accepted (default: 10)")
    p.add_argument("--device", default="cpu", help="device for the models (default: cpu)")
    return p


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def streamlit_command(args) -> list[str]:
    """``python -m streamlit run webapp/page.py`` with the server settings, the page's own after ``--``."""
    return [sys.executable, "-m", "streamlit", "run", str(PAGE),
            "--server.address", args.host, "--server.port", str(args.port),
            "--server.maxUploadSize", str(max(1, math.ceil(args.max_upload_mb))),
            "--server.headless", "true", "--server.fileWatcherType", "none", "--server.runOnSave", "false",
            "--browser.gatherUsageStats", "false", "--global.developmentMode", "false",
            "--client.toolbarMode", "minimal",
            "--", "--checkpoint_dir", str(Path(args.checkpoint_dir).resolve()),
            "--max_upload_mb", str(args.max_upload_mb), "--device", args.device]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 1 <= args.port <= 65535:
        raise UsageError(f"--port must be 1-65535, got {args.port}")
    if args.max_upload_mb <= 0:
        raise UsageError("--max_upload_mb must be positive")
    if not Path(args.checkpoint_dir).is_dir():
        raise AppError(f"--checkpoint_dir {args.checkpoint_dir} is not a folder; train a model first or point "
                       f"it at your runs")
    try:
        import streamlit  # noqa: F401
    except ImportError:
        raise AppError("the web page needs Streamlit: pip install -r requirements.txt") from None
    if not is_loopback(args.host):
        print(f"warning: listening on {args.host}: anyone who can reach this machine can use the page and see "
              f"the run names (there is no login)", file=sys.stderr)
    print(f"serving {Path(args.checkpoint_dir).resolve()} on http://{args.host}:{args.port}  (Ctrl-C stops)",
          flush=True)
    cmd = streamlit_command(args)
    os.execv(cmd[0], cmd)  # Streamlit takes over this process: Ctrl-C and SIGTERM reach it directly


if __name__ == "__main__":
    run_cli(main)
