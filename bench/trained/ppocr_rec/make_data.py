"""Text lines rendered with PIL (DejaVu for English, WenQuanYi Micro Hei for Chinese), black or dark
text on light paper with a little blur and noise, the way a detector's crop reaches the recogniser.
`data/labels.json` holds the rendered string. Also copies PP-OCRv4 rec out of rapidocr's wheel
into `weights/` with its character list (the ONNX file's `character` metadata)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import media  # noqa: E402

LATIN = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
SERIF = "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"
CJK = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
VALIDATION = ["Invoice 2024-117", "Total: 48.90 EUR", "Hello World", "quantized model", "北京欢迎你", "今天天气很好",
              "Exit 12B", "SALE 50%"]
CALIBRATION = ["Main Street 7", "Tel 555-0199", "deploy to HTP", "Coffee & Tea", "上海市", "中文识别",
               "Order #8812", "Gate B22", "No Parking", "version 4.2", "欢迎光临", "Level 3 West"]


def render(text: str, font: str, size: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    f = ImageFont.truetype(font, size)
    x0, y0, x1, y1 = f.getbbox(text)
    pad = int(rng.integers(4, 12))
    paper = tuple(int(v) for v in rng.integers(200, 256, 3))
    ink = tuple(int(v) for v in rng.integers(0, 70, 3))
    img = Image.new("RGB", (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad), paper)
    ImageDraw.Draw(img).text((pad - x0, pad - y0), text, font=f, fill=ink)
    img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.0, 0.8))))
    arr = np.asarray(img, np.float32) + rng.normal(0, 4, (img.height, img.width, 3))
    return np.clip(arr, 0, 255).astype(np.uint8)


def copy_weights(folder: Path) -> None:
    import onnx

    src = Path(importlib.util.find_spec("rapidocr_onnxruntime").submodule_search_locations[0]) / "models"
    (folder / "weights").mkdir(exist_ok=True)
    shutil.copy(src / "ch_PP-OCRv4_rec_infer.onnx", folder / "weights/rec.onnx")
    meta = {p.key: p.value for p in onnx.load(str(folder / "weights/rec.onnx")).metadata_props}
    (folder / "weights/characters.txt").write_text(meta["character"])


def make(folder: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    media.clean(folder, "data/val", "data/calib")
    copy_weights(folder)
    labels = {}
    for split, lines in (("val", VALIDATION), ("calib", CALIBRATION)):
        for k, text in enumerate(lines):
            cjk = any(ord(c) > 0x2e80 for c in text)
            font = CJK if cjk else (SERIF if k % 3 == 2 else LATIN)
            name = f"{k:02d}.png"
            media.save_png(render(text, font, int(rng.integers(28, 40)), rng), folder / f"data/{split}/{name}")
            if split == "val":
                labels[name] = text
    (folder / "data/labels.json").write_text(json.dumps(labels, indent=1, ensure_ascii=False, sort_keys=True))


if __name__ == "__main__":
    make(Path(__file__).resolve().parent, int(sys.argv[1]) if len(sys.argv) > 1 else 0)
