"""Golden of the tiled VAE decode (`generate --vae-tiling`, host/runtime/vae_tiled.c) ->
tests/data/model/sd15_vae_tiled.safetensors, read by tests/runtime/test_vae.c.

Oracle: diffusers 0.30.3 AutoencoderKL.tiled_decode itself, on the tiny SD1.5 VAE (tests/data/tiny/
tiny-sd15.safetensors through diffusers' single-file converter, as model_unet.py loads it), with tiles
of 4 latent pixels (tile_sample_min_size 32, tile_latent_min_size 4, overlap factor 0.25: 3-pixel
latent steps, 8-pixel blends, 24-pixel crops), so a 10x7 latent gives 4 x 3 tiles with smaller edge
tiles. Tensors: dec_in (1,4,10,7) seeded sampler-space latent; dec_out (1,3,80,56) =
tiled_decode(dec_in / sf). Metadata: tile_latent, model, scaling_factor.
"""
import os

import torch

from .common import gen, save_file
from .model_unet import SF, SRC, _models


def run(root):
    outdir = os.path.join(root, "tests", "data", "model")
    _, vae, path = _models("sd15", root)
    vae.tile_sample_min_size = 32
    vae.tile_latent_min_size = 4
    vae.tile_overlap_factor = 0.25
    z = torch.randn((1, 4, 10, 7), generator=gen(5401))
    with torch.no_grad():
        dec = vae.tiled_decode(z / SF["sd15"]).sample
    p = os.path.join(outdir, "sd15_vae_tiled.safetensors")
    save_file({"dec_in": z.contiguous(), "dec_out": dec.float().contiguous()}, p,
              {"model": path, "scaling_factor": repr(SF["sd15"]), "tile_latent": "4",
               "source": SRC + "; AutoencoderKL.tiled_decode"})
    print(f"  wrote {os.path.relpath(p)} ({os.path.getsize(p)} bytes), dec {tuple(dec.shape)}")
