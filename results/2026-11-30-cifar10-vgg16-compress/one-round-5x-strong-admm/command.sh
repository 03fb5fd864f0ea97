# vgg16 w0.25 from its converged baseline: one round to 5x with ADMM that converges (rho 0.01 x3
# per update: 0.01 .. 0.27 over 4 periods of 150 steps) and one 16-epoch cosine fine-tuning at
# lr 0.02, no recovery cycles (a one-epoch cycle restarting at lr 0.02 cost 1.4-2 points)
export XDG_RUNTIME_DIR=/tmp/xdg AUTOCOMPRESS_DATA=/work/shared/datasets
cd /work/main
R="--force"; [ -f runs/exp/vgg16-5x-b/state.json ] && R="--resume"
exec runs/exp/bin/autocompress-288aa22 compress --model vgg16 --width-multiplier 0.25 --dataset cifar-10 \
  --model-file runs/exp/vgg16-w025-e60/model.safetensors --target params:5x --budget 1.0 \
  --round-factor 5 --lr 0.02 --admm-updates 4 --admm-steps 150 --rho0 0.01 --rho-growth 3 \
  --finetune-epochs 16 --recovery-epochs 0 --max-rounds 1 --out runs/exp/vgg16-5x-b $R
