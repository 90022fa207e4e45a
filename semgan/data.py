"""Paired SEM/layout datasets from a pair folder, with crops, flips and a hold-out split.

The folder's shape (a synth folder or a workspace export) is ``semgan.pairfolder``'s.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from semgan.pairfolder import DatasetError, read_pair_folder

__all__ = ["DatasetError", "PairedDataset", "read_manifest"]  # DatasetError lives in pairfolder

if TYPE_CHECKING:
    from semgan.calibration import CalibrationSet
    from semgan.config import DataConfig

MANIFEST_VERSIONS = (1,)
SPLITS = ("train", "holdout")
# A flatter image (std below one grey level) is only shifted, not blown up into noise.
_MIN_STD = 1.0 / 255.0


def add_row_drift(sem_image: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """SEM image in [0, 1] × (1 + amplitude · d(row)), d a unit-std drift correlated over H/4 rows.

    The slow brightness drift of a scan from row to row (``semsim`` row_drift): a band of darker
    rows across a wide line must not read as the line ending.
    """
    from semgan.semsim.printing import smooth_noise_1d

    drift = smooth_noise_1d(sem_image.shape[0], sem_image.shape[0] / 4.0, rng)  # (H,)
    return np.clip(sem_image * (1.0 + np.float32(amplitude) * drift)[:, None], 0.0, 1.0).astype(np.float32)


def standardize_sem(pixels: np.ndarray, mean: float, std: float) -> np.ndarray:
    """SEM image in [0, 1] → the same image shifted and scaled to ``mean``/``std``, clipped to [0, 1].

    Computed over the whole image (before cropping or tiling), so training crops, tiles and a
    full-image prediction all see the same transform. Brightness and contrast drift of a tool
    cancel out; the structure, and the polarity of the contrast, stay.
    """
    image = np.asarray(pixels, dtype=np.float64)
    spread = max(float(image.std()), _MIN_STD)
    out = (image - float(image.mean())) * (std / spread) + mean
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def read_manifest(data_dir: str | Path) -> dict[str, Any]:
    """``DIR/manifest.json`` of a synth or exported pair folder as a synth-manifest dict."""
    return read_pair_folder(data_dir).synth_view()


def split_items(items: Sequence[dict], holdout_fraction: float, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Split into (train, holdout) by a hash of each item's name: stable when items are added."""
    train, holdout = [], []
    for item in items:
        digest = hashlib.sha256(f"{seed}:{item['name']}".encode()).digest()
        position = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
        (holdout if position < holdout_fraction else train).append(item)
    return train, holdout


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:  # reads the header only
            return image.height, image.width
    except FileNotFoundError:
        raise DatasetError(f"{path}: listed in manifest.json but missing") from None
    except UnidentifiedImageError:
        raise DatasetError(f"{path}: not a readable image") from None


