#!/usr/bin/env bash
# The packages a GPU device machine lacks, carried to it as one archive: .site/site.tar.xz (ignored; ~31 MB of the
# 64 MiB the working tree may take to the machine). The machine has torch (2.11, CUDA) and the rest of the stack but
# no network, so diffusers, decord and imageio-ffmpeg travel as their PyPI wheels, unpacked; and DiffSynth-Studio
# (with einops), whose Wan DiT is issue 14's speed peer (benchmarks/peer_diffsynth.py imports only the DiT, so its
# dependencies stay behind; ~1 MB):
#   bash tools/device_site.sh                      # once, on this machine (needs the package registry)
#   run(carry=[".site"]): mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site && export PYTHONPATH=/tmp/site:$PWD
# (every device call of results/gpu_*/calls.sh starts so). Unpacked keeping the wheels' file modes: Python's
# zipfile.extract drops them, and an imageio-ffmpeg whose ffmpeg is not executable fails every clip write
# (results/gpu_2026-12-04e, call 1).
set -euo pipefail
cd "$(dirname "$0")/.."
w=$(mktemp -d); trap 'rm -rf $w' EXIT
pip download -q --no-deps --only-binary=:all: --platform manylinux2014_x86_64 --python-version 3.12 \
  diffusers==0.42.1 decord==0.6.0 imageio-ffmpeg==0.5.1 diffsynth==2.1.12 einops==0.8.2 -d $w/wheels
mkdir $w/site
for f in $w/wheels/*.whl; do python3 - "$f" "$w/site" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:  # extract, then restore each member's Unix mode (zipfile drops it)
    for m in z.infolist():
        path = z.extract(m, sys.argv[2])
        mode = m.external_attr >> 16
        if mode and not m.is_dir():
            os.chmod(path, mode & 0o777)
PY
done
test -x $w/site/imageio_ffmpeg/binaries/ffmpeg-linux64-* || { echo "ffmpeg in the archive is not executable"; exit 1; }
mkdir -p .site && tar cJf .site/site.tar.xz -C $w/site .
ls -l .site/site.tar.xz
