"""A YOLO-World-style open-vocabulary detector, tiny and seeded: a text encoder turns class prompts
(token ids) into normalized class embeddings; the detector scores each grid cell's region embedding
against them (a dot product), so new classes need no retraining. Two graphs, deployed together; the
detector runs at two input resolutions (static variants of one dynamic model)."""

import torch
from torch import nn
from torch.nn import functional as F

VOCAB, CTX, C, D = 64, 8, 4, 32


class TextEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.pos = nn.Embedding(VOCAB, D), nn.Parameter(torch.randn(CTX, D) * 0.1)
        self.mlp = nn.Sequential(nn.Linear(D, D), nn.ReLU(), nn.Linear(D, D))

    def forward(self, class_tokens):  # [C, CTX] int32 → [C, D], unit length
        x = self.emb(class_tokens) + self.pos
        x = x + self.mlp(x)
        return F.normalize(x.mean(1), dim=-1)


class Detector(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, 2, 1), nn.ReLU())
        self.embed, self.box = nn.Conv2d(32, D, 1), nn.Conv2d(32, 4, 1)
        self.scale = nn.Parameter(torch.tensor(8.0))

    def forward(self, image, class_embed):  # [1,3,H,W], [C,D] → scores [1,N,C], boxes [1,N,4]
        f = self.backbone(image)
        r = F.normalize(self.embed(f).flatten(2).transpose(1, 2), dim=-1)  # [1, N, D]
        scores = torch.sigmoid(self.scale * (r @ class_embed.t()))
        boxes = torch.sigmoid(self.box(f)).flatten(2).transpose(1, 2)
        return scores, boxes


def _seeded():
    torch.manual_seed(0)
    return TextEncoder().eval(), Detector().eval()


def text_encoder():
    return _seeded()[0]


def detector():
    return _seeded()[1]


@torch.no_grad()
def reference(class_tokens, image):
    """PyTorch end to end: prompts → class embeddings → detections."""
    t, d = _seeded()
    return d(torch.from_numpy(image), t(torch.from_numpy(class_tokens)))
