#!/usr/bin/env bash
# Does more fine-tuning bring resnet18's accepted
# round-1 model (2.35x, test 76.67 %) within a point of the baseline's 78.02 %?
cd /work/main
export AUTOCOMPRESS_DATA=/work/shared/datasets XDG_RUNTIME_DIR=/tmp/xdg
B=runs/exp/bin/autocompress-7d01113
R=results/2026-12-02-cifar10-resnet18-compress/probe-longer
resume=(); [[ -d runs/exp/probe-longer ]] && resume=(--resume)
exec nice -n 5 $B train --model-file $R/round-1.safetensors \
  --dataset cifar-10 --epochs 10 --lr 0.02 --warmup 0 --schedule cosine --augment true --seed 1 --out runs/exp/probe-longer "${resume[@]}"
