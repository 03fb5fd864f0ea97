# vgg16 w0.25 from its converged 60-epoch baseline (75.89% test): 10x target at 1 point,
# rounds of 2.2x (2.2, 4.8, 10.6), lr 0.01 for ADMM and fine-tuning, 3 fine-tuning epochs per round
export XDG_RUNTIME_DIR=/tmp/xdg AUTOCOMPRESS_DATA=/work/shared/datasets
cd /work/main
R="--force"; [ -f runs/exp/vgg16-compress/state.json ] && R="--resume"
exec runs/exp/bin/autocompress-288aa22 compress --model vgg16 --width-multiplier 0.25 --dataset cifar-10 \
  --model-file runs/exp/vgg16-w025-e60/model.safetensors --target params:10x --budget 1.0 \
  --round-factor 2.2 --retry-round-factor 1.5 --lr 0.01 --admm-steps 100 --finetune-epochs 3 \
  --recovery-epochs 2 --max-rounds 5 --out runs/exp/vgg16-compress $R
