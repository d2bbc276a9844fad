"""All terminal output lives here: Rich for people, plain lines when stdout is not a terminal.

Everything else in the package returns plain data; these functions only draw it.
"""

from __future__ import annotations

import time
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

class SafeConsole(Console):
    """Every string printed (and every table cell, which Rich renders through `render_str`) has its control
    characters escaped before markup is read: what a file holds cannot drive the terminal. Our own colours are
    markup, never raw escape codes, so nothing of ours is lost."""

    def render_str(self, text: str, *args: Any, **kwargs: Any):
        from mnist_tiny.errors import printable

        return super().render_str(printable(text), *args, **kwargs)


console = SafeConsole()
err_console = SafeConsole(stderr=True)


def pct(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True)


def warning(message: str) -> None:
    err_console.print(f"[bold yellow]warning:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True)


def settings_table(settings: dict[str, Any], title: str = "settings") -> Table:
    """The resolved settings as a compact grid of `key value` pairs (three pairs a row on a wide terminal)."""
    columns = 3 if console.width >= 120 else 2
    table = Table(title=title, show_header=False, box=None, padding=(0, 1), title_justify="left")
    for _ in range(columns):
        table.add_column(style="dim", no_wrap=True)
        table.add_column(overflow="fold")
    items = list(settings.items())
    rows = (len(items) + columns - 1) // columns
    for r in range(rows):
        cells = []
        for c in range(columns):
            k = c * rows + r
            cells += [items[k][0], str(items[k][1])] if k < len(items) else ["", ""]
        table.add_row(*cells)
    return table


class RichReporter:
    """Per-epoch progress bar (batches, live loss, images/s, ETA) above a table that grows a row per epoch."""

    def __init__(self, out: Console = console):
        self.console = out
        self.table = Table(title="training", title_justify="left")
        for name in ("epoch", "train loss", "train acc", "val loss", "val acc", "lr", "seconds"):
            self.table.add_column(name, justify="right")
        self.progress = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[ips]:,.0f} img/s"),
                                 TimeRemainingColumn(), console=out)
        self.live: Live | None = None
        self.task = None

    def start(self, info: dict[str, Any]) -> None:
        self.console.print(settings_table(info["settings"], "resolved settings"))
        resumed = f" · resumed at {info['resumed_at']}" if info["resumed_at"] else ""
        procs = f" × {info['processes']} processes" if info.get("processes", 1) > 1 else ""
        self.console.print(f"[bold]{info['model']}[/] · {info['params']:,} params · {info['device']}{procs} · "
                           f"train {info['train']:,} / val {info['val']:,} / test {info['test']:,} images · "
                           f"run dir {info['out']}{resumed}")
        self.live = Live(Group(self.table, self.progress), console=self.console, refresh_per_second=8)
        self.live.start()

    def epoch_start(self, epoch: int, epochs: int, batches: int, done: int) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task("", total=batches, completed=done, epoch=f"{epoch}/{epochs}", loss=0.0, ips=0.0)

    def batch(self, done: int, loss: float, images_per_s: float) -> None:
        self.progress.update(self.task, completed=done, loss=loss, ips=images_per_s)

    def epoch_end(self, row: dict[str, Any]) -> None:
        self.table.add_row(str(row["epoch"]), f"{row['train_loss']:.4f}", pct(row["train_acc"]),
                           f"{row['val_loss']:.4f}", pct(row["val_acc"]), f"{row['lr']:.4f}", f"{row['seconds']:.1f}")

    def close(self) -> None:
        if self.live:
            if self.task is not None:
                self.progress.remove_task(self.task)
                self.task = None
            self.live.stop()
            self.live = None


