"""The Streamlit page that ``app.py`` serves: predict uploaded images with a run, and browse the runs.

Run through ``python app.py`` (it passes the settings after ``--``). One run selector in the sidebar
serves both tabs; runs are offered one dataset·model group at a time. Every file is read through
the folder boundary (webapp/boundary.py), every error is one line without server paths, and every
percentage is written the same way (webapp/board.py's ``pct``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # streamlit puts only this script's folder on the path

import streamlit as st  # noqa: E402
import torch  # noqa: E402

from artifacts.model_io import load_model_from_checkpoint  # noqa: E402
from common.errors import AppError  # noqa: E402
from data.images import IMAGE_EXTENSIONS, MAX_IMAGE_PIXELS, ImageError, open_image  # noqa: E402
from evaluation.cam import METHODS  # noqa: E402
from evaluation.inference import predict_probs, preprocess, top_classes  # noqa: E402
from resultsdb.leaderboard import describe, format_row  # noqa: E402
from webapp.board import SORT_COLUMN, pct, read_board, summary_table  # noqa: E402
from webapp.boundary import Boundary  # noqa: E402
from webapp.runs import RunInfo, groups, list_runs, run_image, safe_checkpoint  # noqa: E402
from webapp.study import find_studies, study_trials  # noqa: E402
from webapp.uploads import upload_problem  # noqa: E402


def settings() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint_dir", default="checkpoints")
    p.add_argument("--max_upload_mb", type=float, default=10)
    p.add_argument("--max_image_pixels", type=int, default=MAX_IMAGE_PIXELS)
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


def limits_text(cfg) -> str:
    return f"at most {cfg.max_upload_mb:g} MB and {cfg.max_image_pixels:,} pixels each"


# --- Predict ----------------------------------------------------------------------------------
def predict_tab(cfg, box: Boundary, run: RunInfo, file: str, topk: int, method: str) -> None:
    kinds = ", ".join(e.lstrip(".").upper() for e in sorted(IMAGE_EXTENSIONS))
    # Any type, and app.py's transport limit (twice ours): what we refuse is refused here, in words on
    # the page; Streamlit's browser-side refusals would show only a red chip with a tooltip.
    transport = st.get_option("server.maxUploadSize")
    uploads = st.file_uploader(
        f"Images to classify ({limits_text(cfg)})", accept_multiple_files=True, help=f"accepted: {kinds}"
    )
    if not uploads:
        st.info(
            f"Upload one or more images ({kinds}; {limits_text(cfg)}): the page shows the top classes and "
            f"the Grad-CAM heat map. Files over {transport} MB are stopped by the "
            f"browser before they reach the page."
        )
        return
    accepted = []
    for up in uploads:  # the checks that need no model come first: a refusal shows even if the model fails
        problem = upload_problem(up.name, up.size, cfg.max_upload_mb)
        if problem:
            st.error(f"Refused: {problem}")
        else:
            accepted.append(up)
    if not accepted:
        return
    ckpt = safe_checkpoint(box, run.name, file)
    mtime = ckpt.stat().st_mtime
    loaded = load(str(ckpt), mtime, cfg.device)
    for up in accepted:
        try:
            image = open_image(up.getvalue(), loaded.channels, cfg.max_image_pixels, name=up.name, say_animated=False)
        except ImageError as e:
            st.error(f"Refused: {box.one_line(e)}")
            continue
        show_prediction(up.name, image, loaded, str(ckpt), mtime, topk, method, cfg.device)


def show_prediction(
    name: str, image: torch.Tensor, loaded, ckpt: str, mtime: float, topk: int, method: str, device: str
) -> None:
    try:  # the explanation's own forward pass gives the top classes too
        from evaluation.explain import explain_image

        ex, why = explain_image(explainer(ckpt, mtime, device, method), image, None, topk), None
        top = ex.top
    except AppError as e:  # e.g. an ONNX file: no gradients
        ex, why = None, e
        top = top_classes(predict_probs(loaded, preprocess(image, loaded))[0], loaded.class_names, topk)
    st.subheader(name)
    st.markdown(f"Predicted class: **{top[0][0]}** ({pct(top[0][1])})")
    left, middle, right = st.columns(3)
    right.table([{"class": c, "probability": pct(v)} for c, v in top])
    if ex is None:
        left.image(image.permute(1, 2, 0).numpy(), caption="input", clamp=True)
        middle.info(f"No heat map: {why}")
        return
    left.image(ex.rgb, caption="input (model's view)", width="stretch")
    middle.image(ex.blended, caption=f"{method} of '{ex.target}'", width="stretch")
    if ex.empty:  # a blank or constant map: say so rather than let a uniform picture look like an answer
        middle.warning(
            f"The {method} map is empty for this image: nothing to see at this layer; try another heat map method."
        )


# --- Runs -------------------------------------------------------------------------------------
def runs_tab(cfg, box: Boundary, group: str, runs: list[RunInfo], run: RunInfo) -> None:
    st.subheader(f"Leaderboard: {group}")
    try:
        board = read_board(box)
    except AppError as e:
        st.error(box.one_line(e))
        board = None
    if board is not None and board.keys(group):
        keys = board.keys(group)
        key = None
        if board.by_key and len(keys) > 1:
            key = st.selectbox(
                "Settings (runs are compared only with the same settings)",
                list(keys),
                format_func=lambda k: f"{k} ({keys[k]} runs)",
            )
            st.caption(f"{sum(keys.values()) - keys[key]} runs of {group} with other settings are not shown.")
        schedules = board.schedules(group, key)
        if schedules.rows:
            st.markdown("**Schedules over seeds** (as `results.py best` ranks them)")
            st.dataframe([format_row(schedules, r) for r in schedules.rows], hide_index=True)
            st.caption(" ".join([describe(schedules) + ".", *schedules.notes]))
        st.markdown("**Runs**")
        st.dataframe(
            board.table(group, key),
            hide_index=True,
            column_config={SORT_COLUMN: st.column_config.NumberColumn(format="%.2f%%")},
        )
        note = f"From the results database, sorted by {SORT_COLUMN} (best.pt on the test split), best first."
        if board.outside:
            note += f" {board.outside} runs recorded for folders outside the checkpoint folder are not shown."
        st.caption(note)
    else:
        st.dataframe(
            summary_table(runs),
            hide_index=True,
            column_config={SORT_COLUMN: st.column_config.NumberColumn(format="%.2f%%")},
        )
        st.caption("From each run's summary.json (no results database in the checkpoint folder).")
    studies_section(box)
    st.subheader(f"Run: {run.name}")
    shown = False
    for candidates, caption in (
        (("curves.png",), "training curves"),
        (("eval_test/confusion_matrix.png", "eval_val/confusion_matrix.png"), "confusion matrix (evaluate.py)"),
    ):
        try:
            image, name = run_image(box, run.name, *candidates, max_pixels=cfg.max_image_pixels)
        except AppError as e:
            st.error(box.one_line(e))
            continue
        if image is not None:
            st.image(image.permute(1, 2, 0).numpy(), caption=f"{caption}: {name}", width="stretch")
            shown = True
    if not shown:
        st.info("This run has no curves.png or evaluation yet (run evaluate.py on it).")


def studies_section(box: Boundary) -> None:
    """A sweep's Optuna study: its trials and their states (running, complete, pruned, failed)."""
    studies = find_studies(box)
    if not studies:
        return
    st.subheader("Optuna studies")
    folder = st.selectbox("Study (sweep folder)", studies) if len(studies) > 1 else studies[0]
    try:
        trials = study_trials(box, folder)
    except AppError as e:
        st.error(box.one_line(e))
        return
    states: dict[str, int] = {}
    for t in trials:
        states[t["state"]] = states.get(t["state"], 0) + 1
    st.caption(f"{folder}: {len(trials)} trials (" + ", ".join(f"{n} {s.lower()}" for s, n in states.items()) + ")")
    st.dataframe(trials, hide_index=True)


