#!/usr/bin/env python3
"""Run this packaged QNN context binary on the HTP and save its outputs.

Usage: python run.py [--input NAME=file.npy ...] [--out DIR] [--backend-path libQnnHtp.so]

Reads `interface.json` beside this file for input names, shapes and dtypes; inputs not given are
filled with zeros. When `interface.json` lists a `host_postprocess`, its parts (small ONNX models
beside this file) run on the CPU after the HTP, turning the device's outputs into the model's. Needs `onnxruntime` and `onnxruntime-qnn` (x86_64 simulation or a Snapdragon
device); CPU fallback is disabled, so it fails loudly rather than run anywhere but the HTP.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy")
    ap.add_argument("--out", default="outputs")
    ap.add_argument("--backend-path", default=None)
    a = ap.parse_args(argv)
    iface = json.load(open(os.path.join(HERE, "interface.json")))
    given = dict(s.split("=", 1) for s in a.input)
    feeds = {}
    for i in iface["inputs"]:
        feeds[i["name"]] = (np.load(given[i["name"]]) if i["name"] in given
                            else np.zeros(i["shape"], dtype=i["dtype"])).astype(i["dtype"])

    import onnxruntime_qnn

    ort.register_execution_provider_library("QNNExecutionProvider", onnxruntime_qnn.get_library_path())
    devs = [d for d in ort.get_ep_devices() if d.ep_name == "QNNExecutionProvider"]
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.add_provider_for_devices(devs, {"backend_path": a.backend_path or onnxruntime_qnn.get_qnn_htp_path(),
                                       "htp_arch": str(iface["target"]["htp_arch"]),
                                       "soc_model": str(iface["target"]["soc_model"])})
    so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    sess = ort.InferenceSession(os.path.join(HERE, iface["entry"]), so)
    t0 = time.perf_counter()
    outs = sess.run(None, feeds)
    ms = 1000 * (time.perf_counter() - t0)
    results = {**feeds, **dict(zip([o.name for o in sess.get_outputs()], outs))}
    host = iface.get("host_postprocess")
    if host:  # the graph's tail that runs on the CPU (a repair moved it off the HTP)
        for part in host["parts"]:
            cpu = ort.InferenceSession(os.path.join(HERE, part["file"]), providers=["CPUExecutionProvider"])
            got = cpu.run(None, {n: results[n] for n in part["inputs"]})
            results.update(zip([o.name for o in cpu.get_outputs()], got))
        results = {n: results[n] for n in host["final_outputs"]}
    else:
        results = {o.name: results[o.name] for o in sess.get_outputs()}
    os.makedirs(a.out, exist_ok=True)
    for name, v in results.items():
        np.save(os.path.join(a.out, name + ".npy"), v)
    print(json.dumps({"outputs": list(results), "ms": round(ms, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
