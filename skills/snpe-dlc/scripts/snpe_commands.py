#!/usr/bin/env python3
"""Print the SNPE command lines for one ONNX model and target, and check the SDK tools are present.

Usage: snpe_commands.py MODEL.onnx [--soc SM8650] [--precision w8a8|w8a16|fp16] [--calib calib.txt]
"""

import argparse
import os
import shutil
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--soc", default="SM8650")
    ap.add_argument("--precision", default="w8a16", choices=["w8a8", "w8a16", "fp16"])
    ap.add_argument("--calib", default="calib.txt")
    a = ap.parse_args()
    from bot.targets import SOCS

    soc = SOCS.get(a.soc.upper())
    if soc is None:
        print(f"unknown SoC {a.soc!r}; known: {', '.join(sorted(SOCS))}")
        return 2
    if a.precision == "fp16" and not soc.fp16:
        print(f"warning: {soc.name} (v{soc.htp_arch}) has no fp16 on the HTP; use w8a8")
    if a.precision == "w8a16" and not soc.int16:
        print(f"warning: {soc.name} (v{soc.htp_arch}) has no int16 on the HTP; use w8a8")
    stem = Path(a.model).stem
    cmds = [f"qairt-converter --input_network {a.model} --output_path {stem}.dlc --preserve_io_datatype"
            + (" --float_bitwidth 16" if a.precision == "fp16" else "")]
    dlc = f"{stem}.dlc"
    if a.precision != "fp16":
        act = 16 if a.precision == "w8a16" else 8
        cmds.append(f"snpe-dlc-quant --input_dlc {dlc} --input_list {a.calib} --output_dlc {stem}_q.dlc "
                    f"--act_bitwidth {act} --weights_bitwidth 8 --bias_bitwidth 32")
        dlc = f"{stem}_q.dlc"
    cmds.append(f"snpe-dlc-graph-prepare --input_dlc {dlc} --output_dlc {stem}_cache.dlc --htp_socs {soc.name.lower()}")
    cmds.append(f"snpe-net-run --container {stem}_cache.dlc --input_list inputs.txt --use_dsp --output_dir output")
    print("\n".join(cmds))
    root = os.environ.get("QAIRT_SDK_ROOT") or os.environ.get("SNPE_ROOT")
    missing = [t for t in ("qairt-converter", "snpe-dlc-quant", "snpe-dlc-graph-prepare", "snpe-net-run")
               if not shutil.which(t)]
    print(f"# SDK root: {root or 'not set (source <sdk>/bin/envsetup.sh)'}; "
          + (f"missing on PATH: {', '.join(missing)}" if missing else "all tools on PATH"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