class PlainReporter:
    """For logs and pipes: one plain line per epoch, no control characters."""

    def __init__(self, out: Console = console):
        self.console = out

    def start(self, info: dict[str, Any]) -> None:
        # Every setting, for the log; lines of at most ~100 characters, each `key=value` kept whole.
        lines, line = [], "settings:"
        for token in (f"{k}={v}" for k, v in info["settings"].items()):
            if len(line) + 1 + len(token) > 100 and line.strip() != "settings:":
                lines.append(line)
                line = "  "
            line = f"{line} {token}" if line.strip() else f"  {token}"
        self.console.print("\n".join([*lines, line]), highlight=False, soft_wrap=True)
        resumed = f", resumed at {info['resumed_at']}" if info["resumed_at"] else ""
        procs = f" x {info['processes']} processes" if info.get("processes", 1) > 1 else ""
        self.console.print(f"{info['model']}: {info['params']:,} params on {info['device']}{procs}, train {info['train']}"
                           f" / val {info['val']} / test {info['test']}, run dir {info['out']}{resumed}",
                           highlight=False, soft_wrap=True)
        self.started = time.perf_counter()

    def epoch_start(self, epoch: int, epochs: int, batches: int, done: int) -> None:
        self.epochs = epochs

    def batch(self, done: int, loss: float, images_per_s: float) -> None:
        self.ips = images_per_s

    def epoch_end(self, row: dict[str, Any]) -> None:
        self.console.print(
            f"epoch {row['epoch']}/{self.epochs}  train loss {row['train_loss']:.4f} acc {pct(row['train_acc'])}  "
            f"val loss {row['val_loss']:.4f} acc {pct(row['val_acc'])}  lr {row['lr']:.4f}  "
            f"{row['seconds']:.1f}s  {self.ips:,.0f} img/s", highlight=False, soft_wrap=True)

    def close(self) -> None:
        pass


def reporter_for(out: Console = console):
    return RichReporter(out) if out.is_terminal else PlainReporter(out)


_IMPORTED = time.monotonic()


def process_seconds() -> float:
    """Wall seconds since this process started (Linux: /proc), else since this module was imported."""
    try:
        import os

        with open("/proc/self/stat") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as f:
            return max(0.0, float(f.read().split()[0]) - started)
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED


def train_summary(summary: dict[str, Any]) -> None:
    table = Table(title=f"result · {summary['model']} ({summary['params']:,} params)", title_justify="left")
    for name in ("checkpoint", "epoch", "val acc", "test acc"):
        table.add_column(name, justify="right")
    history = summary["history"]
    table.add_row("best (by val acc)", str(summary["best_epoch"]), pct(summary["best_val_acc"]),
                  pct(summary.get("best_test_acc")))
    table.add_row("last", str(history[-1]["epoch"]), pct(summary["last_val_acc"]), pct(summary.get("last_test_acc")))
    console.print(table)
    console.print(f"trained {summary['train_seconds']:.1f}s ({process_seconds():.1f}s in all, with start-up, scoring "
                  "and files) · wrote best.pt, last.pt, metrics.jsonl, settings.json, "
                  f"summary.json, curves.png to {summary['out']}", highlight=False, soft_wrap=True)


def sweep_table(summaries: list[dict[str, Any]]) -> None:
    """Per seed and mean ± std / worst: the last epoch (what ships) first, then the best-by-validation epoch."""
    table = Table(title=f"{summaries[0]['model']} · {len(summaries)} seeds · {summaries[0]['epochs']} epochs",
                  title_justify="left")
    for name in ("seed", "test acc (last)", "val acc (last)", "best val epoch", "test acc (best val)", "train s"):
        table.add_column(name, justify="right")
    for s in summaries:
        table.add_row(str(s["seed"]), pct(s["last_test_acc"]), pct(s["last_val_acc"]), str(s["best_epoch"]),
                      pct(s["best_test_acc"]), f"{s['train_seconds']:.0f}")
    from mnist_tiny.evaluation.runs import sweep_stats

    stats = sweep_stats(summaries)
    table.add_section()
    table.add_row("mean ± std", _pm(stats["last_test_acc"]), _pm(stats["last_val_acc"]), "",
                  _pm(stats["best_test_acc"]), f"{stats['train_seconds']['mean']:.0f}")
    table.add_row("worst", pct(stats["last_test_acc"]["min"]), "", "", pct(stats["best_test_acc"]["min"]), "")
    console.print(table)


def _pm(stat: dict[str, float]) -> str:
    return f"{100 * stat['mean']:.2f} ± {100 * stat['std']:.2f}%"


