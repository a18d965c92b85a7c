"""Train every shipped checkpoint in one run (made for one H200 lease; --tiny runs it on a CPU).

    python scripts/train_shipped.py --out OUT [--fashion-dir DIR] [--tiny]

Jobs, in order of importance, each in its own try block so one failure does not lose the rest:
  bench      benchmarks/train_throughput.py at batch 128 and 1024 (toolkit vs reference)
  synth      render the rooms and faces sets on the device and time it
  rooms64    DCGAN on rooms (paper width 64), epoch grids kept
  faces64    DCGAN on faces
  fashion32  DCGAN on Fashion-MNIST train split (1 channel, 32x32)
  fashion-overfit  the same architecture on 64 training images for 16,000 steps (copies them)
  segmenter / face-attributes / fashion-classifier  the evaluation helpers

Each finished checkpoint is exported with fp16 weights into OUT/ship/<name>/ together with
its sample grids and a gzipped copy of its training log; OUT/results.json gathers timings.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import shutil
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dcgan_viz.checkpoint import export_checkpoint, read_meta  # noqa: E402
from dcgan_viz.data.spec import DataSpec  # noqa: E402
from dcgan_viz.models import ModelConfig  # noqa: E402
from dcgan_viz.train import Trainer, TrainConfig  # noqa: E402

RESULTS: dict = {"jobs": {}}
AFTER_JOB: list = []  # called after each job: save results and pack what is done (a timeout loses nothing)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def job(name: str):
    def wrap(fn):
        def run(*a, **kw):
            t0 = time.perf_counter()
            log(f"== {name}")
            try:
                out = fn(*a, **kw)
                RESULTS["jobs"][name] = {"ok": True, "seconds": round(time.perf_counter() - t0, 1), **(out or {})}
            except Exception as exc:  # noqa: BLE001 - keep going with the other jobs
                traceback.print_exc()
                RESULTS["jobs"][name] = {"ok": False, "seconds": round(time.perf_counter() - t0, 1), "error": repr(exc)[:500]}
            log(f"   {name}: {json.dumps(RESULTS['jobs'][name])[:400]}")
            if AFTER_JOB:
                AFTER_JOB[0]()
            return RESULTS["jobs"][name]
        return run
    return wrap


def _slim(metrics: dict) -> dict:
    """Training metrics without the per-step loss history (kept small for the card)."""
    return {k: v for k, v in metrics.items() if k != "loss_history"}


def render(kind: str, count: int, test_count: int, size: int, device: torch.device, chunk: int):
    """Render train + test sets of a synthetic source on ``device``; returns dict of CPU/GPU tensors."""
    if kind == "rooms":
        from dcgan_viz.data.rooms import render_rooms as fn
    else:
        from dcgan_viz.data.faces import render_faces as fn
    parts: dict[str, list] = {"images": [], "masks": [], "attributes": []}
    total = count + test_count
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for start in range(0, total, chunk):
        b = fn(0, torch.arange(start, min(total, start + chunk), device=device), size=size, device=device)
        parts["images"].append(b.images)
        parts["masks"].append(b.masks)
        if hasattr(b, "attributes"):
            parts["attributes"].append(b.attributes)
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    out = {k: torch.cat(v) for k, v in parts.items() if v}
    return out, dt


def export(run_dir: Path, ship: Path, name: str, extra_files: dict[str, Path], card_facts: dict) -> dict:
    """Re-save the run's final checkpoint with fp16 weights (no optimizer state) into ship/name."""
    dest = export_checkpoint(run_dir, ship / name, half=True, extra={"training_run": card_facts})
    run_dir = run_dir if (run_dir / "log.jsonl").exists() else run_dir.parents[1]  # a step-* dir of a run
    for target, src in extra_files.items():
        if src.exists():
            shutil.copy(src, dest / target)
    logf = run_dir / "log.jsonl"
    if logf.exists():
        with open(logf, "rb") as fi, gzip.open(dest / "log.jsonl.gz", "wb") as fo:
            shutil.copyfileobj(fi, fo)
    meta = json.loads((dest / "checkpoint.json").read_text())
    return {"step": meta["step"], "epoch": meta["epoch"], "final_metrics": meta["metrics"]}


