"""A sequence-classification model as a reward: config shorthand, scores equal to the model's own first
logit whatever the batch size, a training step with one, and its memory in the estimate."""
import pytest
import torch
import transformers

from grpo_studio.engine.common.config import config_from_dict
from grpo_studio.engine.common.demo import demo_config
from grpo_studio.engine.common.errors import ConfigError
from grpo_studio.engine.common.estimate import estimate_run, format_table
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.common.reward_model_memory import memory_bytes
from grpo_studio.engine.rewards.model import RewardModel
from grpo_studio.engine.rewards.scoring import load_reward_functions, score_completions
from grpo_studio.engine.run.runner import run_engine
from grpo_studio.engine.common.runs import RunPaths
from tiny_models import build_tokenizer


@pytest.fixture(scope="module")
def reward_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("reward-model")
    tokenizer = build_tokenizer(path)
    config = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      num_labels=1, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    transformers.LlamaForSequenceClassification(config).save_pretrained(str(path))
    return path


def test_config_names_a_reward_model_by_itself(reward_model_dir):
    config = config_from_dict({"rewards": ["math_correct", {"model": str(reward_model_dir), "weight": 0.5}]})
    spec = config.rewards[1]
    assert (spec.model, spec.weight, spec.load_in_4bit) == (str(reward_model_dir), 0.5, False)
    functions = load_reward_functions(config.rewards)
    assert [f.name for f in functions] == ["math_correct", f"model:{reward_model_dir}"]
    assert isinstance(functions[1].fn, RewardModel) and functions[1].fn.model is None  # loads when first used


def test_scores_are_the_models_first_logit_in_any_batch_size(reward_model_dir):
    prompts = ["2+2=", [{"role": "user", "content": "What is 3+5?"}], "a longer prompt here:"]
    completions = ["4", "8, I think", "nothing much at all"]
    small = RewardModel(str(reward_model_dir), batch_size=2)
    scores = small(prompts, completions)
    one_by_one = RewardModel(str(reward_model_dir), batch_size=1)(prompts, completions)
    assert scores == pytest.approx(one_by_one, abs=1e-5)  # padding never changes a score
    model = transformers.AutoModelForSequenceClassification.from_pretrained(reward_model_dir)
    tokenizer = transformers.AutoTokenizer.from_pretrained(reward_model_dir)
    texts = small.texts(prompts, completions)
    assert texts[0] == "2+2=4"  # a text prompt: prompt + completion
    assert texts[1] == tokenizer.apply_chat_template([*prompts[1], {"role": "assistant", "content": completions[1]}],
                                                     tokenize=False)  # a chat prompt: the model's own template
    with torch.no_grad():
        direct = [model(**tokenizer(t, return_tensors="pt")).logits[0, 0].item() for t in texts]
    assert scores == pytest.approx(direct, abs=1e-5)
    assert len(set(round(s, 6) for s in scores)) == 3  # a real model: different texts, different scores


def test_four_bit_needs_cuda(reward_model_dir):
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        RewardModel(str(reward_model_dir), load_in_4bit=True).to_device(torch.device("cpu"))


def test_a_training_step_with_a_reward_model(reward_model_dir, tmp_path):
    config = demo_config(steps=2)
    data = config.to_dict()
    data["rewards"] = [{"name": "math_correct"}, {"model": str(reward_model_dir), "weight": 0.5}]
    data["batch"]["prompts_per_step"] = 2
    config = config_from_dict(data)
    assert run_engine(config, tmp_path / "run", quiet=True) == 0
    metrics = [e for e in read_events(RunPaths(tmp_path / "run").events) if e["type"] == "metrics"]
    name = f"model:{reward_model_dir}"
    assert [m["step"] for m in metrics] == [1, 2]
    assert all(m["rewards"][name]["std"] > 0 for m in metrics)  # scored every completion, not a constant
    out = score_completions(load_reward_functions(config.rewards), ["1+1="], ["2"], [[1]], [{"answer": "2"}])
    assert out.per_function["math_correct"] == [1.0] and isinstance(out.per_function[name][0], float)


def test_the_estimate_counts_the_reward_model(reward_model_dir):
    plain = demo_config()
    with_model = config_from_dict({**plain.to_dict(), "rewards": [{"name": "math_correct"},
                                                                  {"model": str(reward_model_dir)}]})
    base = estimate_run(plain, gpu=None)
    more = estimate_run(with_model, gpu=None)
    extra = more["plans"]["grpo_studio"]["components"]["reward_models"]
    assert base["plans"]["grpo_studio"]["components"]["reward_models"] == 0 < extra
    assert more["plans"]["grpo_studio"]["total"] == base["plans"]["grpo_studio"]["total"] + extra
    assert more["plans"]["naive"]["total"] == base["plans"]["naive"]["total"] + extra
    assert any(line.startswith("reward models") for line in format_table(more).splitlines())
    # its weights dominate: the 16-bit figure is about 3.6x the 4-bit one for the decoder projections
    essentials = {"hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32, "head_dim": 128,
                  "num_key_value_heads": 8, "num_hidden_layers": 32, "vocab_size": 128256}
    full, four_bit = memory_bytes(essentials, False, 2, 1024), memory_bytes(essentials, True, 2, 1024)
    assert 14e9 < full < 17e9 and 4e9 < four_bit < 6e9
