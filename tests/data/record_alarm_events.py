"""Re-record the alarm event files tests/test_alarms.py replays (real engine runs of the demo model, CPU):

    .venv/bin/python tests/data/record_alarm_events.py

Each run trains the demo model on 80 of the demo task's 100 sums with a reward that can be gamed:
runaway_events.jsonl: pays for every token up to 40 (max_completion_length 40, beta 0.04): the
    completions grow, loop and drift from the base model.
collapse_events.jsonl: pays for ending early: the completions shrink and the sampling stops exploring.
hacking_events.jsonl: pays for answering with the digit 9, whatever the sum; every 4 steps the run is
    evaluated on the 20 held-out sums (math_correct on one sampled completion each), written as the
    `eval` events of held-out evaluation: {"type": "eval", "step", "reward", "accuracy"}.
healthy_events.jsonl: the demo's own rewards (math_correct + format), evaluated like the one before: it
    learns, and no alarm may go off.
"""
import copy
import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from grpo_studio.engine.train import loop  # noqa: E402
from grpo_studio.engine.common.config import DatasetConfig, RewardSpec  # noqa: E402
from grpo_studio.engine.common.demo import demo_config, demo_task_path  # noqa: E402
from grpo_studio.engine.common.reward_functions import math_correct  # noqa: E402
from grpo_studio.engine.run.runner import run_engine  # noqa: E402

REWARDS = '''
def long(prompts, completions, completion_ids, **kw):
    return [min(len(ids), 40) / 40 for ids in completion_ids]


def short(prompts, completions, **kw):
    return [1 - min(len(c), 12) / 12 for c in completions]


def nine(prompts, completions, **kw):
    return [1.0 if "<answer>9</answer>" in c else 0.0 for c in completions]
'''
EVAL_EVERY = 4


def split_task(folder: Path) -> tuple[Path, Path]:
    rows = [json.loads(line) for line in demo_task_path().read_text().splitlines() if line.strip()]
    train, held_out = folder / "train.jsonl", folder / "held_out.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows[:80]))
    held_out.write_text("".join(json.dumps(r) + "\n" for r in rows[80:]))
    return train, held_out


def with_held_out_eval(held_out: Path):
    """Trainer.train_step, followed every EVAL_EVERY steps by one sampled completion per held-out sum."""
    original = loop.Trainer.train_step

    def train_step(self):
        tokens = original(self)
        if self.step % EVAL_EVERY == 0:
            from grpo_studio.engine.data.dataset import load_examples
            from grpo_studio.engine.rollout.generation import generate
            from grpo_studio.engine.rollout.sampling import SamplingParams

            config = copy.deepcopy(self.config)
            config.dataset.path = str(held_out)
            examples, _ = load_examples(config, self.tokenizer)
            rollout = generate(self.model, self.tokenizer, [e.prompt_ids for e in examples], num_generations=1,
                               max_completion_length=config.grpo.max_completion_length,
                               sampling=SamplingParams.from_grpo(config.grpo), device=self.device)
            scores = math_correct([e.prompt for e in examples], rollout.texts,
                                  answer=[e.columns["answer"] for e in examples])
            accuracy = sum(scores) / len(scores)
            self.emit("eval", step=self.step, reward=accuracy, accuracy=accuracy)
        return tokens

    return train_step


def record(config, name: str, tmp: Path) -> None:
    run = tmp / name
    assert run_engine(config, run, quiet=True) == 0
    shutil.copy(run / "events.jsonl", HERE / name)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rewards = tmp / "gameable.py"
        rewards.write_text(REWARDS)
        train, held_out = split_task(tmp)

        def config(reward: str, steps: int):
            c = demo_config(steps=steps)
            c.dataset = DatasetConfig(path=str(train), prompt_column="prompt", answer_column="answer")
            c.rewards = [RewardSpec(f"{rewards}:{reward}", 1.0)]
            c.checkpoint_every, c.log_samples_every = 0, 5
            return c

        runaway = config("long", 40)
        runaway.grpo.max_completion_length, runaway.grpo.beta = 40, 0.04
        if "--runaway-only" in sys.argv:
            return record(runaway, "runaway_events.jsonl", tmp)
        record(runaway, "runaway_events.jsonl", tmp)
        record(config("short", 40), "collapse_events.jsonl", tmp)
        loop.Trainer.train_step = with_held_out_eval(held_out)
        hacking = config("nine", 40)
        hacking.rewards.append(RewardSpec("math_correct", 0.0))  # weight 0: recorded, not trained on
        record(hacking, "hacking_events.jsonl", tmp)
        healthy = config("nine", 40)
        healthy.rewards = demo_config().rewards
        record(healthy, "healthy_events.jsonl", tmp)


if __name__ == "__main__":
    main()
