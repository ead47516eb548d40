"""The report's plots as PNG files (matplotlib, Agg: CI runners have no display; the seconds per stage,
drawn on every deploy, with Pillow).

PNGs, not inline base64, because GitHub Markdown does not render data URIs: they are committed
under `deployments/<model>/report/` and linked from the PR body.
"""

from __future__ import annotations

import math
import shutil
from importlib.metadata import version
from pathlib import Path

from bot.manifest import Manifest, PartRow
from bot.parts import end_to_end, parts
from bot.store import sha256_json

SECONDS_PNG = "seconds_per_stage.png"
LAYERS_PNG = "layer_error.png"


def _plt():
    import matplotlib  # deferred: matplotlib (~0.5 s) only when a plot is drawn

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # deferred: matplotlib (~0.5 s) only when a plot is drawn

    return plt


PLOTS_VERSION = 1  # bump when a plot's drawing changes: its PNGs are drawn again though their numbers did not


def _key(*inputs) -> str:
    """What a plot is drawn from; written into the PNG, so an unchanged re-run neither imports
    matplotlib (~0.5 s) nor draws: `_fresh` finds the same key in the PNG already there."""


    return "aipc-plot:" + sha256_json([PLOTS_VERSION, version("matplotlib"), *inputs])


def _fresh(path: Path, key: str) -> bool:
    try:
        return key.encode() in Path(path).read_bytes()
    except OSError:
        return False


def _save(fig, path: Path, key: str = "") -> None:
    # Fixed metadata: the same numbers give the same bytes, so a re-run makes no new commit.
    fig.savefig(path, dpi=80, metadata={"Software": None, **({"Description": key} if key else {})})


def _bars(manifest: dict) -> tuple[list[str], list[float], list[bool], str]:
    """(labels, seconds, passed, what): per part, the stages of the graph at the root or the part in a
    folder as one bar; then the end-to-end checks."""
    rows = []
    for part in parts(manifest):
        p = part.row or PartRow()
        rows += ([(s.stage, s.seconds, s.passed) for s in part.stages] if part.at_root
                 else [(p.dir or p.graph, p.seconds, p.passed)])
    rows += [(e.get("name", "?"), e.get("seconds"), e.get("passed")) for e in end_to_end(manifest)]
    what = "stage" if any(part.at_root for part in parts(manifest)) else "part and check"
    return [r[0] for r in rows], [float(r[1] or 0) for r in rows], [bool(r[2]) for r in rows], what


def _ticks(top: float) -> list[float]:
    """Round tick values from 0 to `top` (1, 2 or 5 times a power of ten apart, at most 6 of them)."""

    raw = top / 5
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return [i * step for i in range(int(top / step) + 1)]


def seconds_per_stage(manifest: dict | Manifest, path: Path) -> Path:
    """Horizontal bars, first stage on top, drawn with Pillow: every deploy with the forge on draws this
    one, and importing matplotlib (~0.5 s) cost more than all the forge's git work."""
    manifest = Manifest.parse(manifest)
    names, secs, ok, what = _bars(manifest)
    key = _key("seconds-pil", manifest.model, names, secs, ok, what)
    if _fresh(path, key):
        return path
    from PIL import Image, ImageDraw, ImageFont, PngImagePlugin  # deferred: Pillow only when a picture is drawn

    font, small = ImageFont.load_default(size=13), ImageFont.load_default(size=11)
    title = f"{manifest.model}: seconds per {what} (red = failed)"
    row, top, width = 24, 34, 480
    left = 12 + max([font.getlength(n) for n in names] + [20.0])
    plot_w = width - left - 64
    height = top + row * max(len(names), 1) + 44
    img = Image.new("RGB", (width, int(height)), "white")
    d = ImageDraw.Draw(img)
    d.text((width / 2, 10), title, fill="black", font=font, anchor="mt")
    xmax = max(secs + [0.1]) * 1.25
    bottom = top + row * len(names)
    for t in _ticks(xmax):
        x = left + t / xmax * plot_w
        d.line([(x, top), (x, bottom)], fill="#eeeeee")
        d.line([(x, bottom), (x, bottom + 4)], fill="black")
        d.text((x, bottom + 6), f"{t:g}", fill="black", font=small, anchor="mt")
    for i, (name, sec, passed) in enumerate(zip(names, secs, ok)):
        y = top + i * row
        d.text((left - 6, y + row / 2), name, fill="black", font=font, anchor="rm")
        end = left + sec / xmax * plot_w
        d.rectangle([left, y + 4, max(end, left + 1), y + row - 4], fill="#2da44e" if passed else "#cf222e")
        d.text((end + 3, y + row / 2), f"{sec:.2f}s", fill="black", font=small, anchor="lm")
    d.line([(left, top), (left, bottom), (left + plot_w, bottom)], fill="black")
    d.text((left + plot_w / 2, bottom + 24), "seconds", fill="black", font=small, anchor="mt")
    info = PngImagePlugin.PngInfo()
    info.add_text("Description", key)  # Pillow writes no timestamp: the same numbers give the same bytes
    img.save(path, pnginfo=info)
    return path


