"""Data-parallel GRPO (torch.distributed, gloo on the CPU): the same fixed completions split over 2 ranks
give the same update as one process with all of them, for every loss type and reward scaling."""
import dataclasses
import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from grpo_studio.engine.train import ranks
from grpo_studio.engine.common.demo import demo_config
from grpo_studio.engine.common.errors import ConfigError
from grpo_studio.engine.train.loop import Trainer
from grpo_studio.engine.rewards.scoring import RewardScores
from grpo_studio.engine.rollout.generation import Rollout
from grpo_studio.engine.common.runs import RunPaths

PROMPTS, G = 4, 4
CASES = [dict(loss_type=loss, scale_rewards=scale) for loss in ("grpo", "bnpo", "dr_grpo", "dapo")
         for scale in ("group", "batch")]
# the paths with fixed log-probs, GSPO's sequence ratio and the other aggregation, once each
CASES += [dict(loss_type="dapo", scale_rewards="batch", num_iterations=2, beta=0.05,
               importance_sampling_level="sequence"),
          dict(loss_type="grpo", scale_rewards="group", multi_objective_aggregation="normalize_then_sum")]


def case_config(case: dict):
    config = demo_config(steps=1)
    config.grpo = dataclasses.replace(config.grpo, **case)
    config.batch.prompts_per_step = PROMPTS
    config.batch.micro_batch_size = 3  # micro-batches that cut across groups and ranks
    config.optim.max_grad_norm = 0.0  # compare the raw averaged gradients (clipping would hide a scale error)
    return config


def make_batch(run_dir) -> tuple[Rollout, RewardScores]:
    """Fixed completions of PROMPTS prompts and made-up rewards (a None here and there)."""
    trainer = Trainer(case_config(CASES[0]), RunPaths(Path(run_dir)), lambda *a, **k: None)
    trainer.setup()
    torch.manual_seed(1)
    from grpo_studio.engine.rollout.generation import generate

    rollout = generate(trainer.model, trainer.tokenizer, [e.prompt_ids for e in trainer.examples[:PROMPTS]],
                       num_generations=G, max_completion_length=6)
    rollout.truncated[3] = True  # one masked truncated completion
    rewards = torch.rand(len(trainer.reward_functions), rollout.size, generator=torch.Generator().manual_seed(2))
    per_function = {rf.name: [round(float(v), 3) for v in row] for rf, row in zip(trainer.reward_functions, rewards)}
    first = trainer.reward_functions[0].name
    per_function[first][5] = None
    total = [sum(v for v in values if v is not None) for values in zip(*per_function.values())]
    return rollout, RewardScores(total=total, per_function=per_function)


def rows_of(rollout: Rollout, scores: RewardScores, rank: int, world: int):
    n = rollout.size // world
    rows = slice(rank * n, (rank + 1) * n)
    part = Rollout(rollout.prompt_ids[rows], rollout.prompt_mask[rows], rollout.completion_ids[rows],
                   rollout.completion_mask[rows], rollout.texts[rows], rollout.truncated[rows])
    return part, RewardScores(total=scores.total[rows],
                              per_function={k: v[rows] for k, v in scores.per_function.items()})


def updater(run_dir):
    """One Trainer set up once; `update(case, rollout, scores)` resets its adapter and optimizer, applies the
    case's settings and returns the grads the optimizer saw, the weights after the update and its metrics."""
    trainer = Trainer(case_config(CASES[0]), RunPaths(Path(run_dir)), lambda *a, **k: None)
    trainer.setup()
    start = [p.detach().clone() for p in trainer.params]

    def update(case: dict, rollout: Rollout, scores: RewardScores) -> dict:
        trainer.config = case_config(case)
        generator = torch.Generator().manual_seed(3)
        with torch.no_grad():  # the same non-zero adapter on every rank, so gradients reach every LoRA matrix
            for p, initial in zip(trainer.params, start):
                p.copy_(initial)
            for name, p in trainer.model.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=generator) * 0.05)
        trainer._setup_optimizer()
        seen = []
        step = trainer.optimizer.step

        def recording_step(*args, **kwargs):
            seen.append([p.grad.detach().clone() for p in trainer.params])
            return step(*args, **kwargs)

        trainer.optimizer.step = recording_step
        result = trainer._optimize(rollout, scores)
        return {"grads": seen, "weights": [p.detach().clone() for p in trainer.params], "update": tuple(result)}

    return update