def runs_table(rows: list[dict[str, Any]], sort: str) -> None:
    """One row per run; sorted on validation by default (test accuracy is reported, never used to rank).

    Every name and figure is shown whole: when the run names (or the models) do not fit beside the figures, the
    rows are numbered and the names listed below the table, one a line."""
    from rich.measure import Measurement

    wide = console.width >= 110  # below that, time, seed and data stay in --json
    unbounded = console.options.update(width=1 << 16)  # what the table needs, not what the terminal allows
    for layout in [("name", "model"), ("number", "model"), ("number",)]:
        table, unfinished = _runs_grid(rows, sort, layout, wide)
        if Measurement.get(console, unbounded, table).maximum <= console.width:
            break
    console.print(table)
    if "number" in layout:
        for k, r in enumerate(rows, 1):
            model = "" if "model" in layout or "error" in r else f" · {escape(str(r.get('model')))}"
            console.print(f"[bold]#{k}[/] {escape(r['name'])}{model}", highlight=False, soft_wrap=True)
    for k, r in enumerate(rows, 1):
        if "error" in r:
            where = f"#{k} {r['name']}" if "number" in layout else r["name"]
            console.print(f"[red]✗[/] {escape(where)}: {escape(r['error'])}", highlight=False, soft_wrap=True)
    notes = ["best val: the epoch validation chose; test@best/test@last: that epoch's and the last one's test "
             "accuracy (reported, never used to rank)"]
    notes.append("data: training/validation images" if wide else "time (s), seed and data: in a wider terminal or --json")
    if unfinished:
        notes.append("* not finished (interrupted or still training): no test figures yet")
    console.print("[dim]" + ". ".join(notes) + ".[/]", highlight=False)


