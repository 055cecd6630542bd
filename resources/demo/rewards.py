"""The demo's format reward, written like any custom reward file (TRL's signature)."""
import re

_ANSWER = re.compile(r"<answer>\d+</answer>")


def answer_format(prompts, completions, completion_ids=None, **columns):
    """A format penalty: 0 for exactly `<answer>digits</answer>`, -0.5 when the tags are there with
    something else around or between them, -1 when a tag is missing."""
    scores = []
    for completion in completions:
        text = completion if isinstance(completion, str) else completion[-1]["content"]
        text = text.strip()
        if _ANSWER.fullmatch(text):
            scores.append(0.0)
        elif "<answer>" in text and "</answer>" in text:
            scores.append(-0.5)
        else:
            scores.append(-1.0)
    return scores
