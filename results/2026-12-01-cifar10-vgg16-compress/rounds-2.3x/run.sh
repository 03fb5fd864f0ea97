# vgg16 w0.25 from its converged baseline: rounds of 2.3x toward 10x with converging ADMM
# (rho 0.01 x3 per update over 4 periods of 150 steps), 10 fine-tuning epochs at lr 0.02 per
# round, no recovery cycles; a rejected round retries at 1.5x from the last kept model
export XDG_RUNTIME_DIR=/tmp/xdg AUTOCOMPRESS_DATA=/work/shared/datasets
cd /work/main
R="--force"; [ -f runs/exp/vgg16-2r/state.json ] && R="--resume"
exec runs/exp/bin/autocompress-83fdda3 compress --model vgg16 --width-multiplier 0.25 --dataset cifar-10 \
  --model-file runs/cifar-baselines/vgg16-w025/model.safetensors --target params:10x --budget 1.0 \
  --round-factor 2.3 --retry-round-factor 1.5 --lr 0.02 --admm-updates 4 --admm-steps 150 --rho0 0.01 --rho-growth 3 \
  --finetune-epochs 10 --recovery-epochs 0 --max-rounds 4 --out runs/exp/vgg16-2r $R
