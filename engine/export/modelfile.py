"""An Ollama Modelfile for the exported adapter: FROM the base GGUF, ADAPTER ours, the chat TEMPLATE of the
model family in Ollama's Go-template syntax, its stop tokens, and the system prompt used in training.

The template must render prompts the way training rendered them, or the adapter sees text it never learned
on. So: a run whose prompts were plain text (no chat template, or plain prompt strings) gets the plain-text
template; chat runs get the family's template (ChatML for Qwen, Llama 3, Gemma, Phi-3, Mistral), which
`tests/test_modelfile.py` renders with a small Go-template interpreter and compares with the Hugging Face
chat template's output. A template can inject a default system prompt (Qwen2.5 does); that is kept as SYSTEM.
Torch-free (reads tokenizer files as JSON/text; jinja2 only to read a default system prompt).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from grpo_studio.engine.common.errors import ExportError
from grpo_studio.engine.common.runs import atomic_write_text


@dataclass(frozen=True)
class Family:
    marker: str  # a string only this family's chat template contains
    template: str
    stops: tuple[str, ...]


# Go templates, written for Ollama's chat endpoint: .System holds the system prompt (the Modelfile's SYSTEM or
# the request's), .Messages the conversation. No BOS token: llama.cpp adds it from the GGUF's own settings.
FAMILIES: dict[str, Family] = {
    "llama3": Family("<|start_header_id|>", (
        "{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
        "{{- range .Messages }}{{ if ne .Role \"system\" }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
        "{{ .Content }}<|eot_id|>{{ end }}{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"),
        ("<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>")),
    "chatml": Family("<|im_start|>", (
        "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
        "{{- range .Messages }}{{ if ne .Role \"system\" }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
        "{{ end }}{{ end }}<|im_start|>assistant\n"),
        ("<|im_start|>", "<|im_end|>")),
    "gemma": Family("<start_of_turn>", (  # no system role: the system prompt opens the first user turn
        "{{- $system := .System }}{{- range .Messages }}"
        "{{ if eq .Role \"user\" }}<start_of_turn>user\n{{ if $system }}{{ $system }}\n\n{{ $system = \"\" }}{{ end }}"
        "{{ .Content }}<end_of_turn>\n"
        "{{ else if eq .Role \"assistant\" }}<start_of_turn>model\n{{ .Content }}<end_of_turn>\n{{ end }}"
        "{{ end }}<start_of_turn>model\n"),
        ("<start_of_turn>", "<end_of_turn>")),
    "phi3": Family("<|assistant|>", (
        "{{- if .System }}<|system|>\n{{ .System }}<|end|>\n{{ end }}"
        "{{- range .Messages }}{{ if ne .Role \"system\" }}<|{{ .Role }}|>\n{{ .Content }}<|end|>\n{{ end }}{{ end }}"
        "<|assistant|>\n"),
        ("<|end|>", "<|user|>", "<|assistant|>", "<|endoftext|>")),
    "mistral": Family("[INST]", (
        "{{- $system := .System }}{{- range .Messages }}"
        "{{ if eq .Role \"user\" }}[INST] {{ if $system }}{{ $system }}\n\n{{ $system = \"\" }}{{ end }}"
        "{{ .Content }}[/INST]"
        "{{ else if eq .Role \"assistant\" }}{{ .Content }}</s>{{ end }}{{ end }}"),
        ("[INST]", "[/INST]")),
    # Training without a chat template sees "system\nquestion" (engine.data.dataset.build_prompt); the same here.
    "plain": Family("", "{{- if .System }}{{ .System }}\n{{ end }}{{ .Prompt }}", ()),
}


def chat_template(folder: Path) -> str | None:
    """The Hugging Face chat template saved with a tokenizer (chat_template.jinja, or tokenizer_config.json)."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    config = _tokenizer_config(folder)
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: the default one
        template = next((t.get("template") for t in template if t.get("name") == "default"), None)
    return template if isinstance(template, str) else None


