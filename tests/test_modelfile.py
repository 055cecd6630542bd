"""The Ollama Modelfile: its Go templates render exactly what the Hugging Face chat templates render."""
import re
from pathlib import Path

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from grpo_studio.engine.common.config import DatasetConfig, TrainConfig
from grpo_studio.engine.common.errors import ExportError
from grpo_studio.engine.export.modelfile import (FAMILIES, base_gguf_hint, default_system, detect_family, ollama_command,
                                          ollama_name, write_modelfile)

# The chat formats as the models' Hugging Face templates write them (non-tool paths).
LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>'"
          " + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
          "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
QWEN25 = ("{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + "
          "'<|im_end|>\n' }}{%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a "
          "helpful assistant.<|im_end|>\n' }}{%- endif %}{%- for message in messages %}{%- if message.role != "
          "'system' %}{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}{%- endif %}"
          "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}")
GEMMA = ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first = messages[0]['content'] + '\n\n' %}"
         "{% set loop_messages = messages[1:] %}{% else %}{% set first = '' %}{% set loop_messages = messages %}"
         "{% endif %}{% for message in loop_messages %}{% set role = 'model' if message['role'] == 'assistant' "
         "else message['role'] %}{{ '<start_of_turn>' + role + '\n' + (first if loop.first else '') + "
         "message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}"
         "{{ '<start_of_turn>model\n' }}{% endif %}")


def hf_render(template: str, messages: list[dict], bos: str = "") -> str:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    text = env.from_string(template).render(messages=messages, add_generation_prompt=True, bos_token=bos)
    return text[len(bos):] if bos and text.startswith(bos) else text  # llama.cpp adds BOS itself


# --- a small interpreter for the Go-template subset the Modelfile templates use -----------------------------
_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.DOTALL)


def go_render(template: str, system: str, messages: list[dict], prompt: str = "") -> str:
    tokens, pos = [], 0
    for m in _ACTION.finditer(template):
        tokens.append(("text", template[pos:m.start()]))
        tokens.append(("action", m.group(2), bool(m.group(1)), bool(m.group(3))))
        pos = m.end()
    tokens.append(("text", template[pos:]))
    for i, tok in enumerate(tokens):  # trim markers
        if tok[0] == "action" and tok[2] and tokens[i - 1][0] == "text":
            tokens[i - 1] = ("text", tokens[i - 1][1].rstrip())
        if tok[0] == "action" and tok[3] and tokens[i + 1][0] == "text":
            tokens[i + 1] = ("text", tokens[i + 1][1].lstrip())
    tree, rest = _parse(tokens, 0)
    assert rest == len(tokens)
    out: list[str] = []
    root = {"System": system, "Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages],
            "Prompt": prompt}
    _run(tree, root, root, {}, out)
    return "".join(out)


def _parse(tokens, i, stop=("end",)):
    body = []
    while i < len(tokens):
        tok = tokens[i]
        if tok[0] == "text":
            body.append(("text", tok[1]))
            i += 1
            continue
        words = tok[1]
        if words == "end" or words == "else" or words.startswith("else if "):
            return body, i
        if words.startswith("if "):
            branches, i = [(words[3:], None)], i + 1
            while True:
                part, i = _parse(tokens, i)
                branches[-1] = (branches[-1][0], part)
                word = tokens[i][1]
                i += 1
                if word == "end":
                    break
                branches.append((word[8:] if word.startswith("else if ") else "true", None))
            body.append(("if", branches))
        elif words.startswith("range "):
            part, i = _parse(tokens, i + 1)
            assert tokens[i][1] == "end"
            body.append(("range", words[6:], part))
            i += 1
        else:
            body.append(("expr", words))
            i += 1
    return body, i


def _value(expr, dot, root, vars_):
    parts = re.findall(r'"[^"]*"|\S+', expr)
    if len(parts) == 3 and parts[0] in ("eq", "ne"):
        a, b = (_value(p, dot, root, vars_) for p in parts[1:])
        return (a == b) if parts[0] == "eq" else (a != b)
    (single,) = parts
    if single == "true":
        return True
    if single.startswith('"'):
        return single[1:-1]
    if single.startswith("$."):
        return root[single[2:]]
    if single.startswith("$"):
        return vars_[single]
    return dot[single[1:]]


def _run(nodes, dot, root, vars_, out):
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "if":
            for cond, body in node[1]:
                if _value(cond, dot, root, vars_):
                    _run(body, dot, root, vars_, out)
                    break
        elif node[0] == "range":
            for item in _value(node[1], dot, root, vars_):
                _run(node[2], item, root, vars_, out)
        elif ":=" in node[1] or " = " in node[1]:
            name, expr = re.split(r"\s*:?=\s*", node[1], maxsplit=1)
            vars_[name] = _value(expr, dot, root, vars_)
        else:
            out.append(str(_value(node[1], dot, root, vars_)))


