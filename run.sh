#!/usr/bin/env bash
# dcgan-viz set-up and the two commands of the README.
#   ./run.sh main   install, sample every shipped checkpoint, write the figures report, serve the dashboard
#                   (./run.sh main --no-dashboard: stop after the report)
#   ./run.sh test   install (with test extras), then run the whole test suite
# Installs into ./.venv. If torch is already in that venv (e.g. a CUDA build you installed),
# it is kept; otherwise the CPU build pinned in ci/constraints-cpu.txt is installed.
set -euo pipefail
cd "$(dirname "$0")"

setup() {
  local extras=$1
  [ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
  # shellcheck disable=SC1091
  . .venv/bin/activate
  if python -c "import torch" 2>/dev/null; then
    pip install -q -e ".[${extras}]"
  else
    pip install -q -c ci/constraints-cpu.txt -e ".[${extras}]"
  fi
}

case "${1:-}" in
  main)
    setup analysis,dashboard
    mkdir -p out
    for ck in checkpoints/*/; do
      [ -f "$ck/checkpoint.json" ] || continue
      name=$(basename "$ck")
      dcgan-viz info "$ck"
      dcgan-viz sample "$ck" --seed 0 --n 64 --out "out/${name}_samples.png"
    done
    # every paper figure with its measurement, and the report (about 15 minutes on 2 CPU cores the first time)
    dcgan-viz figures --checkpoints checkpoints --out out/figures
    if [ "${2:-}" != "--no-dashboard" ]; then
      dcgan-viz dashboard --checkpoints checkpoints
    fi
    ;;
  test)
    setup analysis,dashboard,faiss,dev
    python -m pytest -q -n 2 "${@:2}"
    ;;
  *)
    echo "usage: ./run.sh main|test [pytest args]" >&2
    exit 2
    ;;
esac
