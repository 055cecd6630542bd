"""Issue 27 finding 12: with learning_rate 1.0 the reward falls, the gradient norm explodes and every completion
hits the length limit; the hint must point at the learning rate, not at max_completion_length or an easy task."""
from grpo_studio.engine.common.signal_hints import signal_hints


def window(grad_norms, rewards):
    signal = {"zero_spread_groups": 0.8, "zero_spread_reward": 0.9, "truncated": 1.0, "entropy": 0.8}
    return [{"type": "metrics", "step": i, "reward": r, "grad_norm": g, "lr": 1.0,
             "completion_length": {"mean": 64, "max": 64}, "signal": dict(signal)}
            for i, (g, r) in enumerate(zip(grad_norms, rewards), 1)]


def test_falling_reward_with_exploding_grad_norm_points_at_the_learning_rate():
    hints = signal_hints(window([0.4, 0.5, 3.0, 40.0, 900.0, 2e4], [0.6, 0.55, 0.4, 0.2, 0.1, 0.05]))
    assert hints[0].key == "diverging"
    assert "learning rate (1) is too high" in hints[0].text and "lower learning_rate" in hints[0].text
    keys = {h.key for h in hints}
    assert "truncated" not in keys and "flat_groups" not in keys  # symptoms, not the cause


def test_steady_grad_norm_keeps_the_usual_hints():
    hints = signal_hints(window([0.4, 0.5, 0.45, 0.5, 0.4, 0.5], [0.6, 0.55, 0.4, 0.2, 0.1, 0.05]))
    keys = {h.key for h in hints}
    assert "diverging" not in keys and "truncated" in keys
