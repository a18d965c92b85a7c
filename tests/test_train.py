"""Training engine: determinism, logs and grids, exact resume after a kill, stops, DDP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dcgan_viz.checkpoint import load_checkpoint, run_checkpoints
from dcgan_viz.data.spec import DataSpec
from dcgan_viz.models import ModelConfig
from dcgan_viz.train import Trainer, TrainConfig, TrainingStopped

HELPER = Path(__file__).parent / "helpers" / "train_tiny.py"
SPEC = DataSpec(source="random", size=32, count=128)


def _cfg(**kw) -> TrainConfig:
    base = dict(max_steps=12, batch_size=16, checkpoint_every=6, progress=False, device="cpu")
    return TrainConfig(**(base | kw))


def _weights(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_paper_defaults() -> None:
    t = TrainConfig()
    assert (t.lr, t.beta1, t.beta2, t.batch_size) == (2e-4, 0.5, 0.999, 128)


def test_run_writes_log_grids_and_checkpoints(tmp_path: Path, tiny_cfg: ModelConfig, tiny_images: torch.Tensor) -> None:
    trainer = Trainer(tiny_cfg, _cfg(max_steps=None, epochs=2), SPEC, tiny_images, tmp_path / "run")
    final = trainer.run()
    assert trainer.steps_per_epoch == 8 and trainer.step == 16
    lines = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(1, 17))
    assert {"loss_d", "loss_g", "d_x", "d_g_z1", "d_g_z2", "img_per_s", "epoch"} <= set(lines[0])
    assert lines[-1]["epoch"] == 2 and 0 < lines[0]["d_x"] < 1
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    assert final == run_checkpoints(tmp_path / "run")[-1] and final.name == "step-00000016"
    assert len(run_checkpoints(tmp_path / "run")) == 2  # keep_checkpoints
    b = load_checkpoint(tmp_path / "run", device="cpu")
    assert b.meta["step"] == 16 and b.data == SPEC and b.train["lr"] == 2e-4


def test_training_changes_weights_and_learns(tmp_path: Path, tiny_cfg: ModelConfig, tiny_images: torch.Tensor) -> None:
    trainer = Trainer(tiny_cfg, _cfg(max_steps=40), SPEC, tiny_images, tmp_path / "run")
    before = _weights(trainer.G)
    trainer.run()
    assert any(not torch.equal(before[k], v) for k, v in trainer.G.state_dict().items())
    lines = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert sum(r["d_x"] for r in lines[-10:]) / 10 > 0.5  # D has learned to tell real from fake


def test_same_seed_same_weights_on_cpu(tmp_path: Path, tiny_cfg: ModelConfig, tiny_images: torch.Tensor) -> None:
    a = Trainer(tiny_cfg, _cfg(), SPEC, tiny_images, tmp_path / "a")
    a.run()
    b = Trainer(tiny_cfg, _cfg(), SPEC, tiny_images, tmp_path / "b")
    b.run()
    c = Trainer(tiny_cfg, _cfg(seed=1), SPEC, tiny_images, tmp_path / "c")
    c.run()
    wa, wb, wc = _weights(a.G), _weights(b.G), _weights(c.G)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def _run_helper(run_dir: Path, steps: int, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HELPER), str(run_dir), str(steps), *extra],
                          check=True, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_killed_run_resumes_bit_identical(tmp_path: Path) -> None:
    steps = 300
    _run_helper(tmp_path / "full", steps, "--dump", str(tmp_path / "full.safetensors"))
    proc = subprocess.Popen([sys.executable, str(HELPER), str(tmp_path / "killed"), str(steps)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(run_checkpoints(tmp_path / "killed")) < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = run_checkpoints(tmp_path / "killed")
    assert done and int(done[-1].name.split("-")[1]) < steps  # really killed mid-run
    _run_helper(tmp_path / "killed", steps, "--resume", "--dump", str(tmp_path / "resumed.safetensors"))
    full, resumed = load_file(str(tmp_path / "full.safetensors")), load_file(str(tmp_path / "resumed.safetensors"))
    assert full.keys() == resumed.keys()
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    log_full = [json.loads(x) for x in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    log_res = [json.loads(x) for x in (tmp_path / "killed" / "log.jsonl").read_text().splitlines()]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "img_per_s"} for r in rows]  # noqa: E731
    assert strip(log_full) == strip(log_res)


def test_resume_without_checkpoint_is_a_clear_error(tmp_path: Path, tiny_cfg: ModelConfig, tiny_images: torch.Tensor) -> None:
    from dcgan_viz.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="nothing to resume"):
        Trainer(tiny_cfg, _cfg(), SPEC, tiny_images, tmp_path / "empty", resume=True)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path, tiny_cfg: ModelConfig, tiny_images: torch.Tensor) -> None:
    trainer = Trainer(tiny_cfg, _cfg(max_steps=20, checkpoint_every=5), SPEC, tiny_images, tmp_path / "run")
    real_step = trainer.gan._step

    def poisoned() -> None:
        real_step()
        if trainer.step >= 7:  # step 8 onwards produces NaN
            with torch.no_grad():
                trainer.G.conv1.conv.weight.fill_(float("nan"))
            trainer.gan.metrics[0] = float("nan")

    trainer.gan._step = poisoned
    with pytest.raises(TrainingStopped, match="non-finite loss at step 8"):
        trainer.run()
    b = load_checkpoint(tmp_path / "run", device="cpu")
    assert b.meta["step"] == 5 and torch.isfinite(b.G.conv1.conv.weight).all()


def test_collapse_stops(tmp_path: Path, tiny_cfg: ModelConfig, tiny_images: torch.Tensor) -> None:
    trainer = Trainer(tiny_cfg, _cfg(max_steps=50, collapse_steps=4), SPEC, tiny_images, tmp_path / "run")
    real_step = trainer.gan._step

    def d_wins() -> None:
        real_step()
        trainer.gan.metrics[3] = 1e-6  # D(G(z)) stuck at ~0

    trainer.gan._step = d_wins
    with pytest.raises(TrainingStopped, match="collapse at step 4"):
        trainer.run()


def test_bad_data_is_rejected(tmp_path: Path, tiny_cfg: ModelConfig) -> None:
    with pytest.raises(ValueError, match="model expects 32x32x3"):
        Trainer(tiny_cfg, _cfg(), SPEC, torch.zeros(64, 64, 64, 3, dtype=torch.uint8), tmp_path)
    with pytest.raises(ValueError, match="fewer than one batch"):
        Trainer(tiny_cfg, _cfg(), SPEC, torch.zeros(8, 32, 32, 3, dtype=torch.uint8), tmp_path)
    with pytest.raises(ValueError, match="uint8"):
        Trainer(tiny_cfg, _cfg(), SPEC, torch.zeros(64, 32, 32, 3), tmp_path)


@pytest.mark.slow
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun_two_cpu_processes(args: list[str], env: dict[str, str]) -> None:
    """Run HELPER under torchrun on loopback; a fresh port per try (CI hosts may run jobs side by side)."""
    for attempt in range(3):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(HELPER), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        if proc.returncode == 0:
            return
        busy = "address already in use" in (proc.stdout + proc.stderr).lower()
        if not busy or attempt == 2:
            pytest.fail(f"torchrun exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")


def test_ddp_two_cpu_processes_keep_identical_replicas(tmp_path: Path) -> None:
    env = os.environ | {"CKPT_EVERY": "1000", "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1",
                        "GLOO_SOCKET_IFNAME": os.environ.get("GLOO_SOCKET_IFNAME", "lo")}
    _torchrun_two_cpu_processes([str(tmp_path / "ddp"), "8", "--dump", str(tmp_path / "rankRANK.safetensors")], env)
    r0, r1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    params = [k for k in r0 if "running" not in k and "num_batches" not in k]
    assert all(torch.equal(r0[k], r1[k]) for k in params)
    init = Trainer(ModelConfig(image_size=32, nz=16, ngf=8, ndf=8), _cfg(), SPEC,
                   torch.zeros(128, 32, 32, 3, dtype=torch.uint8), tmp_path / "x")
    assert not torch.equal(init.G.state_dict()["conv1.conv.weight"], r0["G.conv1.conv.weight"])  # they trained


def test_fork_keeps_weights_and_optimiser_and_records_lineage(tmp_path: Path, tiny_cfg: ModelConfig,
                                                              tiny_images: torch.Tensor) -> None:
    """--fork-from: a new run (step 0, its own directory) starts from the parent's weights and Adam
    state with changed settings; run.json and every checkpoint record where it came from."""
    parent = Trainer(tiny_cfg, _cfg(max_steps=6), SPEC, tiny_images, tmp_path / "parent")
    parent_ckpt = parent.run()
    cfg = _cfg(max_steps=4, lr=1e-4, instance_noise=0.1)
    fork = Trainer(tiny_cfg, cfg, SPEC, tiny_images, tmp_path / "fork", fork_from=tmp_path / "parent")
    assert fork.step == 0
    assert all(torch.equal(v, parent.G.state_dict()[k]) for k, v in fork.G.state_dict().items())
    assert all(torch.equal(v, parent.D.state_dict()[k]) for k, v in fork.D.state_dict().items())
    state = fork.opt_d.state_dict()
    parent_state = parent.opt_d.state_dict()
    assert all(torch.equal(state["state"][i]["exp_avg"], parent_state["state"][i]["exp_avg"]) for i in state["state"])
    assert [g["lr"] for g in fork.opt_g.param_groups] == [1e-4]  # the fork's own lr, not the parent's
    fork.run()
    lineage = json.loads((tmp_path / "fork" / "run.json").read_text())["lineage"]
    assert lineage["parent"] == str(parent_ckpt.resolve()) and lineage["parent_step"] == 6
    assert lineage["changed"] == {"lr": [2e-4, 1e-4], "instance_noise": [0.0, 0.1]}  # recipe settings, not run length
    assert lineage["optimizer_state"] == "kept"
    assert load_checkpoint(tmp_path / "fork", device="cpu").meta["lineage"] == lineage
    # resuming the fork keeps its lineage
    resumed = Trainer(tiny_cfg, _cfg(max_steps=6, lr=1e-4, instance_noise=0.1), SPEC, tiny_images, tmp_path / "fork",
                      resume=True)
    resumed.run()
    assert json.loads((tmp_path / "fork" / "run.json").read_text())["lineage"] == lineage


def test_fork_cli_refuses_a_model_change_and_resume_together(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dcgan_viz.cli import app

    runner = CliRunner()
    base = ["train", "--data", "rooms:count=64", "--image-size", "32", "--ngf", "8", "--ndf", "8", "--batch-size", "16",
            "--max-steps", "2", "--no-progress", "--health-every", "0"]
    assert runner.invoke(app, [*base, "--out", str(tmp_path / "p")]).exit_code == 0
    res = runner.invoke(app, ["train", "--fork-from", str(tmp_path / "p"), "--ngf", "16", "--out", str(tmp_path / "f")])
    assert res.exit_code == 2 and "a fork keeps the model" in res.output
    res = runner.invoke(app, ["train", "--fork-from", str(tmp_path / "p"), "--resume", "--out", str(tmp_path / "p")])
    assert res.exit_code == 2 and "give one of them" in res.output
    res = runner.invoke(app, ["train", "--fork-from", str(tmp_path / "p"), "--label-smoothing", "0.1", "--max-steps", "2",
                              "--no-progress", "--out", str(tmp_path / "f")])
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "f" / "run.json").read_text())
    assert info["train"]["label_smoothing"] == 0.1 and info["model"]["ngf"] == 8
    assert info["lineage"]["changed"] == {"label_smoothing": [0.0, 0.1]}
