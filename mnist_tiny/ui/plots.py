"""The pictures: training curves, runs side by side, a confusion heat-map, a reliability diagram (matplotlib), and
the grid of misclassified digits (Pillow: it is a montage of images, not a plot).

matplotlib is the field's convention and lays a figure out so that titles, legends and axes never collide
(`layout="constrained"`, legends outside the axes); it is imported only when a picture is drawn, so `--help`,
`predict` and a training run's start pay nothing for it. Each function returns its Figure (for
`layout_problems`, which the tests run at two sizes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

# matplotlib's default cycle (Tableau 10), as RGB for the Pillow montage and docs/frontier_plot.py.
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
TRAIN, VAL = "tab:blue", "tab:red"
CURVES_SIZE = (11.0, 4.7)  # inches at 100 dpi: 1100×470 pixels


def axis_range(values: Sequence[float], floor: float | None = None,
               ceiling: float | None = None) -> tuple[float, float]:
    """The values with 8% of room either side, but never past what the quantity can be."""
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.005, hi + 0.005
    pad = (hi - lo) * 0.08
    lo, hi = lo - pad, hi + pad
    if floor is not None:
        lo = max(lo, floor)
    if ceiling is not None:
        hi = min(hi, ceiling)
    return lo, hi


def _figure(size: tuple[float, float], title: str):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend, nothing to close

    fig = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    if title:
        fig.suptitle(title, fontsize=13, x=0.01, ha="left")
    return fig


def _line_panel(ax, title: str, series: Sequence[tuple[str, Sequence[float], Any]], percent: bool,
                floor: float | None = None, ceiling: float | None = None) -> None:
    """One chart per quantity: the axis stays within what it can be (a loss ≥ 0, an accuracy ≤ 100%)."""
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    values = [v for _, ys, _ in series for v in ys]
    for label, ys, colour in series:
        ax.plot(range(1, len(ys) + 1), ys, marker="o", markersize=3, linewidth=1.8, color=colour, label=label)
    ax.set_ylim(*axis_range(values, floor, ceiling))
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if percent:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=2))
    ax.grid(True, color="0.9")


def training_curves(history: list[dict[str, Any]], path: Path, title: str = "",
                    size: tuple[float, float] = CURVES_SIZE):
    """Loss and accuracy per epoch, train (augmented batches) vs validation, side by side; one legend above."""
    if not history:
        return None
    fig = _figure(size, title)
    loss, acc = fig.subplots(1, 2)
    col = lambda key: [row[key] for row in history]  # noqa: E731
    _line_panel(loss, "loss", [("train", col("train_loss"), TRAIN), ("val", col("val_loss"), VAL)], False, 0.0)
    _line_panel(acc, "accuracy", [("train", col("train_acc"), TRAIN), ("val", col("val_acc"), VAL)], True, 0.0, 1.0)
    fig.legend(*loss.get_legend_handles_labels(), loc="outside upper right", ncols=2, frameon=False)
    fig.savefig(path)
    return fig


def runs_curves(runs: list[tuple[str, list[dict[str, Any]]]], path: Path, title: str = "",
                size: tuple[float, float] | None = None):
    """Several runs on one picture: validation accuracy and training loss per epoch, one colour per run; the
    legend (one key per run, two columns) below the charts, where any number of runs fits."""
    runs = [(label, history) for label, history in runs if history]
    if not runs:
        return None
    size = size or (CURVES_SIZE[0], CURVES_SIZE[1] + 0.2 * ((len(runs) + 1) // 2))
    fig = _figure(size, title)
    acc, loss = fig.subplots(1, 2)
    colours = [f"C{i % 10}" for i in range(len(runs))]
    _line_panel(acc, "validation accuracy", [(label, [r["val_acc"] for r in h], c)
                                             for (label, h), c in zip(runs, colours)], True, 0.0, 1.0)
    _line_panel(loss, "training loss", [(label, [r["train_loss"] for r in h], c)
                                        for (label, h), c in zip(runs, colours)], False, 0.0)
    fig.legend(*acc.get_legend_handles_labels(), loc="outside lower center", ncols=2, frameon=False, fontsize=9)
    fig.savefig(path)
    return fig


def confusion_heatmap(confusion: list[list[int]], path: Path, title: str = "",
                      size: tuple[float, float] = (6.4, 6.4)):
    """10×10 heat-map; off-diagonal cells are scaled to the largest error so the mistakes stand out, the
    diagonal (right answers) is drawn pale with its count."""
    import numpy as np

    counts = np.asarray(confusion)
    errors = counts.astype(float).copy()
    np.fill_diagonal(errors, 0)
    fig = _figure(size, title)
    ax = fig.subplots()
    ax.imshow(errors, cmap="Reds", vmin=0, vmax=max(1.0, errors.max()))
    for i in range(10):
        ax.add_patch(_cell(i, "#dcebfa"))
        for j in range(10):
            if counts[i, j]:
                dark = i != j and errors[i, j] > 0.6 * errors.max()
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7 if i == j else 8,
                        color="white" if dark else "0.15")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    fig.savefig(path)
    return fig


def _cell(i: int, colour: str):
    from matplotlib.patches import Rectangle

    return Rectangle((i - 0.5, i - 0.5), 1, 1, facecolor=colour, edgecolor="none")


def reliability_diagram(curves: list[tuple[str, dict[str, Any]]], path: Path, title: str = "",
                        size: tuple[float, float] = (6.4, 5.6)):
    """Accuracy against confidence per bin (`evaluation.calibration.reliability`), one line per curve (raw,
    calibrated), the diagonal where they would be perfectly calibrated. The low-confidence bins of a 99% model
    hold few images, so each bin's point is sized by its count."""
    from matplotlib.ticker import PercentFormatter

    fig = _figure(size, title)
    ax = fig.subplots()
    lo = min([b["confidence"] for _, r in curves for b in r["bins"]] + [0.5])
    lo = max(0.0, min(0.9, int(lo * 10) / 10))  # the axis starts at the lowest tenth holding a bin
    total = max(1, max((b["count"] for _, r in curves for b in r["bins"]), default=1))
    ax.plot([lo, 1], [lo, 1], color="0.6", linewidth=1, label="perfectly calibrated")
    for k, (label, r) in enumerate(curves):
        xs = [b["confidence"] for b in r["bins"]]
        ys = [max(lo, b["accuracy"]) for b in r["bins"]]
        ax.plot(xs, ys, color=f"C{k}", linewidth=1.8, label=f"{label}: ECE {100 * r['ece']:.2f}%")
        ax.scatter(xs, ys, s=[8 + 90 * (b["count"] / total) for b in r["bins"]], color=f"C{k}", zorder=3)
    ax.set_xlim(lo, 1)
    ax.set_ylim(lo, 1)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlabel("mean confidence in the bin (dot size: images)")
    ax.set_ylabel("accuracy in the bin")
    ax.grid(True, color="0.9")
    fig.legend(loc="outside lower center", ncols=2, frameon=False, fontsize=9)
    fig.savefig(path)
    return fig


