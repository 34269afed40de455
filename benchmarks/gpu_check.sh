#!/usr/bin/env bash
# One prepared check of the exported SavedModel on a GPU machine:
#   1. export a SavedModel (random weights at the paper's sizes, or --pretrained_model), or
#      reuse one (--saved_model);
#   2. serve one image with 1 and 16 queries in a fresh process on the CPU (reference) and on
#      the GPU, through tests/export_check_fresh_process.py (imports only TensorFlow);
#   3. check that the GPU scores equal the CPU ones to 1e-3 (relative to the largest score) and
#      the masks at IoU >= 0.99, and print the latency per query (median of the timed calls
#      after a warm-up call that compiles; --repeat=N calls in all, default 6, 2 with --cpu).
# Exit status 0 only if a GPU was used and every check passed.
#
#   benchmarks/gpu_check.sh                        # on the GPU machine, from anywhere
#   benchmarks/gpu_check.sh --cpu                  # dry run without a GPU (both runs on CPU)
#   benchmarks/gpu_check.sh --saved_model=DIR      # check an existing export
#   benchmarks/gpu_check.sh --pretrained_model=P --vocab_file=V [--image=IMG] [--work_dir=D]
set -euo pipefail

CPU_ONLY=0
SAVED_MODEL=""
PRETRAINED=""
VOCAB="./exp-referit/data/vocabulary_referit.txt"
IMAGE=""
WORK_DIR="${TMPDIR:-/tmp}/text_objseg_gpu_check"
REPEAT=""
for arg in "$@"; do
  case "$arg" in
    --cpu) CPU_ONLY=1 ;;
    --saved_model=*) SAVED_MODEL="${arg#*=}" ;;
    --pretrained_model=*) PRETRAINED="${arg#*=}" ;;
    --vocab_file=*) VOCAB="${arg#*=}" ;;
    --image=*) IMAGE="${arg#*=}" ;;
    --work_dir=*) WORK_DIR="${arg#*=}" ;;
    --repeat=*) REPEAT="${arg#*=}" ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "error: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
# The repository's package without installing it (the served model itself never imports it).
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "$REPEAT" ]; then REPEAT=$([ "$CPU_ONLY" = 1 ] && echo 2 || echo 6); fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
mkdir -p "$WORK_DIR"
WORK_DIR="$(cd "$WORK_DIR" && pwd)"

if [ "$CPU_ONLY" = 1 ]; then
  DEVICE_ENV="-1"
else
  DEVICE_ENV="${CUDA_VISIBLE_DEVICES:-0}"
  CUDA_VISIBLE_DEVICES="$DEVICE_ENV" "$PY" -c "
import sys, tensorflow as tf
gpus = tf.config.list_physical_devices('GPU')
print('GPUs:', gpus, '| TensorFlow', tf.__version__, '| built with CUDA:',
      tf.test.is_built_with_cuda())
sys.exit(0 if gpus else 'error: no GPU visible to TensorFlow (use --cpu for a dry run)')"
fi

# 1. The SavedModel.
if [ -z "$SAVED_MODEL" ]; then
  SAVED_MODEL="$WORK_DIR/saved_model/1"
  start=$(date +%s)
  if [ -n "$PRETRAINED" ]; then
    CUDA_VISIBLE_DEVICES=-1 "$PY" exp-referit/export_saved_model.py \
      --pretrained_model="$PRETRAINED" --vocab_file="$VOCAB" --export_dir="$SAVED_MODEL"
  else
    CUDA_VISIBLE_DEVICES=-1 "$PY" - "$SAVED_MODEL" <<'EOF'
import sys
import keras
from text_objseg_tf2 import checkpoints, export
# Random weights at the paper's sizes and a made-up vocabulary of 8803 words.
words = ["<pad>", "<go>", "<eos>", "<unk>"] + [f"word{i}" for i in range(8799)]
keras.utils.set_random_seed(0)
net = checkpoints.new_net({}, dict(num_vocab=8803, embed_dim=1000, lstm_dim=1000,
                                   mlp_hidden_dims=500))
