#!/usr/bin/env bash
# One script for a machine with a CUDA GPU: speed of train.py against the bare loop, the
# Fashion-MNIST recipes' wall time and accuracy, and the test suite. Offline; ~5 min on one H100.
#
#   bash bench/gpu_check.sh              # everything
#   bash bench/gpu_check.sh speed        # only images/s: train.py vs the bare loop on pre-placed batches
#   bash bench/gpu_check.sh recipes      # only the two recipes (wall time, test accuracy)
#   bash bench/gpu_check.sh tests        # only `make test`
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_IMAGES=512 GPU_CHECK_ROUNDS=1 GPU_CHECK_TRAIN_ARGS="--dataset digits \
#       --threads 1" bash bench/gpu_check.sh speed          # a dry run of the speed step on the CPU
#
# Results go to stdout and to $OUT_DIR (default gpu_check_out/): one log per step and summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
OUT_DIR=${OUT_DIR:-gpu_check_out}
WHAT=${1:-all}
IMAGES=${GPU_CHECK_IMAGES:-51200}   # bare-loop images per round
ROUNDS=${GPU_CHECK_ROUNDS:-4}
EXTRA=${GPU_CHECK_TRAIN_ARGS:-}     # e.g. "--dataset digits" for a quick dry run of the speed step
mkdir -p "$OUT_DIR"
SUMMARY="$OUT_DIR/summary.txt"
: > "$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }

say "== machine"
say "$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"
say "$($PY -c 'import torch; print("torch", torch.__version__, "| cuda", torch.cuda.is_available(), "| cpu capability", torch.backends.cpu.get_cpu_capability())')"
if [[ "$DEVICE" == cuda* ]] && ! $PY -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    say "no CUDA GPU here: run with GPU_CHECK_DEVICE=cpu for a dry run"; exit 1
fi

# train.py's images/s of its 2nd epoch (the 1st includes warm-up), from the epoch line.
epoch_rate() { grep -E '^epoch +2/' "$1" | sed -E 's/.*\(([0-9]+) img\/s\).*/\1/'; }

speed() {
    say "== speed: the Fashion-MNIST recipe model (custom width 16 depth 4, batch 256)"
    $PY bench/loop_overhead.py --device "$DEVICE" --amp --channels_last --width 16 --depth 4 --batch_size 256 \
        --images "$IMAGES" --rounds "$ROUNDS" | tee "$OUT_DIR/bare_loop.log"
    $PY train.py --config configs/fashion_mnist.yaml --device "$DEVICE" --epochs 2 --no-tta $EXTRA \
        --checkpoint_dir "$OUT_DIR/ck" --run_name speed --save_every 0 | tee "$OUT_DIR/train_speed.log"
    bare=$(awk '$1 == "bare" {print $3}' "$OUT_DIR/bare_loop.log")
    ours=$(epoch_rate "$OUT_DIR/train_speed.log")
    say "bare loop on pre-placed batches: ${bare} img/s | train.py (input pipeline + augmentation): ${ours} img/s"
    say "$(grep -E '^AMP ' "$OUT_DIR/train_speed.log" || true)"
}

recipes() {
    for cfg in fashion_mnist fashion_mnist_best; do
        say "== recipe configs/$cfg.yaml"
        start=$(date +%s)
        $PY train.py --config "configs/$cfg.yaml" --device "$DEVICE" --checkpoint_dir "$OUT_DIR/ck" \
            --run_name "$cfg" | tee "$OUT_DIR/$cfg.log"
        wall=$(( $(date +%s) - start ))
        acc=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['test_acc'])" "$OUT_DIR/ck/$cfg/summary.json")
        say "$cfg: test accuracy $acc, wall ${wall} s (whole train.py run)"
        say "$(grep -E '^AMP ' "$OUT_DIR/$cfg.log" || true)"
    done
}

tests() {
    say "== make test"
    start=$(date +%s)
    if make test 2>&1 | tee "$OUT_DIR/tests.log"; then status=passed; else status=FAILED; fi
    say "make test $status in $(( $(date +%s) - start )) s: $(tail -n 1 "$OUT_DIR/tests.log")"
}

case "$WHAT" in
    all) speed; recipes; tests ;;
    speed|recipes|tests) "$WHAT" ;;
    *) echo "usage: $0 [all|speed|recipes|tests]" >&2; exit 2 ;;
esac
say "== done; logs in $OUT_DIR/"