def _runs_grid(rows: list[dict[str, Any]], sort: str, layout: tuple[str, ...], wide: bool):
    table = Table(title=f"{len(rows)} run{'s' if len(rows) != 1 else ''} · sorted by {sort}", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#" if "number" in layout else "run", no_wrap=True)
    if "model" in layout:
        table.add_column("model", no_wrap=True)
    numbers = ("params", "epochs", "best val", "test@best", "test@last") + (("s", "seed", "data") if wide else ())
    for name in numbers:
        table.add_column(name, justify="right", no_wrap=True)
    unfinished = False
    for k, r in enumerate(rows, 1):
        first = [f"#{k}" if "number" in layout else escape(r["name"])]
        if "error" in r:  # its reason follows the table, whole
            table.add_row(*first, *(["[red]✗ unreadable[/]"] if "model" in layout else []), *["–"] * len(numbers))
            continue
        best = f"{pct(r['best_val_acc'])} e{r['best_epoch']}" if r.get("best_val_acc") is not None else "–"
        data = f"{_k(r['train_images'])}/{_k(r['val_images'])}" if r.get("train_images") and r.get("val_images") else "–"
        epochs = f"{r['epochs_done']}/{r['epochs']}" + ("" if r["status"] == "finished" else "*")
        unfinished |= r["status"] != "finished"
        extra = (f"{r['train_seconds']:.0f}" if r.get("train_seconds") is not None else "–", str(r.get("seed")), data)
        table.add_row(*first, *([escape(str(r.get("model")))] if "model" in layout else []),
                      f"{r['params']:,}" if r.get("params") else "–", epochs, best, pct(r.get("best_test_acc")),
                      pct(r.get("last_test_acc")), *(extra if wide else ()))
    return table, unfinished


def _k(n: int) -> str:
    return f"{n / 1000:g}k" if n >= 1000 else str(n)


def models_table(rows: list[dict[str, Any]]) -> None:
    wide = console.width >= 100  # below that the descriptions would squeeze the names: --json has them
    table = Table(title="models", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("name", no_wrap=True)
    headers = ("params", "weights", "test acc", "seeds: mean ± std") if wide else ("params", "w", "test", "seeds")
    for name in headers:
        table.add_column(name, justify="center" if name in ("weights", "w") else "right", no_wrap=True)
    if wide:
        table.add_column("description", overflow="fold")
    for row in rows:
        name = f"[bold]{escape(row['name'])}[/]" + ((" [dim](default)[/]" if wide else " *") if row["default"] else "")
        sweep = row.get("sweep")
        spread = f"{100 * sweep['mean']:.2f} ± {100 * sweep['std']:.2f}%" if sweep else "–"
        if sweep and wide:
            spread += f" ({len(sweep['seeds'])})"
        table.add_row(name, f"{row['params']:,}" if row["params"] is not None else "–", "✓" if row["weights"] else "–",
                      pct(row.get("test_acc")), spread, *((escape(row["description"]),) if wide else ()))
    console.print(table)
    if not wide:
        console.print("[dim]* the default. w: shipped weights; test: their test accuracy; seeds: mean ± std of "
                      "a sweep. Descriptions: in a wider terminal, or --json.[/]", highlight=False)


def eval_report(result: dict[str, Any]) -> None:
    # One line each, however narrow the terminal (`eval … | head -2` keeps the accuracy): the terminal wraps them.
    console.print(f"[bold]{escape(str(result['model']))}[/] ({result['params']:,} params) · "
                  f"{escape(str(result['checkpoint']))} · {result['split']} split, {result['n']:,} images",
                  highlight=False, soft_wrap=True)
    console.print(f"accuracy [bold green]{pct(result['accuracy'])}[/] · loss {result['loss']:.4f} · "
                  f"{result['errors']} errors", highlight=False, soft_wrap=True)
    per_class = Table(title="per class", title_justify="left")
    for name in ("digit", "precision", "recall", "F1", "support"):
        per_class.add_column(name, justify="right")
    for row in result["per_class"]:
        per_class.add_row(str(row["digit"]), pct(row["precision"]), pct(row["recall"]), pct(row["f1"]),
                          f"{row['support']:,}")
    confusion = Table(title="confusion (rows: true, columns: predicted)", title_justify="left")
    confusion.add_column("")
    for d in range(10):
        confusion.add_column(str(d), justify="right")
    errors = [v for i, row in enumerate(result["confusion"]) for j, v in enumerate(row) if i != j and v]
    worst = max(errors, default=0)
    for i, row in enumerate(result["confusion"]):
        cells = []
        for j, v in enumerate(row):
            if i == j:
                cells.append(f"[dim]{v}[/]")
            elif v == 0:
                cells.append("[dim]·[/]")
            elif v >= max(2, worst / 2):
                cells.append(f"[bold red]{v}[/]")
            else:
                cells.append(f"[yellow]{v}[/]")
        confusion.add_row(f"[bold]{i}[/]", *cells)
    console.print(per_class)
    console.print(confusion)
    if result.get("report"):
        cal = result.get("calibration", {})
        if "calibrated" in cal:
            console.print(f"calibration on {result['split']}: expected calibration error {pct(cal['raw']['ece'])} with "
                          f"the raw softmax, {pct(cal['calibrated']['ece'])} at temperature {cal['temperature']:.3f} "
                          f"({cal['temperature_source']})", highlight=False, soft_wrap=True)
        elif cal:
            console.print(f"calibration on {result['split']}: expected calibration error {pct(cal['raw']['ece'])} "
                          "(no validation split to fit a temperature on)", highlight=False, soft_wrap=True)
        console.print(f"wrote confusion.png, errors.png, reliability.png, metrics.json to {result['report']}")


def params_table(summary: dict[str, Any], broken: list[str]) -> None:
    """One row per layer. Every name and figure is shown whole: when the layers' names and types do not fit beside
    the figures, the rows are numbered and the names listed below the table, one a line."""
    from rich.measure import Measurement

    unbounded = console.options.update(width=1 << 16)  # what the table needs, not what the terminal allows
    for numbered in (False, True):
        table = _params_grid(summary, numbered)
        if Measurement.get(console, unbounded, table).maximum <= console.width:
            break
    console.print(table)
    if numbered:
        for k, layer in enumerate(summary["layers"], 1):
            console.print(f"[bold]#{k}[/] {escape(layer['name'])} · {escape(layer['type'])}", highlight=False,
                          soft_wrap=True)
    rules_lines(summary["rules"])
    for problem in broken:
        err_console.print(f"[bold red]rule broken:[/] {escape(problem)}", highlight=False, soft_wrap=True)


def _params_grid(summary: dict[str, Any], numbered: bool) -> Table:
    table = Table(title=f"{escape(summary['model'])} · layers for a 1×28×28 input", title_justify="left")
    names = (("#", "left"),) if numbered else (("layer", "left"), ("type", "left"))
    for name, justify in (*names, ("output", "right"), ("params", "right"), ("MACs", "right"), ("RF", "right"),
                          ("jump", "right")):
        table.add_column(name, justify=justify, no_wrap=True)
    for k, layer in enumerate(summary["layers"], 1):
        shape = "×".join(map(str, layer["output_shape"] or []))
        first = [f"#{k}"] if numbered else [escape(layer["name"]), escape(layer["type"])]
        table.add_row(*first, shape, f"{layer['params']:,}" if layer["params"] else "[dim]·[/]",
                      f"{layer['macs']:,}" if layer["macs"] else "[dim]·[/]", str(layer["rf"]["size"]),
                      str(layer["rf"]["jump"]))
    counts = summary["params"]
    table.caption = (f"{counts['total']:,} params ({counts['trainable']:,} trainable, {counts['with_bn_stats']:,} "
                     f"with BatchNorm statistics) · {summary['macs']:,} MACs · receptive field "
                     f"{summary['receptive_field']}")
    table.caption_justify = "left"
    return table


def rules_lines(rules: dict[str, dict[str, Any]]) -> None:
    """One line per course rule: ✓/✗, the rule, and the evidence from the traced forward pass."""
    console.print("course rules, judged on a training-mode forward pass:", highlight=False)
    for rule, verdict in rules.items():
        mark = "[green]✓[/]" if verdict["ok"] else "[red]✗[/]"
        console.print(f"  {mark} {rule}: {escape(verdict['evidence'])}", highlight=False, soft_wrap=True)


def check_table(result: dict[str, Any]) -> None:
    title = f"course check · {result['model']}" + (f" · {result['checkpoint']}" if result["checkpoint"] else "")
    console.print(escape(title), highlight=False, soft_wrap=True)
    for c in result["checks"]:
        if c.get("skipped"):
            console.print(f"  [dim]· {c['name']}: {escape(c['detail'])}[/]", highlight=False, soft_wrap=True)
            continue
        mark = "[green]✓[/]" if c["ok"] else "[red]✗[/]"
        console.print(f"  {mark} {c['name']}: {escape(c['detail'])}", highlight=False, soft_wrap=True)
    if not result["accuracy_checked"]:
        console.print("  [dim]· accuracy: not checked (pass --checkpoint PATH)[/]", highlight=False)
    judged = [c for c in result["checks"] if not c.get("skipped")]
    passed, total = sum(c["ok"] for c in judged), len(judged)
    if result["passed"]:
        console.print(f"[bold green]passed[/]: all {total} checks", highlight=False)
    else:
        broken = ", ".join(c["name"] for c in judged if not c["ok"])
        console.print(f"[bold red]failed[/]: {total - passed} of {total} checks ({escape(broken)})", highlight=False)


RAMP = " .:-=+*#%@"


def digit_picture(image, color: bool) -> str:
    """28×28 in [0, 1] → text: coloured upper-half blocks on a colour terminal (two pixel rows per line),
    else an ASCII ramp two characters wide per pixel, so it reads in a log too."""
    if not color:
        return "\n".join("".join(RAMP[min(9, int(float(v) * 10))] * 2 for v in row) for row in image)
    lines = []
    for r in range(0, 28, 2):
        cells = []
        for c in range(28):
            top, bottom = int(255 * float(image[r, c])), int(255 * float(image[r + 1, c]))
            cells.append(f"[rgb({top},{top},{top}) on rgb({bottom},{bottom},{bottom})]▀[/]")
        lines.append("".join(cells))
    return "\n".join(lines)


def predict_table(results: list[dict[str, Any]], model: str, show: bool) -> None:
    from mnist_tiny.reader.predict import LOW_CONFIDENCE, digit_rows

    table = Table(title=f"predictions · {escape(model)}", title_justify="left",
                  caption=f"? = low confidence (a digit under {100 * LOW_CONFIDENCE:.0f}%)"
                  if any(r.get("low_confidence") for r in results) else None, caption_justify="left")
    table.add_column("file", overflow="fold")  # a long name folds, it is never cut short
    table.add_column("read", justify="center", no_wrap=True)
    table.add_column("confidence", justify="right", no_wrap=True)
    table.add_column("top-k, or each digit", overflow="fold")
    for r in results:
        if "error" in r:
            table.add_row(escape(r["path"]), "[red]✗[/]", "", f"[red]{escape(r['error'])}[/]")
        elif not r["text"]:
            table.add_row(escape(r["path"]), "[yellow]–[/]", "", f"[yellow]{escape(r['reason'])}[/]")
        else:
            mark = "[yellow]?[/]" if r["low_confidence"] else ""
            if r["top"] is not None:
                detail = "\n".join(f"{d} [cyan]{'█' * max(1, round(10 * p)):<10}[/] {100 * p:5.1f}%" for d, p in r["top"])
            else:
                detail = "\n".join(" ".join(  # each row of digits on its own line, as `read` shows them
                    f"{d['digit']}:{100 * d['confidence']:.0f}%{'[yellow]?[/]' if d['low_confidence'] else ''}"
                    for d in row) for row in digit_rows(r["digits"]))
            table.add_row(escape(r["path"]), f"[bold]{r['text']}[/]{mark}", pct(r["confidence"], 1), detail)
    console.print(table)
    if show:
        color = console.color_system is not None
        for r in results:
            if r.get("ink") is None:
                continue
            read = " / ".join(r.get("text", "").split("\n")) or "(nothing read)"  # rows on one line
            console.print(f"\n[bold]{escape(r['path'])}[/] → {read} · where the digits "
                          "are:", highlight=False, soft_wrap=True)
            labels = [str(d["digit"]) for d in r.get("digits", [])]
            console.print(boxes_picture(r["ink"], r.get("ink_boxes", []), labels), highlight=False, markup=False,
                          crop=False, soft_wrap=True)
            for i, crop in enumerate(r.get("inputs", [])):
                console.print(f"digit {i + 1} of {len(r['inputs'])}: {labels[i]} · the 28×28 the model saw:",
                              highlight=False, soft_wrap=True)
                console.print(digit_picture(crop, color), highlight=False, markup=color, crop=False, soft_wrap=True)


def boxes_picture(ink, boxes, labels, width: int = 56) -> str:
    """The image's ink, `width` characters wide (a character is two pixels tall), with a frame drawn round each
    digit found and its reading at the frame's top-left corner; the empty rows above and below trimmed."""
    import numpy as np

    from mnist_tiny.reader.images import resize_area

    h, w = ink.shape
    cols = max(8, min(width, w))
    rows = max(4, round(h / w * cols / 2))
    scale = 255.0 if ink.dtype == np.uint8 else 1.0  # the reader keeps a byte preview
    small = resize_area(np.asarray(ink, dtype=np.float32) / scale, (rows, cols))
    grid = [[RAMP[min(9, int(float(v) * 10))] for v in row] for row in small]
    for (top, bottom, left, right), label in zip(boxes, labels):
        r0, r1 = int(top * rows / h), min(rows - 1, int((bottom - 1) * rows / h))
        c0, c1 = int(left * cols / w), min(cols - 1, int((right - 1) * cols / w))
        for c in range(c0, c1 + 1):
            grid[r0][c] = grid[r1][c] = "─"
        for r in range(r0, r1 + 1):
            grid[r][c0] = grid[r][c1] = "│"
        grid[r0][c0], grid[r0][c1], grid[r1][c0], grid[r1][c1] = label[:1], "┐", "└", "┘"
    used = [i for i, row in enumerate(grid) if any(ch != " " for ch in row)] or [0]
    return "\n".join("".join(row) for row in grid[max(0, used[0] - 1):used[-1] + 2])  # empty paper trimmed


def bench_table(result: dict[str, Any]) -> None:
    runs, procs = result["runs"], result.get("processes", 1)
    workers = f"{procs} processes × {result['threads']} thread{'s' if result['threads'] > 1 else ''}" if procs > 1 \
        else f"{result['threads']} threads"
    table = Table(title=f"bench · {result['model']} ({result['params']:,} params) · {result['device']}, {workers} "
                        f"· batch {result['batch_size']} · {result['images']:,} images",
                  title_justify="left", caption=f"medians of {runs} run{'s' if runs > 1 else ''} per pipeline, "
                  "each a whole process", caption_justify="left")
    for name in ("pipeline", "train img/s", "eval img/s", "epoch s", "10k eval s", "process s"):
        table.add_column(name, justify="right")
    for key, label in (("fast", "mnist-tiny (tensors, batched aug)"), ("classic", "classic (PIL per sample, DataLoader)")):
        if key in result:
            r = result[key]
            table.add_row(label, f"{r['train_images_per_s']:,.0f}", f"{r['eval_images_per_s']:,.0f}",
                          f"{r['train_seconds']:.2f}", f"{r['eval_seconds']:.3f}", f"{r['process_seconds']:.2f}")
    console.print(table)
    if "speedup" in result:
        sp = result["speedup"]
        pairs = sp["epoch_plus_eval_per_run"]
        spread = f"run by run {min(pairs):.2f}–{max(pairs):.2f}×; " if len(pairs) > 1 else ""
        console.print(f"speed-up: [bold]{sp['epoch_plus_eval']:.1f}×[/] for epoch + eval "
                      f"({spread}train {sp['train']:.1f}×, eval {sp['eval']:.1f}×); "
                      f"{sp['process']:.1f}× for the whole process (start-up included)")
