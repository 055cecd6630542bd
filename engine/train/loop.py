"""The GRPO training loop, readable top to bottom.

    setup:  seed → tokenizer → data and rewards (checked before any weights load) → model + LoRA →
            optimizer + LR schedule → newest checkpoint when resuming
    step:   sample prompts → generate G completions each → score rewards [dynamic sampling: drop groups
            with equal rewards, draw fresh prompts] → group advantages [truncated completions masked] →
            [old log-probs when num_iterations > 1] [reference log-probs, adapter off, when beta > 0] →
            micro-batches: hidden states → fused GRPO loss → backward (gradient accumulation) →
            clip → optimizer step → LR step → events

One `step` is one batch of prompts; with num_iterations = μ it makes μ optimizer updates on that batch.
The runner (runner.py) wraps this with the run folder, status and error handling.
"""
from __future__ import annotations

import math
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grpo_studio.engine.checkpoints import checkpoint as ckpt
from grpo_studio.engine.common.config import TrainConfig
from grpo_studio.engine.common.groups import per_completion
from grpo_studio.engine.common.runs import RunPaths
from grpo_studio.engine.evaluate.held_out import Evaluator, build_evaluator
from grpo_studio.engine.model import policy as policy_model
from grpo_studio.engine.rewards.model import RewardModel
from grpo_studio.engine.rewards.scoring import RewardScores, load_reward_functions, score_completions
from grpo_studio.engine.rollout.generation import Rollout, completion_token_ids, generate
from grpo_studio.engine.rollout.sampling import SamplingParams
from grpo_studio.engine.train import loss_control, rank_state, ranks
from grpo_studio.engine.train.advantages import aggregate_advantages
from grpo_studio.engine.train.control import Control
from grpo_studio.engine.train.dynamic_sampling import ScoredBatch, fill_with_signal
from grpo_studio.engine.train.loss_control import (  # tests wrap loop.micro_batch_loss
    SamplerMismatch,
    micro_batch_loss,
)
from grpo_studio.engine.train.memory import memory_fields
from grpo_studio.engine.train.micro_batches import MicroBatch, split_micro_batches
from grpo_studio.engine.train.oom_recovery import OomInjector, StepRecovery
from grpo_studio.engine.train.optim import build_optimizer, lr_factor
from grpo_studio.engine.train.prompt_sampler import PromptSampler
from grpo_studio.engine.train.shared_prefix import completion_hidden_states
from grpo_studio.engine.train.step_metrics import (
    UpdateResult,
    mean_update,
    reward_tensor,
)
from grpo_studio.engine.train.step_report import emit_metrics, emit_sample
from grpo_studio.kernels import token_logprobs
from grpo_studio.kernels.loss.args import normalises_per_token

