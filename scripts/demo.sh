#!/usr/bin/env bash
# demo.sh: the README's first command. Builds lorafuse, then:
#  1. draws with the trained demo model (models/demo/shapes-sd1.safetensors, SD1 structure, trained on
#     coloured shapes by scripts/train_demo.py; docs/demo-model.md): one prompt and seed without the LoRA,
#     with the outline LoRA (models/demo/lora/outline_lora.safetensors), with the LoRA switched on halfway
#     through the steps, and with block weights that keep only the UNet's output blocks; then without and
#     with the LoHa (stripes_loha: white stripes, "striped") and the DoRA (checker_dora: a checkered
#     background, "checkered");
#  2. runs the main job on the random-weight default model (models/sd15-mini.safetensors + models/lora/,
#     made by scripts/make_default_model.py): text-to-image with a LoRA whose UNet strength follows a
#     per-step schedule, a PNG that carries its A1111 parameters; then inspect + merge.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja > /dev/null
cmake --build build -j"$(nproc)" > /dev/null
outdir=${1:-build/demo}
mkdir -p "$outdir"
shapes() {  # shapes NAME PROMPT [SEED]: one 64x64 image of the demo model into $outdir/NAME/
    ./build/lorafuse generate --model models/demo/shapes-sd1.safetensors --lora-dir models/demo/lora \
        --prompt "$2" --steps 20 --seed "${3:-7}" --output-dir "$outdir/$1" --quiet
}
set -x
shapes base "a white triangle on a red background, outlined"
shapes lora "a white triangle on a red background, outlined <lora:outline_lora:1>"
shapes lora-halfway "a white triangle on a red background, outlined <lora:outline_lora:unet=1@50%>"
shapes lora-out-blocks "a white triangle on a red background, outlined <lora:outline_lora:1:lbw=OUTALL>"
shapes stripes-base "a red square on a blue background, striped" 7
shapes stripes "a red square on a blue background, striped <lora:stripes_loha:1>" 7
shapes checker-base "a yellow square on a green background, checkered" 3
shapes checker "a yellow square on a green background, checkered <lora:checker_dora:1>" 3
./build/lorafuse generate --model models/sd15-mini.safetensors \
    --prompt "a lighthouse at dusk, pixel art <lora:mini_lora:te=0.8:unet=0.2@0,1@50%>" \
    --negative "blurry" --steps 8 --seed 42 --auto-trigger --output-dir "$outdir"
./build/lorafuse inspect tests/data/tiny/sd15_kohya.lora.safetensors --model tests/data/tiny/tiny-sd15.safetensors
./build/lorafuse merge --model tests/data/tiny/tiny-sd15.safetensors \
    --lora tests/data/tiny/sd15_kohya.lora.safetensors:0.8 --output build/tiny-sd15-merged.safetensors --force
