"""A sequence-classification model as a reward function (`rewards: [{model: ID-or-folder, weight: 1.0}]`).

The model scores prompt + completion (rendered with its own chat template for chat prompts, as reward
models are trained) and its first logit is the reward, as TRL uses reward models. It runs batched on the
training device (`to_device`, called by the trainer once the policy is placed), without gradients, in the
policy's compute dtype or in 4-bit NF4 (`load_in_4bit: true`, CUDA). Torch and transformers are imported
only when the model loads, so configs that name one stay readable torch-free; its batch, its length cut
and the estimator's figure for its memory live in engine/common/reward_model_memory.py.
"""
from __future__ import annotations

from typing import Any

from grpo_studio.engine.common.reward_model_memory import BATCH_SIZE, MAX_LENGTH


class RewardModel:
    def __init__(self, model: str, load_in_4bit: bool = False, batch_size: int = BATCH_SIZE) -> None:
        self.model_name, self.load_in_4bit, self.batch_size = model, load_in_4bit, batch_size
        self.__name__ = f"model:{model}"
        self.__doc__ = f"Score of the reward model {model} (its first logit) for prompt + completion."
        self.device: Any = None
        self.model: Any = None
        self.tokenizer: Any = None

    def to_device(self, device: Any) -> None:
        """Load onto `device` now (the trainer calls this after placing the policy)."""
        self.device = device
        self._load()

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from grpo_studio.engine.common.errors import ConfigError
        from grpo_studio.engine.model.policy import resolve_model_path

        device = torch.device(self.device or "cpu")
        folder, _ = resolve_model_path(self.model_name)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        tokenizer.padding_side = "right"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        kwargs: dict[str, Any] = {}
        if self.load_in_4bit:
            if device.type != "cuda":
                raise ConfigError(f"rewards: the reward model {self.model_name} is set to load_in_4bit, which "
                                  "needs a CUDA GPU", "set load_in_4bit: false for this reward model")
            from grpo_studio.engine.model.policy import nf4_config  # the policy's NF4 layout: one size to estimate

            kwargs = {"quantization_config": nf4_config(torch.bfloat16), "device_map": {"": device}}
        elif device.type == "cuda":
            kwargs = {"dtype": torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16}
        try:
            model = AutoModelForSequenceClassification.from_pretrained(folder, **kwargs)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"rewards: {self.model_name} does not load as a sequence-classification model: "
                              f"{exc}", "give a reward model (…ForSequenceClassification) id or folder") from exc
        if not self.load_in_4bit:
            model.to(device)
        model.config.pad_token_id = tokenizer.pad_token_id
        self.model, self.tokenizer, self.device = model.eval(), tokenizer, device

    def texts(self, prompts: list, completions: list) -> list[str]:
        """What the reward model reads: the conversation in its chat template, or prompt + completion."""
        from grpo_studio.engine.common.reward_functions import completion_text

        out = []
        for prompt, completion in zip(prompts, completions):
            reply = completion_text(completion)
            if isinstance(prompt, list) and getattr(self.tokenizer, "chat_template", None):
                out.append(self.tokenizer.apply_chat_template(
                    [*prompt, {"role": "assistant", "content": reply}], tokenize=False))
            elif isinstance(prompt, list):
                out.append("\n".join(str(m.get("content", "")) for m in prompt) + "\n" + reply)
            else:
                out.append(str(prompt) + reply)
        return out

    def __call__(self, prompts: list, completions: list, completion_ids: list | None = None,
                 **kwargs: Any) -> list[float]:
        import torch

        if self.model is None:
            self._load()
        texts, scores = self.texts(prompts, completions), []
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                                       truncation=True, max_length=MAX_LENGTH).to(self.device)
                scores += self.model(**batch).logits[:, 0].float().tolist()
        return scores

