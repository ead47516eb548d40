#!/usr/bin/env python3
"""List the EPContext nodes of a compiled ONNX file and the context binaries they point to.

Usage: ctx_info.py MODEL_ctx.onnx
"""

import sys
from pathlib import Path


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    import onnx

    path = Path(sys.argv[1])
    m = onnx.load(str(path), load_external_data=False)
    nodes = [n for n in m.graph.node if n.op_type == "EPContext"]
    print(f"{path}: {len(m.graph.node)} node(s), {len(nodes)} EPContext")
    for n in nodes:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        embed = attrs.get("embed_mode", 1)
        cache = attrs.get("ep_cache_context", b"")
        source = attrs.get("source", b"").decode() if isinstance(attrs.get("source"), bytes) else attrs.get("source")
        if embed == 0:
            rel = cache.decode() if isinstance(cache, bytes) else str(cache)
            f = path.parent / rel
            size = f.stat().st_size if f.exists() else None
            print(f"  {n.name}: source {source}, sidecar {rel} ({size if size is not None else 'MISSING'} bytes)")
        else:
            print(f"  {n.name}: source {source}, embedded binary of {len(cache)} bytes")
    for io in ("input", "output"):
        for v in getattr(m.graph, io):
            dims = [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]
            print(f"  {io} {v.name}: {onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type)} {dims}")
    return 0 if nodes else 1


if __name__ == "__main__":
    sys.exit(main())
