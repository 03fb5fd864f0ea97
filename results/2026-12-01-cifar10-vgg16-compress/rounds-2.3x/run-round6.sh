# vgg16-2r -r5 stopped at its round limit (5) at 9.9x: one more round (1.5x, capped at the 10x target)
export XDG_RUNTIME_DIR=/tmp/xdg AUTOCOMPRESS_DATA=/work/shared/datasets
cd /work/main
exec runs/exp/bin/autocompress-fa5849b compress --resume --max-rounds 6 --out runs/exp/vgg16-2r-r6
