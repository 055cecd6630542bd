"""The Monitor's "Learning signal" card: what the recent steps' reward tables say about whether the run can
learn, and what to change, in words. The advice itself is engine/common/signal_hints.py, and the alarms for
reward hacking and collapse engine/common/alarms.py (the terminal prints the same texts); this module folds
events into them and shows the result, alarms first."""
from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtWidgets import QFrame, QScrollArea, QSizePolicy, QWidget

from grpo_studio.engine.common.alarms import ALARM_KEYS, Alarms
from grpo_studio.engine.common.event_types import Metrics, event_as
from grpo_studio.engine.common.signal_hints import MIN_STEPS, WINDOW, Hint, signal_hints
from grpo_studio.gui import theme
from grpo_studio.gui.widgets import Card, fmt_number, label

WAITING = f"Measured on every step once {MIN_STEPS} steps are in."
ADVICE_LINES = 6  # the most lines of advice shown at once; more scroll
NO_SIGNAL = "This run's engine did not record the learning signal (a run from an older version)."


def card_text(hints: Sequence[Hint]) -> str:
    """The card's body: one paragraph per hint (rich text), or that nothing stands in the way."""
    if not hints:
        return "No problem in sight: the groups' rewards differ, completions end, every reward applies."
    warn = theme.current().warn
    return "".join(f"<p><b style='color: {warn}'>⚠ Alarm:</b> {_escape(h.text)}</p>" if h.key in ALARM_KEYS
                   else f"<p>• {_escape(h.text)}</p>" for h in hints)


def summary_line(metrics: Sequence[Metrics]) -> str:
    """The measured shares of the last step, for the card's caption."""
    signal = next((m["signal"] for m in reversed(metrics) if isinstance(m.get("signal"), dict)), None)
    if signal is None:
        return NO_SIGNAL if metrics else WAITING
    parts = [f"identical-reward groups {_percent(signal.get('zero_spread_groups'))}",
             f"cut off {_percent(signal.get('truncated'))}",
             f"token entropy {fmt_number(signal.get('entropy'), 3)}"]
    if isinstance(signal.get("repeated_ngrams"), (int, float)):
        parts.append(f"repeated 4-grams {_percent(signal['repeated_ngrams'])}")
    if isinstance(signal.get("sampler_kl"), (int, float)):  # bf16 sampling: the mismatch the loss corrects
        parts.append(f"sampler mismatch KL {signal['sampler_kl']:.2g}, capped {_percent(signal.get('sampler_capped'))}")
    if isinstance(signal.get("entropy_coef"), (int, float)):
        parts.append(f"entropy bonus {fmt_number(signal['entropy_coef'], 3)}")
    resampling = signal.get("dynamic_sampling")
    if isinstance(resampling, dict):
        parts.append(f"resampled rounds {resampling.get('rounds', 0)}")
    return "Last step: " + " · ".join(parts)


def _percent(value: object) -> str:
    return f"{value:.0%}" if isinstance(value, (int, float)) else "–"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class LearningSignalCard(Card):
    """Fed the same events as the Monitor (`apply`); `refresh` redraws from the last WINDOW steps."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Learning signal", parent=parent)
        self.caption = label(WAITING, "Muted", wrap=True)
        self.advice = label("", wrap=True)
        self.body.addWidget(self.caption)
        # several alarms and hints scroll within ADVICE_LINES lines, so the Samples and Charts below keep room
        self.advice_area = QScrollArea()
        self.advice_area.setWidgetResizable(True)
        self.advice_area.setFrameShape(QFrame.Shape.NoFrame)
        self.advice_area.setWidget(self.advice)
        self.advice.ensurePolished()  # the theme's font, to measure lines with
        self.advice_area.setMaximumHeight(ADVICE_LINES * self.advice.fontMetrics().lineSpacing())
        self.advice_area.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.body.addWidget(self.advice_area)
        self.clear()

    def clear(self) -> None:
        self.metrics: list[Metrics] = []
        self.hints: list[Hint] = []
        self.alarms = Alarms()
        self.caption.setText(WAITING)
        self.advice.setText("")

    def apply(self, events: Sequence[dict]) -> None:
        for event in events:  # each once, in order (RunFollower's promise)
            metrics = event_as(event, Metrics)
            if metrics is not None:
                self.metrics = (self.metrics + [metrics])[-WINDOW:]
            self.alarms.see(event)

    def refresh(self) -> None:
        alarms = self.alarms.hints()
        self.hints = alarms + signal_hints(self.metrics)
        self.caption.setText(summary_line(self.metrics))
        has_signal = sum(isinstance(m.get("signal"), dict) for m in self.metrics) >= MIN_STEPS
        self.advice.setText(card_text(self.hints) if has_signal or alarms else "")