def train_gan(name: str, images: torch.Tensor, spec: DataSpec, model: ModelConfig, cfg: TrainConfig,
              work: Path, ship: Path, select: tuple | None = None) -> dict:
    """Train, then export the final checkpoint or, with ``select = (feature_fn, real_test_u8)``,
    the epoch checkpoint with the lowest Fréchet distance to the held-out images."""
    run_dir = work / name
    if run_dir.exists():
        shutil.rmtree(run_dir)
    t0 = time.perf_counter()
    try:
        trainer = Trainer(model, cfg, spec, images, run_dir)
        trainer.run()
    except Exception:  # noqa: BLE001 - e.g. a graph-capture failure: retry eagerly rather than lose the model
        if cfg.cuda_graph == "off" or not torch.cuda.is_available():
            raise
        traceback.print_exc()
        log(f"   {name}: retrying without CUDA graph")
        shutil.rmtree(run_dir, ignore_errors=True)
        cfg = TrainConfig.from_dict(cfg.to_dict() | {"cuda_graph": "off"})
        t0 = time.perf_counter()
        trainer = Trainer(model, cfg, spec, images, run_dir)
        trainer.run()
    wall = time.perf_counter() - t0
    lines = (run_dir / "log.jsonl").read_text().splitlines()
    ips = [json.loads(x)["img_per_s"] for x in lines[len(lines) // 4:]] if lines else [0]
    facts = {
        "wall_seconds": round(wall, 1), "device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor(),
        "torch": torch.__version__, "median_img_per_s": round(sorted(ips)[len(ips) // 2], 1),
        "steps": trainer.step, "steps_per_epoch": trainer.steps_per_epoch, "amp_bf16": trainer.amp,
        "cuda_graph": trainer.use_graph, "channels_last": trainer.channels_last,
    }
    samples = run_dir / "samples"
    grids = {f"epoch_{e:03d}.png": samples / f"epoch_{e:03d}.png" for e in (1, 5)}
    chosen = run_dir
    if select is not None:
        from dcgan_viz.checkpoint import run_checkpoints
        from dcgan_viz.evaluation.quality import frechet_by_checkpoint

        rows = frechet_by_checkpoint(run_checkpoints(run_dir), select[0], select[1], n=2000)
        best = min(rows, key=lambda r: r["frechet"])
        chosen = Path(best["path"])
        facts["selected_by"] = f"lowest Frechet distance over {len(rows)} epoch checkpoints, n=2000"
        facts["selection"] = [{k: v for k, v in r.items() if k != "path"} for r in rows]
        log(f"   {name}: selected epoch {best['epoch']} (frechet {best['frechet']:.2f})")
    grid_file = samples / f"epoch_{read_meta(chosen)['epoch']:03d}.png"
    if grid_file.exists():
        grids["samples_final.png"] = grid_file
    return facts | export(chosen, ship, name, grids, facts)


def train_evaluators(args, device: torch.device, data: dict, fashion: dict, ship: Path, size: int, n_train: int,
                     n_test: int, tiny: bool) -> dict:
    """Train and save the three evaluation helpers; returns the trained models by job name."""
    def steps(default: int) -> int:
        return max(20, int(default * args.eval_scale)) if not tiny else 20

    @job("segmenter")
    def seg_job():
        from dcgan_viz.data.rooms import ROOM_CLASSES
        from dcgan_viz.evaluation import evaluate_segmenter, save_evaluator, train_segmenter

        d = data["rooms"]
        model, train_metrics = train_segmenter(d["images"][:n_train], d["masks"][:n_train], len(ROOM_CLASSES),
                                               steps=steps(4000), device=device, seed=0,
                                               class_names=list(ROOM_CLASSES))
        metrics = evaluate_segmenter(model, d["images"][n_train:], d["masks"][n_train:], class_names=list(ROOM_CLASSES))
        spec = DataSpec(source="rooms", size=size, seed=0, count=n_train, test_count=n_test)
        save_evaluator(model, ship / "rooms-segmenter", {"classes": list(ROOM_CLASSES), "metrics": metrics,
                       "training": _slim(train_metrics), "data_spec": spec.to_dict()}, half=True)
        TRAINED_MODELS["segmenter"] = model
        return {"metrics": metrics}

    @job("face-attributes")
    def attr_job():
        from dcgan_viz.data.faces import FACE_ATTRIBUTE_KINDS, FACE_ATTRIBUTES
        from dcgan_viz.evaluation import evaluate_attribute_classifier, save_evaluator, train_attribute_classifier

        d = data["faces"]
        kinds = {a: FACE_ATTRIBUTE_KINDS[a] for a in FACE_ATTRIBUTES}
        model, train_metrics = train_attribute_classifier(d["images"][:n_train], d["attributes"][:n_train], kinds,
                                                          steps=steps(4000), device=device, seed=0)
        metrics = evaluate_attribute_classifier(model, d["images"][n_train:], d["attributes"][n_train:])
        spec = DataSpec(source="faces", size=size, seed=0, count=n_train, test_count=n_test)
        save_evaluator(model, ship / "faces-attributes", {"metrics": metrics, "data_spec": spec.to_dict(),
                       "training": _slim(train_metrics)}, half=True)
        TRAINED_MODELS["face-attributes"] = model
        return {"metrics": metrics}

    @job("fashion-classifier")
    def clf_job():
        from dcgan_viz.evaluation import evaluate_classifier, save_evaluator, train_classifier

        tr, te = fashion["train"], fashion["test"]
        model, train_metrics = train_classifier(torch.from_numpy(tr.images[:]), torch.from_numpy(tr.labels[:]), 10,
                                                steps=steps(5000), device=device, seed=0, hflip=True)
        metrics = evaluate_classifier(model, torch.from_numpy(te.images[:]), torch.from_numpy(te.labels[:]))
        save_evaluator(model, ship / "fashion-classifier", {"label_names": list(tr.label_names or []), "metrics": metrics,
                       "training": _slim(train_metrics), "data_spec": tr.spec.to_dict()}, half=True)
        TRAINED_MODELS["fashion-classifier"] = model
        return {"metrics": metrics}

    trained: dict = {}
    for name, fn, ready in (("segmenter", seg_job, "rooms" in data), ("face-attributes", attr_job, "faces" in data),
                            ("fashion-classifier", clf_job, "train" in fashion)):
        if ready and name not in args.skip:
            out = fn()
            if out.get("ok"):
                trained[name] = TRAINED_MODELS[name]
    return trained



TRAINED_MODELS: dict = {}


PACKS = {"rooms64": ["rooms64"], "faces64": ["faces64"], "fashion": ["fashion32", "fashion-overfit"],
         "evaluators": ["rooms-segmenter", "faces-attributes", "fashion-classifier"]}


def pack(ship: Path, dest: Path) -> None:
    """Tar the exported checkpoints into a few files (the device returns at most 8 files of 16 MB);
    training logs go into logs.tar so each checkpoint tar stays small."""
    import tarfile

    dest.mkdir(parents=True, exist_ok=True)
    no_logs = lambda ti: None if ti.name.endswith("log.jsonl.gz") else ti  # noqa: E731
    for name, members in PACKS.items():
        present = [m for m in members if (ship / m).is_dir()]
        if present:
            with tarfile.open(dest / f"{name}.tar", "w") as tf:
                for m in present:
                    tf.add(ship / m, arcname=m, filter=no_logs)
    with tarfile.open(dest / "logs.tar", "w") as tf:
        for logf in sorted(ship.glob("*/log.jsonl.gz")):
            tf.add(logf, arcname=f"{logf.parent.name}/log.jsonl.gz")
    for f in sorted(dest.iterdir()):
        log(f"packed {f.name}: {f.stat().st_size / 1e6:.1f} MB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--fashion-dir", default=None)
    ap.add_argument("--tiny", action="store_true", help="CPU smoke test with tiny sizes")
    ap.add_argument("--skip", nargs="*", default=[])
    ap.add_argument("--gan-epochs", type=int, default=15, help="epochs per GAN; the best epoch by Frechet distance ships")
    ap.add_argument("--overfit-steps", type=int, default=16_000, help="steps of the fashion-overfit run (64 images)")
    ap.add_argument("--eval-scale", type=float, default=1.0, help="scale the evaluators' default step counts")
    ap.add_argument("--pack", type=Path, default=None, help="tar the exported checkpoints into this folder")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tiny = args.tiny
    work, ship = args.out / "work", args.out / "ship"
    ship.mkdir(parents=True, exist_ok=True)
    RESULTS["env"] = {"torch": torch.__version__, "device": str(device),
                      "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None}
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    log(f"env {RESULTS['env']}")

    def checkpoint_results() -> None:
        (args.out / "results.json").write_text(json.dumps(RESULTS, indent=2, default=str))
        if args.pack:
            pack(ship, args.pack)
            shutil.copy(args.out / "results.json", args.pack / "results.json")

    AFTER_JOB.append(checkpoint_results)
    t_all = time.perf_counter()

    @job("bench")
    def bench_job():
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from train_throughput import bench

        cfg = ModelConfig(image_size=64, ngf=64, ndf=64) if not tiny else ModelConfig(image_size=32, ngf=8, ndf=8)
        rows = []
        for b in ([128, 1024] if device.type == "cuda" else [16]):
            r = bench(cfg, b, device, steps=max(20, 12800 // b) if not tiny else 2, rounds=3 if not tiny else 1,
                      amp=True, channels_last=True, graph=device.type == "cuda", n_images=max(4 * b, 4096))
            log(f"   bench {r}")
            rows.append(r)
        return {"rows": rows}

    if "bench" not in args.skip:
        bench_job()

    size = 64 if not tiny else 32
    n_train, n_test = (100_000, 10_000) if not tiny else (512, 128)
    chunk = 8192 if device.type == "cuda" else 1024
    data: dict = {}

    @job("synth")
    def synth_job():
        facts = {}
        for kind in ("rooms", "faces"):
            try:
                sets, dt = render(kind, n_train, n_test, size, device, chunk)
            except Exception:  # noqa: BLE001 - fall back to the CPU rather than lose the GAN runs
                traceback.print_exc()
                sets, dt = render(kind, n_train, n_test, size, torch.device("cpu"), 2048)
                facts[f"{kind}_fallback"] = "cpu"
            data[kind] = sets
            facts[kind] = {"images": n_train + n_test, "seconds": round(dt, 2), "img_per_s": round((n_train + n_test) / dt, 1)}
        return facts

    synth_job()

    width = 64 if not tiny else 8
    batch = 128 if not tiny else 32

    def gan_cfg(epochs: int, n_images: int, **kw) -> TrainConfig:
        """Epoch-based with a checkpoint per epoch (all kept) so the best epoch can be selected."""
        base = dict(epochs=epochs, batch_size=batch, checkpoint_every=max(1, n_images // batch),
                    keep_checkpoints=epochs + 1, progress=False, seed=0)
        base.update(kw)
        return TrainConfig(**base)

    fashion: dict = {}

    @job("fashion-data")
    def fashion_data_job():
        from dcgan_viz.data.loading import load_imageset

        for split in ("train", "test"):
            spec = DataSpec(source="fashion-mnist", path=args.fashion_dir, size=32, channels=1, split=split,
                            count=None if not tiny else 512)
            loaded = load_imageset(spec)
            # record the default location (where dataset-fashion-mnist installs), not the device's carry folder
            loaded.spec = DataSpec.from_dict(loaded.spec.to_dict() | {"path": None})
            fashion[split] = loaded
        return {k: len(v) for k, v in fashion.items()}

    fashion_data_job()
    evaluators = train_evaluators(args, device, data, fashion, ship, size, n_train, n_test, tiny)
    epochs = args.gan_epochs if not tiny else 2

    for kind, ev in (("rooms", "segmenter"), ("faces", "face-attributes")):
        name = f"{kind}64"

        @job(name)
        def gan_job(kind=kind, name=name, ev=ev):
            images = data[kind]["images"][:n_train]
            spec = DataSpec(source=kind, size=size, channels=3, seed=0, count=n_train, test_count=n_test)
            model = ModelConfig(image_size=size, ngf=width, ndf=width, nc=3)
            select = (evaluators[ev].features, data[kind]["images"][n_train:]) if ev in evaluators else None
            return train_gan(name, images, spec, model, gan_cfg(epochs, n_train), work, ship, select)

        if name not in args.skip and kind in data:
            gan_job()

    if "train" in fashion:
        @job("fashion32")
        def fashion32_job():
            s = fashion["train"]
            model = ModelConfig(image_size=32, ngf=width, ndf=width, nc=1)
            clf = evaluators.get("fashion-classifier")
            select = (clf.features, torch.from_numpy(fashion["test"].images[:])) if clf is not None else None
            return train_gan("fashion32", torch.from_numpy(s.images[:]), s.spec, model,
                             gan_cfg(epochs, len(s)), work, ship, select)

        @job("fashion-overfit")
        def overfit_job():
            s = fashion["train"]
            n = 64 if not tiny else 32  # 256 images for 22,400 steps did not copy (D won); 64 do by 4,000 steps
            spec = DataSpec.from_dict(s.spec.to_dict() | {"count": n, "content_hash": None})
            model = ModelConfig(image_size=32, ngf=width, ndf=width, nc=1)
            cfg = TrainConfig(epochs=1_000_000, max_steps=args.overfit_steps if not tiny else 20,
                              batch_size=64 if not tiny else 32, collapse_steps=0, grid_every=500,
                              checkpoint_every=100_000, progress=False, seed=0,
                              flush_every=200 if device.type == "cuda" else None)
            return train_gan("fashion-overfit", torch.from_numpy(s.images[:n]), spec, model, cfg, work, ship)

        if "fashion32" not in args.skip:
            fashion32_job()
        if "fashion-overfit" not in args.skip:
            overfit_job()

    RESULTS["total_seconds"] = round(time.perf_counter() - t_all, 1)
    (args.out / "results.json").write_text(json.dumps(RESULTS, indent=2, default=str))
    if args.pack:
        pack(ship, args.pack)
    log(f"done in {RESULTS['total_seconds']} s")
    for k, v in RESULTS["jobs"].items():
        print(f"{k:18s} ok={v['ok']} {v['seconds']:7.1f}s {json.dumps({x: y for x, y in v.items() if x not in ('ok', 'seconds', 'rows', 'final_metrics')})[:300]}")


if __name__ == "__main__":
    main()
