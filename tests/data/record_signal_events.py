"""Re-record the learning-signal event files the Monitor tests replay (real engine runs, CPU, ~1 min):

    .venv/bin/python tests/data/record_signal_events.py

truncated_events.jsonl: the demo with max_completion_length 3, too short for "<answer>N</answer>" + EOS.
flat_groups_events.jsonl: the demo on the hard split of tests/benchmarks/bench_dynamic_sampling.py at
temperature 0.5, math_correct only, with dynamic sampling: most groups get identical rewards.
"""
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from grpo_studio.engine.common.config import RewardSpec  # noqa: E402
from grpo_studio.engine.common.demo import demo_config  # noqa: E402
from grpo_studio.engine.run.runner import run_engine  # noqa: E402
from script_module import load_script  # noqa: E402


def record(config, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        assert run_engine(config, Path(tmp) / "run", quiet=True) == 0
        shutil.copy(Path(tmp) / "run" / "events.jsonl", HERE / name)


def main() -> None:
    truncated = demo_config(steps=12)
    truncated.rewards = [RewardSpec("math_correct", 1.0)]
    truncated.grpo.max_completion_length = 3
    truncated.checkpoint_every, truncated.log_samples_every, truncated.batch.prompts_per_step = 0, 4, 8
    record(truncated, "truncated_events.jsonl")

    bench = load_script(HERE.parent / "benchmarks" / "bench_dynamic_sampling.py")
    with tempfile.TemporaryDirectory() as tmp:
        args = bench.parse_args([])
        task = bench.hard_split(args, Path(tmp))
        flat = bench.base_config(task, args, seed=0, dynamic=True)
        flat.max_steps, flat.log_samples_every, flat.grpo.temperature = 12, 4, 0.5
        record(flat, "flat_groups_events.jsonl")


if __name__ == "__main__":
    main()
