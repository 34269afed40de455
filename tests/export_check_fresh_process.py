"""Runs an exported SavedModel in a process that imports nothing but TensorFlow (and numpy, its
own dependency); used by tests/test_export.py and benchmarks/gpu_check.sh.

    python tests/export_check_fresh_process.py JOBS_JSON OUT_DIR

JOBS_JSON: {"models": {name: saved_model_dir}, "jobs": [job, ...]}, each job
{"name", "model", "signature", "inputs": {arg: spec}, "batch": optional int} where a spec is
{"npy": path} (a numpy array; "cast": dtype converts it), {"bytes_file": path} (one scalar
string: the file's bytes), {"strings": [...]}, {"strings_hex": [...]} (raw bytes) or
{"strings_file": path} (a JSON list), a 1-D string batch, or its first item with "scalar". With
"batch", the string input "query" is fed in chunks and the outputs concatenated along the
last axis for `tokenize` (ids [T, Q]) or the first axis otherwise. Set "repeat" to time a job.

Writes OUT_DIR/<name>.npz with every output (or nothing if it failed) and OUT_DIR/results.json:
{name: {"ok": bool, "error_type", "error", "seconds": [...]}, "_modules": [...]}. The project's
package, scikit-image, scipy and Pillow are blocked from importing, to prove that a served model
needs none of them.
"""

import importlib.abc
import json
import os
import sys
import time

BLOCKED = ("text_objseg_tf2", "skimage", "scipy", "PIL")
REPORTED = BLOCKED + ("keras", "tf_keras", "absl.flags")


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in BLOCKED:
            raise ImportError(f"{fullname} must not be needed to serve the SavedModel")
        return None


sys.meta_path.insert(0, _Blocker())
# Keep this script's folder (tests/) and the repository out of the import path.
sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != os.path.dirname(
    os.path.abspath(__file__))]

import numpy as np  # noqa: E402  (TensorFlow's own dependency)
import tensorflow as tf  # noqa: E402


def _load_input(spec):
    if "npy" in spec:
        value = np.load(spec["npy"])
        if "cast" in spec:
            value = value.astype(spec["cast"])
        return tf.constant(value)
    if "bytes_file" in spec:
        with open(spec["bytes_file"], "rb") as f:
            return tf.constant(f.read(), tf.string)
    if "strings" in spec:
        values = [s.encode("utf-8") for s in spec["strings"]]
    elif "strings_hex" in spec:
        values = [bytes.fromhex(s) for s in spec["strings_hex"]]
    elif "strings_file" in spec:
        with open(spec["strings_file"], encoding="utf-8") as f:
            values = [s.encode("utf-8") for s in json.load(f)]
    else:
        raise ValueError(f"unknown input spec {spec}")
    if spec.get("scalar"):
        return tf.constant(values[0], tf.string)
    return tf.constant(values, tf.string, shape=[len(values)])


def _run(fn, inputs, batch, signature):
    if not batch:
        return {k: v.numpy() for k, v in fn(**inputs).items()}
    query = inputs["query"]
    axis = -1 if signature == "tokenize" else 0
    parts = []
    for start in range(0, int(query.shape[0]), batch):
        chunk = dict(inputs, query=query[start:start + batch])
        parts.append({k: v.numpy() for k, v in fn(**chunk).items()})
    return {k: np.concatenate([p[k] for p in parts], axis=axis) for k in parts[0]}


def main(jobs_file, out_dir):
    with open(jobs_file, encoding="utf-8") as f:
        spec = json.load(f)
    os.makedirs(out_dir, exist_ok=True)
    models = {}
    results = {}
    for job in spec["jobs"]:
        name = job["name"]
        record = {"ok": False, "seconds": []}
        try:
            if job["model"] not in models:
                start = time.perf_counter()
                models[job["model"]] = tf.saved_model.load(spec["models"][job["model"]])
                results.setdefault("_load_seconds", {})[job["model"]] = (
                    time.perf_counter() - start)
            fn = models[job["model"]].signatures[job["signature"]]
            inputs = {k: _load_input(v) for k, v in job["inputs"].items()}
            for _ in range(int(job.get("repeat", 1))):
                start = time.perf_counter()
                outputs = _run(fn, inputs, job.get("batch"), job["signature"])
                record["seconds"].append(time.perf_counter() - start)
            np.savez(os.path.join(out_dir, f"{name}.npz"), **outputs)
            record["ok"] = True
        except Exception as e:  # recorded for the parent test to check
            record["error_type"] = type(e).__name__
            record["error"] = getattr(e, "message", None) or str(e)
        results[name] = record
    results["_modules"] = sorted(m for m in sys.modules if m.split(".")[0] in REPORTED
                                 or m in REPORTED)
    with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