CONVERSATIONS = [
    [{"role": "user", "content": "What is 7+5?"}],
    [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "<answer>4</answer>"},
     {"role": "user", "content": "and 3+3?"}],
]


@pytest.mark.parametrize("family,template,bos", [("llama3", LLAMA3, "<|begin_of_text|>"), ("chatml", QWEN25, ""),
                                                 ("gemma", GEMMA, "<bos>")])
@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_go_template_renders_like_the_hf_chat_template(family, template, bos, messages):
    assert detect_family(template) == family
    go = FAMILIES[family].template
    system = "Think step by step, then answer in <answer></answer>."
    assert go_render(go, system, messages) == hf_render(template, [{"role": "system", "content": system}]
                                                        + messages, bos)
    # no system prompt: Ollama gets the template's own default (Qwen2.5 has one) as SYSTEM
    assert go_render(go, default_system(template) or "", messages) == hf_render(template, messages, bos)


def test_qwen25_default_system_prompt_is_found():
    assert default_system(QWEN25) == "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    assert default_system(LLAMA3) is None


def test_unknown_chat_template_is_refused_with_hint():
    with pytest.raises(ExportError) as info:
        detect_family("{{ messages }}<|weird|>")
    assert "TEMPLATE" in info.value.hint
    assert detect_family(None) == "plain"


def _base_folder(tmp_path: Path, template: str | None, eos: str) -> Path:
    folder = tmp_path / "base"
    folder.mkdir()
    (folder / "tokenizer_config.json").write_text(f'{{"eos_token": "{eos}"}}')
    if template:
        (folder / "chat_template.jinja").write_text(template)
    return folder


def test_write_modelfile_for_a_qwen_chat_run(tmp_path):
    folder = _base_folder(tmp_path, QWEN25, "<|im_end|>")
    config = TrainConfig(system_prompt="Answer in <answer></answer>.",
                         dataset=DatasetConfig(question_column="question"))
    adapter = tmp_path / "exports" / "adapter-f16.gguf"
    path = write_modelfile(tmp_path / "exports" / "Modelfile", "/models/qwen-f16.gguf", adapter, folder, config)
    text = path.read_text()
    assert "FROM /models/qwen-f16.gguf\n" in text
    assert f"ADAPTER {adapter.resolve()}\n" in text
    assert f'TEMPLATE """{FAMILIES["chatml"].template}"""' in text
    assert text.count("PARAMETER stop") == 2 and 'PARAMETER stop "<|im_end|>"' in text
    assert 'SYSTEM """Answer in <answer></answer>."""' in text


def test_write_modelfile_for_a_llama3_run_without_system_prompt(tmp_path):
    folder = _base_folder(tmp_path, LLAMA3, "<|end_of_text|>")
    config = TrainConfig(dataset=DatasetConfig(question_column="question"))
    text = write_modelfile(tmp_path / "Modelfile", "llama3.2:1b", tmp_path / "a.gguf", folder, config).read_text()
    assert f'TEMPLATE """{FAMILIES["llama3"].template}"""' in text
    assert 'PARAMETER stop "<|eot_id|>"' in text and 'PARAMETER stop "<|end_of_text|>"' in text
    assert "SYSTEM" not in text


def test_plain_prompts_get_the_plain_template(tmp_path):
    """A prompt column of plain strings with no system prompt is fed as is in training, template or not."""
    folder = _base_folder(tmp_path, QWEN25, "<|im_end|>")
    text = write_modelfile(tmp_path / "Modelfile", "/b.gguf", tmp_path / "a.gguf", folder, TrainConfig()).read_text()
    assert f'TEMPLATE """{FAMILIES["plain"].template}"""' in text
    assert go_render(FAMILIES["plain"].template, "Be brief.", [], prompt="3+5=") == "Be brief.\n3+5="
    assert go_render(FAMILIES["plain"].template, "", [], prompt="3+5=") == "3+5="


def test_names_command_and_hint():
    assert ollama_name("2026-01-01_120000 Demo!") == "2026-01-01_120000-demo"
    assert ollama_command("demo", Path("/r/exports/Modelfile")) == "ollama create demo -f /r/exports/Modelfile"
    hint = base_gguf_hint("Qwen/Qwen2.5-0.5B-Instruct", Path("/cache/qwen"))
    assert "convert_hf_to_gguf.py /cache/qwen --outtype f16" in hint and "Ollama library" in hint
    assert "--ollama" in base_gguf_hint("/models/mine", Path("/models/mine"))
