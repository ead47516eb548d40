"""Scenes with text for PP-OCRv4 det: 2–4 lines rendered with PIL (English and Chinese) onto crops of
the sample photos and onto plain paper, plus scikit-image's scanned `page` and `text` images.
Also copies PP-OCRv4 det out of rapidocr's wheel into `weights/`."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import media  # noqa: E402

FONTS = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf",
         "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"]
LINES = ["OPEN DAILY", "Platform 3", "Exit 12B", "SALE 50%", "北京欢迎你", "出口", "Total 48.90", "No Parking",
         "Room 214", "今天天气很好", "Gate B22", "Coffee & Tea", "Main St 7", "上海市", "Level 3"]
BACKGROUNDS = {"val": ["coffee", "astronaut", "brick"],
               "calib": ["camera", "coins", "gravel", "retina", "colorwheel", "clock"]}


def scene(bg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    img = Image.fromarray(bg).resize((320, 320))
    draw = ImageDraw.Draw(img)
    y = int(rng.integers(10, 40))
    for _ in range(int(rng.integers(2, 5))):
        text = LINES[int(rng.integers(len(LINES)))]
        font = FONTS[2] if any(ord(c) > 0x2e80 for c in text) else FONTS[int(rng.integers(2))]
        f = ImageFont.truetype(font, int(rng.integers(22, 38)))
        x0, y0, x1, y1 = f.getbbox(text)
        x = int(rng.integers(5, max(6, 315 - (x1 - x0))))
        light = bool(rng.integers(2))
        draw.rectangle([x - 4, y - 4 + y0, x + x1 - x0 + 4, y + y1 + 4], fill=(250, 250, 245) if light else (20, 30, 40))
        draw.text((x - x0 + x0, y), text, font=f, fill=(10, 10, 10) if light else (255, 230, 40))
        y += (y1 - y0) + int(rng.integers(25, 60))
        if y > 280:
            break
    return np.asarray(img)


def make(folder: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    media.clean(folder, "data/val", "data/calib", "weights")
    src = Path(importlib.util.find_spec("rapidocr_onnxruntime").submodule_search_locations[0]) / "models"
    shutil.copy(src / "ch_PP-OCRv4_det_infer.onnx", folder / "weights/det.onnx")
    for split, bgs in BACKGROUNDS.items():
        for k, name in enumerate(bgs):
            media.save_png(scene(media.photo(name), rng), folder / f"data/{split}/{k:02d}_{name}.png")
        paper = np.full((320, 320, 3), 235, np.uint8)
        media.save_png(scene(paper, rng), folder / f"data/{split}/{len(bgs):02d}_paper.png")
    media.save_png(media.photo("page"), folder / "data/val/20_page.png")
    media.save_png(media.photo("text"), folder / "data/calib/20_text.png")


if __name__ == "__main__":
    make(Path(__file__).resolve().parent, int(sys.argv[1]) if len(sys.argv) > 1 else 0)
