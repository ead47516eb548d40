"""facenet-pytorch 2.6.0's MTCNN output network (ONet), weights `facenet_pytorch/data/onet.pt`.

ONet is the cascade's last stage: it decides face / no face for the 48 × 48 candidates RNet passed,
refines their boxes and finds five landmarks. facenet_pytorch imports torchvision at module level for
`batched_nms` (and `to_tensor` for face crops); torchvision from PyPI is a CUDA build here, so a
stand-in gives `batched_nms` through the package's own NumPy NMS, enough for make_data.py's cascade.
A torchvision that is installed but does not import (the CUDA wheel aimet-onnx's onnx2torch pulls in, whose
`torchvision::nms` operator this CPU torch lacks) gets the stand-in too."""

from __future__ import annotations

import importlib.util
import sys
import types


def _torchvision_imports() -> bool:
    if "torchvision" in sys.modules:
        return True
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        import torchvision  # noqa: F401
        return True
    except (ImportError, RuntimeError):  # RuntimeError: "operator torchvision::nms does not exist"
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        return False


def stand_ins() -> None:
    if _torchvision_imports():
        return
    import torch

    def batched_nms(boxes, scores, idxs, threshold):
        from facenet_pytorch.models.utils.detect_face import batched_nms_numpy

        return batched_nms_numpy(boxes, scores, idxs, threshold, "Union")

    tv, ops, boxes, transforms, functional = (types.ModuleType(n) for n in (
        "torchvision", "torchvision.ops", "torchvision.ops.boxes", "torchvision.transforms",
        "torchvision.transforms.functional"))
    boxes.batched_nms = batched_nms
    functional.to_tensor = lambda a: torch.as_tensor(a).permute(2, 0, 1) / 255.0
    tv.ops, ops.boxes, tv.transforms, transforms.functional = ops, boxes, transforms, functional
    sys.modules.update({m.__name__: m for m in (tv, ops, boxes, transforms, functional)})


def build():
    stand_ins()
    from facenet_pytorch.models.mtcnn import ONet

    return ONet(pretrained=True).eval()  # loads facenet_pytorch/data/onet.pt from the wheel
