"""The ``aclstm`` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from aclstm import __version__


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _print_json(value) -> int:
    print(json.dumps(value, indent=2))
    return 0


def _cmd_complexity(args: argparse.Namespace) -> int:
    from aclstm.analysis.complexity import cell_complexity_table, format_cell_table

    if args.model is not None:
        return _model_complexity(args)
    rows = cell_complexity_table(
        input_size=args.input_size,
        hidden_size=args.hidden_size,
        kernel_size=args.kernel_size,
        height=args.height,
        width=args.width,
    )
    if args.json:
        return _print_json([row.as_dict() for row in rows])
    print(
        f"One ConvLSTM layer, K={args.kernel_size}, C_in={args.input_size}, "
        f"C_out={args.hidden_size}, {args.height}x{args.width} "
        "(paper formulas: Eqs. 7, 16, 20, 24, without biases; paper Mult-Adds = params x H x W; "
        "measured = multiply-accumulates of the convolutions and matrix products of one step)\n"
    )
    print(format_cell_table(rows))
    return 0


def _model_complexity(args: argparse.Namespace) -> int:
    from aclstm.analysis.complexity import format_model_table, model_complexity
    from aclstm.models import create

    model = create(args.model, cell=args.cell)
    frames = args.frames or model.config.frames
    size = args.size or model.config.size
    rows = model_complexity(model, frames, size)
    if args.json:
        return _print_json([row.as_dict() for row in rows])
    cells = " + ".join(model.config.cells())
    print(
        format_model_table(
            rows,
            f"Preset {args.model!r}, ConvLSTM layers {cells}, one clip of {frames}x{size}x{size}",
        )
    )
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    import time

    from aclstm.data.synth import SynthSpec, write_synthetic_set

    spec = SynthSpec(
        clips_per_class=args.clips_per_class,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        seed=args.seed,
        format=args.format,
    )
    start = time.perf_counter()
    counts = write_synthetic_set(args.out_dir, spec, workers=args.workers)
    seconds = time.perf_counter() - start
    summary = ", ".join(f"{n} {split}" for split, n in counts.items())
    print(
        f"wrote {sum(counts.values())} clips ({summary}) in {args.format} layout to "
        f"{args.out_dir} in {seconds:.1f} s"
    )
    return 0


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aclstm",
        description="ConvLSTM variants and the gesture network of Zhang et al., NIPS 2018.",
    )
    parser.add_argument("--version", action="version", version=f"aclstm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    complexity = commands.add_parser(
        "complexity",
        help="parameter sizes and multiply-adds of the five cells (Table 1)",
        description="Print Table 1's size columns for the five cells: the paper's formulas "
        "beside the real parameter count and the measured multiply-adds of one step. With "
        "--model, the parameters and multiply-adds of each stage of a network preset instead.",
    )
    complexity.add_argument("--input-size", type=_positive_int, default=256, help="C_in (256)")
    complexity.add_argument("--hidden-size", type=_positive_int, default=256, help="C_out (256)")
    complexity.add_argument("--kernel-size", type=_positive_int, default=3, help="K (3)")
    complexity.add_argument("--height", type=_positive_int, default=28, help="H (28)")
    complexity.add_argument("--width", type=_positive_int, default=28, help="W (28)")
    complexity.add_argument(
        "--model", metavar="PRESET", help="per-stage table of a network preset (paper, tiny)"
    )
    complexity.add_argument("--cell", default="gated", help="the network's cell (--model)")
    complexity.add_argument("--frames", type=_positive_int, help="T of the clip (--model)")
    complexity.add_argument("--size", type=_positive_int, help="H = W of the clip (--model)")
    complexity.add_argument("--json", action="store_true", help="print JSON instead of a table")
    complexity.set_defaults(func=_cmd_complexity)

    synth = commands.add_parser(
        "synth",
        help="write the synthetic gesture set (27 Jester classes) in Jester or IsoGD layout",
        description="Render the synthetic gesture set: Jester's 27 classes drawn "
        "procedurally, written in Jester's layout (JPEG folders and CSV files) or IsoGD's "
        "(M_/K_ .avi videos and list files). The same seed writes identical files.",
    )
    synth.add_argument("out_dir", metavar="OUT_DIR", help="where to write the set")
    synth.add_argument("--clips-per-class", type=_positive_int, default=40, help="(40)")
    synth.add_argument("--val-fraction", type=_fraction, default=0.2, help="(0.2)")
    synth.add_argument("--test-fraction", type=_fraction, default=0.0, help="(0)")
    synth.add_argument("--seed", type=int, default=0, help="(0)")
    synth.add_argument(
        "--workers",
        type=_positive_int,
        default=os.cpu_count() or 1,
        help="processes rendering in parallel (all cores)",
    )
    synth.add_argument("--format", choices=["jester", "isogd"], default="jester")
    synth.set_defaults(func=_cmd_synth)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
