"""``aclstm reproduce``: the paper's Table 1 on your data — the five cells trained and evaluated
with one recipe and the same seeds, beside their parameter sizes and multiply-adds.

Each (cell, seed) run is an ordinary training run in ``OUT/runs/<cell>/seed<s>``. A finished
run leaves ``result.json`` there and is not run again; an interrupted one resumes from its
``last`` checkpoint; so running the same command again after a crash finishes the table.
"""

from __future__ import annotations

import json
import statistics
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aclstm.analysis.complexity import CellComplexity, cell_complexity
from aclstm.analysis.report import pyplot, read_metrics
from aclstm.config import RunConfig, apply_overrides, config_from_dict, read_config_file
from aclstm.models import GestureNetConfig
from aclstm.nn import cell_names, resolve_cell_name
from aclstm.train.checkpoint import atomic_write
from aclstm.train.runner import model_config

__all__ = [
    "DATA_CONFIGS",
    "PAPER_TABLE1",
    "CellRow",
    "base_config",
    "reproduce",
    "summarise",
    "write_table",
]

CONFIGS = Path(__file__).parent / "configs"

# The recipe each kind of data starts from; `model.cell` and `train.seed` are set per run.
DATA_CONFIGS = {
    "synth": CONFIGS / "synth_table1.toml",
    "jester": CONFIGS / "jester_gated.toml",
    "isogd": CONFIGS / "isogd_rgb.toml",
}

# Table 1 of Zhang et al. (NIPS 2018): validation top-1 (%) on Jester and IsoGD (RGB).
PAPER_TABLE1 = {
    "convlstm": {"name": "ConvLSTM", "jester": 95.11, "isogd": 52.01},
    "gated": {"name": "Variant (a)", "jester": 95.08, "isogd": 55.98},
    "input_attention": {"name": "Variant (b)", "jester": 94.18, "isogd": 43.93},
    "input_gate_attention": {"name": "Variant (c)", "jester": 95.13, "isogd": 53.27},
    "output_gate_attention": {"name": "Variant (d)", "jester": 95.10, "isogd": 54.11},
}


def base_config(
    data: str,
    root: str | None = None,
    preset: str | None = None,
    epochs: int | None = None,
    overrides: list[str] = (),
) -> dict[str, Any]:
    """The shared recipe as a config dict: the data kind's shipped config, then ``root``,
    ``preset`` (with that preset's own clip length and size), ``epochs``, and ``overrides``."""
    if data not in DATA_CONFIGS:
        raise ValueError(f"--data must be one of {', '.join(DATA_CONFIGS)}, got {data!r}")
    values = read_config_file(DATA_CONFIGS[data])
    sections = {name: dict(values.get(name, {})) for name in ("model", "data", "train")}
    if root is not None:
        sections["data"]["root"] = root
    if preset is not None:
        sections["model"] = {
            k: v for k, v in sections["model"].items() if k not in ("frames", "size")
        }
        sections["model"]["preset"] = preset
    if epochs is not None:
        sections["train"]["epochs"] = epochs
    values = {**values, **sections}
    return apply_overrides(values, list(overrides))


def run_config(values: dict[str, Any], cell: str, seed: int) -> RunConfig:
    """The config of one run: the shared recipe with this cell and seed. ``{cell}`` and
    ``{seed}`` in ``train.init_from`` name each run's own starting checkpoint (e.g. IsoGD
    fine-tuning from the Jester run of the same cell)."""
    model = {**values.get("model", {}), "cell": cell}
    train = {**values.get("train", {}), "seed": seed}
    if isinstance(train.get("init_from"), str):
        train["init_from"] = train["init_from"].format(cell=cell, seed=seed)
    return config_from_dict({**values, "model": model, "train": train}, "reproduce recipe")


