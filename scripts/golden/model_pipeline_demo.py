"""End-to-end goldens of `lorafuse generate` on the trained demo model -> tests/data/pipeline/pipeline-demo.safetensors.

The same oracle and layout as scripts/golden/model_pipeline.py (its generate()), on models/demo/shapes-sd1.safetensors
(configs from its `lorafuse.arch`, size from its `lorafuse.default_size`) with the outline LoRA
models/demo/lora/outline_lora.safetensors (UNet only, so no text-encoder strength), at scripts/demo.sh's settings
(20 steps, CFG 7, no negative prompt) on a prompt and seed the model draws right with and without the LoRA (a red,
roughly square shape on a blue background; seed 5, picked from a sweep of 3 prompts x 7 seeds): the trigger word is
in every case, so a LoRA case differs from its plain case by the LoRA alone. A trained model is a sharper oracle than
random weights: its latents and images are in range and structured, and the LoRA's effect is the one it was trained
for (here it darkens the shape's rim: latent rel L2 0.23 from the plain Euler case, 17.5 % of the 8-bit values more
than 16 levels apart).
Cases: Euler without and with the LoRA at 1; DPM++ 2M without the LoRA and with it from halfway
(`unet=1@50%`: off for steps 1-10, on for 11-20).
"""
from .model_pipeline import Spec, generate

MODEL = "models/demo/shapes-sd1.safetensors"
CAPTION = "a red square on a blue background"  # also the caption of model_unet's / model_clip's demo goldens
TRIGGER = "outlined"
STEPS = 20
HALF = STEPS // 2
CASES = [
    ("euler_plain", "euler", False, "Euler", "", None, None),
    ("euler_lora", "euler", False, "Euler", " <lora:outline_lora:1>", None, [1.0] * STEPS),
    ("dpmpp2m_plain", "dpmpp_2m", False, "DPM++ 2M", "", None, None),
    ("dpmpp2m_halfway", "dpmpp_2m", False, "DPM++ 2M", " <lora:outline_lora:unet=1@50%>", None,
     [0.0] * HALF + [1.0] * (STEPS - HALF)),
]


def default_size(root, model):
    import os
    from safetensors import safe_open
    with safe_open(os.path.join(root, model), "pt") as f:
        w, h = f.metadata()["lorafuse.default_size"].split("x")
    assert w == h, "the goldens' cases are square"
    return int(w)


def run(root):
    generate(root, Spec(MODEL, "models/demo/lora/outline_lora.safetensors",
                        f"{CAPTION}, {TRIGGER}", "", 5, STEPS, 7.0,
                        default_size(root, MODEL), CASES, {}, "tests/data/pipeline/pipeline-demo.safetensors",
                        "scripts/golden/model_pipeline_demo.py: diffusers 0.30.3 StableDiffusionPipeline, "
                        "transformers 4.44.2 CLIPTokenizer, PEFT 0.12.0 LoRA fused at each step's strength"))
