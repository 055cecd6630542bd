"""The Monitor's charts (pyqtgraph): one `Chart` per quantity, each with a legend, optional std bands and
reference lines, and a message in place of the plot while it has nothing to show. `ChartGrid` lays them out
and refreshes all of them from a RunData in one pass."""
from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QStackedLayout, QVBoxLayout, QWidget

from grpo_studio.gui import theme
from grpo_studio.gui.run_data import AVERAGE_STEPS, RunData, Series, trailing_mean
from grpo_studio.gui.widgets import fmt_bytes, label

pg.setConfigOptions(antialias=True, foreground="#5f6673")


class BytesAxis(pg.AxisItem):
    """Memory axes in KiB / MiB / GiB instead of raw numbers with an SI prefix."""

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph's name
        return [fmt_bytes(v) for v in values]


class SciAxis(pg.AxisItem):
    """Learning rates: one shared exponent and as many mantissa digits as the tick spacing needs
    (0.5e-3, 1.0e-3, ...), rather than 0.0005 or SI prefixes."""

    def tickStrings(self, values, scale, spacing):  # noqa: N802
        biggest = max((abs(v) for v in values), default=0.0)
        if not biggest or not spacing:
            return [f"{v:g}" for v in values]
        exponent = math.floor(math.log10(biggest))
        decimals = max(0, exponent - math.floor(math.log10(spacing)))
        return [f"{v / 10 ** exponent:.{decimals}f}e{exponent}" if v else "0" for v in values]


