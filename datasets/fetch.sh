#!/usr/bin/env bash
# Downloads a data set for autocompress and verifies its checksums.
#
#   datasets/fetch.sh mnist|fashion-mnist|cifar-10 [DEST]
#
# DEST defaults to datasets/NAME next to this script, which is where autocompress looks when
# neither --data nor AUTOCOMPRESS_DATA is given. Needs curl or wget, gzip, tar and sha256sum
# (or shasum). Files already present with the right checksum are not downloaded again.
# MNIST and Fashion-MNIST are checked by the sha256 of the decompressed IDX files (mirrors and
# packagers re-gzip them, which changes the .gz bytes but not the content); the CIFAR-10
# tarball by its own sha256. See datasets/README.md.
set -euo pipefail

die() { echo "fetch.sh: $*" >&2; exit 1; }

name="${1:-}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
case "$name" in
  mnist | fashion-mnist | cifar-10) ;;
  *) die "usage: $0 mnist|fashion-mnist|cifar-10 [DEST]" ;;
esac
dest="${2:-$here/$name}"
mkdir -p "$dest"

sha256() {
  if command -v sha256sum >/dev/null; then sha256sum | cut -d' ' -f1
  elif command -v shasum >/dev/null; then shasum -a 256 | cut -d' ' -f1
  else die "neither sha256sum nor shasum found"
  fi
}

# download URL FILE: fetch to FILE.part, then rename, so an interrupted download is never
# mistaken for a complete one.
download() {
  local url="$1" out="$2"
  echo "downloading $url"
  if command -v curl >/dev/null; then
    curl -fL --retry 3 -o "$out.part" "$url" || { rm -f "$out.part"; return 1; }
  elif command -v wget >/dev/null; then
    wget -q -O "$out.part" "$url" || { rm -f "$out.part"; return 1; }
  else
    die "neither curl nor wget found"
  fi
  mv "$out.part" "$out"
}

# gz_ok FILE SHA256: does the decompressed content of FILE have this sha256?
gz_ok() {
  [ -f "$1" ] && [ "$(gzip -dc "$1" 2>/dev/null | sha256)" = "$2" ]
}

# fetch_idx "MIRROR..." FILE SHA256-OF-DECOMPRESSED: try each mirror until one verifies.
fetch_idx() {
  local mirrors="$1" file="$2" want="$3" out="$dest/$2"
  if gz_ok "$out" "$want"; then echo "$file: already present and verified"; return; fi
  for base in $mirrors; do
    if download "$base/$file" "$out"; then
      if gz_ok "$out" "$want"; then echo "$file: sha256 of content OK"; return; fi
      echo "$file from $base: checksum mismatch (content sha256 should be $want)" >&2
      rm -f "$out"
    fi
  done
  die "could not get a verified $file; expected decompressed sha256 $want"
}

case "$name" in
  mnist)
    mirrors="https://ossci-datasets.s3.amazonaws.com/mnist https://storage.googleapis.com/cvdf-datasets/mnist http://yann.lecun.com/exdb/mnist"
    fetch_idx "$mirrors" train-images-idx3-ubyte.gz ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
    fetch_idx "$mirrors" train-labels-idx1-ubyte.gz 65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
    fetch_idx "$mirrors" t10k-images-idx3-ubyte.gz 0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
    fetch_idx "$mirrors" t10k-labels-idx1-ubyte.gz ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
    ;;
  fashion-mnist)
    mirrors="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion"
    fetch_idx "$mirrors" train-images-idx3-ubyte.gz c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888
    fetch_idx "$mirrors" train-labels-idx1-ubyte.gz bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9
    fetch_idx "$mirrors" t10k-images-idx3-ubyte.gz 5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b
    fetch_idx "$mirrors" t10k-labels-idx1-ubyte.gz 0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34
    ;;
  cifar-10)
    url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    want=c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd
    tarball="$dest/cifar-10-binary.tar.gz"
    if [ -f "$dest/cifar-10-batches-bin/test_batch.bin" ]; then
      echo "cifar-10: $dest/cifar-10-batches-bin already present"; exit 0
    fi
    if ! { [ -f "$tarball" ] && [ "$(sha256 <"$tarball")" = "$want" ]; }; then
      download "$url" "$tarball" || die "download of $url failed"
      got="$(sha256 <"$tarball")"
      if [ "$got" != "$want" ]; then
        rm -f "$tarball"
        die "cifar-10-binary.tar.gz: sha256 is $got, expected $want (file removed)"
      fi
    fi
    echo "cifar-10-binary.tar.gz: sha256 OK"
    tar -xzf "$tarball" -C "$dest"
    rm -f "$tarball"
    ;;
esac
hint="--data $dest"
[ "$(basename "$dest")" = "$name" ] && hint="$hint, or AUTOCOMPRESS_DATA=$(dirname "$dest")"
echo "done: $dest"
echo "point autocompress at it with $hint (run from the repository root, datasets/$name is the default)"
