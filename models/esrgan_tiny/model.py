"""ESRGAN-style ×2 super-resolution: RRDB trunk (residual-in-residual dense blocks), nearest
upsampling and a reconstruction head, as in Wang et al. 2018, scaled down to deploy in seconds.

Weights are seeded random (Kaiming, residual branches scaled by 0.1 as ESRGAN initialises them);
no download exists here. The deployment checks agreement with this FP32 model, not image quality.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class ResidualDenseBlock(nn.Module):
    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(nf + i * gc, gc if i < 4 else nf, 3, padding=1) for i in range(5))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x):
        feats = [x]
        for i, conv in enumerate(self.convs):
            y = conv(torch.cat(feats, 1))
            if i < 4:
                feats.append(self.act(y))
        return x + 0.2 * y


class RRDB(nn.Module):
    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.blocks = nn.Sequential(*(ResidualDenseBlock(nf, gc) for _ in range(3)))

    def forward(self, x):
        return x + 0.2 * self.blocks(x)


class ESRGANTiny(nn.Module):
    def __init__(self, nf: int = 16, gc: int = 8, nb: int = 2, scale: int = 2):
        super().__init__()
        self.scale = scale
        self.conv_first = nn.Conv2d(3, nf, 3, padding=1)
        self.trunk = nn.Sequential(*(RRDB(nf, gc) for _ in range(nb)))
        self.conv_trunk = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_up = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_hr = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_last = nn.Conv2d(nf, 3, 3, padding=1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, image):
        fea = self.conv_first(image)
        fea = fea + self.conv_trunk(self.trunk(fea))
        fea = self.act(self.conv_up(F.interpolate(fea, scale_factor=self.scale, mode="nearest")))
        return self.conv_last(self.act(self.conv_hr(fea)))


def build() -> nn.Module:
    torch.manual_seed(0)
    model = ESRGANTiny()
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, a=0.2)
            m.weight.data *= 0.1 if ".convs." in name else 1.0
            nn.init.zeros_(m.bias)
    return model.eval()
