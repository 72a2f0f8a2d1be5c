"""The Streamlit page that ``app.py`` serves: predict uploaded images with a run, and browse the runs.

Run through ``python app.py`` (it passes the settings after ``--``). The model is loaded once per
checkpoint file (``st.cache_resource``); an image goes through predict.py's decode and eval
preprocessing, so the page and the command line give the same classes.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # streamlit puts only this script's folder on the path

import streamlit as st  # noqa: E402
import torch  # noqa: E402

from data.images import IMAGE_EXTENSIONS, ImageError, open_image  # noqa: E402
from common.errors import AppError  # noqa: E402
from artifacts.model_io import load_model_from_checkpoint  # noqa: E402
from evaluation.cam import METHODS  # noqa: E402
from evaluation.inference import predict_probs, preprocess, top_classes  # noqa: E402
from webapp.runs import leaderboard, list_runs, safe_checkpoint, upload_problem  # noqa: E402


def settings() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint_dir", default="checkpoints")
    p.add_argument("--max_upload_mb", type=float, default=10)
    p.add_argument("--device", default="cpu")
    return p.parse_args(sys.argv[1:])


@st.cache_resource(max_entries=4)
def load(path: str, mtime: float, device: str):
    """One loaded model per checkpoint file version (``mtime`` makes a retrained file reload)."""
    return load_model_from_checkpoint(path, torch.device(device))


@st.cache_resource(max_entries=4)
def explainer(path: str, mtime: float, device: str, method: str):
    from evaluation.cam import Explainer
    return Explainer(load(path, mtime, device), method)


def decode_upload(name: str, data: bytes, loaded) -> torch.Tensor:
    """The uploaded bytes through predict.py's guarded decoder (pixel limit from the header first)."""
    return open_image(data, loaded.channels, loaded.cfg.max_image_pixels, name=name)


def predict_tab(cfg, ckpt: Path, topk: int, method: str) -> None:
    uploads = st.file_uploader("Images to classify", type=sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS),
                               accept_multiple_files=True, max_upload_size=max(1, math.ceil(cfg.max_upload_mb)),
                               help=f"one or many; at most {cfg.max_upload_mb:g} MB each")
    if not uploads:
        st.info("Upload one or more images: the page shows the top classes and the Grad-CAM heat map.")
        return
    mtime = ckpt.stat().st_mtime
    loaded = load(str(ckpt), mtime, cfg.device)
    for up in uploads:
        problem = upload_problem(up.name, up.size, cfg.max_upload_mb)
        if problem:
            st.error(f"Refused: {problem}")
            continue
        try:
            image = decode_upload(up.name, up.getvalue(), loaded)
        except ImageError as e:
            reason = str(e).removeprefix(f"{up.name}: ")
            st.error(f"Refused: {up.name} is not a readable image ({reason})")
            continue
        show_prediction(up.name, image, loaded, str(ckpt), mtime, topk, method, cfg.device)


def show_prediction(name: str, image: torch.Tensor, loaded, ckpt: str, mtime: float, topk: int, method: str,
                    device: str) -> None:
    try:  # the explanation's own forward pass gives the top classes too
        from evaluation.explain import explain_image
        ex, why = explain_image(explainer(ckpt, mtime, device, method), image, None, topk), None
        top = ex.top
    except AppError as e:  # e.g. an ONNX file: no gradients
        ex, why = None, e
        top = top_classes(predict_probs(loaded, preprocess(image, loaded))[0], loaded.class_names, topk)
    st.subheader(name)
    st.markdown(f"Predicted class: **{top[0][0]}** ({top[0][1]:.1%})")
    left, middle, right = st.columns(3)
    right.table([{"class": c, "probability": f"{v:.4f}"} for c, v in top])
    if ex is None:
        left.image(image.permute(1, 2, 0).numpy(), caption="input", clamp=True)
        middle.info(f"No heat map: {why}")
        return
    left.image(ex.rgb, caption="input (model's view)", width="stretch")
    middle.image(ex.blended, caption=f"{method} of '{ex.target}'", width="stretch")


def runs_tab(root: Path, runs) -> None:
    board = leaderboard(root)
    if board:
        st.subheader("Leaderboard (results database)")
        st.dataframe(board, hide_index=True)
    elif runs:
        st.subheader("Runs (summary.json)")
        st.dataframe([{"run": r.name, **{k: v for k, v in r.summary.items() if isinstance(v, (int, float, str))}}
                      for r in runs], hide_index=True)
    if not runs:
        return
    run = st.selectbox("Run to inspect", runs, format_func=lambda r: r.name, key="inspect")
    curves = run.image("curves.png")
    matrix = run.image("eval_test/confusion_matrix.png", "eval_val/confusion_matrix.png")
    if curves:
        st.image(str(curves), caption="training curves", width="stretch")
    if matrix:
        st.image(str(matrix), caption="confusion matrix (evaluate.py)", width="stretch")
    if not (curves or matrix):
        st.info("This run has no curves.png or evaluation yet (run evaluate.py on it).")


def main() -> None:
    cfg = settings()
    root = Path(cfg.checkpoint_dir)
    st.set_page_config(page_title="imgclf", layout="wide")
    st.title("imgclf: predict and inspect")
    runs = list_runs(root)
    if not runs:
        st.warning(f"No checkpoints under {root.resolve()}. Train one with train.py first.")
        return
    with st.sidebar:
        run = st.selectbox("Run", runs, format_func=lambda r: r.name)
        file = st.selectbox("Checkpoint", run.checkpoints)
        topk = st.slider("Top-k classes", 1, 10, 5)
        method = st.selectbox("Heat map", METHODS)
        if run.summary:
            acc = {k: v for k, v in run.summary.items() if k.endswith("_acc")}
            st.caption(", ".join(f"{k} {v:.4f}" for k, v in acc.items()))
    predict, browse = st.tabs(["Predict", "Runs"])
    with predict:
        try:
            predict_tab(cfg, safe_checkpoint(root, run.name, file), topk, method)
        except AppError as e:
            st.error(str(e))
    with browse:
        runs_tab(root, runs)


main()