def search_picture(rows: list[dict[str, Any]], importance: dict[str, float], path: Path, title: str = "",
                   size: tuple[float, float] = (11.0, 4.7)):
    """A search (`tune`): each trial's validation accuracy (complete: dots, pruned: crosses at the epoch it was
    stopped, the best so far as a line), and how much each parameter mattered (Optuna's importance), when enough
    trials finished to say."""
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    fig = _figure(size, title)
    trials, weights = fig.subplots(1, 2, width_ratios=(3, 2))
    done = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    pruned = [r for r in rows if r["state"] == "pruned" and r["value"] is not None]
    trials.scatter([r["number"] for r in done], [r["value"] for r in done], color="C0", s=22, label="complete")
    trials.scatter([r["number"] for r in pruned], [r["value"] for r in pruned], color="C3", marker="x", s=22,
                   label="pruned (its last epoch)")
    if done:
        order = sorted(done, key=lambda r: r["number"])
        best, running = [], -1.0
        for r in order:
            running = max(running, r["value"])
            best.append(running)
        trials.step([r["number"] for r in order], best, where="post", color="C0", linewidth=1.2, label="best so far")
    values = [r["value"] for r in done + pruned]
    if values:
        trials.set_ylim(*axis_range(values, 0.0, 1.0))
    trials.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=2))
    trials.xaxis.set_major_locator(MaxNLocator(integer=True))
    trials.set_xlabel("trial")
    trials.set_title("validation accuracy (last epoch)", fontsize=11)
    trials.grid(True, color="0.9")
    if importance:
        names = list(importance)[::-1]
        weights.barh(names, [importance[n] for n in names], color="C1")
        weights.set_xlabel("importance (share of the variation)")
    else:
        weights.text(0.5, 0.5, "too few finished trials\nto weigh the parameters", ha="center", va="center",
                     transform=weights.transAxes, color="0.4")
        weights.set_xticks([])
        weights.set_yticks([])
    weights.set_title("what mattered", fontsize=11)
    fig.legend(*trials.get_legend_handles_labels(), loc="outside lower center", ncols=3, frameon=False, fontsize=9)
    fig.savefig(path)
    return path