def run_one(config: RunConfig, work_dir: Path, progress: bool, log=print) -> dict[str, Any]:
    """Train one (cell, seed) run unless ``work_dir`` holds its finished result; resume it if
    it was interrupted with the same config. Returns its result record."""
    result_file = work_dir / "result.json"
    wanted = config.as_dict()
    if result_file.is_file():
        result = json.loads(result_file.read_text())
        if result.get("config") == wanted:
            log(f"{work_dir}: finished before, reusing its result")
            return result
    saved = work_dir / "config.json"
    resume = (
        (work_dir / "last" / "state.pt").is_file()
        and saved.is_file()
        and json.loads(saved.read_text()) == wanted
    )
    from aclstm.train.runner import train

    last = train(config, work_dir, resume=resume, progress=progress, log=log)
    records = read_metrics(work_dir / "metrics.jsonl")
    result = {
        "cell": config.model.cell,
        "seed": config.train.seed,
        "epochs": last["epoch"],
        "val_top1": last["val_top1"],
        "best_val_top1": max(r["val_top1"] for r in records),
        "train_clips_per_s": statistics.median(r["train_clips_per_s"] for r in records),
        "train_seconds": sum(r["epoch_seconds"] for r in records),
        "config": wanted,
    }
    atomic_write(result_file, lambda p: p.write_text(json.dumps(result, indent=2) + "\n"))
    return result


@dataclass
class CellRow:
    """One row of the reproduced Table 1."""

    cell: str
    paper_name: str
    val_top1: list[float]  # the last epoch's, one per seed
    train_clips_per_s: float  # median over seeds
    size: CellComplexity  # one ConvLSTM layer as the network runs it
    network_params: int

    @property
    def mean(self) -> float:
        return statistics.fmean(self.val_top1)

    @property
    def std(self) -> float:
        return statistics.stdev(self.val_top1) if len(self.val_top1) > 1 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "cell": self.cell,
            "paper_name": self.paper_name,
            "val_top1_mean": self.mean,
            "val_top1_std": self.std,
            "val_top1": self.val_top1,
            "train_clips_per_s": self.train_clips_per_s,
            **{k: v for k, v in self.size.as_dict().items() if k != "cell"},
            "network_params": self.network_params,
        }


def layer_complexity(config: RunConfig, cell: str) -> CellComplexity:
    """Table 1's size columns for ``cell`` at the network's ConvLSTM: C_in = Res3D's output
    channels, C_out = the hidden channels, at a quarter of the input's side."""
    network = network_config(config, cell)
    return cell_complexity(
        cell,
        input_size=network.res3d_widths[-1],
        hidden_size=network.lstm_hidden,
        kernel_size=network.kernel_size,
        height=network.size // 4,
        width=network.size // 4,
    )


def network_config(config: RunConfig, cell: str) -> GestureNetConfig:
    """The network of ``config`` with ``cell`` in place of its own (modality included)."""
    with_cell = replace(config, model=replace(config.model, cell=cell))
    return model_config(with_cell, num_classes=27)  # the presets' head: Jester's classes


def summarise(config: RunConfig, results: list[dict[str, Any]]) -> list[CellRow]:
    """Rows in the paper's order from the per-run results."""
    from aclstm.models import GestureNet, count_parameters

    rows = []
    for cell in cell_names():
        mine = [r for r in results if r["cell"] == cell]
        if not mine:
            continue
        network = GestureNet(network_config(config, cell))
        rows.append(
            CellRow(
                cell=cell,
                paper_name=PAPER_TABLE1[cell]["name"],
                val_top1=[r["val_top1"] for r in sorted(mine, key=lambda r: r["seed"])],
                train_clips_per_s=statistics.median(r["train_clips_per_s"] for r in mine),
                size=layer_complexity(config, cell),
                network_params=count_parameters(network),
            )
        )
    return rows


