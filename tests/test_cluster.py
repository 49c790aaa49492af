"""Beyond one process: two torchrun "nodes" on localhost, and distributed prediction.

Each node is its own ``torchrun --nnodes=2 --nproc_per_node=1`` agent (c10d rendezvous on
127.0.0.1, gloo, one CPU process each), started as a user would on two machines. The worker runs
``tests/_node.py``, which is ``voxelflex`` with checkpoint saves recorded per rank (and, when
asked, a pause after one save so that the test can kill both nodes mid-epoch, or a SIGTERM to
rank 1 at one step).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
import torch

from tests._checkpoints import make_checkpoint
from tests._ranks import predict_rank
from voxelflex.analysis.parts import merge_parts
from voxelflex.analysis.predict import predict, request_digest
from voxelflex.analysis.predictions import read_predictions
from voxelflex.config import load_config
from voxelflex.demo.generate import build_demo_index, generate_demo
from voxelflex.engine.checkpoint import Checkpoint
from voxelflex.errors import InputError
from voxelflex.index import read_index
from voxelflex.sources import build_shards
from voxelflex.sources.shards.manifest import ShardManifest

NODE = Path(__file__).with_name("_node.py")
TRAIN = [
    "model.preset=tiny",
    "loader.batch_size=64",
    "loader.num_workers=0",
    "train.epochs=2",
    "train.threads=1",
    "train.progress=false",
    "train.checkpoint_every_batches=4",
]


@pytest.fixture(scope="module")
def small_index(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster_demo")
    out = root / "index.parquet"
    build_demo_index(generate_demo(root / "demo", n_domains=8, seed=3), out)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(saves: Path, stop_at: str | None = None) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VOXELFLEX_TEST_SAVES": str(saves)}
    env.pop("VOXELFLEX_TEST_STOP_AT", None)
    if stop_at:
        env["VOXELFLEX_TEST_STOP_AT"] = stop_at
    return env


def _start_nodes(args: list[str], env: dict, logs: Path) -> list[subprocess.Popen]:
    """Two torchrun agents, one per "node", each in its own process group."""
    port, rdzv = _free_port(), f"job{time.monotonic_ns()}"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for node in (0, 1):
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
            f"--node_rank={node}", "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}",
            f"--rdzv_id={rdzv}", "--local-addr=127.0.0.1", "--max_restarts=0", str(NODE), *args,
        ]  # fmt: skip
        log = open(logs / f"node{node}.log", "w")  # noqa: SIM115 - closed with the process
        procs.append(
            subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        )
    return procs


def _wait(
    procs: list[subprocess.Popen], logs: Path, timeout: float = 120, returncode: int = 0
) -> None:
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill(procs)
    text = "\n".join(f"--- {p.name}\n{p.read_text()[-2500:]}" for p in sorted(logs.glob("*.log")))
    assert [p.returncode for p in procs] == [returncode] * 2, text


def _kill(procs: list[subprocess.Popen]) -> None:
    """SIGKILL every process of both nodes (agent and worker), as a lost machine would.

    torchrun starts its workers in sessions of their own: killing the agent's process group
    alone would leave them running.
    """
    for p in procs:
        workers = _descendants(p.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for p in procs:
        p.wait(30)


def _descendants(pid: int) -> list[int]:
    """Live descendants of process ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _train_args(index: Path, out: Path, name: str, *extra: str) -> list[str]:
    args = ["train", "--index", str(index), "--output-dir", str(out), "--run-name", name]
    for item in [*TRAIN, *extra]:
        args += ["--set", item]
    return args


def _saves(folder: Path) -> dict[str, list[str]]:
    return {p.name: p.read_text().split("\n")[:-1] for p in sorted(folder.glob("*.txt"))}


def _strip_timing(history):
    return [{k: v for k, v in entry.items() if k != "timing"} for entry in history]