Emit = Callable[..., Any]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    # Set by setup(), declared (not None): every use after it type-checks; a read before it fails by name.
    tokenizer: Any
    sampler: PromptSampler
    reward_weights: torch.Tensor
    policy: policy_model.PolicyModel
    model: policy_model.PeftModel
    device: torch.device
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR

    def __init__(self, config: TrainConfig, paths: RunPaths, emit: Emit, control: Control | None = None) -> None:
        self.config, self.paths, self.emit = config, paths, emit
        self.control = control or Control()
        self.step = 0
        self.total_steps = config.max_steps or 0
        self.last_saved_step = -1
        self.examples: list = []
        self.reward_functions: list = []
        self.params: list[torch.nn.Parameter] = []
        self.generation_said = ""  # how rollouts are generated (dtype, weight layout), logged when it changes
        self.recovery = StepRecovery(self, paths.config)  # out of memory: halve the batch, redo the step
        self.inject_oom = OomInjector.from_env()  # GRPO_STUDIO_INJECT_OOM, for tests
        self.advantages: torch.Tensor | None = None  # the last optimized batch's, row for row
        self.entropy_control = loss_control.EntropyControl(config.grpo)  # the entropy bonus (adaptive: checkpointed)
        self.evaluator: Evaluator | None = None  # held-out evaluation (eval:), set by setup() when on
        self.share_prompts = not config.gradient_checkpointing  # shared_prefix.py needs a cache under autograd

    # ------------------------------------------------------------------------------------------- setup
    def setup(self, resume: bool = False) -> None:
        from grpo_studio.engine.hub.fetch import fetch_run_inputs

        seed_everything(self.config.seed)
        fetch_run_inputs(self.config, self.emit, lambda: self.control.stop_requested)  # hub ids not yet cached
        self.emit("phase", phase="loading_model")
        folder, base_name = policy_model.resolve_model_path(self.config.model, self.config.gguf_file)
        self.tokenizer = policy_model.load_tokenizer(folder)
        ranks.check_config(self.config)
        self._setup_data()  # before any weights load: a data or reward problem fails fast
        self._setup_model(folder, base_name)
        rank_state.align_ranks(self.params, lambda: seed_everything(self.config.seed + ranks.rank()),
                                      self.emit)
        self._setup_optimizer()
        if resume:
            self._resume()

    def _setup_data(self) -> None:
        from grpo_studio.engine.data.dataset import load_examples

        config = self.config
        # the answer column also arrives as `answer`
        self.examples, report = load_examples(config, self.tokenizer)
        self.reward_functions = load_reward_functions(
            config.rewards, max_completion_length=config.grpo.max_completion_length,
            timeout_s=config.reward_timeout_s)
        self.reward_weights = torch.tensor([rf.weight for rf in self.reward_functions], dtype=torch.float32)
        self.emit("log", level="info", message=report.summary())
        for warning in report.warnings:
            self.emit("log", level="warning", message=warning)
        if not config.max_steps:
            self.total_steps = max(1, math.ceil(config.num_train_epochs * len(self.examples)
                                                / config.batch.prompts_per_step))
        self.sampler = PromptSampler(len(self.examples), config.batch.prompts_per_step, config.seed)
        if ranks.is_main():  # one rank evaluates; its own RNG streams leave training's untouched
            self.evaluator = build_evaluator(config, self.tokenizer, self.reward_functions, self.emit, self.examples)

    def _setup_model(self, folder: Path, base_name: str) -> None:
        self.policy = policy_model.load_policy(self.config, folder, base_name, self.tokenizer)
        policy_model.set_torch_threads(self.policy.model, self.policy.device)
        for note in self.policy.notes:
            self.emit("log", level="info", message=note)
        self.model, self.device = self.policy.model, self.policy.device
        self.model.train()
        self.params = policy_model.trainable_parameters(self.model)
        for rf in self.reward_functions:
            if isinstance(rf.fn, RewardModel):  # reward models run on the training device
                rf.fn.to_device(self.device)

    def _setup_optimizer(self) -> None:
        optim = self.config.optim
        self.optimizer = build_optimizer(self.params, self.config)
        updates = self.total_steps * self.config.grpo.num_iterations
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, optim.warmup_steps, updates, optim.lr_scheduler_type))

    def _resume(self) -> None:
        ckpt.remove_partial(self.paths.checkpoints)
        found = ckpt.load_newest_intact(self.paths.checkpoints, self.model, self.optimizer, self.scheduler,
                                        warn=lambda message: self.emit("log", level="warning", message=message))
        if found is None:
            self.emit("log", level="info", message="no complete checkpoint to resume from; starting at step 0")
            return
        path, state = found
        rank_state.restore_rank_rng(state, path)
        self.sampler.load_state_dict(state["data"])
        self.entropy_control.load_state_dict(state.get("entropy_control"))
        self.step = self.last_saved_step = int(state["step"])
        self.emit("log", level="info", message=f"resumed from {path.name}")

    # ------------------------------------------------------------------------------------------- train
    def train(self, on_step: Callable[[int], None] | None = None,
              on_pause: Callable[[bool], object] | None = None) -> str:
        """Run to the last step or a stop request; returns the done reason (finished | stopped).
        Between steps: `on_step(step)` after each, `on_pause(True/False)` around a pause."""
        step_times: list[float] = []
        if self.evaluator is not None and self.step == 0:  # the adapter starts at zero: the base model
            self.evaluator.evaluate(self.model, 0, self.device)
        while self.step < self.total_steps:
            self.control.sync()  # with several ranks: rank 0's stop / pause / save flags, the same everywhere
            if self.control.paused:
                self.emit("phase", phase="paused", step=self.step)
                self.emit("log", level="info", message=f"paused after step {self.step}")
                if on_pause is not None:
                    on_pause(True)
                self.control.wait_while_paused(on_save=self._save_while_paused)
                self.emit("log", level="info", message=f"resumed at step {self.step}")
                if on_pause is not None:
                    on_pause(False)
            if self.control.stop_requested:
                if self.last_saved_step != self.step:
                    self.save_checkpoint()
                return "stopped"
            started = time.perf_counter()
            self.step += 1
            tokens = self.recovery.run(self.train_step)
            elapsed = time.perf_counter() - started
            step_times = (step_times + [elapsed])[-20:]
            eta = sum(step_times) / len(step_times) * (self.total_steps - self.step)
            self.emit("progress", step=self.step, total_steps=self.total_steps, eta_s=round(eta, 2),
                      tokens_per_s=round(tokens / max(elapsed, 1e-9), 1))
            if on_step is not None:
                on_step(self.step)
            every = self.config.checkpoint_every
            if (every and self.step % every == 0) or self.control.take_save_request():
                self.save_checkpoint()
            if self.evaluator is not None and self.evaluator.due(self.step, self.total_steps):
                self.evaluator.evaluate(self.model, self.step, self.device)
        if self.last_saved_step != self.step:
            self.save_checkpoint()
        return "finished"

    def train_step(self) -> int:
        """One batch of prompts: generate, score, and μ optimizer updates. Returns the tokens processed."""
        config, grpo = self.config, self.config.grpo
        G = grpo.num_generations
        if grpo.dynamic_sampling:
            batch, drawn, resampling = fill_with_signal(self._sample_and_score, config.batch.prompts_per_step, G,
                                                        grpo.max_resample_times, self.tokenizer.pad_token_id)
        else:
            batch, resampling = self._sample_and_score(), None
            drawn = [batch]
        self.emit("phase", phase="optimizing", step=self.step)
        update = self._optimize(batch.rollout, batch.scores)

        emit_metrics(self.emit, self.step, grpo, update, drawn, resampling)
        self.emit("memory", step=self.step, **memory_fields(self.device, self.policy.offload))
        if config.log_samples_every and self.step % config.log_samples_every == 0:
            emit_sample(self.emit, self.step, batch, self.examples, self.advantages, G)
        return int(ranks.all_reduce_sum(
            sum(int(b.rollout.prompt_mask.sum() + b.rollout.completion_mask.sum()) for b in drawn)))

    def _optimize(self, rollout: Rollout, scores: RewardScores) -> UpdateResult:
        """Advantages, micro-batches and the step's num_iterations optimizer updates on one scored batch
        (this rank's share of it; advantages see every rank's rewards)."""
        grpo = self.config.grpo
        table = ranks.gather_rows(self._reward_table(scores))
        advantages = aggregate_advantages(table, self.reward_weights, grpo.num_generations, grpo.scale_rewards,
                                          grpo.multi_objective_aggregation)
        advantages = ranks.shard(advantages).to(self.device)
        self.advantages = advantages.detach().cpu()  # this rank's rows, for the `group` event
        mask = rollout.completion_mask
        if grpo.mask_truncated_completions and rollout.truncated is not None:  # TRL: out of loss and attention
            mask = mask * (~rollout.truncated).to(mask.dtype)[:, None]
        micro = self._micro_batches(rollout, mask, advantages)
        if grpo.num_iterations > 1 or grpo.beta > 0:
            self._fixed_logps(micro)
        return mean_update([self._update(micro, with_entropy=i == 0) for i in range(grpo.num_iterations)])

    # ----------------------------------------------------------------------------------- step pieces
    def _sample_and_score(self) -> ScoredBatch:
        indices = ranks.shard(self.sampler.next())  # every rank draws the same batch, trains its share
        rollout = self._generate(indices)
        self.emit("phase", phase="scoring", step=self.step)
        return ScoredBatch(indices, rollout, self._score(indices, rollout))

    def _generate(self, indices: list[int]) -> Rollout:
        config, grpo = self.config, self.config.grpo
        batch = [self.examples[i] for i in indices]
        G = grpo.num_generations
        self.emit("phase", phase="generating", step=self.step)
        rollout = generate(self.model, self.tokenizer, [e.prompt_ids for e in batch], num_generations=G,
                           max_completion_length=grpo.max_completion_length,
                           sampling=SamplingParams.from_grpo(grpo), backend=grpo.generation_backend,
                           generation_dtype=grpo.generation_dtype,
                           batch_size=config.batch.generation_batch_size, device=self.device)
        self.inject_oom(self.step, "generating")
        if rollout.generation and rollout.generation != self.generation_said:
            self.generation_said = rollout.generation
            self.emit("log", level="info", message=f"rollouts: {rollout.generation}")
        return rollout

    def _score(self, indices: list[int], rollout: Rollout) -> RewardScores:
        examples = per_completion([self.examples[i] for i in indices], self.config.grpo.num_generations)
        prompts, columns = [e.prompt for e in examples], [e.columns for e in examples]
        # score_completions hands chat prompts' completions over as messages (TRL's shape)
        return score_completions(self.reward_functions, prompts, rollout.texts, completion_token_ids(rollout), columns)

    def _reward_table(self, scores: RewardScores) -> torch.Tensor:
        """[N, K] rewards per completion and function, NaN where a function returned None."""
        columns = [reward_tensor(scores.per_function[rf.name]) for rf in self.reward_functions]
        return torch.stack(columns, dim=1)

    def _micro_batches(self, rollout: Rollout, mask: torch.Tensor, advantages: torch.Tensor) -> list[MicroBatch]:
        tokens = ranks.global_token_norm(mask.sum().item())  # the global count, over the world size
        return split_micro_batches(rollout, mask, advantages, self.config.batch.micro_batch_size,
                                   normalises_per_token(self.config.grpo.loss_type), tokens)

    def _completion_hidden(self, mb: MicroBatch) -> torch.Tensor:
        if self.share_prompts:  # each prompt once for its G completions (shared_prefix.py)
            width = mb.completion_ids.shape[1]
            prompt_ids, prompt_mask = mb.input_ids[:, :-width], mb.attention_mask[:, :-width]
            return completion_hidden_states(policy_model.decoder(self.model), prompt_ids, prompt_mask,
                                            mb.completion_ids, mb.attention_mask[:, -width:])
        hidden = policy_model.hidden_states(self.model, mb.input_ids, mb.attention_mask)
        start = mb.input_ids.shape[1] - mb.completion_ids.shape[1] - 1  # the position before each token
        return hidden[:, start:start + mb.completion_ids.shape[1]]

    @torch.no_grad()
    def _fixed_logps(self, micro: list[MicroBatch]) -> None:
        """Log-probs that stay fixed during the step: the sampling policy's (for the ratio when the batch is
        reused) and the reference policy's (the same weights with the adapter off) for the KL term."""
        grpo, weight = self.config.grpo, policy_model.lm_head_weight(self.model)
        for mb in micro:
            if grpo.num_iterations > 1:
                mb.old_logps = token_logprobs(self._completion_hidden(mb), weight, mb.completion_ids,
                                              grpo.temperature, grpo.chunk_size)
            if grpo.beta > 0:
                with policy_model.reference_mode(self.model):
                    mb.ref_logps = token_logprobs(self._completion_hidden(mb), weight, mb.completion_ids,
                                                  grpo.temperature, grpo.chunk_size)

    def _update(self, micro: list[MicroBatch], with_entropy: bool = False) -> UpdateResult:
        """Gradient accumulation over the micro-batches, clip, one optimizer + LR step."""
        grpo, weight = self.config.grpo, policy_model.lm_head_weight(self.model)
        loss_sum = kl_sum = clip_sum = entropy_sum = 0.0
        counted = sum(mb.completion_mask.sum().item() for mb in micro)
        tokens = counted or 1.0
        options, coef, mismatch = loss_control.loss_options(grpo), self.entropy_control.applied(), SamplerMismatch()
        for mb in micro:
            out = micro_batch_loss(self._completion_hidden(mb), weight, mb, grpo,
                                   with_entropy or self.entropy_control.enabled,
                                   loss_control.micro_batch_options(options, coef, len(micro), mb.weight))
            (out.loss * mb.weight).backward()
            self.inject_oom(self.step, "optimizing")  # after real work: partial gradients to throw away
            share = mb.completion_mask.sum().item() / tokens
            self.entropy_control.observe(out)
            mismatch.add(out, share)
            loss_sum += out.loss.item() * mb.weight
            kl_sum += out.kl.item() * share
            clip_sum += out.clip_ratio.item() * share
            if with_entropy and out.entropy is not None:  # with_entropy: the loss measured it
                entropy_sum += out.entropy.item() * share
        ranks.average_gradients(self.params)
        max_norm = self.config.optim.max_grad_norm
        norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm if max_norm > 0 else float("inf"))
        lr = float(self.scheduler.get_last_lr()[0])
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.entropy_control.end_step()
        loss_sum, kl_sum, clip_sum, entropy_sum, counted = rank_state.global_update_metrics(
            loss_sum, kl_sum, clip_sum, entropy_sum, counted)
        entropy = entropy_sum if with_entropy and counted else None  # no token in the loss: nothing measured
        return UpdateResult(loss_sum, kl_sum, clip_sum, float(norm), lr, entropy, *mismatch.means(),
                            coef if self.entropy_control.enabled else None)

    # ------------------------------------------------------------------------------------------- saving
    def save_checkpoint(self) -> Path:
        self.emit("phase", phase="saving", step=self.step)
        rank_rngs = rank_state.rank_checkpoint_state()  # every rank's RNG: resume is exact on each
        path = self.paths.checkpoints / f"step-{self.step}"
        if ranks.is_main():  # rank 0 alone writes
            path = ckpt.save_checkpoint(self.paths.checkpoints, self.step, self.model, self.optimizer,
                                        self.scheduler, self.sampler.state_dict(),
                                        {"config_hash": self.config.config_hash(), "config": self.config.to_dict(),
                                         "entropy_control": self.entropy_control.state_dict(), **rank_rngs})
            ckpt.prune_checkpoints(self.paths.checkpoints, self.config.checkpoint_keep)
        ranks.barrier()  # no rank runs ahead of a checkpoint that may yet fail
        self.last_saved_step = self.step
        self.emit("checkpoint", step=self.step, path=str(path))
        return path

    def _save_while_paused(self) -> None:
        """save_now during a pause: the step is complete, so write it now and stay paused."""
        if self.last_saved_step != self.step:
            self.save_checkpoint()
        else:
            self.emit("log", level="info", message=f"step {self.step} is already saved")
        self.emit("phase", phase="paused", step=self.step)

    def save_adapter(self) -> Path:
        """The final PEFT adapter in adapter/, replaced atomically (written beside it, then renamed)."""
        final = self.paths.adapter
        tmp = final.with_name(".adapter.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(str(tmp))
        old = final.with_name(".adapter.old")
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
        return final