class Chart(QFrame):
    def __init__(self, title: str, empty_text: str, axis: str = "", legend: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Card")
        self.title = title
        self.empty_text = empty_text
        outer = QVBoxLayout(self)
        outer.setContentsMargins(12, 10, 12, 8)
        outer.setSpacing(4)
        self.title_label = label(title, "CardTitle")
        outer.addWidget(self.title_label)
        # Only charts with several lines get a legend; a single line is named by the chart's title. It sits
        # above the plot, so it never covers the data.
        self.legend = label("", "Muted", wrap=True) if legend else None
        if self.legend is not None:
            self.legend.setTextFormat(Qt.TextFormat.RichText)
            outer.addWidget(self.legend)
        self._legend_entries: dict[str, tuple[str, bool]] = {}
        self.stack = QStackedLayout()
        outer.addLayout(self.stack, 1)
        axes = {"left": BytesAxis("left")} if axis == "bytes" else {"left": SciAxis("left")} if axis == "sci" else {}
        self.plot = pg.PlotWidget(axisItems=axes)
        self.plot.setMinimumHeight(150)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.getPlotItem().setContentsMargins(2, 2, 6, 2)
        self.placeholder = QLabel(empty_text)
        self.placeholder.setObjectName("Muted")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(self.plot)
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._bands: dict[str, tuple[pg.PlotDataItem, pg.PlotDataItem, pg.FillBetweenItem]] = {}
        self._hlines: dict[str, pg.InfiniteLine] = {}
        self.restyle()

    # ------------------------------------------------------------------ drawing
    def restyle(self) -> None:
        c = theme.current()
        self.plot.setBackground(c.surface)
        item = self.plot.getPlotItem()
        for name in ("left", "bottom"):
            axis = item.getAxis(name)
            axis.setPen(pg.mkPen(c.border))
            axis.setTextPen(pg.mkPen(c.muted))
            font = QFont()
            font.setPointSizeF(8)
            axis.setStyle(tickFont=font)
        item.showGrid(x=True, y=True, alpha=0.25)

    def set_series(self, key: str, series: Series, color: str, width: float = 2.0, band: bool = False,
                   dashed: bool = False, scale: float = 1.0, band_alpha: int = 40, dots: bool = False) -> None:
        pen = pg.mkPen(color, width=width, style=Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine)
        curve = self._curves.get(key)
        if curve is None:  # dots: a marker on each point (sparse series, e.g. evaluations every N steps)
            markers = {"symbol": "o", "symbolSize": 7, "symbolBrush": color, "symbolPen": color} if dots else {}
            curve = self.plot.plot([], [], pen=pen, **markers)
            self._curves[key] = curve
        if self.legend is not None and self._legend_entries.get(key) != (color, dashed):
            self._legend_entries[key] = (color, dashed)
            self._draw_legend()
        ys = [y * scale for y in series.y]
        curve.setData(series.x, ys)
        if band:
            self._set_band(key, series, color, scale, band_alpha)

    def _draw_legend(self) -> None:
        assert self.legend is not None  # the callers check
        self.legend.setText("&nbsp;&nbsp; ".join(
            f"<span style='color:{color}; font-weight:bold'>{'╌╌' if dashed else '━━'}</span>&nbsp;{key}"
            for key, (color, dashed) in self._legend_entries.items()))

    def _set_band(self, key: str, series: Series, color: str, scale: float, alpha: int) -> None:
        if key not in self._bands:
            upper, lower = pg.PlotDataItem([], []), pg.PlotDataItem([], [])
            fill_color = QColor(color)
            fill_color.setAlpha(alpha)
            fill = pg.FillBetweenItem(upper, lower, brush=pg.mkBrush(fill_color))
            self.plot.addItem(fill)
            self._bands[key] = (upper, lower, fill)
        upper, lower, _ = self._bands[key]
        upper.setData(series.x, [(y + s) * scale for y, s in zip(series.y, series.std)])
        lower.setData(series.x, [(y - s) * scale for y, s in zip(series.y, series.std)])

    def set_hline(self, key: str, value: float | None, color: str, text: str) -> None:
        line = self._hlines.get(key)
        if value is None:
            if line is not None:
                line.hide()
            return
        if line is None:
            line = pg.InfiniteLine(angle=0, movable=False,
                                   pen=pg.mkPen(color, width=1.5, style=Qt.PenStyle.DashLine), label=text,
                                   labelOpts={"position": 0.02, "color": color, "anchors": [(0, 1), (0, 1)]})
            self.plot.addItem(line)
            self._hlines[key] = line
        line.setValue(value)
        line.label.setFormat(text)
        line.show()

    def show_plot(self, has_data: bool, empty_text: str | None = None) -> None:
        if empty_text:
            self.placeholder.setText(empty_text)
        self.stack.setCurrentIndex(1 if has_data else 0)
        if self.legend is not None:
            self.legend.setVisible(has_data)  # no legend over a "nothing to show" message

    def has_data(self) -> bool:
        return any(len(curve.xData if curve.xData is not None else []) for curve in self._curves.values())

    def clear(self) -> None:
        for curve in self._curves.values():
            self.plot.removeItem(curve)
        self._legend_entries = {}
        if self.legend is not None:
            self.legend.setText("")
        for _upper, _lower, fill in self._bands.values():
            self.plot.removeItem(fill)
        for line in self._hlines.values():
            self.plot.removeItem(line)
        self._curves, self._bands, self._hlines = {}, {}, {}
        self.show_plot(False, self.empty_text)


class ChartGrid(QWidget):
    """The reward chart across the top, the training signals and the memory charts below it."""

    WAITING = "Waiting for the first training step…"
    NO_EVAL = ("No held-out evaluation in this run. Add eval: {path: held_out.jsonl} (or eval.split) to the "
               "config to score the model on questions it never trains on, before training and as it learns.")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.reward = Chart("Reward (mean ± std)", self.WAITING, legend=True)
        self.held_out = Chart("Held-out accuracy", "Waiting for the first evaluation…", legend=True)
        self.loss = Chart("Loss", self.WAITING)
        self.kl = Chart("KL to the base model", self.WAITING)
        self.clip = Chart("Clip ratio", self.WAITING)
        self.length = Chart("Completion length (tokens)", self.WAITING, legend=True)
        self.lr = Chart("Learning rate", self.WAITING, axis="sci")
        self.gpu = Chart("GPU memory", self.WAITING, axis="bytes", legend=True)
        self.ram = Chart("CPU RAM", self.WAITING, axis="bytes", legend=True)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(10)
        for chart in self.charts():  # fixed heights: the grid scrolls instead of squeezing or stretching plots
            chart.setFixedHeight(300 if chart in (self.reward, self.held_out) else 210)
        grid.addWidget(self.reward, 0, 0, 1, 2)
        grid.addWidget(self.held_out, 0, 2)  # beside the training reward: what it means on unseen questions
        for i, chart in enumerate((self.gpu, self.ram, self.loss, self.kl, self.clip, self.length, self.lr)):
            grid.addWidget(chart, 1 + i // 3, i % 3)
        for column in range(3):
            grid.setColumnStretch(column, 1)
        self.estimate: int | None = None

    def charts(self) -> list[Chart]:
        return [self.reward, self.held_out, self.loss, self.kl, self.clip, self.length, self.lr, self.gpu, self.ram]

    def clear(self) -> None:
        for chart in self.charts():
            chart.clear()

    def restyle(self) -> None:
        for chart in self.charts():
            chart.restyle()

    def update_from(self, data: RunData) -> None:
        c = theme.current()
        ended_empty = data.done is not None and not data.reward.y
        for chart in self.charts():  # a run that ended before its first step has nothing to wait for
            chart.placeholder.setText("No training step was recorded in this run." if ended_empty else
                                      chart.empty_text)
        colors = c.series
        self.reward.set_series("total", data.reward, colors[0], width=2.6, band=True)
        self.reward.set_series(f"average of {AVERAGE_STEPS} steps", trailing_mean(data.reward), c.text,
                               width=1.4, dashed=True)
        for i, (name, series) in enumerate(sorted(data.rewards.items())):
            # Per-function bands are faint: 0/1 rewards have std ~0.5 and would drown the means otherwise.
            self.reward.set_series(_short(name), series, colors[1 + i % (len(colors) - 1)], width=1.6, band=True,
                                   band_alpha=16)
        self.reward.show_plot(bool(data.reward.y))
        self.held_out.set_series("mean reward", data.eval_reward, colors[2], width=1.4, dashed=True, dots=True)
        self.held_out.set_series("accuracy", data.eval_accuracy, colors[0], width=2.4, dots=True)  # drawn on top
        evaluated = bool(data.eval_accuracy.y or data.eval_reward.y)
        self.held_out.show_plot(evaluated, None if evaluated or not (data.reward.y or data.done) else self.NO_EVAL)
        self.loss.set_series("loss", data.loss, colors[0])
        self.loss.show_plot(bool(data.loss.y))
        self.kl.set_series("kl", data.kl, colors[1])
        self.kl.show_plot(bool(data.kl.y), None if data.kl.y or not data.reward.y else
                          "KL is not computed: grpo.beta is 0, so there is no reference pass.")
        self.clip.set_series("clipped", data.clip_ratio, colors[2])
        self.clip.show_plot(bool(data.clip_ratio.y))
        self.length.set_series("mean", data.length_mean, colors[0])
        self.length.set_series("max", data.length_max, colors[3], width=1.2, dashed=True)
        self.length.show_plot(bool(data.length_mean.y))
        self.lr.set_series("lr", data.lr, colors[4])
        self.lr.show_plot(bool(data.lr.y))
        self.gpu.set_series("allocated", data.gpu_allocated, colors[0])
        self.gpu.set_series("peak", data.gpu_peak, colors[3], width=1.4, dashed=True)
        self.gpu.set_hline("estimate", self.estimate, c.warn, f"estimate {fmt_bytes(self.estimate)}")
        on_cpu = not data.gpu_allocated.y and data.hello.get("device") == "cpu"
        self.gpu.show_plot(bool(data.gpu_allocated.y), "This run trains on the CPU: no GPU memory in use."
                           if on_cpu else None)
        self.ram.set_series("process RSS", data.rss, colors[1])
        if data.offloaded.y and max(data.offloaded.y) > 0:
            self.ram.set_series("offloaded activations", data.offloaded, colors[5], width=1.4)
        self.ram.show_plot(bool(data.rss.y))


def _short(name: str) -> str:
    """`/long/path/rewards.py:answer_format` -> `answer_format` for the legend."""
    return name.rsplit(":", 1)[-1] if ":" in name else name
