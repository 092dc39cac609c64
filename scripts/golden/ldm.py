"""Our own diffusers/transformers -> single-file LDM/SGM converter (validated in tiny.py against
diffusers.loaders.single_file_utils, which converts the other way)."""
import re

import torch

RES = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
       "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}


def _res(rest):
    head, _, tail = rest.partition(".")
    return RES[head] + ("." + tail if tail else "")


def unet_path(p, cfg, has_attn_up):
    """Map a diffusers UNet module/parameter path to its LDM/SGM path (without model.diffusion_model.)."""
    L = cfg["layers_per_block"]
    simple = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
              "time_embedding.linear_2": "time_embed.2", "add_embedding.linear_1": "label_emb.0.0",
              "add_embedding.linear_2": "label_emb.0.2", "conv_norm_out": "out.0", "conv_out": "out.2"}
    for a, b in simple.items():
        if p == a or p.startswith(a + "."):
            return b + p[len(a):]
    m = re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)$", p)
    if m:
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        idx = (L + 1) * i + j + 1
        return f"input_blocks.{idx}." + ("0." + _res(rest) if kind == "resnets" else "1." + rest)
    m = re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)$", p) or \
        re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv()$", p)
    if m:
        return f"input_blocks.{(L + 1) * (int(m[1]) + 1)}.0.op" + ("." + m[2] if m[2] else "")
    m = re.match(r"mid_block\.resnets\.(\d+)\.(.*)$", p)
    if m:
        return f"middle_block.{2 * int(m[1])}." + _res(m[2])
    m = re.match(r"mid_block\.attentions\.0\.(.*)$", p)
    if m:
        return "middle_block.1." + m[1]
    m = re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)$", p)
    if m:
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        idx = (L + 1) * i + j
        return f"output_blocks.{idx}." + ("0." + _res(rest) if kind == "resnets" else "1." + rest)
    m = re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)$", p) or \
        re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv()$", p)
    if m:
        i = int(m[1])
        sub = 2 if has_attn_up[i] else 1
        return f"output_blocks.{(L + 1) * i + L}.{sub}.conv" + ("." + m[2] if m[2] else "")
    raise KeyError(p)


def unet_has_attn_up(cfg):
    return [t.startswith("CrossAttn") for t in cfg["up_block_types"]]


def unet_to_ldm(sd, cfg):
    hu = unet_has_attn_up(cfg)
    return {"model.diffusion_model." + unet_path(k, cfg, hu): v for k, v in sd.items()}


def vae_to_ldm(sd, cfg):
    n = len(cfg["block_out_channels"])
    out = {}
    for k, v in sd.items():
        nk = k
        m = re.match(r"(encoder|decoder)\.(down|up)_blocks\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\.(.*)$", k)
        if m:
            part, du, i, kind, j, rest = m[1], m[2], int(m[3]), m[4], int(m[5]), m[6]
            if du == "up":
                i = n - 1 - i
            if kind == "resnets":
                rest = rest.replace("conv_shortcut", "nin_shortcut")
                nk = f"{part}.{du}.{i}.block.{j}.{rest}"
            else:
                nk = f"{part}.{du}.{i}.{'downsample' if du == 'down' else 'upsample'}.{rest}"
        m = re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)$", k)
        if m:
            nk = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        m = re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)$", k)
        if m:
            rest = m[2]
            for a, b in (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"),
                         ("to_out.0", "proj_out")):
                if rest.startswith(a + "."):
                    rest = b + rest[len(a):]
            nk = f"{m[1]}.mid.attn_1.{rest}"
            if v.ndim == 2:
                v = v[:, :, None, None]  # LDM VAE attention uses 1x1 convs
        nk = re.sub(r"^(encoder|decoder)\.conv_norm_out", r"\1.norm_out", nk)
        out["first_stage_model." + nk] = v
    return out


def clip_to_ldm(sd, prefix):
    """HF CLIPTextModel state dict -> LDM (SD1 cond_stage_model.transformer. / SDXL embedders.0)."""
    return {prefix + k: v for k, v in sd.items() if not k.endswith("position_ids")}


OPENCLIP_LAYER = {"self_attn.out_proj": "attn.out_proj", "layer_norm1": "ln_1", "layer_norm2": "ln_2",
                  "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}


def te2_path(p):
    """HF CLIP module path (text_model.encoder.layers.N.xxx) -> (OpenCLIP path, q/k/v slot or None)."""
    m = re.match(r"text_model\.encoder\.layers\.(\d+)\.(.*)$", p)
    if not m:
        raise KeyError(p)
    n, rest = int(m[1]), m[2]
    base = f"transformer.resblocks.{n}."
    m2 = re.match(r"self_attn\.(q|k|v)_proj$", rest)
    if m2:
        return base + "attn.in_proj", "qkv".index(m2[1])
    return base + OPENCLIP_LAYER[rest], None


def openclip_to_ldm(sd, prefix):
    """HF CLIPTextModelWithProjection state dict -> OpenCLIP layout (SDXL conditioner.embedders.1.model.)."""
    out = {}
    nlayers = 1 + max(int(re.match(r"text_model\.encoder\.layers\.(\d+)\.", k)[1])
                      for k in sd if k.startswith("text_model.encoder.layers."))
    for n in range(nlayers):
        b = f"text_model.encoder.layers.{n}.self_attn."
        for wb in ("weight", "bias"):
            out[f"{prefix}transformer.resblocks.{n}.attn.in_proj_{wb}"] = torch.cat(
                [sd[f"{b}{x}_proj.{wb}"] for x in "qkv"], 0)
    for k, v in sd.items():
        if k.endswith("position_ids"):
            continue
        if k == "text_model.embeddings.token_embedding.weight":
            out[prefix + "token_embedding.weight"] = v
        elif k == "text_model.embeddings.position_embedding.weight":
            out[prefix + "positional_embedding"] = v
        elif k.startswith("text_model.final_layer_norm."):
            out[prefix + "ln_final." + k.rsplit(".", 1)[1]] = v
        elif k == "text_projection.weight":
            out[prefix + "text_projection"] = v.t().contiguous()
        elif re.search(r"self_attn\.(q|k|v)_proj\.", k):
            continue
        else:
            mod, wb = k.rsplit(".", 1)
            op, _ = te2_path(mod)
            out[prefix + op + "." + wb] = v
    return out
