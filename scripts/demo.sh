#!/usr/bin/env bash
# demo.sh: the README's first command. Builds lorafuse and runs the main job on the small default
# model shipped in models/ (models/sd15-mini.safetensors + models/lora/, made by
# scripts/make_default_model.py): text-to-image with a LoRA whose UNet strength follows a per-step
# schedule, written as a PNG that carries its A1111 parameters; then inspect + merge as before.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja > /dev/null
cmake --build build -j"$(nproc)" > /dev/null
outdir=${1:-build/demo}
set -x
./build/lorafuse generate --model models/sd15-mini.safetensors \
    --prompt "a lighthouse at dusk, pixel art <lora:mini_lora:te=0.8:unet=0.2@0,1@50%>" \
    --negative "blurry" --steps 8 --seed 42 --auto-trigger --output-dir "$outdir"
./build/lorafuse inspect models/tiny-sd15-lora.safetensors --model models/tiny-sd15.safetensors
./build/lorafuse merge --model models/tiny-sd15.safetensors \
    --lora models/tiny-sd15-lora.safetensors:0.8 --output build/tiny-sd15-merged.safetensors --force