net.mlp_l2.bias.assign([-0.05])
print("exported", export.export_saved_model(net, {w: i for i, w in enumerate(words)},
                                            sys.argv[1]))
EOF
  fi
  echo "export: $(( $(date +%s) - start )) s"
fi

# 2. Inputs and jobs (numpy only; the image is a file or a smooth random 375x500 RGB image).
"$PY" - "$WORK_DIR" "$SAVED_MODEL" "$IMAGE" "$REPEAT" <<'EOF'
import json, os, sys
import numpy as np
work, saved_model, image_path, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if image_path:
    from text_objseg_tf2.util import io
    image = io.load_image(image_path)
else:
    rng = np.random.default_rng(0)
    image = np.kron(rng.integers(0, 256, (24, 32, 3)).astype(np.uint8),
                    np.ones((16, 16, 1), np.uint8))[:375, :500]
if image.ndim == 2:
    image = image[:, :, None]
np.save(os.path.join(work, "image.npy"), image)
queries = ["sky above the bridge", "man on the left", "water", "the red car", "tree right",
           "building in the middle", "bottom left corner", "people", "clouds", "grass",
           "the boat", "road", "second window from the top", "any mountain", "sand", "dog"]
for name, rep in (("cpu", 1), ("device", repeat)):
    jobs = [{"name": f"q{n}", "model": "m", "signature": "serving_default", "repeat": rep,
             "inputs": {"image": {"npy": os.path.join(work, "image.npy")},
                        "query": {"strings": queries[:n]}}} for n in (1, 16)]
    with open(os.path.join(work, f"jobs_{name}.json"), "w") as f:
        json.dump({"models": {"m": saved_model}, "jobs": jobs}, f)
EOF

# 3. CPU reference, then the device run (fresh processes importing only TensorFlow).
CUDA_VISIBLE_DEVICES=-1 "$PY" tests/export_check_fresh_process.py \
  "$WORK_DIR/jobs_cpu.json" "$WORK_DIR/cpu"
CUDA_VISIBLE_DEVICES="$DEVICE_ENV" "$PY" tests/export_check_fresh_process.py \
  "$WORK_DIR/jobs_device.json" "$WORK_DIR/device"

# 4. Parity and latency.
"$PY" - "$WORK_DIR" "$CPU_ONLY" <<'EOF'
import json, os, statistics, sys
import numpy as np
work, cpu_only = sys.argv[1], sys.argv[2] == "1"
results = {k: json.load(open(os.path.join(work, k, "results.json"))) for k in ("cpu", "device")}
ok = True
print(f"device: {'CPU (dry run, --cpu)' if cpu_only else 'GPU'}")
for n in (1, 16):
    name = f"q{n}"
    for k in ("cpu", "device"):
        if not results[k][name]["ok"]:
            sys.exit(f"error: {k} run of {name} failed: {results[k][name].get('error')}")
    ref, got = (np.load(os.path.join(work, k, f"{name}.npz")) for k in ("cpu", "device"))
    scale = float(np.abs(ref["scores"]).max())
    diff = float(np.abs(got["scores"] - ref["scores"]).max())
    a, b = ref["mask"] > 0, got["mask"] > 0
    iou = float((a & b).sum() / max((a | b).sum(), 1))
    secs = results["device"][name]["seconds"]
    timed = secs[1:] if len(secs) > 1 else secs
    ms = statistics.median(timed) / n * 1000
    good = diff <= 1e-3 * scale and iou >= 0.99
    ok &= good
    print(f"{n:2d} queries/image: {ms:8.1f} ms per query (first call {secs[0]:.1f} s) | "
          f"max |scores - cpu| = {diff:.2e} (1e-3 x {scale:.3g} allowed), mask IoU {iou:.4f} "
          f"{'OK' if good else 'FAIL'}")
sys.exit(0 if ok else "error: device results differ from the CPU reference")
EOF
