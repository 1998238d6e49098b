"""Tiny random-weight models of the architectures of issue 28, and what their layers hold, computed by
hand with the libraries' own functions (timm's window_reverse / grid_reverse, MobileViT's folding).

Nothing is downloaded: every model is built from a config. Sides are small so that a forward pass
takes milliseconds on a CPU.
"""

from __future__ import annotations

import torch
from torch import nn

import phosphene


class Zoo(dict):
    """Tiny models by builder name, each built once on first use (``zoo["swin"]``)."""

    def __missing__(self, key: str) -> phosphene.ImageModel:
        self[key] = globals()[key]()
        return self[key]


def swin() -> phosphene.ImageModel:
    """timm Swin: 32 px, 2x2 windows, a shifted block in stage 1 (fixed side 32)."""
    import timm

    torch.manual_seed(0)
    net = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, img_size=32, window_size=2,
                            embed_dim=16, depths=(1, 2, 1, 1), num_heads=(1, 2, 2, 2), num_classes=5)
    return phosphene.load_model(net.eval(), device="cpu")


def mobilevit() -> phosphene.ImageModel:
    """timm MobileViT-XXS at 64 px (its transformers fold the 2x2 patch offsets into the batch)."""
    import timm

    torch.manual_seed(0)
    net = timm.create_model("mobilevit_xxs", pretrained=False, num_classes=5)
    return phosphene.ImageModel(net.eval(), input_size=64)


def maxvit() -> phosphene.ImageModel:
    """timm MaxViT with two tiny stages at 32 px, 2x2 windows and grids (fixed side 32)."""
    from timm.models import build_model_with_cfg
    from timm.models.maxxvit import MaxxVit, MaxxVitCfg, MaxxVitConvCfg, MaxxVitTransformerCfg

    torch.manual_seed(0)
    cfg = MaxxVitCfg(embed_dim=(16, 32), depths=(1, 1), block_type=("M", "M"), stem_width=16,
                     conv_cfg=MaxxVitConvCfg(block_type="mbconv", expand_ratio=2.0, pre_norm_act=True),
                     transformer_cfg=MaxxVitTransformerCfg(dim_head=8, window_size=(2, 2), grid_size=(2, 2),
                                                           rel_pos_type="bias"))
    net = build_model_with_cfg(MaxxVit, "maxvit_nano_rw_256", False, model_cfg=cfg, img_size=32,
                               num_classes=5)
    return phosphene.load_model(net.eval(), device="cpu")


def levit() -> phosphene.ImageModel:
    """timm LeViT built for 64 px (its attention biases fix the side; its config still says 224)."""
    import timm

    torch.manual_seed(0)
    net = timm.create_model("levit_128s", pretrained=False, img_size=64, embed_dim=(16, 24, 32), key_dim=8,
                            num_heads=(2, 2, 2), depth=(1, 1, 1), num_classes=5)
    return phosphene.ImageModel(net.eval(), input_size=64)


def efficientformer() -> phosphene.ImageModel:
    """timm EfficientFormer-L1 shrunk to one block per stage (attention biases of a 7x7 grid: 224 px)."""
    import timm

    torch.manual_seed(0)
    net = timm.create_model("efficientformer_l1", pretrained=False, depths=(1, 1, 1, 1),
                            embed_dims=(8, 16, 24, 32), num_vit=1, num_classes=5)
    return phosphene.load_model(net.eval(), device="cpu")


def hf_vit() -> phosphene.ImageModel:
    """Hugging Face ViTForImageClassification, 32 px, 8 px patches (outputs an ImageClassifierOutput)."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=32, num_labels=5)
    return phosphene.load_model(ViTForImageClassification(config), device="cpu")


def hf_clip() -> phosphene.ImageModel:
    """Hugging Face CLIPVisionModel (no head), its ``pooler_output`` taken as the logits."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    config = CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=2,
                              num_attention_heads=2, intermediate_size=32)
    return phosphene.load_model(CLIPVisionModel(config), device="cpu", output="pooler_output")


def tv_swin() -> phosphene.ImageModel:
    """torchvision Swin (its attention computes the heads inside a function)."""
    from torchvision.models import SwinTransformer

    torch.manual_seed(0)
    net = SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[1, 2],
                          window_size=[2, 2], num_classes=5)
    return phosphene.load_model(net.eval(), device="cpu")


def raw_io(model: nn.Module, layer: str, x: torch.Tensor, pre: bool = False) -> torch.Tensor:
    """The first tensor a module receives (``pre``) or returns, captured by a plain hook."""
    module = phosphene.resolve_layer(model, layer)
    seen = {}
    if pre:
        handle = module.register_forward_pre_hook(lambda _m, inputs: seen.setdefault("t", inputs[0]))
    else:
        handle = module.register_forward_hook(lambda _m, _i, out: seen.setdefault("t", out))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    out = seen["t"]
    return out[0] if isinstance(out, tuple) else out


def heads(values: torch.Tensor, count: int) -> torch.Tensor:
    """(..., heads*d) -> (..., heads) L2 norms, written out."""
    return values.reshape(*values.shape[:-1], count, values.shape[-1] // count).pow(2).sum(-1).sqrt()


def swin_map(model, block: str, x: torch.Tensor, of_heads: bool = False) -> torch.Tensor:
    """(B, C, H, W) of a timm Swin block's attention output (or head norms), merged as the block does."""
    from timm.models.swin_transformer import window_reverse

    blk = phosphene.resolve_layer(model, block)
    h, w = raw_io(model, f"{block}.norm1", x).shape[1:3]
    if of_heads:
        rows = heads(raw_io(model, f"{block}.attn.proj", x, pre=True), blk.attn.num_heads)
    else:
        rows = raw_io(model, f"{block}.attn", x)
    full = window_reverse(rows.reshape(-1, *blk.window_size, rows.shape[-1]), blk.window_size, h, w)
    return torch.roll(full, shifts=tuple(blk.shift_size), dims=(1, 2)).permute(0, 3, 1, 2)


def maxvit_map(model, partition: str, x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) of a MaxViT partition attention's output, merged with timm's own reverse."""
    from timm.models.maxxvit import grid_reverse, window_reverse

    module = phosphene.resolve_layer(model, partition)
    size = raw_io(model, f"{partition}.norm1", x).shape[1:3]
    rows = raw_io(model, f"{partition}.attn", x)
    merge = window_reverse if module.partition_block else grid_reverse
    return merge(rows, module.partition_size, size).permute(0, 3, 1, 2)


def mobilevit_map(model, block: str, layer: str, x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) of a MobileViT transformer layer, folded back as MobileVitBlock.forward does."""
    blk = phosphene.resolve_layer(model, block)
    b, (ph, pw) = x.shape[0], blk.patch_size
    c, h, w = raw_io(model, f"{block}.conv_1x1", x).shape[1:]
    rows = raw_io(model, layer, x)  # (B * ph * pw, (h / ph) * (w / pw), C)
    nh, nw = h // ph, w // pw
    folded = rows.contiguous().view(b, ph * pw, nh * nw, -1).transpose(1, 3)
    folded = folded.reshape(b * rows.shape[-1] * nh, nw, ph, pw).transpose(1, 2)
    return folded.reshape(b, rows.shape[-1], nh * ph, nw * pw)