def layer_error(manifest: dict | Manifest, path: Path) -> Path | None:
    manifest = Manifest.parse(manifest)
    loc = manifest.localization or {}
    layers = loc.get("layers") or []
    if not layers:
        return None
    key = _key("layers", manifest.model, layers, loc.get("first_bad_layer"))
    if _fresh(path, key):
        return path
    plt = _plt()
    xs = list(range(len(layers)))
    cos = [l.get("cosine") if l.get("cosine") is not None else float("nan") for l in layers]
    sqnr = [l.get("sqnr_db") if l.get("sqnr_db") is not None else float("nan") for l in layers]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(xs, cos, marker="o", ms=3, color="#0969da", label="cosine")
    ax.set_ylabel("cosine vs FP32")
    ax.set_xlabel("layer (graph order)")
    ax2 = ax.twinx()
    ax2.plot(xs, sqnr, marker="s", ms=3, color="#bf8700", alpha=0.7, label="SQNR dB")
    ax2.set_ylabel("SQNR dB")
    bad = loc.get("first_bad_layer")
    idx = next((i for i, l in enumerate(layers) if bad is not None and bad in (l.get("tensor"), l.get("op"), i)), None)
    if idx is not None:
        ax.axvline(idx, color="#cf222e", ls="--", lw=1)
        ax.annotate(f"first bad: {layers[idx].get('tensor', idx)}", (idx, ax.get_ylim()[0]), fontsize=7,
                    color="#cf222e", rotation=90, va="bottom", ha="right")
    ax.set_title(f"{manifest.model}: per-layer error of the quantized model")
    fig.tight_layout()
    _save(fig, path, key)
    plt.close(fig)
    return path


def render_all(manifest: dict | Manifest, folder: Path) -> list[Path]:
    manifest = Manifest.parse(manifest)  # once, for every plot
    folder.mkdir(parents=True, exist_ok=True)
    made = [seconds_per_stage(manifest, folder / SECONDS_PNG)]
    lay = layer_error(manifest, folder / LAYERS_PNG)
    if lay:
        made.append(lay)
    elif (folder / LAYERS_PNG).exists():
        (folder / LAYERS_PNG).unlink()
    task = task_sample(manifest, folder)
    if task:
        made.append(task)
    return made


def task_sample(manifest: dict | Manifest, folder: Path) -> Path | None:
    """The validate stage's rendered task sample (it has the model folder's photo), beside the other
    plots; the report folder sits in the deployment folder, next to `validate/`."""

    src = folder.parent / "validate" / TASK_PNG
    val = next((s for s in Manifest.parse(manifest).stages or [] if s.stage == "validate"), None)
    listed = val is not None and TASK_PNG in val.artifacts.values()
    if listed and src.is_file():
        shutil.copyfile(src, folder / TASK_PNG)
        return folder / TASK_PNG
    if (folder / TASK_PNG).exists():
        (folder / TASK_PNG).unlink()
    return None


# ------------------------------------------------------------------ one rendered task sample

TASK_PNG = "task_sample.png"


def detections_on_photo(image: Path | None, fp32: list[dict], deployed: list[dict], path: Path,
                        title: str) -> Path:
    """FP32's boxes (green, dashed) and the deployed model's (magenta) on the validation photo."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 5))
    scale = (1.0, 1.0)
    if image is not None:
        from PIL import Image  # deferred: Pillow only when a picture is drawn

        with Image.open(image) as im:
            ax.imshow(im.convert("RGB"))
            coords = [v for d in fp32 + deployed for v in d["box"]]
            if coords and max(abs(v) for v in coords) <= 1.5:  # normalized boxes: to the photo's pixels
                scale = (float(im.width), float(im.height))
    else:
        ax.invert_yaxis()
    for dets, color, ls, who in ((fp32, "#2da44e", "--", "FP32"), (deployed, "#bf3989", "-", "deployed")):
        for k, d in enumerate(dets):
            x1, y1, x2, y2 = (v * scale[j % 2] for j, v in enumerate(d["box"]))
            ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=color, ls=ls, lw=1.5,
                                       label=who if k == 0 else None))
            ax.text(x1, y1 if who == "FP32" else y2, f"{d.get('label', '')} {float(d.get('score', 0)):.2f}",
                    color=color, fontsize=7, va="bottom" if who == "FP32" else "top")
    if image is None:
        ax.autoscale_view()
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=7)
    ax.axis("off")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def curve_over_time(fp32, deployed, path: Path, title: str, ylabel: str, threshold: float | None = None) -> Path:
    """FP32 and deployed values per frame (pitch, speech probability); NaN frames stay gaps."""
    import numpy as np  # deferred: numpy (~0.15 s) is kept off the fully cached path

    plt = _plt()
    f = np.asarray(fp32, dtype=np.float64).ravel()
    d = np.asarray(deployed, dtype=np.float64).ravel()
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(f, color="#2da44e", lw=2, label="FP32")
    ax.plot(d, color="#bf3989", lw=1, ls="--", label="deployed")
    if threshold is not None:
        ax.axhline(threshold, color="#6e7781", lw=0.8, ls=":", label=f"threshold {threshold:g}")
    ax.set_xlabel("frame")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path
