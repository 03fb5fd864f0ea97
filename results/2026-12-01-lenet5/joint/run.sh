# LeNet-5 joint target params:60x,flops:10x from seed 1's baseline (three rounds ran on 2026-11-30)
export XDG_RUNTIME_DIR=/tmp/xdg AUTOCOMPRESS_DATA=/work/shared/datasets
cd /work/main
exec runs/exp/bin/autocompress-fa5849b compress --resume --out runs/exp/lenet5-joint
