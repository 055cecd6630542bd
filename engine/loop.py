"""The GRPO training loop, readable top to bottom.

    setup:  seed → tokenizer → data and rewards (checked before any weights load) → model + LoRA →
            optimizer + LR schedule → newest checkpoint when resuming
    step:   sample prompts → generate G completions each → score rewards → group advantages →
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from grpo_studio.engine import checkpoint as ckpt
from grpo_studio.engine import model as policy_model
from grpo_studio.engine.advantages import group_advantages
from grpo_studio.engine.config import TrainConfig
from grpo_studio.engine.control import Control
from grpo_studio.engine.memory import memory_fields
from grpo_studio.engine.rollout import Rollout, generate
from grpo_studio.engine.runs import RunPaths
from grpo_studio.engine.sampling import SamplingParams
from grpo_studio.kernels import grpo_loss, token_logprobs

Emit = Callable[..., Any]


class PromptSampler:
    """Shuffled passes over the dataset (a fresh permutation per epoch from the seed); its position is
    part of every checkpoint, so a resumed run sees exactly the prompts an uninterrupted one would."""

    def __init__(self, size: int, batch: int, seed: int) -> None:
        self.size, self.batch, self.seed = size, batch, seed
        self.epoch, self.index = 0, 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> list[int]:
        return torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()

    def next(self) -> list[int]:
        picked = []
        while len(picked) < self.batch:
            if self.index == self.size:
                self.epoch, self.index = self.epoch + 1, 0
                self._order = self._permutation(self.epoch)
            take = min(self.batch - len(picked), self.size - self.index)
            picked += self._order[self.index:self.index + take]
            self.index += take
        return picked

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        self._order = self._permutation(self.epoch)


def build_optimizer(params: list[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    o = config.optim
    kwargs = dict(lr=o.learning_rate, betas=(o.adam_beta1, o.adam_beta2), weight_decay=o.weight_decay)
    if o.optimizer == "adamw_8bit":
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(params, **kwargs)
    return torch.optim.AdamW(params, **kwargs)


def lr_factor(step: int, warmup: int, total: int, kind: str) -> float:
    """Hugging Face's schedules: linear warmup from 0, then constant, linear decay to 0, or cosine to 0."""
    if step < warmup:
        return step / max(1, warmup)
    if kind == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if kind == "linear":
        return max(0.0, 1.0 - progress)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class MicroBatch:
    input_ids: torch.Tensor  # [b, P + C] prompt (left-padded) + completion (right-padded), trimmed
    attention_mask: torch.Tensor
    completion_ids: torch.Tensor  # [b, C]
    completion_mask: torch.Tensor  # [b, C]
    advantages: torch.Tensor  # [b]
    weight: float  # share of the whole batch's loss (so micro-batches add up to the full-batch loss)
    old_logps: torch.Tensor | None = None
    ref_logps: torch.Tensor | None = None


