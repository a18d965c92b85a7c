"""Pick the best epoch of a training run by Fréchet distance and export it as a shipped checkpoint.

    python scripts/export_run.py RUN_DIR DEST --evaluator checkpoints/faces-attributes [--n 2000] [--last | --step N]

Long DCGAN runs can collapse late (faces64 did on the GPU after ~12 epochs), so every kept
epoch checkpoint is scored against held-out images in the evaluator's feature space and the
lowest distance is shipped (fp16 weights, no optimizer state) with its sample grids, its log
up to that step (gzipped) and the selection table (selection.json). ``--last`` ships the last
checkpoint instead (the memorization positive control: the longest-trained weights, whatever their
Fréchet distance) and ``--step N`` the checkpoint of step N; the table is still computed and recorded.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import shutil
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dcgan_viz.checkpoint import export_checkpoint, load_checkpoint, read_meta, run_checkpoints  # noqa: E402
from dcgan_viz.checkpoint_schema import read_json, validate_run_info  # noqa: E402
from dcgan_viz.data.loading import load_imageset  # noqa: E402
from dcgan_viz.evaluation import load_evaluator  # noqa: E402
from dcgan_viz.evaluation.quality import frechet_by_checkpoint  # noqa: E402
from dcgan_viz.images import grid, save_png  # noqa: E402
from dcgan_viz.sampling import generate  # noqa: E402
from dcgan_viz.train import RUN_FILE, run_segments  # noqa: E402


def _threads(run_info: dict, step: int) -> str:
    """'2 threads', or '2 threads to step 4686, then 1' for a run resumed with another thread count
    (run.json's segments up to ``step``; older runs: their top-level threads, or this process's)."""
    segments = run_segments(run_info, before=step)

    def threads(n: int | None) -> str:
        n = torch.get_num_threads() if n is None else n
        return f"{n} thread" + ("s" if n != 1 else "")

    if len({g["threads"] for g in segments}) == 1:
        return threads(segments[0]["threads"])
    parts = [threads(g["threads"]) + (f" to step {nxt['start_step']}" if nxt else "")
             for g, nxt in zip(segments, segments[1:] + [None])]
    return ", then ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("dest", type=Path)
    ap.add_argument("--evaluator", type=Path, required=True)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--min-epoch", type=int, default=1)
    ap.add_argument("--last", action="store_true", help="ship the last checkpoint, not the lowest Frechet distance")
    ap.add_argument("--step", type=int, help="ship the checkpoint of this step")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    ckpts = [p for p in run_checkpoints(args.run_dir)]
    ckpts = [p for p in ckpts if read_meta(p)["epoch"] >= args.min_epoch]
    if not ckpts:
        sys.exit(f"error: {args.run_dir}: no checkpoints to choose from")
    model, _ = load_evaluator(args.evaluator, device="cpu")
    first = load_checkpoint(ckpts[0], device="cpu")
    test = load_imageset(first.data.with_split("test"))
    rows = frechet_by_checkpoint(ckpts, model.features, test.images, n=args.n)
    for r in rows:
        print(f"epoch {r['epoch']:3d} step {r['step']:6d}  frechet {r['frechet']:9.3f}  pairwise_rms {r['pairwise_rms']:.3f}")
    if args.step is not None:
        best = next((r for r in rows if r["step"] == args.step), None)
        if best is None:
            sys.exit(f"error: {args.run_dir}: no checkpoint at step {args.step}; steps are {[r['step'] for r in rows]}")
    else:
        best = max(rows, key=lambda r: r["step"]) if args.last else min(rows, key=lambda r: r["frechet"])
    log_rows = [json.loads(x) for x in (args.run_dir / "log.jsonl").read_text().splitlines() if x.strip()]
    log_rows = [r for r in log_rows if r["step"] <= best["step"]]
    ips = sorted(r["img_per_s"] for r in log_rows[len(log_rows) // 4:]) or [0.0]
    run_info = validate_run_info(read_json(args.run_dir / RUN_FILE, RUN_FILE), args.run_dir / RUN_FILE)
    facts = {"device": f"CPU ({platform.processor() or platform.machine()}, {_threads(run_info, best['step'])})",
             "torch": torch.__version__, "median_img_per_s": ips[len(ips) // 2],
             "wall_seconds": round(sum(run_info["train"]["batch_size"] / max(r["img_per_s"], 1e-9) for r in log_rows), 1),
             "amp_bf16": run_info["amp"], "cuda_graph": run_info["cuda_graph"], "channels_last": run_info["channels_last"],
             "selected_by": (f"step {args.step} (--step)" if args.step is not None else
                             f"the last of {len(rows)} checkpoints (--last)" if args.last else
                             f"lowest Frechet distance over {len(rows)} epoch checkpoints, n={args.n}"),
             "selection": [{k: v for k, v in r.items() if k != "path"} for r in rows]}
    dest = export_checkpoint(best["path"], args.dest, half=True, extra={"training_run": facts})
    samples = args.run_dir / "samples"
    for e in (1, 5):
        src = samples / f"epoch_{e:03d}.png"
        if src.exists() and e <= best["epoch"]:
            shutil.copy(src, dest / src.name)
    bundle = load_checkpoint(dest, device="cpu")
    save_png(dest / "samples_final.png", grid(generate(bundle, 0, range(64))), scale=2)
    with gzip.open(dest / "log.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in log_rows)
    print(f"exported epoch {best['epoch']} (step {best['step']}, frechet {best['frechet']:.3f}) to {dest}")


if __name__ == "__main__":
    main()
