"""LPRNet-style licence-plate recogniser (Zherzdev & Gruzdev 2018): a CNN with small basic
blocks and wide horizontal kernels, global context concatenated back, and per-position class
scores for CTC greedy decoding. 24×94 input, 18 positions, 68 classes (Chinese plate alphabet).

The original pools across channels with MaxPool3d, a 5-D op, and computes its global context with
uneven pooling; this version pools in 2-D with fixed windows so the graph stays within what the
HTP runs. Weights are seeded random.
"""

import torch
import torch.nn as nn

CLASSES = 68


class SmallBasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        mid = cout // 4
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, 1), nn.ReLU(),
            nn.Conv2d(mid, mid, (3, 1), padding=(1, 0)), nn.ReLU(),
            nn.Conv2d(mid, mid, (1, 3), padding=(0, 1)), nn.ReLU(),
            nn.Conv2d(mid, cout, 1),
        )

    def forward(self, x):
        return self.body(x)


class LPRNet(nn.Module):
    def __init__(self, classes: int = CLASSES):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 32, 3), nn.BatchNorm2d(32), nn.ReLU(),                  # 22×92
            nn.MaxPool2d(3, stride=1),                                           # 20×90
            SmallBasicBlock(32, 64), nn.BatchNorm2d(64), nn.ReLU(),
            nn.MaxPool2d((3, 3), stride=(1, 2)),                                 # 18×44
            SmallBasicBlock(64, 128), nn.BatchNorm2d(128), nn.ReLU(),
            SmallBasicBlock(128, 128), nn.BatchNorm2d(128), nn.ReLU(),
            nn.MaxPool2d((3, 3), stride=(1, 2)),                                 # 16×21
            nn.Conv2d(128, 128, (4, 1)), nn.BatchNorm2d(128), nn.ReLU(),         # 13×21
            nn.Conv2d(128, classes, (13, 1)), nn.BatchNorm2d(classes), nn.ReLU(),  # 1×21
        )
        self.context = nn.Conv2d(classes + 3, classes, 1)
        # global colour context per column: a fixed average pool (24×14 window, stride 4 → 21 columns);
        # an adaptive pool to 21 columns of 94 has uneven windows that neither exporter maps to
        # HTP ops, which is a source-level fix the repair loop would otherwise have to find
        self.pool_in = nn.AvgPool2d((24, 14), stride=(1, 4))

    def forward(self, plate):
        feat = self.backbone(plate)                       # [1, C, 1, 21]
        ctx_in = self.pool_in(plate)                      # global colour context per column
        logits = self.context(torch.cat([feat, ctx_in], 1))  # [1, C, 1, 21]
        return logits[:, :, 0, :18].transpose(1, 2)       # [1, 18, C]: class scores per position


def build() -> nn.Module:
    torch.manual_seed(0)
    model = LPRNet()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):  # non-trivial running statistics, as a trained net has
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def greedy_decode(logits):
    """CTC greedy decode of [1, 18, C] scores: collapse repeats, drop the blank (last class)."""
    best = logits.argmax(-1)[0].tolist()
    out, prev = [], None
    for c in best:
        if c != prev and c != CLASSES - 1:
            out.append(c)
        prev = c
    return out