# --- The page ---------------------------------------------------------------------------------
def sidebar(runs: list[RunInfo]) -> tuple[str, list[RunInfo], RunInfo, str, int, str]:
    by_group = groups(runs)
    with st.sidebar:
        group = st.selectbox("Dataset · model", list(by_group), format_func=lambda g: f"{g} ({len(by_group[g])})")
        members = {r.name: r for r in by_group[group]}
        name = st.selectbox(
            "Run", list(members), format_func=lambda n: n if members[n].summary else f"{n} (unfinished)"
        )
        run = members[name]
        file = st.selectbox("Checkpoint", run.checkpoints)
        topk = st.slider("Top-k classes", 1, 10, 5)
        method = st.selectbox("Heat map", METHODS)
        acc = {k: v for k, v in run.summary.items() if k.endswith("_acc") and isinstance(v, (int, float))}
        if acc:
            st.caption(", ".join(f"{k} {pct(v)}" for k, v in acc.items()))
        if run.problem:
            st.warning(run.problem)
    return group, by_group[group], run, file, topk, method


def page(cfg, box: Boundary) -> None:
    runs = list_runs(box)
    if not runs:
        st.warning(f"No checkpoints in the checkpoint folder ({box.root.name}). Train one with train.py first.")
        return
    group, members, run, file, topk, method = sidebar(runs)
    predict, browse = st.tabs(["Predict", "Runs"])
    with predict:
        try:
            predict_tab(cfg, box, run, file, topk, method)
        except Exception as e:  # a bad checkpoint, a failing model: one line, no server path
            st.error(f"error: {box.one_line(e)}")
    with browse:
        try:
            runs_tab(cfg, box, group, members, run)
        except Exception as e:
            st.error(f"error: {box.one_line(e)}")


def main() -> None:
    cfg = settings()
    st.set_page_config(page_title="imgclf", layout="wide")
    st.title("imgclf: predict and inspect")
    box = Boundary(cfg.checkpoint_dir)
    try:
        page(cfg, box)
    except Exception as e:  # the last guard: nothing reaches Streamlit's traceback display
        st.error(f"error: {box.one_line(e)}")


main()
