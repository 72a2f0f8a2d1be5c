"""A web page for predictions: pick a run, upload images, see the top classes and the Grad-CAM heat map.

Streamlit serves ``webapp/page.py``. The page lists the runs under ``--checkpoint_dir`` (and the
leaderboard of its results database, when present), and opens no file outside that folder. It
listens on 127.0.0.1 only, unless ``--host`` says otherwise; it has no login, so another host
gets a warning. Uploads that are not images, larger than ``--max_upload_mb`` or with more pixels
than ``--max_image_pixels`` (read from the header, before decoding) are refused in words on the page.

Examples:
    python app.py                                        # http://127.0.0.1:7860, runs in checkpoints/
    python app.py --checkpoint_dir runs --port 8501
    python app.py --host 0.0.0.0 --max_upload_mb 20      # reachable from the network (warned)
    python app.py --max_image_pixels 25000000            # refuse images over 25 megapixels
"""

from __future__ import annotations

import ipaddress
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from common.cli import cli_parser
from common.errors import AppError, UsageError, run_cli

PAGE = Path(__file__).resolve().parent / "webapp" / "page.py"
LOOPBACK_NAMES = {"localhost"}


def build_parser():
    p = cli_parser(__doc__)
    p.add_argument(
        "--checkpoint_dir", default="checkpoints", metavar="DIR", help="runs to offer (default: checkpoints)"
    )
    p.add_argument("--port", type=int, default=7860, help="(default: 7860)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument(
        "--max_upload_mb", type=float, default=10, metavar="MB", help="largest upload accepted (default: 10)"
    )
    p.add_argument(
        "--max_image_pixels",
        type=int,
        default=None,
        metavar="N",
        help="largest image accepted, width x height, read from the header before decoding (default: "
        "89,478,485, Pillow's limit, as train.py's max_image_pixels)",
    )
    p.add_argument("--device", default="cpu", help="device for the models (default: cpu)")
    return p


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def transport_limit_mb(max_mb: float) -> int:
    """Streamlit's upload limit (whole MB): twice ours, so a file just over ours still reaches the page.

    Streamlit refuses larger files in the browser, where the reason is only a tooltip on a red chip;
    the page refuses ours in words, and its uploader's label states the limit for the rest.
    """
    return max(1, math.ceil(2 * max_mb))


def streamlit_command(args) -> list[str]:
    """``python -m streamlit run webapp/page.py`` with the server settings, the page's own after ``--``."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(PAGE),
        "--server.address",
        args.host,
        "--server.port",
        str(args.port),
        "--server.maxUploadSize",
        str(transport_limit_mb(args.max_upload_mb)),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--client.showErrorDetails",
        "none",
        "--",
        "--checkpoint_dir",
        str(Path(args.checkpoint_dir).resolve()),
        "--max_upload_mb",
        str(args.max_upload_mb),
        "--device",
        args.device,
        *(["--max_image_pixels", str(args.max_image_pixels)] if args.max_image_pixels is not None else []),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 1 <= args.port <= 65535:
        raise UsageError(f"--port must be 1-65535, got {args.port}")
    if not 0 < args.max_upload_mb < math.inf:
        raise UsageError(f"--max_upload_mb must be a positive number of MB, got {args.max_upload_mb}")
    if args.max_image_pixels is not None and args.max_image_pixels < 1:
        raise UsageError(f"--max_image_pixels must be at least 1, got {args.max_image_pixels}")
    if not Path(args.checkpoint_dir).is_dir():
        raise AppError(
            f"--checkpoint_dir {args.checkpoint_dir} is not a folder; train a model first or point it at your runs"
        )
    try:
        import streamlit  # noqa: F401
    except ImportError:
        raise AppError("the web page needs Streamlit: pip install -r requirements.txt") from None
    if not is_loopback(args.host):
        print(
            f"warning: listening on {args.host}: anyone who can reach this machine can use the page and see "
            f"the run names (there is no login)",
            file=sys.stderr,
        )
    print(
        f"serving {Path(args.checkpoint_dir).resolve()} on http://{args.host}:{args.port}  (Ctrl-C stops)", flush=True
    )
    cmd = streamlit_command(args)
    os.execv(cmd[0], cmd)  # Streamlit takes over this process: Ctrl-C and SIGTERM reach it directly


if __name__ == "__main__":
    run_cli(main)