def test_two_nodes_train_once_per_row_save_on_rank_0_stop_on_sigterm_and_resume_exactly(
    small_index, tmp_path
):
    rows = read_index(small_index).table.column("split").to_pylist()
    ref_saves, killed_saves = tmp_path / "saves_ref", tmp_path / "saves_killed"
    ref_saves.mkdir()
    killed_saves.mkdir()
    # An uninterrupted run across two nodes, and beside it the same run whose nodes are both
    # killed mid-epoch 2, right after latest.pt was written (started together: most of each
    # run is process start-up).
    ref = _start_nodes(
        _train_args(small_index, tmp_path, "ref"), _env(ref_saves), tmp_path / "ref_logs"
    )
    args = _train_args(small_index, tmp_path, "killed")
    killed = _start_nodes(args, _env(killed_saves, stop_at="1,4"), tmp_path / "killed_logs")
    deadline = time.monotonic() + 120
    while not (killed_saves / "stopped").exists():
        alive = all(p.poll() is None for p in killed)
        assert time.monotonic() < deadline and alive, _saves(killed_saves)
        time.sleep(0.2)
    _kill(killed)
    latest = Checkpoint.load(tmp_path / "killed" / "models" / "latest.pt")
    assert (latest.meta.epoch, latest.meta.batch) == (1, 4)
    _wait(ref, tmp_path / "ref_logs")

    history = json.loads((tmp_path / "ref" / "training_history.json").read_text())
    # every training row once per epoch across the nodes (the engine also checks duplicates)
    assert [h["train"]["n"] for h in history] == [rows.count("train")] * 2
    assert [h["val"]["n"] for h in history] == [rows.count("val")] * 2
    assert "2 rank(s)" in (tmp_path / "ref" / "logs" / "voxelflex.log").read_text()
    recorded = _saves(ref_saves)
    assert len(recorded) == 1 and next(iter(recorded)).startswith("rank0-")  # rank 0 only
    assert any(" 4 " in line for line in next(iter(recorded.values())))  # mid-epoch saves too

    # Resumed, then SIGTERM (preemption) to rank 1 alone: every rank stops at the same step,
    # rank 0 saves latest.pt there, every rank exits 130. Before, the stop was off under
    # torchrun: the ranks ended without a save, back to latest.pt at (1, 4).
    env = {**_env(killed_saves), "VOXELFLEX_TEST_TERM_AT": "1,5"}
    termed = _start_nodes([*args, "--resume"], env, tmp_path / "termed")
    _wait(termed, tmp_path / "termed", returncode=1)  # torchrun's code for a failed worker
    for node in (0, 1):
        assert "exitcode  : 130" in (tmp_path / "termed" / f"node{node}.log").read_text()
    latest = Checkpoint.load(tmp_path / "killed" / "models" / "latest.pt")
    assert (latest.meta.epoch, latest.meta.batch) == (1, 6)  # the vote read a step later
    assert "interrupted: saved" in (tmp_path / "killed" / "logs" / "voxelflex.log").read_text()

    # Resume on both nodes: the run ends exactly where the uninterrupted one did.
    resumed_procs = _start_nodes([*args, "--resume"], _env(killed_saves), tmp_path / "resumed")
    _wait(resumed_procs, tmp_path / "resumed")
    ref_latest = Checkpoint.load(tmp_path / "ref" / "models" / "latest.pt")
    resumed = Checkpoint.load(tmp_path / "killed" / "models" / "latest.pt")
    assert resumed.meta.global_step == ref_latest.meta.global_step
    for name, tensor in ref_latest.model.items():
        assert torch.equal(tensor, resumed.model[name]), name
    assert _strip_timing(resumed.history) == _strip_timing(ref_latest.history)
    assert all(name.startswith("rank0-") for name in _saves(killed_saves))