def layout_problems(fig) -> list[str]:
    """What collides in a drawn figure: the title with a legend or a chart, a legend with a chart's plotting
    area or another chart, two charts (tick labels and axis titles included), or anything outside the picture."""
    renderer = fig.canvas.get_renderer()
    frame = fig.bbox
    boxes: list[tuple[str, Any]] = []
    if fig._suptitle is not None and fig._suptitle.get_text():
        boxes.append(("title", fig._suptitle.get_window_extent(renderer)))
    for k, legend in enumerate(fig.legends):
        boxes.append((f"legend {k}", legend.get_window_extent(renderer)))
    charts = [(f"chart {k}", ax.get_tightbbox(renderer)) for k, ax in enumerate(fig.axes)]
    problems = []
    for name, box in boxes + charts:
        if box.x0 < frame.x0 - 1 or box.y0 < frame.y0 - 1 or box.x1 > frame.x1 + 1 or box.y1 > frame.y1 + 1:
            problems.append(f"{name} leaves the picture")
    pairs = [(a, b) for i, a in enumerate(boxes + charts) for b in (boxes + charts)[i + 1:]]
    for (name_a, a), (name_b, b) in pairs:
        if a.overlaps(b) and a.intersection(a, b) is not None and a.intersection(a, b).width > 1 \
                and a.intersection(a, b).height > 1:
            problems.append(f"{name_a} overlaps {name_b}")
    return problems


def error_grid(images, misclassified: list[dict[str, int]], path: Path, title: str = "", limit: int = 100) -> None:
    """The misclassified digits in a grid (torchvision's make_grid), each captioned true -> predicted."""
    import torch
    from PIL import Image, ImageDraw, ImageFont
    from torchvision.utils import make_grid

    def font(size: int):
        try:
            return ImageFont.load_default(size=size)
        except TypeError:  # Pillow < 10.1
            return ImageFont.load_default()

    shown = misclassified[:limit]
    columns, scale, caption = 10, 3, 16
    cell = 28 * scale + 4
    if shown:
        batch = images[torch.tensor([m["index"] for m in shown])].unsqueeze(1).float().div(255)
        batch = torch.nn.functional.interpolate(batch, scale_factor=scale, mode="nearest")
        grid = make_grid(batch, nrow=columns, padding=4, pad_value=0.25)
        picture = Image.fromarray((grid[0] * 255).byte().numpy(), mode="L").convert("RGB")
    else:
        picture = Image.new("RGB", (columns * cell + 4, cell + 4), (64, 64, 64))
    rows = max(1, (len(shown) + columns - 1) // columns)
    canvas = Image.new("RGB", (picture.width, 40 + rows * (cell + caption) + 4), "white")
    draw = ImageDraw.Draw(canvas)
    ink, red = (40, 40, 40), PALETTE[3]
    draw.text((6, 10), title + ("" if len(misclassified) <= limit else f" · first {limit} shown"), fill=ink,
              font=font(15))
    small = font(14)
    for k, m in enumerate(shown):
        r, c = divmod(k, columns)
        tile = picture.crop((c * cell, r * cell, c * cell + cell + 4, r * cell + cell + 4))
        canvas.paste(tile, (c * cell, 40 + r * (cell + caption)))
        draw.text((c * cell + 8, 40 + r * (cell + caption) + cell + 2), f"{m['true']} -> {m['predicted']}",
                  fill=red, font=small)
    if not shown:
        draw.text((10, 60), "no errors", fill=ink, font=small)
    canvas.save(path)
