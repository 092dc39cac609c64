#!/usr/bin/env python3
"""make_full_sdxl.py: a loadable full-size SDXL checkpoint with random f16 weights (every UNet, CLIP-L,
OpenCLIP bigG and VAE tensor at its real SGM single-file key and shape: 3.47e9 values, 6.9 GB) for the
memory benchmark (bench/bench_memory.sh --sdxl). Not a test fixture.

    /work/.venv-golden/bin/python bench/make_full_sdxl.py [OUTDIR]     # default /tmp/lf-mem

The structures come from diffusers/transformers built on the meta device (accelerate's init_empty_weights:
names and shapes, no memory); the values are drawn per tensor while the file is written (normal with std
1/sqrt(fan_in) for weights, 1 for norm scales, 0 for biases: activations stay finite), so the script never
holds more than the text encoders (~1.7 GB) and one tensor.
"""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

UNET = dict(sample_size=128, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(320, 640, 1280), layers_per_block=2, transformer_layers_per_block=(1, 2, 10),
            attention_head_dim=(5, 10, 20), cross_attention_dim=2048, use_linear_projection=True,
            addition_embed_type="text_time", addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816, norm_num_groups=32)
TE1 = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
           max_position_embeddings=77, hidden_act="quick_gelu")
TE2 = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
           max_position_embeddings=77, hidden_act="gelu", projection_dim=1280)
VAE = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
           up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
           layers_per_block=2, latent_channels=4, sample_size=1024, scaling_factor=0.13025)


def rand(name, shape, g):
    if len(shape) >= 2:
        fan_in = 1
        for s in shape[1:]:
            fan_in *= s
        return (torch.randn(shape, generator=g) / fan_in ** 0.5).half()
    if name.endswith("bias") or len(shape) == 0:
        return torch.zeros(shape, dtype=torch.float16)
    return torch.ones(shape, dtype=torch.float16)  # norm scales


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/lf-mem"
    os.makedirs(out, exist_ok=True)
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    from golden import ldm
    g = torch.Generator().manual_seed(11)
    with init_empty_weights():
        unet = UNet2DConditionModel(**UNET)
        vae = AutoencoderKL(**VAE)
    lazy = {}  # key -> (shape) drawn while writing
    for k, v in ldm.unet_to_ldm(dict(unet.state_dict()), unet.config).items():
        lazy[k] = tuple(v.shape)
    for k, v in ldm.vae_to_ldm(dict(vae.state_dict()), vae.config).items():
        lazy[k] = tuple(v.shape)
    real = {}
    with torch.no_grad():
        for cls, cfg, conv, prefix in ((CLIPTextModel, TE1, ldm.clip_to_ldm, "conditioner.embedders.0.transformer."),
                                       (CLIPTextModelWithProjection, TE2, ldm.openclip_to_ldm,
                                        "conditioner.embedders.1.model.")):
            with init_empty_weights():
                m = cls(CLIPTextConfig(**cfg))
            sd = {k: rand(k, tuple(v.shape), g) for k, v in m.state_dict().items() if not k.endswith("position_ids")}
            real.update(conv(sd, prefix))
    names = sorted(set(lazy) | set(real))
    header, off = {"__metadata__": {"lorafuse.default_size": "1024x1024"}}, 0
    shapes = {k: (tuple(real[k].shape) if k in real else lazy[k]) for k in names}
    for k in names:
        n = 1
        for s in shapes[k]:
            n *= s
        header[k] = {"dtype": "F16", "shape": list(shapes[k]), "data_offsets": [off, off + 2 * n]}
        off += 2 * n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    path = os.path.join(out, "sdxl-full-f16.safetensors")
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for k in names:
            t = real[k] if k in real else rand(k, shapes[k], g)
            f.write(t.contiguous().numpy().tobytes())
    os.replace(path + ".tmp", path)
    print(f"wrote {path} ({off // 2} values, {len(names)} tensors)")


if __name__ == "__main__":
    main()
