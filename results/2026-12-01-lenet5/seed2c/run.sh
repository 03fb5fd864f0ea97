# LeNet-5 seed 2: the 87.3x run (seed2b), whose 101.8x round missed the budget by one validation
# image, goes on from its round-12 model in rounds of 1.08 (compress --resume --retry-round-factor)
export XDG_RUNTIME_DIR=/tmp/xdg AUTOCOMPRESS_DATA=/work/shared/datasets
cd /work/main
exec runs/exp/bin/autocompress-fa5849b compress --resume --retry-round-factor 1.08 --out runs/exp/lenet5-100x-seed2c
