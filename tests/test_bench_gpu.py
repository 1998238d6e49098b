"""benchmarks/bench_gpu.py runs on a CPU at tiny sizes and writes its table as JSON and Markdown."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"


def test_bench_gpu_quick_on_cpu_writes_json_and_markdown(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "table.json"
    record = bench.main(["--device", "cpu", "--quick", "--precisions", "fp32", "--skip-peers",
                         "--skip-report", "--size", "32", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["device"] == "cpu" and saved["size"] == 32
    assert saved["rows"] == json.loads(json.dumps(record["rows"]))
    for row in ("bare fwd+bwd fp32", "render fp32", "accentuate (2 crops)"):
        assert saved["rows"][row]["ms"] > 0
    assert "CUDA only" in saved["rows"]["render compile"]["note"]
    table = out.with_suffix(".md").read_text()
    assert "| render fp32 |" in table and "× bare fp32" in table