def _tokenizer_config(folder: Path) -> dict:
    path = folder / "tokenizer_config.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def detect_family(template: str | None) -> str:
    if not template:
        return "plain"
    for name, family in FAMILIES.items():
        if family.marker and family.marker in template:
            return name
    raise ExportError("the base model's chat template is not one this export knows (Llama 3, ChatML, Gemma, "
                      "Phi-3, Mistral)", "write the TEMPLATE line of the Modelfile by hand; the GGUF adapter "
                                         "itself is fine")


def default_system(template: str | None) -> str | None:
    """The system prompt a template adds when the conversation has none (Qwen2.5: 'You are Qwen, ...')."""
    if not template:
        return None
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        text = env.from_string(template).render(messages=[{"role": "user", "content": "\x00"}],
                                                add_generation_prompt=True, bos_token="", eos_token="")
    except Exception:  # noqa: BLE001 - a template needing special globals: no default system to find
        return None
    before = text.split("\x00", 1)[0]
    found = re.search(r"<\|im_start\|>system\n(.*?)<\|im_end\|>", before, re.DOTALL)
    return found.group(1) if found else None


def stop_tokens(family: str, folder: Path) -> list[str]:
    stops = list(FAMILIES[family].stops)
    eos = _tokenizer_config(folder).get("eos_token")
    eos = eos.get("content") if isinstance(eos, dict) else eos
    if isinstance(eos, str) and eos and eos not in stops:
        stops.append(eos)
    return stops


def _quote(text: str) -> str:
    if '"""' in text:
        raise ExportError('the system prompt contains """, which a Modelfile cannot quote',
                          "remove the triple quotes from the system prompt")
    return f'"""{text}"""'


def modelfile_text(base: str, adapter: Path, family: str, stops: list[str], system: str | None) -> str:
    lines = ["# Written by GRPO Studio: the base model, the GRPO-trained LoRA adapter, the chat format of training",
             f"FROM {base}", f"ADAPTER {adapter}", f"TEMPLATE {_quote(FAMILIES[family].template)}"]
    lines += [f"PARAMETER stop {json.dumps(stop)}" for stop in stops]
    if system:
        lines.append(f"SYSTEM {_quote(system)}")
    return "\n".join(lines) + "\n"


def ollama_name(text: str) -> str:
    """A model name Ollama accepts, from a run or adapter folder name."""
    name = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return name or "grpo-studio-model"


def ollama_command(name: str, modelfile: Path) -> str:
    return f"ollama create {name} -f {modelfile}"


def base_gguf_hint(base_name: str, base_folder: Path | None) -> str:
    """Exactly which base file Ollama / llama.cpp need under the adapter."""
    source = base_folder or base_name
    hint = (f"the adapter needs its base model as GGUF: the f16 GGUF of {base_name}, made by llama.cpp's "
            f"`python convert_hf_to_gguf.py {source} --outtype f16 --outfile base-f16.gguf`")
    if base_name.count("/") == 1 and not Path(base_name).exists():
        hint += (f", or the Ollama library model of {base_name} (pass its name, e.g. --ollama qwen2.5:0.5b-instruct,"
                 " when it is the same model)")
    return hint + "; then pass it with --ollama BASE.gguf"


def training_family(folder: Path, config=None) -> str:
    """The family whose template renders prompts as training did. `config` (a TrainConfig, or None for a bare
    adapter) decides whether training used the chat template at all: plain prompt strings stay plain text."""
    template = chat_template(folder)
    if config is not None:
        from grpo_studio.engine.data.dataset import build_prompt

        spec = config.dataset
        row = {spec.question_column or spec.prompt_column: "x"}
        if isinstance(build_prompt(config, row, chat=bool(template)), str):
            return "plain"
    return detect_family(template)


def write_modelfile(path: Path, base: str, adapter: Path, base_folder: Path, config=None) -> Path:
    """Write the Modelfile; `base` is a base GGUF file or an Ollama model name."""
    family = training_family(base_folder, config)
    system = getattr(config, "system_prompt", None)
    if family != "plain" and not system:
        system = default_system(chat_template(base_folder))
    text = modelfile_text(base, adapter.resolve(), family, stop_tokens(family, base_folder), system)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return path