def format_table(rows: list[CellRow], data: str, seeds: list[int]) -> str:
    """Table 1 as Markdown, with the paper's accuracy beside ours for Jester and IsoGD."""
    paper = data if data in ("jester", "isogd") else None
    head = ["network", "cell", f"val top-1 % (mean ± std, {len(seeds)} seeds)"]
    if paper:
        head.append(f"paper ({'Jester' if paper == 'jester' else 'IsoGD'}) %")
    head += [
        "channels",
        "params (paper formula)",
        "params (real)",
        "Mult-Adds (paper formula)",
        "Mult-Adds (measured)",
        "network params",
        "training clips/s",
    ]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---", "---"] + ["---:"] * (len(head) - 2)) + "|",
    ]
    for r in rows:
        cells = [r.paper_name, r.cell, f"{100 * r.mean:.2f} ± {100 * r.std:.2f}"]
        if paper:
            cells.append(f"{PAPER_TABLE1[r.cell][paper]:.2f}")
        s = r.size
        cells += [
            str(s.channels),
            f"{s.paper_params / 1e6:.3f}M",
            f"{s.params / 1e6:.3f}M",
            f"{s.paper_mult_adds / 1e6:.1f}M",
            f"{s.mult_adds / 1e6:.1f}M",
            f"{r.network_params / 1e6:.2f}M",
            f"{r.train_clips_per_s:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_accuracy_vs_mult_adds(rows: list[CellRow], path: Path, title: str) -> Path:
    """Validation top-1 (mean, ± std) against the measured multiply-adds of one ConvLSTM step."""
    plt = pyplot()
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for r in rows:
        x = r.size.mult_adds / 1e6
        ax.errorbar(x, 100 * r.mean, yerr=100 * r.std, fmt="o", capsize=4)
        ax.annotate(r.paper_name, (x, 100 * r.mean), textcoords="offset points", xytext=(6, 6))
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
    ax.set_xlabel("Mult-Adds of one ConvLSTM step (measured, millions, log scale)")
    ax.set_ylabel("validation top-1 (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_table(
    out: Path, rows: list[CellRow], config: RunConfig, data: str, seeds: list[int]
) -> dict[str, Path]:
    """``table1.md``, ``table1.json`` and ``table1.png`` in ``out``."""
    network = network_config(config, "gated")

    def setting_with(root: str) -> str:
        return (
            f"data {data} ({root}), preset {config.model.preset}, "
            f"{network.frames} frames of {network.size}x{network.size}, {config.train.epochs} "
            f"epochs, seeds {', '.join(map(str, seeds))}"
        )

    setting = setting_with(config.data.root)  # the table and json say where the data lay
    title = "\n".join(textwrap.wrap(setting_with(Path(config.data.root).name), 80))
    table = format_table(rows, data, seeds)
    note = (
        "Size columns: one ConvLSTM layer as the network runs it (K="
        f"{network.kernel_size}, C_in={network.res3d_widths[-1]}, C_out={network.lstm_hidden}, "
        f"{network.size // 4}x{network.size // 4}); the paper's formulas count weights without "
        "biases and Mult-Adds as weights x H x W; the measured Mult-Adds are the multiply-adds "
        "of one step counted from its operations (as `aclstm complexity`). Accuracy: the last "
        "epoch's validation top-1."
    )
    paths = {"md": out / "table1.md", "json": out / "table1.json", "png": out / "table1.png"}
    md = f"# Table 1, reproduced\n\n{setting}\n\n{table}\n\n{note}\n"
    atomic_write(paths["md"], lambda p: p.write_text(md))
    record = {"setting": setting, "rows": [r.as_dict() for r in rows]}
    atomic_write(paths["json"], lambda p: p.write_text(json.dumps(record, indent=2) + "\n"))
    plot_accuracy_vs_mult_adds(rows, paths["png"], title)
    return paths


def reproduce(
    out: Path,
    data: str = "synth",
    root: str | None = None,
    preset: str | None = None,
    epochs: int | None = None,
    seeds: list[int] = (0, 1),
    cells: list[str] | None = None,
    overrides: list[str] = (),
    progress: bool = True,
    log=print,
) -> dict[str, Path]:
    """Train and evaluate every cell for every seed, then write the table and its figure."""
    if data not in DATA_CONFIGS:
        raise ValueError(f"--data must be one of {', '.join(DATA_CONFIGS)}, got {data!r}")
    if data == "synth" and root is None:
        root = str(out / "data")
    if root is None:
        raise ValueError(f"--data {data} needs the data set's ROOT folder")
    values = base_config(data, root, preset, epochs, overrides)
    chosen = cell_names() if cells is None else [resolve_cell_name(c) for c in cells]
    results = []
    for cell in chosen:
        for seed in seeds:
            config = run_config(values, cell, seed)
            log(f"== {cell}, seed {seed} ==")
            results.append(run_one(config, out / "runs" / cell / f"seed{seed}", progress, log))
    config = run_config(values, "gated", seeds[0])
    rows = summarise(config, results)
    paths = write_table(out, rows, config, data, list(seeds))
    log(format_table(rows, data, list(seeds)))
    log(f"wrote {paths['md']}, {paths['json']} and {paths['png']}")
    return paths
