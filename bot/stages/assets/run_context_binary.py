#!/usr/bin/env python3
"""Run this packaged QNN context binary on the HTP and save its outputs.

Usage: python run.py [FILE ...] [--input NAME=file.npy ...] [--out DIR] [--backend-path libQnnHtp.so]

Reads `interface.json` beside this file for input names, shapes and dtypes. Data files (an image,
a WAV, …) given as FILE go through the model's own `preprocess` (packaged beside this file, the one
the deployment was calibrated and validated with); each file's outputs go to `DIR/<file stem>/`
and, when the package has a `postprocess`, its answer to `DIR/<file stem>/answer.json` and stdout.
Without FILE, `--input` gives arrays; inputs not given are filled with zeros. When `interface.json`
lists a `host_postprocess`, its parts (small ONNX models beside this file) run on the CPU after the
HTP, turning the device's outputs into the model's. Needs `onnxruntime` and `onnxruntime-qnn`
(x86_64 simulation or a Snapdragon device); CPU fallback is disabled, so it fails loudly rather
than run anywhere but the HTP.
"""

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from plain_json import jsonable  # noqa: E402 — packaged beside this file (the bot's own bot/plain_json.py)


def entry_point(ref):
    """`file.py:function` from this package's folder (the model's preprocess / postprocess)."""
    file, _, func = ref.partition(":")
    sys.path.insert(0, HERE)
    spec = importlib.util.spec_from_file_location("aipc_pkg_" + os.path.splitext(file)[0], os.path.join(HERE, file))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, func)


def session(iface, backend_path):
    import onnxruntime_qnn

    ort.register_execution_provider_library("QNNExecutionProvider", onnxruntime_qnn.get_library_path())
    devs = [d for d in ort.get_ep_devices() if d.ep_name == "QNNExecutionProvider"]
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.add_provider_for_devices(devs, {"backend_path": backend_path or onnxruntime_qnn.get_qnn_htp_path(),
                                       "htp_arch": str(iface["target"]["htp_arch"]),
                                       "soc_model": str(iface["target"]["soc_model"])})
    so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    return ort.InferenceSession(os.path.join(HERE, iface["entry"]), so)


def infer(sess, iface, feeds):
    """The model's outputs for one sample: the HTP, then the host part if a repair moved one off it."""
    outs = sess.run(None, feeds)
    results = {**feeds, **dict(zip([o.name for o in sess.get_outputs()], outs))}
    host = iface.get("host_postprocess")
    if host:  # the graph's tail that runs on the CPU (a repair moved it off the HTP)
        for part in host["parts"]:
            cpu = ort.InferenceSession(os.path.join(HERE, part["file"]), providers=["CPUExecutionProvider"])
            got = cpu.run(None, {n: results[n] for n in part["inputs"]})
            results.update(zip([o.name for o in cpu.get_outputs()], got))
        return {n: results[n] for n in host["final_outputs"]}
    return {o.name: results[o.name] for o in sess.get_outputs()}


def save(folder, results):
    os.makedirs(folder, exist_ok=True)
    for name, v in results.items():
        np.save(os.path.join(folder, name + ".npy"), v)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", metavar="FILE", help="data files, read by the packaged preprocess")
    ap.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy")
    ap.add_argument("--out", default="outputs")
    ap.add_argument("--backend-path", default=None)
    a = ap.parse_args(argv)
    iface = json.load(open(os.path.join(HERE, "interface.json")))
    data = iface.get("data") or {}
    if a.files and not data.get("preprocess"):
        ap.error("this package has no preprocess; give arrays with --input NAME=FILE.npy")
    post = entry_point(data["postprocess"]) if data.get("postprocess") else None

    def typed(feeds):
        return {i["name"]: np.asarray(feeds[i["name"]]).astype(i["dtype"]) for i in iface["inputs"]
                if not i.get("unused")}  # declared, but the deployed graph has no such input

    if a.files:
        # Every file is preprocessed before the HTP session opens: a native library the preprocess loads
        # after the QNN libraries can crash the process (libsndfile through soundfile segfaults on its
        # first read once a QNN HTP session exists).
        prep, report = entry_point(data["preprocess"]), []
        feeds = [typed(prep(Path(f).resolve())) for f in a.files]
        sess = session(iface, a.backend_path)
        for f, sample in zip(a.files, feeds):
            t0 = time.perf_counter()
            results = infer(sess, iface, sample)
            ms = 1000 * (time.perf_counter() - t0)
            folder = os.path.join(a.out, os.path.splitext(os.path.basename(f))[0])
            save(folder, results)
            row = {"file": f, "outputs": list(results), "ms": round(ms, 3)}
            if post:
                row["answer"] = jsonable(post(dict(results)))
                with open(os.path.join(folder, "answer.json"), "w") as fh:
                    json.dump(row["answer"], fh)
            report.append(row)
        print(json.dumps(report))
        return 0

    given = dict(s.split("=", 1) for s in a.input)
    feeds = {i["name"]: (np.load(given[i["name"]]) if i["name"] in given else np.zeros(i["shape"], dtype=i["dtype"]))
             for i in iface["inputs"]}
    sess = session(iface, a.backend_path)
    t0 = time.perf_counter()
    results = infer(sess, iface, typed(feeds))
    ms = 1000 * (time.perf_counter() - t0)
    save(a.out, results)
    print(json.dumps({"outputs": list(results), "ms": round(ms, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
