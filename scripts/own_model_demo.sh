#!/usr/bin/env bash
# The "bring your own model" demonstration: train a DCGAN with the pytorch/examples-style script,
# import its state dicts and run the analyses on it. CPU, a few minutes; outputs under out/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=out/demo
STEPS=${STEPS:-1000}
mkdir -p "$OUT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
[ -f "$OUT/pte/netG_epoch_1.pth" ] || [ -f "$OUT/pte/netG_epoch_0.pth" ] || \
  $PY scripts/pytorch_examples_dcgan.py --outf "$OUT/pte" --ngf 32 --ndf 8 --max-steps "$STEPS"
G=$(ls "$OUT"/pte/netG_epoch_*.pth | sort -V | tail -1)
D=${G/netG/netD}
dv() { $PY -c "from dcgan_viz.cli import app; app()" "$@"; }
dv import "$G" --netD "$D" --out "$OUT/imported"
dv sample "$OUT/imported" --out "$OUT/samples.png" --n 64 --device cpu
dv filters "$OUT/imported" --data fashion-mnist --images 1000 --filters 0:6 --out "$OUT/filters" \
   --cache-dir "$OUT/cache" --device cpu
dv interpolate "$OUT/imported" --points 4 --steps 6 --out "$OUT/interpolate.png" --device cpu
$PY - "$OUT/boxes.json" <<'PYEOF'
import json, sys
# the garment in the middle of Fashion-MNIST samples: one box on each of 24 samples of seed 100
json.dump([{"seed": 100, "index": i, "boxes": [[16, 8, 48, 56]]} for i in range(24)], open(sys.argv[1], "w"))
PYEOF
dv forget "$OUT/imported" --segmenter none --boxes "$OUT/boxes.json" --layer conv3 --counts 4,8,16,32 \
   --out "$OUT/forget" --device cpu
dv memorization "$OUT/imported" --data fashion-mnist --n 2000 --n-test 2000 --recovery-n 16 --recovery-steps 100 \
   --cells 10 --out "$OUT/memorization" --cache-dir "$OUT/cache" --device cpu