class Trainer:
    def __init__(self, config: TrainConfig, paths: RunPaths, emit: Emit, control: Control | None = None) -> None:
        self.config, self.paths, self.emit = config, paths, emit
        self.control = control or Control()
        self.step = 0
        self.total_steps = config.max_steps or 0
        self.last_saved_step = -1

    # ------------------------------------------------------------------------------------------- setup
    def setup(self, resume: bool = False) -> None:
        from grpo_studio.engine.data import load_examples
        from grpo_studio.engine.rewards import load_reward_functions

        config = self.config
        seed_everything(config.seed)
        self.emit("phase", phase="loading_model")
        folder, base_name = policy_model.resolve_model_path(config.model)
        tokenizer = policy_model.load_tokenizer(folder)
        examples, report = load_examples(config, tokenizer)  # the answer column also arrives as `answer`
        self.examples = examples
        self.reward_functions = load_reward_functions(
            config.rewards, max_completion_length=config.grpo.max_completion_length)
        self.emit("log", level="info", message=report.summary())
        for warning in report.warnings:
            self.emit("log", level="warning", message=warning)

        self.policy = policy_model.load_policy(config, folder, base_name, tokenizer)
        policy_model.set_torch_threads(self.policy.model, self.policy.device)
        for note in self.policy.notes:
            self.emit("log", level="info", message=note)
        self.model, self.tokenizer, self.device = self.policy.model, tokenizer, self.policy.device
        self.model.train()
        self.params = policy_model.trainable_parameters(self.model)
        self.optimizer = build_optimizer(self.params, config)
        if not config.max_steps:
            self.total_steps = max(1, math.ceil(config.num_train_epochs * len(examples)
                                                / config.batch.prompts_per_step))
        updates = self.total_steps * config.grpo.num_iterations
        o = config.optim
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, o.warmup_steps, updates, o.lr_scheduler_type))
        self.sampler = PromptSampler(len(examples), config.batch.prompts_per_step, config.seed)
        if resume:
            self._resume()

    def _resume(self) -> None:
        ckpt.remove_partial(self.paths.checkpoints)
        path = ckpt.latest_checkpoint(self.paths.checkpoints)
        if path is None:
            self.emit("log", level="info", message="no complete checkpoint to resume from; starting at step 0")
            return
        state = ckpt.load_checkpoint(path, self.model, self.optimizer, self.scheduler)
        self.sampler.load_state_dict(state["data"])
        self.step = self.last_saved_step = int(state["step"])
        self.emit("log", level="info", message=f"resumed from {path.name}")

    # ------------------------------------------------------------------------------------------- train
    def train(self, on_step: Callable[[int], None] | None = None,
              on_pause: Callable[[bool], None] | None = None) -> str:
        """Run to the last step or a stop request; returns the done reason (finished | stopped).
        Between steps: `on_step(step)` after each, `on_pause(True/False)` around a pause."""
        step_times: list[float] = []
        while self.step < self.total_steps:
            if self.control.paused:
                self.emit("log", level="info", message=f"paused after step {self.step}")
                if on_pause is not None:
                    on_pause(True)
                self.control.wait_while_paused()
                self.emit("log", level="info", message=f"resumed at step {self.step}")
                if on_pause is not None:
                    on_pause(False)
            if self.control.stop_requested:
                if self.last_saved_step != self.step:
                    self.save_checkpoint()
                return "stopped"
            started = time.perf_counter()
            self.step += 1
            tokens = self.train_step()
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
        if self.last_saved_step != self.step:
            self.save_checkpoint()
        return "finished"

    def train_step(self) -> int:
        """One batch of prompts: generate, score, and μ optimizer updates. Returns the tokens processed."""
        config, grpo = self.config, self.config.grpo
        indices = self.sampler.next()
        batch = [self.examples[i] for i in indices]
        G = grpo.num_generations

        self.emit("phase", phase="generating", step=self.step)
        rollout = generate(self.model, self.tokenizer, [e.prompt_ids for e in batch], num_generations=G,
                           max_completion_length=grpo.max_completion_length,
                           sampling=SamplingParams.from_grpo(grpo), backend=grpo.generation_backend,
                           generation_dtype=grpo.generation_dtype,
                           batch_size=config.batch.generation_batch_size, device=self.device)

        self.emit("phase", phase="scoring", step=self.step)
        scores, rewards = self._score(indices, rollout)
        advantages = group_advantages(rewards, G, grpo.scale_rewards).to(self.device)

        self.emit("phase", phase="optimizing", step=self.step)
        micro = self._micro_batches(rollout, advantages)
        if grpo.num_iterations > 1 or grpo.beta > 0:
            self._fixed_logps(micro)
        for _ in range(grpo.num_iterations):
            loss, kl, clip, grad_norm, lr = self._update(micro)

        lengths = rollout.completion_mask.sum(1).float()
        self.emit("metrics", step=self.step, reward=_nanmean(rewards), reward_std=_nanstd(rewards),
                  rewards={name: _stats(values) for name, values in scores.per_function.items()},
                  loss=loss, kl=kl if grpo.beta > 0 else None,  # no reference pass, nothing measured
                  clip_ratio=clip,
                  completion_length={"mean": lengths.mean().item(), "max": int(lengths.max().item())},
                  lr=lr, grad_norm=grad_norm)
        self.emit("memory", step=self.step, **memory_fields(self.device, self.policy.offload))
        every = config.log_samples_every
        if every and self.step % every == 0:
            i = (self.step * 7) % rollout.size  # vary the sample without touching any RNG
            example = batch[i // G]
            self.emit("sample", step=self.step, prompt=example.prompt_text, completion=rollout.texts[i],
                      rewards={name: values[i] for name, values in scores.per_function.items()},
                      reward=scores.total[i])
        return int(rollout.prompt_mask.sum() + rollout.completion_mask.sum())

    # ----------------------------------------------------------------------------------- step pieces
    def _score(self, indices: list[int], rollout: Rollout):
        from grpo_studio.engine.rewards import score_completions

        G = self.config.grpo.num_generations
        batch = [self.examples[i] for i in indices]
        prompts = [e.prompt for e in batch for _ in range(G)]
        chat = not isinstance(batch[0].prompt, str)
        completions = [[{"role": "assistant", "content": t}] for t in rollout.texts] if chat else rollout.texts
        ids = [row[:n].tolist() for row, n in zip(rollout.completion_ids, rollout.completion_mask.sum(1))]
        columns = [self.examples[i].columns for i in indices for _ in range(G)]
        scores = score_completions(self.reward_functions, prompts, completions, ids, columns)
        rewards = torch.tensor([math.nan if r is None else float(r) for r in scores.total], dtype=torch.float32)
        return scores, rewards

    def _micro_batches(self, rollout: Rollout, advantages: torch.Tensor) -> list[MicroBatch]:
        config = self.config
        size, total = config.batch.micro_batch_size, rollout.size
        tokens = rollout.completion_mask.sum().clamp(min=1).item()
        per_token = config.grpo.loss_type in ("dapo", "bnpo")
        out = []
        for start in range(0, total, size):
            rows = slice(start, min(start + size, total))
            p_ids, p_mask = rollout.prompt_ids[rows], rollout.prompt_mask[rows]
            c_ids, c_mask = rollout.completion_ids[rows], rollout.completion_mask[rows]
            first = int(p_mask.any(0).long().argmax())  # drop all-padding columns on either side
            width = max(1, int(c_mask.sum(1).max()))
            p_ids, p_mask, c_ids, c_mask = p_ids[:, first:], p_mask[:, first:], c_ids[:, :width], c_mask[:, :width]
            weight = c_mask.sum().item() / tokens if per_token else (rows.stop - rows.start) / total
            out.append(MicroBatch(torch.cat([p_ids, c_ids], 1), torch.cat([p_mask, c_mask], 1), c_ids, c_mask,
                                  advantages[rows], weight))
        return out

    def _completion_hidden(self, mb: MicroBatch) -> torch.Tensor:
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

    def _update(self, micro: list[MicroBatch]) -> tuple[float, float, float, float, float]:
        """Gradient accumulation over the micro-batches, clip, one optimizer + LR step."""
        grpo, weight = self.config.grpo, policy_model.lm_head_weight(self.model)
        loss_sum = kl_sum = clip_sum = 0.0
        tokens = sum(mb.completion_mask.sum().item() for mb in micro) or 1.0
        for mb in micro:
            out = grpo_loss(self._completion_hidden(mb), weight, mb.completion_ids, mb.completion_mask,
                            mb.advantages, old_logps=mb.old_logps, ref_logps=mb.ref_logps, beta=grpo.beta,
                            epsilon_low=grpo.epsilon_low, epsilon_high=grpo.epsilon_high,
                            loss_type=grpo.loss_type, max_completion_length=grpo.max_completion_length,
                            temperature=grpo.temperature, chunk_size=grpo.chunk_size)
            (out.loss * mb.weight).backward()
            share = mb.completion_mask.sum().item() / tokens
            loss_sum += out.loss.item() * mb.weight
            kl_sum += out.kl.item() * share
            clip_sum += out.clip_ratio.item() * share
        max_norm = self.config.optim.max_grad_norm
        norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm if max_norm > 0 else float("inf"))
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_sum, kl_sum, clip_sum, float(norm), lr

    # ------------------------------------------------------------------------------------------- saving
    def save_checkpoint(self) -> Path:
        self.emit("phase", phase="saving", step=self.step)
        path = ckpt.save_checkpoint(self.paths.checkpoints, self.step, self.model, self.optimizer,
                                    self.scheduler, self.sampler.state_dict(),
                                    {"config_hash": self.config.config_hash()})
        self.last_saved_step = self.step
        self.emit("checkpoint", step=self.step, path=str(path))
        return path

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


# ------------------------------------------------------------------------------------------------ helpers
def _nanmean(x: torch.Tensor) -> float | None:
    value = torch.nanmean(x).item()
    return None if math.isnan(value) else value


def _nanstd(x: torch.Tensor) -> float | None:
    x = x[~torch.isnan(x)]
    return x.std().item() if x.numel() > 1 else (0.0 if x.numel() == 1 else None)


def _stats(values: list) -> dict:
    present = torch.tensor([float(v) for v in values if v is not None], dtype=torch.float32)
    return {"mean": _nanmean(present) if present.numel() else None, "std": _nanstd(present)}
