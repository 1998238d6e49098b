"""Benchmark: a full `phosphene report` of one layer (all its units), time per unit and per stage.

    python benchmarks/bench_report.py RUN --layer _blocks.8 --steps 64 --size 128 [--compare 8]

RUN is a finished mining run holding the layer (`phosphene mine ... --layers _blocks.8`). The site
is built in a temporary folder from scratch. Printed: wall and process CPU seconds of the build, and
the stage table (wall s, CPU s, CPU share per stage, per unit); with ``--compare N``, the
visualization of N units batched (one `render`, wall and CPU s) against one `render` per unit,
measured in the same process (the ratio is the batching speed-up); ``--render-only`` skips the one
per unit, so the batched render is the yardstick of the report's time. Also printed: the peak
resident memory of the render and of each report stage (RSS sampled every 20 ms by a thread; on
Linux), and ``--accent-batch`` sets the seeds per accentuation call.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import phosphene  # noqa: E402
from phosphene import objectives as obj  # noqa: E402
from phosphene.report import ReportSettings, build_report  # noqa: E402
from phosphene.report.build import ReportResult  # noqa: E402


class PeakRSS:
    """The peak resident set size (MB) since the last `reset`, sampled every ``every`` s by a thread
    (reads /proc/self/statm; 0 where there is none)."""

    def __init__(self, every: float = 0.02):
        self.peak, self.every = 0.0, every
        self.page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        threading.Thread(target=self._watch, daemon=True).start()

    def now(self) -> float:
        try:
            with open("/proc/self/statm") as statm:
                return int(statm.read().split()[1]) * self.page / 2**20
        except OSError:
            return 0.0

    def _watch(self) -> None:
        while True:
            self.peak = max(self.peak, self.now())
            time.sleep(self.every)

    def reset(self) -> None:
        self.peak = self.now()


RSS = PeakRSS()
STAGE_PEAKS: dict[str, float] = {}
_timed = ReportResult.timed


@contextlib.contextmanager
def timed_with_memory(self, stage: str):
    """`ReportResult.timed`, also keeping the stage's peak RSS in ``STAGE_PEAKS``."""
    RSS.reset()
    try:
        with _timed(self, stage):
            yield
    finally:
        STAGE_PEAKS[stage] = max(STAGE_PEAKS.get(stage, 0.0), RSS.peak, RSS.now())


ReportResult.timed = timed_with_memory


def compare(model, layer: str, units: list[int], settings: ReportSettings,
            serial: bool = True) -> tuple[float, float]:
    """(seconds batched, seconds one by one) to render ``units`` x ``settings.diverse`` images."""

    def objective(us):
        per = [u for u in us for _ in range(settings.diverse)]
        return obj.channel(layer, per) + settings.diversity * obj.diversity(layer, group=settings.diverse)

    start, cpu = time.perf_counter(), time.process_time()
    RSS.reset()
    phosphene.render(model, objective(units), steps=settings.steps, size=settings.size,
                     batch=len(units) * settings.diverse, progress=False)
    batched = time.perf_counter() - start
    print(f"render alone of {len(units)} units (one batch): {batched:.1f}s wall, "
          f"{time.process_time() - cpu:.1f} CPU s, peak RSS {RSS.peak:.0f} MB", flush=True)
    if not serial:
        return batched, float("nan")
    start = time.perf_counter()
    for unit in units:
        phosphene.render(model, objective([unit]), steps=settings.steps, size=settings.size,
                         batch=settings.diverse, progress=False)
    return batched, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--layer", default="_blocks.8")
    parser.add_argument("--units", type=int, default=None, help="first N units only (default: all)")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--diverse", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--probe", type=int, default=128)
    parser.add_argument("--accent-steps", type=int, default=32)
    parser.add_argument("--accent-crops", type=int, default=4)
    parser.add_argument("--accent-top", type=int, default=ReportSettings.accent_top)
    parser.add_argument("--accent-unrelated", type=int, default=ReportSettings.accent_unrelated)
    parser.add_argument("--accent-batch", type=int, default=ReportSettings.accent_batch,
                        help="seed images per accentuation call")
    parser.add_argument("--compare", type=int, default=0, help="units for the batched vs serial check")
    parser.add_argument("--render-only", action="store_true",
                        help="with --compare: the batched render alone, not one render per unit")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = ReportSettings(steps=args.steps, size=args.size, diverse=args.diverse, batch=args.batch,
                              probe=args.probe, accent_steps=args.accent_steps,
                              accent_crops=args.accent_crops, accent_batch=args.accent_batch,
                              accent_top=args.accent_top, accent_unrelated=args.accent_unrelated)
    model = phosphene.load_model("efficientnet_lite0", device="cpu")
    run = phosphene.mining.open(args.run)
    channels = run.manifest["layer_shapes"][args.layer][0]
    units = list(range(args.units or channels))
    print(f"report of {args.layer}: {len(units)} of {channels} units, {settings}", flush=True)
    if args.compare:
        batched, serial = compare(model, args.layer, units[:args.compare], settings,
                                  serial=not args.render_only)
        print(f"visualize {args.compare} units: batched {batched:.1f}s, one by one {serial:.1f}s, "
              f"x{serial / batched:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), time.process_time()
        result = build_report(args.run, [args.layer], Path(tmp) / "site", units, model=model,
                              settings=settings, progress=True)
        total = time.perf_counter() - start
        cpu = time.process_time() - cpu
    print(f"total {total:.1f}s wall, {cpu:.1f} CPU s for {len(units)} units: {total / len(units):.2f} s/unit")
    print(result.stage_table())
    print("peak RSS per stage (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in STAGE_PEAKS.items() if v))


if __name__ == "__main__":
    main()
