"""DDP on the CPU: two gloo processes train the tiny preset and must end with identical weights."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from semgan.config import DataConfig
from semgan.data import PairedDataset
from semgan.train.callbacks import Callback
from semgan.train.loop import fit
from tests.support import tiny_config, write_synth_folder


class RecordWeights(Callback):
    """Writes this rank's weight digest and world size when the run ends."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_start(self, run) -> None:
        self.run = run

    def on_end(self, result) -> None:
        digest = hashlib.sha256()
        for name, tensor in sorted(self.run.models.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().numpy().tobytes())
        record = {"sha256": digest.hexdigest(), "world_size": self.run.world_size, "step": result.step,
                  "first_weight": self.run.models.sem_to_layout.final.weight.flatten()[:4].tolist()}
        (self.folder / f"rank{self.run.rank}.json").write_text(json.dumps(record))


def _worker(rank: int, port: int, data_dir: str, out_dir: str, record_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2")
    torch.set_num_threads(1)
    dataset = PairedDataset(data_dir, DataConfig(crop_size=64), augment=True)
    fit(tiny_config(3), dataset, out_dir, [RecordWeights(Path(record_dir))], handle_signals=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_gloo_ranks_end_with_identical_weights(tmp_path: Path) -> None:
    data = write_synth_folder(tmp_path / "data", count=8)
    records = tmp_path / "records"
    records.mkdir()
    mp.spawn(_worker, args=(_free_port(), str(data), str(tmp_path / "model"), str(records)), nprocs=2, join=True)
    rank0, rank1 = (json.loads((records / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0["world_size"] == rank1["world_size"] == 2 and rank0["step"] == rank1["step"] == 3
    assert rank0["sha256"] == rank1["sha256"]
    # Only rank 0 writes the model folder.
    assert json.loads((tmp_path / "model" / "card.json").read_text())["world_size"] == 2
