"""The model zoo of the repair benchmark: each entry builds a seeded random-weight module.

Nothing is downloaded: torchvision/timm models are built with `weights=None`/`pretrained=False`,
ultralytics YOLO from its yaml. Each entry is (input shape, builder source); the builder source
becomes the `model.py` of a model folder, so the bot deploys it exactly as a user's model.
"""

TORCHVISION = ["resnet18", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "squeezenet1_0",
               "shufflenet_v2_x0_5", "regnet_y_400mf", "convnext_tiny"]
TIMM = ["vit_tiny_patch16_224", "mobilevit_xxs", "levit_128s", "efficientvit_b0"]
YOLO = ["yolov8n", "yolo11n", "yolo26n"]

_TV = '''
import torch, torchvision

def build():
    torch.manual_seed(0)
    return torchvision.models.{name}(weights=None).eval()
'''
_TV_SEG = '''
import torch, torchvision

class Seg(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.m = torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None)

    def forward(self, x):
        return self.m(x)["out"]

def build():
    torch.manual_seed(0)
    return Seg().eval()
'''
_TIMM = '''
import torch, timm

def build():
    torch.manual_seed(0)
    return timm.create_model("{name}", pretrained=False).eval()
'''
_YOLO = '''
import os
os.environ.setdefault("YOLO_OFFLINE", "1")
import torch
from ultralytics import YOLO

def build():
    torch.manual_seed(0)
    model = YOLO("{name}.yaml").model.eval()
    for m in model.modules():  # the detection head's export form: one [1, 4+classes, anchors] tensor
        if hasattr(m, "export"):
            m.export = True
            m.format = "onnx"
    return model
'''


def zoo() -> dict[str, tuple[list[int], str]]:
    out = {n: ([1, 3, 224, 224], _TV.format(name=n)) for n in TORCHVISION}
    out["deeplabv3_mobilenet_v3_large"] = ([1, 3, 224, 224], _TV_SEG)
    out.update({n: ([1, 3, 224, 224], _TIMM.format(name=n)) for n in TIMM})
    out.update({n: ([1, 3, 320, 320], _YOLO.format(name=n)) for n in YOLO})
    return out