def _rank_main(rank: int, world: int, init_file: str, batch_file: str, out_file: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        rollout, scores = torch.load(batch_file, weights_only=False)
        part = rows_of(rollout, scores, rank, world)
        update = updater(os.path.dirname(out_file))
        results = [update(case, *part) for case in CASES]
        if rank == 0:
            torch.save(results, out_file)
    finally:
        torch.distributed.destroy_process_group()


def test_two_ranks_give_the_single_process_update(tmp_path):
    rollout, scores = make_batch(tmp_path / "make")
    torch.save((rollout, scores), tmp_path / "batch.pt")
    mp.spawn(_rank_main, args=(2, str(tmp_path / "init"), str(tmp_path / "batch.pt"), str(tmp_path / "two.pt")),
             nprocs=2, join=True)
    two = torch.load(tmp_path / "two.pt", weights_only=False)
    update = updater(tmp_path / "one")
    for case, split in zip(CASES, two):
        single = update(case, rollout, scores)
        assert len(single["grads"]) == len(split["grads"]) == case.get("num_iterations", 1)
        for grads_1, grads_2 in zip(single["grads"], split["grads"]):
            assert max((a - b).abs().max().item() for a, b in zip(grads_1, grads_2)) <= 1e-6, case
            assert sum(g.abs().sum().item() for g in grads_1) > 0, case
        # Adam divides by sqrt(v): after a second update, rounding-level gradient differences on components
        # with near-zero gradients become visible; one update is held to the same 1e-6
        tolerance = 1e-6 if case.get("num_iterations", 1) == 1 else 1e-5
        assert max((a - b).abs().max().item() for a, b in zip(single["weights"], split["weights"])) <= tolerance, case
        for name, a, b in zip(("loss", "kl", "clip_ratio", "grad_norm", "lr", "entropy"), single["update"],
                              split["update"]):
            assert a == pytest.approx(b, rel=1e-5, abs=1e-6), (case, name)


def test_prompts_per_step_must_split_over_the_ranks():
    ranks.check_divisible(8, 2)
    with pytest.raises(ConfigError) as error:
        ranks.check_divisible(10, 4)
    assert "8 or 12" in error.value.hint and "10" in error.value.message
    with pytest.raises(ConfigError) as error:
        ranks.check_divisible(3, 4)
    assert "e.g. 4" in error.value.hint


def test_helpers_are_no_ops_in_one_process():
    x = torch.arange(6.0).view(3, 2)
    assert ranks.world_size() == 1 and ranks.is_main()
    assert ranks.gather_rows(x) is x and ranks.shard([1, 2, 3]) == [1, 2, 3]
    assert ranks.global_token_norm(0.0) == 1.0 and ranks.all_reduce_sum(2.5) == 2.5


def test_estimate_is_per_gpu():
    from grpo_studio.engine.common.config import TrainConfig
    from grpo_studio.engine.common.estimate import estimate_run, format_table
    from grpo_studio.engine.common.model_configs import load_model_config

    model = load_model_config("meta-llama/Llama-3.1-8B")
    one, four = TrainConfig(), TrainConfig(gpus=4)
    one.batch.prompts_per_step = four.batch.prompts_per_step = 8
    single = estimate_run(one, model, gpu=None)
    split = estimate_run(four, model, gpu=None)
    assert split["settings"]["prompts_per_step"] == 2 and split["settings"]["gpus"] == 4
    assert split["plans"]["grpo_studio"]["total"] < single["plans"]["grpo_studio"]["total"]
    quarter = TrainConfig()
    quarter.batch.prompts_per_step = 2
    assert split["plans"] == estimate_run(quarter, model, gpu=None)["plans"]  # one GPU's share, exactly
    assert "per GPU of 4" in format_table(split)


def _control_main(rank: int, world: int, init_file: str, out_file: str) -> None:
    from grpo_studio.engine.train.control import Control
    from grpo_studio.engine.distributed.control import SharedControl

    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        local = Control()
        shared = SharedControl(local)
        seen = []
        for boundary, command in enumerate(["save_now", None, "pause", "resume", "stop"]):
            if rank == 0 and command:
                local.handle(command)  # only rank 0's socket hears the command
            shared.sync()
            seen.append((boundary, shared.paused, shared.take_save_request(), shared.take_save_request(),
                         shared.stop_requested))
        torch.distributed.barrier()
        torch.save(seen, f"{out_file}.{rank}")
    finally:
        torch.distributed.destroy_process_group()


def test_control_flags_reach_every_rank_at_the_same_boundary(tmp_path):
    mp.spawn(_control_main, args=(2, str(tmp_path / "init"), str(tmp_path / "seen")), nprocs=2, join=True)
    rank0, rank1 = (torch.load(tmp_path / f"seen.{r}") for r in (0, 1))
    assert rank0 == rank1
    assert rank0 == [(0, False, True, False, False), (1, False, False, False, False), (2, True, False, False, False),
                     (3, False, False, False, False), (4, False, False, False, True)]
