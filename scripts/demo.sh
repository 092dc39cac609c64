#!/usr/bin/env bash
# demo.sh: the README's first command. Builds lorafuse and runs the main job on the small default
# model shipped in models/: inspect a LoRA against the model, then bake it in at strength 0.8.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja > /dev/null
cmake --build build -j"$(nproc)" > /dev/null
out=${1:-build/tiny-sd15-merged.safetensors}
set -x
./build/lorafuse inspect models/tiny-sd15-lora.safetensors --model models/tiny-sd15.safetensors
./build/lorafuse merge --model models/tiny-sd15.safetensors \
    --lora models/tiny-sd15-lora.safetensors:0.8 --output "$out"
