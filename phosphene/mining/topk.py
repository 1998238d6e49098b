"""Running top-k / bottom-k of per-image unit statistics, merged batch by batch on the device.

Order is total: by value, then by image index (smaller first), so the result after any sequence of
batches equals sorting the whole dataset once: a resumed run gives exactly the same tables. Memory is
(units, k) per ranking, whatever the dataset size.
"""

from __future__ import annotations

import torch

STATS = ("mean", "max", "min")
DIRECTIONS = ("top", "bottom")


def unit_statistics(acts: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    """Per-image, per-unit statistics of a layer output.

    acts: (N, C, H, W) or (N, C) (treated as 1x1). Returns {stat: (values (N, C) float32, flat
    position (N, C) int64 or None)}: ``mean`` over positions, spatial ``max`` and ``min`` with the
    flat index ``y * W + x`` where they occur.
    """
    if acts.dim() == 2:
        acts = acts[:, :, None, None]
    flat = acts.detach().float().flatten(2)
    max_values, max_pos = flat.max(dim=2)
    min_values, min_pos = flat.min(dim=2)
    return {"mean": (flat.mean(dim=2), None), "max": (max_values, max_pos), "min": (min_values, min_pos)}


class RunningExtremes:
    """The k largest (``largest=True``) or smallest values per unit, with image index and position.

    State: ``values`` (C, k') float32, ``index`` (C, k') int64, ``pos`` (C, k') int64 (-1 for none),
    k' <= k, sorted best first, ties broken by smaller image index.
    """

    def __init__(self, channels: int, k: int, largest: bool, device: str | torch.device = "cpu"):
        self.k, self.largest = k, largest
        self.values = torch.empty(channels, 0, dtype=torch.float32, device=device)
        self.index = torch.empty(channels, 0, dtype=torch.int64, device=device)
        self.pos = torch.empty(channels, 0, dtype=torch.int64, device=device)

    def update(self, values: torch.Tensor, index: torch.Tensor, pos: torch.Tensor | None = None) -> None:
        """Merge a batch: ``values`` (n, C), ``index`` (n,) image indices, ``pos`` (n, C) or None."""
        n, channels = values.shape
        if n == 0:
            return
        index = index.to(self.index.device)
        if pos is None:
            batch_pos = torch.full((channels, n), -1, dtype=torch.int64, device=self.pos.device)
        else:
            batch_pos = pos.T
        all_values = torch.cat([self.values, values.T.float()], dim=1)
        all_index = torch.cat([self.index, index[None].expand(channels, n)], dim=1)
        all_pos = torch.cat([self.pos, batch_pos.to(self.pos)], dim=1)
        order = all_index.argsort(dim=1, stable=True)
        all_values, all_index, all_pos = (t.gather(1, order) for t in (all_values, all_index, all_pos))
        order = all_values.argsort(dim=1, descending=self.largest, stable=True)[:, : self.k]
        self.values, self.index, self.pos = (t.gather(1, order) for t in (all_values, all_index, all_pos))

    def state(self) -> dict[str, torch.Tensor]:
        return {"values": self.values.cpu(), "index": self.index.cpu(), "pos": self.pos.cpu()}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        device = self.values.device
        self.values, self.index, self.pos = (state[n].to(device) for n in ("values", "index", "pos"))


class LayerExtremes:
    """Top-k and bottom-k of every statistic in `STATS` for the C units of one layer."""

    def __init__(self, channels: int, k: int, device: str | torch.device = "cpu"):
        self.channels = channels
        self.rankings = {(s, d): RunningExtremes(channels, k, d == "top", device)
                         for s in STATS for d in DIRECTIONS}

    def update(self, acts: torch.Tensor, index: torch.Tensor) -> None:
        """Merge a batch of activations (n, C, H, W) of the images ``index`` (n,)."""
        for stat, (values, pos) in unit_statistics(acts).items():
            for direction in DIRECTIONS:
                self.rankings[stat, direction].update(values, index, pos)

    def state(self) -> dict[str, dict[str, torch.Tensor]]:
        return {f"{s}/{d}": r.state() for (s, d), r in self.rankings.items()}

    def load(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        for (s, d), ranking in self.rankings.items():
            ranking.load(state[f"{s}/{d}"])
