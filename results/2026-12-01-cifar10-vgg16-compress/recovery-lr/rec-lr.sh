# one recovery-like cycle (1 epoch, cosine from LR, no warm-up) on vgg16-2r's accepted round-1
# model (2.2x, fine-tuned 10 epochs), at the fine-tuning's rate and at a tenth of it
export XDG_RUNTIME_DIR=/tmp/xdg AUTOCOMPRESS_DATA=/work/shared/datasets
cd /work/main
B=runs/exp/bin/autocompress-fa5849b
M=runs/exp/vgg16-2r/round-1.safetensors
$B eval --model-file $M --dataset cifar-10
for lr in 0.02 0.002; do
  $B train --model-file $M --dataset cifar-10 --epochs 1 --lr $lr --warmup 0 --schedule cosine --seed 1 --out runs/exp/rec-lr-$lr --quiet
  python3 -c "import json; r=json.load(open('runs/exp/rec-lr-$lr/report.json')); print('$lr', {k: r[k] for k in r if 'acc' in k})"
done
