"""An independent EfficientNet-Lite forward pass written with ``torch.nn.functional``.

It reads nothing from the plugin except the state dict: the block structure is inferred from
the tensors themselves (which blocks exist, their kernel sizes, expansions and widths); the
only architectural facts written here are those of the EfficientNet papers and the TF
reference: TF "same" padding, batch-norm epsilon 1e-3, ReLU6, the first block of stages
1, 2, 3 and 5 (0-based) has stride 2, and a block is residual when stride 1 and in == out.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

STRIDE2_STAGES = (1, 2, 3, 5)


def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    pads = []
    for size in (x.shape[3], x.shape[2]):  # F.pad order: last dim (width) first
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def _conv(x, w, stride=1, groups=1):
    return F.conv2d(_same_pad(x, w.shape[-1], stride), w, stride=stride, groups=groups)


def _bn(x, sd, prefix):
    return F.batch_norm(
        x,
        sd[f"{prefix}.running_mean"],
        sd[f"{prefix}.running_var"],
        sd[f"{prefix}.weight"],
        sd[f"{prefix}.bias"],
        training=False,
        eps=1e-3,
    )


def reference_logits(state: dict[str, np.ndarray], images: np.ndarray) -> np.ndarray:
    """ImageNet logits of 0-255 RGB ``images`` ``(n, h, w, 3)`` (float32)."""
    sd = {
        k: torch.from_numpy(np.asarray(v, dtype=np.float32))
        for k, v in state.items()
        if "num_batches" not in k
    }
    x = torch.from_numpy(np.asarray(images, dtype=np.float32)).permute(0, 3, 1, 2)
    x = (x - 127.0) / 128.0
    x = F.relu6(_bn(_conv(x, sd["_conv_stem.weight"], 2), sd, "_bn0"))
    n_blocks = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("_blocks."))
    stage = -1
    for i in range(n_blocks):
        p = f"_blocks.{i}"
        dw = sd[f"{p}._depthwise_conv.weight"]
        c_in = sd[f"{p}._expand_conv.weight"].shape[1] if f"{p}._expand_conv.weight" in sd else dw.shape[0]
        c_out = sd[f"{p}._project_conv.weight"].shape[0]
        first_of_stage = c_in != c_out
        stage += first_of_stage
        stride = 2 if first_of_stage and stage in STRIDE2_STAGES else 1
        h = x
        if f"{p}._expand_conv.weight" in sd:
            h = F.relu6(_bn(_conv(h, sd[f"{p}._expand_conv.weight"]), sd, f"{p}._bn0"))
        h = F.relu6(_bn(_conv(h, dw, stride, groups=dw.shape[0]), sd, f"{p}._bn1"))
        h = _bn(_conv(h, sd[f"{p}._project_conv.weight"]), sd, f"{p}._bn2")
        x = h + x if stride == 1 and c_in == c_out else h
    x = F.relu6(_bn(_conv(x, sd["_conv_head.weight"]), sd, "_bn1"))
    x = x.mean(dim=(2, 3))
    return F.linear(x, sd["_fc.weight"], sd["_fc.bias"]).numpy()
