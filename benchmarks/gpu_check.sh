#!/usr/bin/env bash
# The GPU checks as one command, for a machine with CUDA (run from the repository root):
#   the CUDA test, bf16-vs-fp32 accuracy on the GPU, and images/s of both paths at 224 px.
# An estimate (never run yet): 6 to 8 minutes on one H200-class GPU host, most of it drawing and
# saving the 224 px images; prints everything, writes nothing in the repository.
set -euo pipefail
export PYTHONUNBUFFERED=1
export CUBLAS_WORKSPACE_CONFIG=:4096:8  # as the train stage sets it: deterministic cuBLAS
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -m pytest -q -n 0 -p no:cacheprovider tests/test_accel.py
python3 -m benchmarks.precision_check --task face --recipe resnet18_scratch --n-images 3000 --device cuda --threads 8
for recipe in resnet18_scratch vgg16_finetune; do
  python3 -m benchmarks.throughput --generated face --recipe "$recipe" --img-size 224 --epochs 10 \
    --device cuda --threads 8 --workers 4 8 --repeat 2
done
