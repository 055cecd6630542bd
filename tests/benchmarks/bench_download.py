"""Benchmark: GRPO Studio's download (plan with sizes, disk check, byte-progress events) against a plain
`huggingface_hub.snapshot_download` of the same repo, from the tests' stand-in Hub on localhost.

Both fetch the same files into a fresh cache each round; rounds alternate the two contenders so machine
noise hits both alike. Prints JSON: per contender the wall times, median and spread (min..max), median
throughput, and the ratio GRPO Studio / plain (time); plus library versions.

    python tests/benchmarks/bench_download.py                      # 2 x 48 MiB shards, 5 rounds each
    python tests/benchmarks/bench_download.py --shard-mib 256 --shards 4 --repeats 3

Nothing leaves the machine: the server is on 127.0.0.1 and holds the random files in memory.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the stand-in Hub

from stand_in_hub import StandInHub  # noqa: E402

REPO = "bench/Model-0.5B-Instruct"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shards", type=int, default=2, help="weight files")
    p.add_argument("--shard-mib", type=float, default=48, help="size of each weight file (MiB)")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds per contender (>= 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first (imports, connection pools)")
    return p.parse_args(argv)


def repo_files(shards: int, shard_bytes: int) -> dict[str, bytes]:
    names = [f"model-{i + 1:05d}-of-{shards:05d}.safetensors" for i in range(shards)]
    files = {name: os.urandom(shard_bytes) for name in names}
    files["model.safetensors.index.json"] = json.dumps({"weight_map": {str(i): n for i, n in enumerate(names)}}).encode()
    files["config.json"] = b'{"model_type": "llama"}'
    files["tokenizer.json"] = b'{"version": "1.0"}'
    return files


def point_at(hub: StandInHub, home: Path) -> None:
    from huggingface_hub import constants

    constants.ENDPOINT = hub.url
    constants.HUGGINGFACE_CO_URL_TEMPLATE = hub.url + "/{repo_id}/resolve/{revision}/{filename}"
    constants.HF_HUB_CACHE = str(home / "hub")
    constants.HF_HUB_OFFLINE = False
    os.environ.update(HF_ENDPOINT=hub.url, HF_HOME=str(home), HF_HUB_CACHE=str(home / "hub"), HF_HUB_OFFLINE="0")


def grpo_studio_download(home: Path) -> int:
    from grpo_studio.engine.hub.fetch import fetch
    from grpo_studio.engine.common.sources import resolve_name

    events = []
    fetch(resolve_name(REPO), lambda type, **fields: events.append(type))
    assert events.count("progress") >= 1
    return sum(p.stat().st_size for p in (home / "hub").rglob("*") if p.is_file() and not p.is_symlink())


def plain_snapshot_download(home: Path) -> int:
    from huggingface_hub import snapshot_download

    snapshot_download(REPO, cache_dir=str(home / "hub"), tqdm_class=None)
    return sum(p.stat().st_size for p in (home / "hub").rglob("*") if p.is_file() and not p.is_symlink())


CONTENDERS = {"grpo_studio": grpo_studio_download, "snapshot_download": plain_snapshot_download}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.repeats < 3:
        raise SystemExit("--repeats must be at least 3")
    import huggingface_hub

    from grpo_studio import __version__

    shard_bytes = int(args.shard_mib * 2**20)
    files = repo_files(args.shards, shard_bytes)
    total = sum(len(v) for v in files.values())
    hub = StandInHub().start()
    hub.add_repo(REPO, files)
    times: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    scratch = Path(tempfile.mkdtemp(prefix="bench-download-"))
    try:
        for round_index in range(args.warmup + args.repeats):
            order = list(CONTENDERS) if round_index % 2 == 0 else list(reversed(CONTENDERS))
            for name in order:
                home = scratch / f"{name}-{round_index}"
                point_at(hub, home)
                start = time.perf_counter()
                written = CONTENDERS[name](home)
                if round_index >= args.warmup:
                    times[name].append(time.perf_counter() - start)
                assert written >= total, (name, written, total)
                shutil.rmtree(home)
    finally:
        hub.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    result = {"repo_bytes": total, "files": len(files), "repeats": args.repeats, "warmup": args.warmup,
              "contenders": {}}
    for name, values in times.items():
        median = statistics.median(values)
        result["contenders"][name] = {"seconds": [round(v, 4) for v in values], "median_s": round(median, 4),
                                      "min_s": round(min(values), 4), "max_s": round(max(values), 4),
                                      "median_mib_per_s": round(total / 2**20 / median, 1)}
    ours, plain = (result["contenders"][n]["median_s"] for n in ("grpo_studio", "snapshot_download"))
    result["ratio_time_grpo_studio_vs_plain"] = round(ours / plain, 3)
    result["versions"] = {"grpo_studio": __version__, "huggingface_hub": huggingface_hub.__version__,
                          "python": sys.version.split()[0]}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
