"""Try the model: one prompt answered by the base model (adapter off) and the tuned one (adapter on).

The prompt is rendered the way training rendered it (engine.data.dataset.build_prompt / render_prompt with the run's
system prompt and chat template; plain text as is when training used plain text), the model is loaded the
way training loaded it (dtype, device, 4-bit), and each answer is scored with the run's reward functions.
Tokens are streamed through `emit` as they are decoded: {"type": "token", "side", "text"}, then one
{"type": "answer", "side", "text", "rewards", "reward"} per side, then {"type": "done"}.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from grpo_studio.engine.common.config import TrainConfig, load_config
from grpo_studio.engine.common.errors import StudioError
from grpo_studio.engine.data.dataset import build_prompt, render_prompt
from grpo_studio.engine.export.gguf_adapter import find_adapter, find_base_model, find_run_dir

Emit = Callable[[dict], None]
SIDES = ("base", "tuned")


def run_config(run_dir: Path | None, emit: Emit) -> TrainConfig | None:
    if run_dir is None:
        return None
    try:
        return load_config(run_dir / "config.yaml")
    except StudioError as error:
        emit({"type": "log", "message": f"ignoring the run's config.yaml ({error.message})"})
        return None


def load_model(adapter_dir: Path, config: TrainConfig | None, base_dir: str | Path | None = None):
    """(peft model in eval mode, tokenizer, device), loaded as the run trained."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from grpo_studio.engine.model.policy import load_tokenizer, nf4_config, resolve_device, resolve_dtype

    adapter_config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    base = find_base_model(adapter_config, base_dir)
    device = resolve_device(config.device if config else "auto")
    dtype = resolve_dtype(config.dtype if config else "auto", device)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if config is not None and config.load_in_4bit:
        kwargs["quantization_config"] = nf4_config(dtype)
        kwargs["device_map"] = {"": device.index or 0} if device.type == "cuda" else {"": "cpu"}
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # stdout/stderr carry our own lines only
    model: Any = AutoModelForCausalLM.from_pretrained(str(base.folder), **kwargs)  # .to() typed for a class
    if "quantization_config" not in kwargs:
        model.to(device)
    model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    return model, load_tokenizer(base.folder), device


def render(config: TrainConfig | None, tokenizer, text: str) -> tuple[str | list[dict], str]:
    """(prompt as reward functions see it, the text the model sees)."""
    chat = bool(getattr(tokenizer, "chat_template", None))
    if config is None:
        prompt: str | list[dict] = [{"role": "user", "content": text}] if chat else text
    else:
        spec = config.dataset
        prompt = build_prompt(config, {spec.question_column or spec.prompt_column: text}, chat=chat) or text
    return prompt, render_prompt(prompt, tokenizer)


class _Streamer:
    """Receives token ids from generate() and emits the text decoded so far, piece by piece. Decoding the
    whole answer each time (not token by token) keeps multi-byte characters whole."""

    def __init__(self, tokenizer, on_text: Callable[[str], None]) -> None:
        self.tokenizer, self.on_text = tokenizer, on_text
        self.ids: list[int] = []
        self.sent = ""
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate() first passes the prompt
            self.prompt_seen = True
            return
        self.ids.extend(int(i) for i in value.reshape(-1).tolist())
        self._flush(final=False)

    def end(self) -> None:
        self._flush(final=True)

    def _flush(self, final: bool) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd") and not final:  # half a character: wait for the rest
            return
        if text.startswith(self.sent) and len(text) > len(self.sent):
            self.on_text(text[len(self.sent):])
            self.sent = text


def _eos_ids(model, tokenizer) -> list[int]:
    from grpo_studio.engine.rollout.generation import _eos_ids as rollout_eos_ids  # the same stop tokens as training

    return rollout_eos_ids(model, tokenizer)


@torch.no_grad()
def generate(model, tokenizer, prompt_text: str, device: torch.device, *, max_new_tokens: int,
             temperature: float, top_p: float, seed: int, on_text: Callable[[str], None],
             should_stop: Callable[[], bool] = lambda: False) -> tuple[str, list[int]]:
    """One answer: (text decoded as training decodes completions, its token ids up to and including EOS);
    `should_stop` is asked after every token, so a Stop from the app ends the answer where it is."""
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopWhenAsked(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
            return torch.full((input_ids.shape[0],), should_stop(), dtype=torch.bool, device=input_ids.device)

    ids = tokenizer(prompt_text, add_special_tokens=False, return_tensors="pt").input_ids.to(device)
    eos = _eos_ids(model, tokenizer)
    sampling: dict[str, Any] = {"do_sample": False}
    if temperature > 0:
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0}
    torch.manual_seed(seed)
    streamer = _Streamer(tokenizer, on_text)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                         eos_token_id=eos, pad_token_id=tokenizer.pad_token_id, streamer=streamer,
                         stopping_criteria=StoppingCriteriaList([StopWhenAsked()]), use_cache=True, **sampling)
    completion = out[0, ids.shape[1]:].tolist()
    end = next((i + 1 for i, t in enumerate(completion) if t in eos), len(completion))
    completion = completion[:end]
    return tokenizer.decode(completion, skip_special_tokens=True), completion


