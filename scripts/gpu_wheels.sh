#!/usr/bin/env bash
# Wheels the GPU machine lacks (its image has torch 2.11 + CUDA, numpy, scipy, pandas, h5py,
# networkx, scikit-learn, tqdm, torchdiffeq, pyyaml; see /work/.library/device/KINDS.md), for
# Python 3.12 on x86-64, into .whl/ (git-ignored), ~45 MB. Run once in the repository root, here:
#
#     bash scripts/gpu_wheels.sh
#
# then name .whl in the device run's carry (docs/scaling.md has the one command to run there).
# Versions are requirements.txt's; the rest are anndata's and zarr's needs (pip --no-deps
# fetches none of them by itself).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
    POT==0.9.7.post1 anndata==0.12.19 array-api-compat==1.16.0 legacy-api-wrap==1.5 natsort==8.4.0 \
    scverse-misc==0.0.3 session-info2==0.4.1 zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 \
    google-crc32c==1.9.0
ls -la .whl
du -sh .whl
