#!/usr/bin/env bash
# install-deps.sh: install every Debian package lorafuse needs to build and test (idempotent).
# cJSON (safetensors header), OpenBLAS + LAPACKE (CPU backend, SVD), libpng (image output),
# clang + compiler-rt (libFuzzer target), cmake/ninja/pkg-config (build).
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config libcjson-dev libopenblas-dev liblapacke-dev
      libpng-dev clang libclang-rt-14-dev python3 bc)
# ---- zlib ----: the CLIP tokenizer reads models/clip/bpe_simple_vocab_16e6.txt.gz
pkgs+=(zlib1g-dev)
# ---- end zlib ----
# ---- libcrypto ----: SHA-256 of model/LoRA/VAE files (OpenSSL EVP, host/base/hash.c)
pkgs+=(libssl-dev)
# ---- end libcrypto ----
# ---- libmicrohttpd ----: the HTTP server of `lorafuse serve`
pkgs+=(libmicrohttpd-dev)
# ---- end libmicrohttpd ----
# ---- cairo ----: the grid sheets of `lorafuse batch` sweeps (host/batch/batch_grid.c; brings libfontconfig-dev)
pkgs+=(libcairo2-dev)
# ---- end cairo ----
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
