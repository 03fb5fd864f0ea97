# vgg16 w0.25 from its converged baseline (75.89% test): one round straight to 5.2x with long
# fine-tuning (12 epochs at lr 0.02 cosine, up to 3 recovery epochs) and 4 ADMM periods of 150 steps
export XDG_RUNTIME_DIR=/tmp/xdg AUTOCOMPRESS_DATA=/work/shared/datasets
cd /work/main
R="--force"; [ -f runs/exp/vgg16-5x/state.json ] && R="--resume"
exec runs/exp/bin/autocompress-288aa22 compress --model vgg16 --width-multiplier 0.25 --dataset cifar-10 \
  --model-file runs/exp/vgg16-w025-e60/model.safetensors --target params:5.2x --budget 1.0 \
  --round-factor 5.2 --lr 0.02 --admm-updates 4 --admm-steps 150 --finetune-epochs 12 \
  --recovery-epochs 3 --max-rounds 1 --out runs/exp/vgg16-5x $R