def test_distributed_predict_writes_what_one_process_writes(small_index, tmp_path):
    checkpoint = make_checkpoint(tmp_path / "run" / "models" / "best.pt")
    index = read_index(small_index)
    shards = tmp_path / "shards"
    build_shards(index, shards, domains_per_shard=3, progress=False)
    # one domain's record damaged: whichever rank reads it reports it, and rank 0 merges that
    manifest = ShardManifest.load(shards)
    record = manifest.shards[1].records[0]
    path = shards / manifest.shards[1].name
    with tarfile.open(path) as tar:
        offset = tar.getmember(f"{record.key}.vox.zst").offset_data
    data = bytearray(path.read_bytes())
    data[offset + 8] ^= 0xFF
    path.write_bytes(bytes(data))
    sets = [
        "loader.source=shards",
        f"data.shards_dir={shards}",
        "loader.num_workers=0",
        "predict.residues_per_batch=16",
        "train.device=cpu",
    ]
    common = ["--split", "train", "--temperatures", "300:450:50", "--domain", "no_such_domain"]
    table = index.table
    train = sorted(set(table.filter(pc.equal(table["split"], "train"))["domain"].to_pylist()))
    one = predict(
        checkpoint,
        small_index,
        split="train",
        domains=[*train, "no_such_domain"],
        temperatures=[300.0, 350.0, 400.0, 450.0],
        out_path=tmp_path / "one.parquet",
        config=load_config(overrides=sets),
    )
    assert one.n_missing == 2  # the unknown domain and the damaged record
    domains = [a for d in train for a in ("--domain", d)]
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "voxelflex", "predict", "--checkpoint", str(checkpoint), "--index", str(small_index),
        *common, *domains, "--output", str(tmp_path / "two.parquet"),
        *[a for item in sets for a in ("--set", item)],
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("predictions: ") == 1  # rank 0 alone reports
    a, meta_a = read_predictions(one.path)
    b, meta_b = read_predictions(tmp_path / "two.parquet")
    # every row, in index order, bit for bit (NaN targets included)
    assert a.schema == b.schema and a.num_rows == b.num_rows == one.n_rows
    for name in a.column_names:
        x, y = (t[name].to_numpy(zero_copy_only=False) for t in (a, b))
        if x.dtype.kind == "f":
            x, y = x.view(np.uint32), y.view(np.uint32)
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert meta_a == meta_b
    missing = [tmp_path / f"{n}_missing.csv" for n in ("one", "two")]
    assert missing[0].read_text() == missing[1].read_text()
    assert record.domain in missing[1].read_text()
    assert not list(tmp_path.glob(".two.parquet.parts*"))  # parts merged and removed


def test_distributed_predict_refuses_ranks_with_other_worker_counts(small_index, tmp_path):
    """Reproduction: rank 0 with 2 DataLoader workers and rank 1 with none dealt the domains to
    4 and 2 streams: the predictions file held some residues twice and lacked 2 of the 6
    domains, with nothing in the missing report, exit 0."""
    shutil.copy(small_index, tmp_path / "index.parquet")
    make_checkpoint(tmp_path / "ck.pt")
    port = _free_port()
    torch.multiprocessing.spawn(predict_rank, args=(port, str(tmp_path), [2, 0]), nprocs=2)
    results = [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)]
    assert all(r.startswith("1 of 2 ranks have another prediction request") for r in results)
    assert "--workers" in results[0]
    assert not (tmp_path / "two.parquet").exists()
    # the other parts of the request that choose each rank's share are compared too
    ask = ("train", ["b", "a"], [300.0, 350.0], 2)
    assert request_digest(*ask) == request_digest("train", ["a", "b", "a"], [350, 300], 2)
    for i, other in enumerate(("val", ["a"], [300.0], 0)):
        assert request_digest(*ask[:i], other, *ask[i + 1 :]) != request_digest(*ask), other


class _RankOf2:
    """Rank ``rank`` of 2 on a node of its own whose output folder the other node does not see;
    collectives are no-ops, and a broadcast gives rank 1 ``rank0_sent``."""

    enabled, world_size = True, 2

    def __init__(self, rank: int, rank0_sent: object = None) -> None:
        self.rank, self.is_main, self.rank0_sent = rank, rank == 0, rank0_sent

    def barrier(self) -> None:
        pass

    def broadcast(self, obj):
        return obj if self.is_main else self.rank0_sent


def test_a_part_left_by_an_earlier_run_is_never_merged(tmp_path):
    """Reproduction: rank 1's part of an earlier run, killed before rank 0 merged it, was
    merged into the next run's output on a node that did not see the new part (other
    predictions, perhaps of another checkpoint, written with exit 0)."""
    out = tmp_path / "two.parquet"
    stale = (np.array([7]), np.array([300.0], np.float32), np.array([9.0], np.float32), {})
    # the earlier run: rank 1 wrote its part, rank 0 was killed before the merge
    assert merge_parts(_RankOf2(1, "earlier-run"), out, stale) is None
    part = (np.array([1]), np.array([300.0], np.float32), np.array([0.2], np.float32), {})
    with pytest.raises(InputError, match="another rank's predictions are not here"):
        merge_parts(_RankOf2(0), out, part)