class PairedDataset(Dataset):
    """SEM images in [-1, 1] and layout masks in {-1, 1}, as (1, H, W) float tensors.

    ``data`` (a model's DataConfig) gives the pixel size the folder must have, the crop size
    (``crop_size`` overrides it), flips, hold-out fraction, standardisation and row drift; without
    it the folder is read as it is (no pixel-size check, full images unless ``crop_size``).
    With ``augment`` each access takes a random crop and random flips, seeded by (seed, epoch,
    index) so a run is reproducible whatever the worker count; without it, a centre crop. No 90°
    rotations: the SEM scan direction is physical. Row drift (``add_row_drift``) goes on half the
    augmented images, before standardising (``standardize_sem``, on the full image, before the
    crop); ``calibration`` maps images of a calibrated foreign tool first (``semgan.calibration``).
    """

    def __init__(self, data_dir: str | Path, data: DataConfig | None = None, *, augment: bool = False,
                 split: str | None = None, seed: int = 0, crop_size: int | None = None,
                 calibration: CalibrationSet | None = None) -> None:
        self.data_dir = Path(data_dir)
        folder = read_pair_folder(self.data_dir)
        self.manifest = folder.synth_view()
        self.nm_per_px = folder.nm_per_px
        self.size = folder.size  # None: images of several sizes (an export); crops needed
        if data is not None and not np.isclose(self.nm_per_px, data.nm_per_px, rtol=1e-6):
            raise DatasetError(
                f"{self.data_dir}: data is at {self.nm_per_px} nm/px but the model expects {data.nm_per_px} nm/px; "
                f"regenerate the data at {data.nm_per_px} nm/px (synth --nm-per-px) or set data.nm_per_px")
        if split not in (None, *SPLITS):
            raise DatasetError(f"split must be one of {SPLITS} or None, got {split!r}")
        items = list(self.manifest["items"])
        if split is not None:
            holdout_fraction = data.holdout_fraction if data is not None else 0.0
            train, holdout = split_items(items, holdout_fraction, seed)
            items = train if split == "train" else holdout
            if not items:
                raise DatasetError(f"{self.data_dir}: the {split!r} split is empty "
                                   f"(holdout_fraction {holdout_fraction}, {len(self.manifest['items'])} items)")
        self.items = items
        crop_size = crop_size or (data.crop_size if data is not None else None)
        smallest = self._check_sizes(crop_size)
        if crop_size is not None and crop_size > smallest:
            raise DatasetError(f"crop size {crop_size} is larger than the {smallest} px images in {self.data_dir}")
        self.crop_size = crop_size
        self.augment = augment
        self.seed = seed
        self.flip_horizontal = data.flip_horizontal if data is not None else True
        self.flip_vertical = data.flip_vertical if data is not None else True
        self.standardize = data.sem_standardization() if data is not None else None
        self.calibration = calibration
        row_drift = data.row_drift_augment if data is not None else 0.0
        if not 0.0 <= row_drift <= 0.5:
            raise DatasetError(f"row_drift must be in [0, 0.5], got {row_drift}")
        self.row_drift = row_drift
        self.epoch = 0

    @classmethod
    def for_training(cls, data_dir: str | Path, data: DataConfig, *, seed: int, split: str | None = None,
                     crop_size: int | None = None,
                     calibration: CalibrationSet | None = None) -> PairedDataset:
        """The augmented training view of a folder as ``data`` (a model's DataConfig) describes it."""
        return cls(data_dir, data, augment=True, split=split, seed=seed, crop_size=crop_size,
                   calibration=calibration)

    def _check_sizes(self, crop_size: int | None) -> int:
        """Every listed image exists at its recorded size; returns the smallest side."""
        smallest = None
        for item in self.items:
            shapes = [_image_size(self.data_dir / item[key]) for key in ("sem", "layout")]
            want = (self.size, self.size) if self.size is not None else shapes[0]
            for key, shape in zip(("sem", "layout"), shapes, strict=True):
                if shape != want:
                    raise DatasetError(
                        f"{self.data_dir / item[key]}: image is {shape[1]}×{shape[0]} px but "
                        f"{'the manifest says' if self.size else 'its SEM image is'} "
                        f"{want[1]}×{want[0]}")
            smallest = min(smallest or min(want), min(want))
        if self.size is None and crop_size is None:
            raise DatasetError(f"{self.data_dir}: images of several sizes need a crop size "
                               "(--crop) to be batched")
        return smallest or 0

    def __len__(self) -> int:
        """Number of pairs."""
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Vary the augmentation per epoch."""
        self.epoch = epoch

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Full-size (SEM float32 in [0, 1], layout bool) for item ``index``."""
        from semgan.imageio import load_image

        item = self.items[index]
        sem_image = load_image(self.data_dir / item["sem"]).pixels
        layout_mask = load_image(self.data_dir / item["layout"]).pixels > 0.5
        return sem_image, layout_mask

    def __getitem__(self, index: int) -> dict[str, Any]:
        """``{"sem_image": (1, h, w), "layout_mask": (1, h, w), "index": int}``."""
        sem_image, layout_mask = self.load_pair(index)
        if self.calibration is not None:  # the same per-image rule as the Predictor's
            sem_image, _ = self.calibration.apply(sem_image)
        crop = self.crop_size or self.size
        height, width = sem_image.shape
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            if height == width:  # the draw of every square (synth) folder, kept reproducible
                top, left = rng.integers(0, height - crop + 1, size=2)
            else:
                top, left = rng.integers(0, (height - crop + 1, width - crop + 1))
            flip_h = self.flip_horizontal and rng.random() < 0.5
            flip_v = self.flip_vertical and rng.random() < 0.5
            # Drawn after the crop and flips, so a run without drift keeps its crops.
            if self.row_drift > 0 and rng.random() < 0.5:  # on the full image: drift spans H/4 rows
                sem_image = add_row_drift(sem_image, rng.uniform(0.0, self.row_drift), rng)
        else:
            top, left = (height - crop) // 2, (width - crop) // 2
            flip_h = flip_v = False
        if self.standardize is not None:
            sem_image = standardize_sem(sem_image, *self.standardize)
        sem_image = sem_image[top:top + crop, left:left + crop]
        layout_mask = layout_mask[top:top + crop, left:left + crop]
        if flip_h:
            sem_image, layout_mask = sem_image[:, ::-1], layout_mask[:, ::-1]
        if flip_v:
            sem_image, layout_mask = sem_image[::-1], layout_mask[::-1]
        sem = torch.from_numpy(np.ascontiguousarray(sem_image, dtype=np.float32) * 2 - 1)[None]
        layout = torch.from_numpy(np.where(layout_mask, 1.0, -1.0).astype(np.float32))[None]
        return {"sem_image": sem, "layout_mask": layout, "index": index}

    def recipe(self) -> dict[str, Any]:
        """What the model card records about this data."""
        manifest_bytes = (self.data_dir / "manifest.json").read_bytes()
        return {
            "data_dir": str(self.data_dir.resolve()),
            "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
            "items": len(self.items),
            "nm_per_px": self.nm_per_px,
            "size": self.size,
            **{key: self.manifest[key] for key in ("seed", "profiles", "layouts") if key in self.manifest},
        }


