#!/bin/bash
# Issue 13's no-regression A/B on a quiet machine: main before the GPU-kernel work (3e56988) and
# after (ARG 1, a binary of this tree), alternated 3 rounds in one run. The caller pauses any
# long experiment (SIGSTOP) around it.
B=/tmp/ab/autocompress-3e56988; A=$1
for i in 1 2 3; do
  for bin in $B $A; do
    tag=$(basename $bin)
    $bin --quiet bench --filter vgg_mid --algo implicit --factors 4 --backward --train-steps 0 --reps 10 2>/dev/null | grep vgg_mid | sed "s/^/$tag round $i: /"
    echo "$tag round $i: lenet5 $($bin --quiet bench --filter lenet5_train --train-steps 100 2>/dev/null | grep images)"
    echo "$tag round $i: vgg16 $($bin --quiet bench --filter vgg16_train --train-model vgg16 --width-multiplier 0.25 --train-steps 10 2>/dev/null | grep images)"
  done
done
