"""Why does the paper's recipe collapse on the synthetic rooms, and which remedy stops it?

    python scripts/collapse_study.py run RECIPE [RECIPE ...] [--root runs/collapse] [--steps 6000]
    python scripts/collapse_study.py report [--root runs/collapse] [--n 1000] [--until STEP] [--every 1000]

``run`` trains each named recipe (RECIPES below) at a small, fast scale: 32x32 rooms, ngf = ndf
= 32, batch 64, a checkpoint every 500 steps (all kept), the collapse stop off so a run shows
its whole course. ``report`` scores every kept checkpoint of every run with the shipped tools
and prints one Markdown table row per recipe:

- step of collapse: the first health check at which D(G(z)) averaged < 0.01 over the
  preceding 500 steps *or* the diversity ratio in D's features fell below 0.4 (the training
  monitor's rule, dcgan_viz.health), and stayed so at the next check; "none" otherwise;
- final D(G(z)): mean over the last 500 steps;
- diversity: generated / real mean pairwise RMS distance in pixels (n samples);
- Fréchet distance in the rooms segmenter's feature space (n samples vs n held-out rooms,
  both upsampled 2x to the segmenter's 64x64), at the final step and the best checkpoint;
- the share of samples with a window (segmenter) against real rooms'.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCALE = ["--data", "rooms:count=20000", "--image-size", "32", "--ngf", "32", "--ndf", "32", "--batch-size", "64",
         "--checkpoint-every", "500", "--keep-checkpoints", "1000", "--collapse-steps", "0", "--no-progress"]
RECIPES: dict[str, list[str]] = {
    "paper": [],
    "noise": ["--instance-noise", "0.2", "--instance-noise-steps", "6000"],
    "diffaug": ["--augment", "translation,cutout,color"],
    "smooth": ["--label-smoothing", "0.2"],
    "ttur": ["--lr-d", "5e-5"],
    "dequant": ["--dequantize", "8"],
    "diffaug+noise": ["--augment", "translation,cutout,color", "--instance-noise", "0.2",
                      "--instance-noise-steps", "6000"],
    "translation": ["--augment", "translation"],
}


def run(recipes: list[str], root: Path, steps: int) -> None:
    for name in recipes:
        out = root / name
        done = out / "checkpoints" / f"step-{steps:08d}" / "checkpoint.json"
        if done.is_file():
            continue
        args = [sys.executable, "-m", "dcgan_viz.cli", "train", *SCALE, "--max-steps", str(steps),
                "--out", str(out), *RECIPES[name]]
        if (out / "run.json").is_file():
            args = [sys.executable, "-m", "dcgan_viz.cli", "train", "--out", str(out), "--resume", "--no-progress",
                    "--max-steps", str(steps)]
        print(f"{name}: {' '.join(args[3:])}", flush=True)
        subprocess.run(args, check=True, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})


def _log(run_dir: Path) -> list[dict]:
    rows = []
    for line in (run_dir / "log.jsonl").read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def report(root: Path, n: int, until: int, every: int) -> None:
    import torch
    import torch.nn.functional as F

    from dcgan_viz.checkpoint import load_checkpoint, run_checkpoints
    from dcgan_viz.data.loading import load_imageset
    from dcgan_viz.data.spec import DataSpec
    from dcgan_viz.evaluation import load_evaluator
    from dcgan_viz.evaluation.frechet import frechet_distance
    from dcgan_viz.evaluation.quality import _as_float, diversity, generate_float, window_fraction
    from dcgan_viz.evaluation.segmenter import predict_masks
    from dcgan_viz.health import D_WINS, DIVERSITY_WARN, HealthProbe

    seg, seg_cfg = load_evaluator(ROOT / "checkpoints" / "rooms-segmenter", kind="segmenter")
    window = seg_cfg["classes"].index("window")
    up = lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)  # noqa: E731

    def feats(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([seg.features(up(x[i:i + 250])) for i in range(0, len(x), 250)])

    def windows(x: torch.Tensor) -> float:
        return window_fraction(predict_masks(seg, up(x)), window)

    train_set = load_imageset(DataSpec.parse("rooms:count=20000", size=32)).images
    test = _as_float(load_imageset(DataSpec.parse("rooms:count=20000", size=32, split="test")).images[:n])
    f_test, real_div, real_win = feats(test), diversity(test)["pairwise_rms"], windows(test)
    print(f"real (held-out, n={n}): pairwise RMS {real_div:.3f}, windows {real_win:.3f}")
    print("| recipe | options | collapse step | final D(G(z)) | diversity: pixels (D, neighbours) | Fréchet final | best (step) | windows |")
    print("|---|---|---|---|---|---|---|---|")
    for run_dir in sorted(p for p in root.iterdir() if (p / "run.json").is_file()):
        log = _log(run_dir)
        ckpts = [p for p in run_checkpoints(run_dir) if int(p.name.split("-")[1]) <= until]
        if not ckpts:
            continue
        rows, collapse, prev_bad = [], None, False
        probe = None
        for path in ckpts:
            b = load_checkpoint(path, device="cpu")
            if probe is None:
                probe = HealthProbe.for_run(b.G, train_set, torch.device("cpu"))
            step = b.meta["step"]
            window_rows = [r["d_g_z1"] for r in log if step - 500 < r["step"] <= step]
            dgz = sum(window_rows) / max(len(window_rows), 1)
            health = probe.measure(b.G, b.D)
            bad = dgz < D_WINS or health["div_d"] < DIVERSITY_WARN
            if bad and prev_bad and collapse is None:
                collapse = prev_step
            prev_bad, prev_step = bad, step
            row = {"step": step, "dgz": dgz, **health}
            if step % every == 0 or path == ckpts[-1]:
                gen = generate_float(b, n)
                row.update(frechet=frechet_distance(feats(gen), f_test), div=diversity(gen)["pairwise_rms"] / real_div,
                           windows=windows(gen))
            rows.append(row)
        final, best = rows[-1], min((r for r in rows if "frechet" in r), key=lambda r: r["frechet"])
        opts = " ".join(json.loads((run_dir / "run.json").read_text()).get("argv", [])) or _options(run_dir)
        print(f"| {run_dir.name} | {opts} | {collapse if collapse is not None else 'none'} (of {final['step']}) | "
              f"{final['dgz']:.3f} | {final['div']:.2f} (D {final['div_d']:.2f}, nn {final['nn_d']:.2f}) | {final['frechet']:.1f} | "
              f"{best['frechet']:.1f} ({best['step']}) | {final['windows']:.3f} (real {real_win:.3f}) |", flush=True)
        (run_dir / "study.json").write_text(json.dumps(rows, indent=1) + "\n")


def _options(run_dir: Path) -> str:
    """The remedy settings of a run that differ from the paper recipe."""
    from dcgan_viz.train import TrainConfig

    train = json.loads((run_dir / "run.json").read_text())["train"]
    default = TrainConfig().to_dict()
    keys = ("lr_d", "label_smoothing", "instance_noise", "instance_noise_steps", "dequantize", "augment")
    diff = [f"{k}={train.get(k)}" for k in keys if train.get(k, default[k]) != default[k]]
    return ", ".join(diff) or "paper recipe"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("recipes", nargs="+", choices=sorted(RECIPES))
    r.add_argument("--root", type=Path, default=ROOT / "runs" / "collapse")
    r.add_argument("--steps", type=int, default=6000)
    p = sub.add_parser("report")
    p.add_argument("--root", type=Path, default=ROOT / "runs" / "collapse")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--until", type=int, default=10**9, help="compare runs up to this step")
    p.add_argument("--every", type=int, default=1000, help="Fréchet distance at multiples of this step")
    args = ap.parse_args()
    if args.cmd == "run":
        run(args.recipes, args.root, args.steps)
    else:
        report(args.root, args.n, args.until, args.every)


if __name__ == "__main__":
    main()