class ConcatPairedDataset(Dataset):
    """Several paired folders as one, e.g. the old training pairs plus new corrected pairs."""

    def __init__(self, datasets: Sequence[PairedDataset]) -> None:
        if not datasets:
            raise DatasetError("ConcatPairedDataset needs at least one dataset")
        first = datasets[0]
        for other in datasets[1:]:
            if not np.isclose(other.nm_per_px, first.nm_per_px, rtol=1e-6):
                raise DatasetError(f"{other.data_dir} is at {other.nm_per_px} nm/px but {first.data_dir} is at "
                                   f"{first.nm_per_px} nm/px; pairs at different pixel sizes cannot be mixed")
            if (other.crop_size or other.size) != (first.crop_size or first.size):
                raise DatasetError(f"{other.data_dir} yields {other.crop_size or other.size} px samples, "
                                   f"{first.data_dir} {first.crop_size or first.size} px; use one crop size")
        self.datasets = list(datasets)
        self.data_dir = first.data_dir
        self.nm_per_px, self.size = first.nm_per_px, first.size
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets])

    def __len__(self) -> int:
        """Total number of pairs."""
        return int(self.offsets[-1])

    def _locate(self, index: int) -> tuple[PairedDataset, int]:
        part = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.datasets[part], index - int(self.offsets[part])

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Item ``index`` of the concatenation (same format as PairedDataset)."""
        dataset, local = self._locate(index)
        return {**dataset[local], "index": index}

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Full-size pair ``index``."""
        dataset, local = self._locate(index)
        return dataset.load_pair(local)

    def set_epoch(self, epoch: int) -> None:
        """Vary every part's augmentation per epoch."""
        for dataset in self.datasets:
            dataset.set_epoch(epoch)

    def recipe(self) -> dict[str, Any]:
        """Each part's recipe."""
        return {"items": len(self), "nm_per_px": self.nm_per_px, "parts": [d.recipe() for d in self.datasets]}


def steps_per_epoch(n_items: int, batch_size: int, world_size: int = 1) -> int:
    """Full batches each rank gets per pass over the data."""
    return (n_items // world_size) // batch_size


def iterate_batches(dataset: PairedDataset | ConcatPairedDataset, batch_size: int, *, seed: int, start_step: int = 0, rank: int = 0,
                    world_size: int = 1, num_workers: int = 0) -> Iterator[dict[str, Any]]:
    """Endless stream of shuffled batches for this rank, starting at global step ``start_step``.

    The order depends only on (seed, epoch), so resuming at step N yields what step N would
    have seen in an uninterrupted run. Each rank gets a disjoint shard (DistributedSampler).
    """
    per_epoch = steps_per_epoch(len(dataset), batch_size, world_size)
    if per_epoch < 1:
        raise DatasetError(f"{dataset.data_dir}: {len(dataset)} pairs are too few for batch size {batch_size}"
                           f" on {world_size} process(es); lower --batch or add data")
    epoch, offset = divmod(start_step, per_epoch)
    while True:
        sampler = DistributedSampler(range(len(dataset)), num_replicas=world_size, rank=rank, shuffle=True,
                                     seed=seed, drop_last=True)
        sampler.set_epoch(epoch)
        order = list(sampler)
        batches = [order[i * batch_size:(i + 1) * batch_size] for i in range(per_epoch)][offset:]
        dataset.set_epoch(epoch)
        # Own generator: a DataLoader otherwise draws its worker seed from the global torch RNG,
        # which would shift the dropout stream of a resumed run.
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        yield from DataLoader(dataset, batch_sampler=batches, num_workers=num_workers, generator=generator)
        epoch, offset = epoch + 1, 0
