#!/bin/bash
# The flat SGD buffer's A/B on a quiet machine: main before it (6db7fc9, ARG 1) and after
# (ARG 2), alternated 3 rounds in one run; training images/s of LeNet-5 (10 parameter tensors),
# vgg16 and resnet18 at width 0.25 (with batch norm: 58 and 82 tensors, one SGD dispatch each before).
# The caller pauses any long experiment (SIGSTOP) around it.
B=$1; A=$2
for i in 1 2 3; do
  for bin in $B $A; do
    tag=$(basename $bin)
    echo "$tag round $i: lenet5 $($bin --quiet bench --filter lenet5_train --train-steps 100 2>/dev/null | grep images)"
    for m in vgg16 resnet18; do
      echo "$tag round $i: $m $($bin --quiet bench --filter ${m}_train --train-model $m --width-multiplier 0.25 --train-steps 10 2>/dev/null | grep images)"
    done
  done
done
