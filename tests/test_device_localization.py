"""Device-side localization and the rule it found: telling device numerics from quantization error."""

from __future__ import annotations

from bot.repair.localize import LayerError, as_manifest, divergent


def _layer(i, op, cpu, device):
    return LayerError(f"t{i}", op, cpu, 30.0, i, device_cosine=device)


def test_divergence_is_the_device_far_below_the_cpu_simulation_first_layer_first():
    # EfficientViT-B0 as measured: quantization error on a Conv (device == cpu), then the Pad
    # the device gets wrong, then its echo downstream
    layers = [_layer(0, "Conv", 0.9698, 0.9698), _layer(1, "Pad", 0.99998, 0.01278),
              _layer(2, "MatMul", 0.9984, 0.0656), _layer(3, "Add", 0.999, 0.999)]
    div = divergent(layers)
    assert [e.op for e in div] == ["Pad", "MatMul"]
    assert as_manifest(layers, None)["first_device_divergence"] == "t1"
    assert divergent([_layer(0, "Conv", 0.95, 0.94)]) == []  # plain quantization error