def score(functions: list, prompt, text: str, ids: list[int], columns: dict, emit: Emit,
          reported: set[str]) -> tuple[dict[str, float | None], float | None]:
    """Each reward function on its own, so one that cannot score (math_correct without an answer) gives
    null instead of hiding the others; the total is the weighted sum of those that scored. Why a function
    did not score is said once per function (`reported` remembers across the two sides)."""
    from grpo_studio.engine.rewards.scoring import score_completions, weighted_sum

    per_function: dict[str, float | None] = {}
    for fn in functions:
        try:
            value = score_completions([fn], [prompt], [text], [ids], [columns]).per_function[fn.name][0]
        except StudioError as error:
            if fn.name not in reported:
                reported.add(fn.name)
                why = ("no reference answer was given (--answer, or Answer in the app)" if not columns
                       else error.message.splitlines()[0])
                emit({"type": "log", "message": f"{fn.name}: not scored: {why}"})
            value = None
        per_function[fn.name] = value
    return per_function, weighted_sum(list(per_function.values()), [fn.weight for fn in functions])


class ChatSession:
    """A run's model, loaded once as training loaded it, answering prompts with the adapter off and on.
    `chat` uses one for one prompt; `serve` keeps one for as many prompts as the app sends."""

    def __init__(self, path: str | Path, *, emit: Emit, base_dir: str | Path | None = None) -> None:
        adapter_dir = find_adapter(path)
        run_dir = find_run_dir(adapter_dir)
        self.config = run_config(run_dir, emit)
        self.functions: list = []
        if self.config is not None:
            from grpo_studio.engine.rewards.scoring import load_reward_functions

            try:
                self.functions = load_reward_functions(self.config.rewards, base_dir=run_dir,
                                                       max_completion_length=self.config.grpo.max_completion_length)
            except StudioError as error:
                emit({"type": "log", "message": f"answers are not scored: {error.message}"})
        emit({"type": "log", "message": f"loading {adapter_dir}"})
        self.model, self.tokenizer, self.device = load_model(adapter_dir, self.config, base_dir)

    def answer(self, prompt_text: str, *, emit: Emit, max_new_tokens: int | None = None, temperature: float = 0.0,
               answer: str | None = None, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Both sides' answers to `prompt_text`, streamed through `emit`, then {"type": "done"} (with
        "stopped": true when `should_stop` cut it short: the side in progress keeps what it had)."""
        config = self.config
        columns = {}
        if config is not None and answer is not None:
            columns = {"answer": answer, **({config.dataset.answer_column: answer}
                                            if config.dataset.answer_column else {})}
        prompt, text = render(config, self.tokenizer, prompt_text)
        limit = max_new_tokens or (config.grpo.max_completion_length if config else 256)
        options: dict[str, Any] = {"max_new_tokens": limit, "temperature": temperature,
                                   "top_p": config.grpo.top_p if config else 1.0,
                                   "seed": config.seed if config else 0, "should_stop": should_stop}
        reported: set[str] = set()
        for side in SIDES:
            def on_text(piece: str, side: str = side) -> None:
                emit({"type": "token", "side": side, "text": piece})

            if side == "base":
                with self.model.disable_adapter():
                    answer_text, ids = generate(self.model, self.tokenizer, text, self.device, on_text=on_text,
                                                **options)
            else:
                answer_text, ids = generate(self.model, self.tokenizer, text, self.device, on_text=on_text, **options)
            rewards, total = score(self.functions, prompt, answer_text, ids, columns, emit, reported)
            emit({"type": "answer", "side": side, "text": answer_text, "rewards": rewards, "reward": total})
            if should_stop():
                emit({"type": "done", "stopped": True})
                return
        emit({"type": "done"})


def chat(path: str | Path, prompt_text: str, *, emit: Emit, max_new_tokens: int | None = None,
         temperature: float = 0.0, answer: str | None = None, base_dir: str | Path | None = None) -> None:
    """Answer `prompt_text` with the adapter off ("base") and on ("tuned"), streaming through `emit`."""
    session = ChatSession(path, emit=emit, base_dir=base_dir)
    session.answer(prompt_text, emit=emit, max_new_tokens=max_new_tokens, temperature=temperature, answer=answer)
