"""The ``aclstm`` command."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from aclstm import __version__

SHIPPED_CONFIGS = Path(__file__).parent / "configs"


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
    import torch

    from aclstm.analysis.complexity import format_model_table, model_complexity
    from aclstm.models import create

    with torch.device("meta"):  # shapes only: counted without memory or compute
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

    from aclstm.data.synth import CLIP_FRAMES, SynthSpec, write_synthetic_set

    spec = SynthSpec(
        clips_per_class=args.clips_per_class,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        seed=args.seed,
        format=args.format,
        classes=args.classes,
        frames=args.frames or CLIP_FRAMES,
    )
    start = time.perf_counter()
    counts = write_synthetic_set(args.out_dir, spec, workers=args.workers)
    seconds = time.perf_counter() - start
    summary = ", ".join(f"{n} {split}" for split, n in counts.items())
    unit = "continuous videos" if args.format == "congd" else "clips"
    print(
        f"wrote {sum(counts.values())} {unit} ({summary}) in {args.format} layout to "
        f"{args.out_dir} in {seconds:.1f} s"
    )
    return 0


def _config_path(name: str) -> Path:
    """A config file, or the name of a shipped one (``aclstm train synth_demo``)."""
    from aclstm.config import ConfigError

    path = Path(name)
    if path.is_file():
        return path
    shipped = SHIPPED_CONFIGS / f"{name.removesuffix('.toml')}.toml"
    if shipped.is_file():
        return shipped
    raise ConfigError(
        f"{name}: no such config file, and no shipped config of that name "
        f"(shipped: {', '.join(shipped_configs())})"
    )


def shipped_configs() -> list[str]:
    return sorted(p.stem for p in SHIPPED_CONFIGS.glob("*.toml"))


def _cmd_train(args: argparse.Namespace) -> int:
    from aclstm.config import load_config
    from aclstm.train.runner import train

    overrides = list(args.cfg_options)
    if args.amp:
        overrides.append(f'train.amp="{args.amp}"')
    if args.compile:
        overrides.append("train.compile=true")
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    if args.skip_nonfinite:
        overrides.append("train.skip_nonfinite=true")
    path = _config_path(args.config)
    config = load_config(path, overrides)
    work_dir = Path(args.work_dir or Path("runs") / path.stem)
    from aclstm.train.interrupt import TrainingInterrupted

    try:
        metrics = train(
            config, work_dir, args.resume, not args.no_progress, allow_changes=args.allow_changes
        )
    except TrainingInterrupted as stopped:
        print(f"aclstm train: {stopped}", file=sys.stderr)
        return stopped.exit_status
    if metrics:
        print(f"val_top1={metrics['val_top1']:.4f} (run folder {work_dir})")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from aclstm.train.runner import evaluate_checkpoint

    overrides = list(args.cfg_options)
    if args.data:
        overrides.append(f"data.root={json.dumps(args.data)}")
    report = evaluate_checkpoint(
        args.checkpoint, args.split, args.out, overrides, args.batch_size, not args.no_progress
    )
    if args.json:
        return _print_json({k: v for k, v in report.items() if k != "confusion"})
    unit = "steps of windows" if "continuous" in report else "clips"
    print(
        f"{report['split']}: top-1 {report['top1']:.4f}, top-5 {report['top5']:.4f}, "
        f"loss {report['loss']:.4f} over {report['clips']} {unit}"
        + (f" ({report['skipped']} unreadable clips skipped)" if report["skipped"] else "")
    )
    width = max(len(row["class"]) for row in report["per_class"])
    for row in report["per_class"]:
        accuracy = "   n/a" if row["top1"] is None else f"{row['top1']:6.3f}"
        print(f"  {row['class']:<{width}}  {accuracy}  ({row['clips']} clips)")
    continuous = report.get("continuous")
    if continuous and "mean_jaccard_2017" in continuous:
        c = continuous
        print(
            f"whole videos ({c['videos']}): mean Jaccard {c['mean_jaccard_2017']:.4f} (ConGD "
            f"2017), {c['mean_jaccard_2014']:.4f} (2014); Levenshtein accuracy "
            f"{c['levenshtein_accuracy']:.4f}; gestures found: {c['predictions']}"
        )
    print(f"wrote {report['out']}/report.json and confusion.png")
    return 0


def _load_model(checkpoint: str, kind: str, threads: int | None = None):
    """``(model, meta)``: a checkpoint folder's network, or an exported model (.onnx or .pt2,
    its meta beside it) of ``kind``, "clip" or "streaming", run without the training code."""
    from aclstm.export.runtime import is_exported, load_exported

    if is_exported(checkpoint):
        return load_exported(checkpoint, kind, threads)
    from aclstm.train.runner import load_model

    return load_model(checkpoint)


def _cmd_predict(args: argparse.Namespace) -> int:
    from aclstm.inference import load_input, topk_predictions

    model, meta = _load_model(args.checkpoint, "clip")
    clip, label, source = load_input(args.input, meta)
    predictions = topk_predictions(model, clip, meta["classes"], args.topk)
    if args.json:
        answer = {"input": source, "predictions": predictions}
        if label >= 0:
            answer["label"] = meta["classes"][label]
        return _print_json(answer)
    print(source + (f" (labelled {meta['classes'][label]!r})" if label >= 0 else ""))
    for p in predictions:
        print(f"  {p['probability']:6.3f}  {p['class']}")
    return 0


def _cmd_convert_keras(args: argparse.Namespace) -> int:
    from aclstm.convert import convert_released_weights

    out = convert_released_weights(
        args.weights, args.out, args.modality, args.frames, args.size, args.data or ""
    )
    print(
        f"wrote {out} (model.safetensors, meta.json): the released gated network, {args.modality}"
    )
    print(f"  aclstm evaluate {out} --data <IsoGD root>    or    aclstm predict {out} <clip>")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from aclstm.export import export_checkpoint

    result = export_checkpoint(args.checkpoint, args.out, args.format, args.streaming)
    if result.note:
        print(f"note: {result.note}", file=sys.stderr)
    what = "streaming step" if result.streaming else "clip model"
    print(
        f"wrote {result.path} ({result.format}, the {what}; "
        f"{result.path.stat().st_size / 1e6:.1f} MB) and {result.meta_path.name}"
    )
    if result.max_difference is not None:
        print(f"  checked against PyTorch: logits differ by at most {result.max_difference:.2g}")
    command = "stream" if result.streaming else "predict"
    print(f"  aclstm {command} {result.path} <{'video' if result.streaming else 'clip'}>")
    return 0


def _default_visualize_out(checkpoint: str, source: str) -> Path:
    """CHECKPOINT/../visualize-NAME.png, NAME the input file's or folder's name without its
    extension, or SPLIT-INDEX for a clip of the data set."""
    folder = Path(checkpoint)
    if not folder.is_dir() and folder.name in ("model.safetensors", "meta.json"):
        folder = folder.parent
    path = Path(source)
    name = path.stem if path.exists() else source.replace(":", "-")
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "input"
    return folder.parent / f"visualize-{name}.png"


def _cmd_visualize(args: argparse.Namespace) -> int:
    from aclstm.analysis.visualize import save_visualization, visualization_maps
    from aclstm.inference import load_input
    from aclstm.train.runner import load_model

    model, meta = load_model(args.checkpoint)
    clip, label, source = load_input(args.input, meta)
    vis = visualization_maps(model, clip, meta["mean"])
    out = Path(args.out) if args.out else _default_visualize_out(args.checkpoint, args.input)
    save_visualization(vis, out, meta["classes"], label, source)
    classes = meta["classes"]
    print(
        f"{source}: predicted {classes[vis.predicted]!r} "
        f"({vis.probabilities[vis.predicted]:.3f})"
        + (f", labelled {classes[label]!r}" if label >= 0 else "")
    )
    print(f"  steps show input frames {vis.frame_indices}")
    print(f"  strongest hidden channel per step {vis.channels}")
    for strip in vis.attention:
        how = "one map" if strip.channels == 1 else f"the mean of {strip.channels} channels"
        print(f"  attention of layer {strip.layer + 1} ({strip.cell}): {how}")
    print(f"wrote {out}")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from aclstm.analysis.continuous import format_scores, score_lists

    scores = score_lists(args.truth, args.prediction, args.variant)
    if args.json:
        return _print_json(scores.to_dict())
    print(format_scores(scores))
    return 0


def _raw_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT, e.g. 640x480, got {text!r}"
        ) from None
    return width, height


def _cmd_stream(args: argparse.Namespace) -> int:
    import torch

    from aclstm.analysis.segmentation import segmenter_settings
    from aclstm.data.congd import write_congd_list
    from aclstm.live import GestureStream, Renderer, open_source, run_stream

    torch.set_num_threads(args.threads)
    model, meta = _load_model(args.checkpoint, "streaming", args.threads)
    if meta["network"].get("temporal_padding") != "causal":
        print(
            f"note: {args.checkpoint} was trained with symmetric temporal padding; it streams "
            "with causal padding (the same weights), less accurately than a causal network",
            file=sys.stderr,
        )
    # A rendered video shows the frames as they are; the network only needs them small.
    min_side = 0 if args.render else meta["size"]
    source = open_source(args.source, min_side, args.fps, args.raw_size, args.on_error)
    given = {"enter": args.enter, "exit": args.exit, "smoothing": args.smoothing}
    given["min_steps"], given["phases"] = args.min_steps, args.phases
    settings = segmenter_settings(meta, **given)
    stream = GestureStream(model, meta, source.fps, settings)

    def report(found) -> None:
        print(json.dumps(found.as_dict()) if args.json else found.line(), flush=True)

    renderer = Renderer(args.render, source.fps) if args.render else None
    summary = run_stream(source, stream, report, renderer)
    end = "interrupted" if summary.interrupted else "ended"
    print(
        f"{source.name}: {end} after {summary.frames} frames in {summary.seconds:.1f} s "
        f"({summary.frames / max(summary.seconds, 1e-9):.0f} frames/s), "
        f"{len(summary.found)} gestures, {summary.dropped} frames dropped"
        + (f", {summary.corrupt} corrupt frames skipped" if summary.corrupt else ""),
        file=sys.stderr,
    )
    if summary.error:
        print(f"error: {summary.error} (the gestures found before are kept)", file=sys.stderr)
    segments = [f.segment() for f in summary.found]
    if args.congd:
        write_congd_list(args.congd, [(args.name or source.name, segments)])
    if args.timeline:
        from dataclasses import replace

        import numpy as np

        from aclstm.analysis.timeline import save_stream_timeline

        # labels: the model's classes
        by_index = [replace(f.segment(), label=f.gesture.label) for f in summary.found]
        save_stream_timeline(
            args.timeline, np.array(stream.probabilities), by_index, meta["classes"],
            source.fps, title=f"{source.name}: {len(segments)} gestures",
            frames_per_step=stream.segmenter.frames_per_step,
        )  # fmt: skip
    return 130 if summary.interrupted else 1 if summary.error else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from aclstm.demo import run_continuous_demo, run_demo

    if args.continuous:
        work_dir = Path(args.work_dir or "runs/demo-continuous")
        return run_continuous_demo(work_dir, overrides=list(args.cfg_options))
    return run_demo(Path(args.work_dir or "runs/demo"), overrides=list(args.cfg_options))


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from aclstm.reproduce import reproduce

    kind, *rest = args.data
    if len(rest) > 1:
        raise ValueError(f"--data takes KIND [ROOT], got {' '.join(args.data)}")
    reproduce(
        Path(args.out),
        data=kind,
        root=rest[0] if rest else None,
        preset=args.preset,
        epochs=args.epochs,
        seeds=list(args.seeds),
        cells=args.cells,
        overrides=list(args.cfg_options),
        progress=not args.no_progress,
    )
    return 0


def _index_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected indices like 0,1,2, got {text!r}") from None


def _frame_range(text: str) -> tuple[int, int]:
    parts = _index_list(text)
    if len(parts) != 2 or not 2 <= parts[0] <= parts[1]:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX with 2 <= MIN <= MAX, got {text!r}")
    return parts


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
        help="write the synthetic gesture set (27 Jester classes) in Jester, IsoGD or ConGD layout",
        description="Render the synthetic gesture set: Jester's 27 classes drawn "
        "procedurally, written in Jester's layout (JPEG folders and CSV files), IsoGD's "
        "(M_/K_ .avi videos and list files) or ConGD's (continuous videos of several gestures, "
        "list lines with each gesture's frames). The same seed writes identical files.",
    )
    synth.add_argument("out_dir", metavar="OUT_DIR", help="where to write the set")
    synth.add_argument(
        "--clips-per-class",
        type=_positive_int,
        default=40,
        help="clips of each class (40); congd: about as many gestures of each class in all",
    )
    synth.add_argument("--val-fraction", type=_fraction, default=0.2, help="(0.2)")
    synth.add_argument("--test-fraction", type=_fraction, default=0.0, help="(0)")
    synth.add_argument("--seed", type=int, default=0, help="(0)")
    synth.add_argument(
        "--workers",
        type=_positive_int,
        default=os.cpu_count() or 1,
        help="processes rendering in parallel (all cores)",
    )
    synth.add_argument(
        "--format",
        choices=["jester", "isogd", "congd"],
        default="jester",
        help="jester: JPEG folders; isogd: a video per gesture; congd: continuous videos of "
        "2-8 gestures with idle stretches between them, in ConGD's layout",
    )
    synth.add_argument(
        "--classes",
        type=_index_list,
        metavar="I,J,...",
        help="only these of the 27 classes, by index (e.g. 0,1,2,3: the four swipes)",
    )
    synth.add_argument(
        "--frames",
        type=_frame_range,
        metavar="MIN,MAX",
        help="frames a clip has, drawn between MIN and MAX (24,48: Jester-like)",
    )
    synth.set_defaults(func=_cmd_synth)

    cfg_help = "override config entries, e.g. train.lr=0.01 model.cell=b (TOML values)"
    train = commands.add_parser(
        "train",
        help="train a gesture network from a config",
        description="Train the network a TOML config describes (tables [model], [data], "
        "[train]) and write a run folder: last/ and best/ checkpoints, metrics.jsonl, "
        "TensorBoard logs. CONFIG is a file or a shipped config's name: "
        + ", ".join(shipped_configs())
        + ". Under torchrun --nproc_per_node=N it trains data-parallel.",
    )
    train.add_argument("config", metavar="CONFIG", help="config file or shipped config name")
    train.add_argument("--work-dir", metavar="DIR", help="run folder (runs/<config name>)")
    train.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="CKPT",
        help="continue the run in --work-dir from its last/ checkpoint (or from CKPT); "
        "with none there, start afresh",
    )
    train.add_argument(
        "--allow-changes", action="store_true",
        help="resume with training settings changed (the run is then not reproduced exactly)",
    )  # fmt: skip
    train.add_argument(
        "--amp",
        nargs="?",
        const="bf16",
        choices=["bf16", "fp16", "auto"],
        help="mixed precision (bf16; auto: bf16 where the device computes it natively)",
    )
    train.add_argument("--compile", action="store_true", help="torch.compile the network")
    train.add_argument("--seed", type=int, help="the run's seed (train.seed)")
    train.add_argument(
        "--skip-nonfinite",
        action="store_true",
        help="skip (and count) a batch whose loss is NaN or inf instead of stopping the run; "
        "it still stops after train.nonfinite_limit (10) in a row (train.skip_nonfinite)",
    )
    train.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE", help=cfg_help)
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=_cmd_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="accuracy, per-class accuracy and confusion matrix of a checkpoint",
        description="Evaluate a checkpoint folder on a split of the data set it was trained "
        "on (or another root of the same layout): top-1, top-5, per-class accuracy; writes "
        "report.json and confusion.png.",
    )
    evaluate.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint folder")
    evaluate.add_argument("--data", metavar="ROOT", help="the data set's root (data.root)")
    evaluate.add_argument("--split", choices=["val", "test", "train"], default="val")
    evaluate.add_argument("--out", metavar="DIR", help="(CHECKPOINT/../evaluate-SPLIT)")
    evaluate.add_argument("--batch-size", type=_positive_int, default=16, help="(16)")
    evaluate.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                          help="override data entries of the stored config")  # fmt: skip
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluate.set_defaults(func=_cmd_evaluate)

    predict = commands.add_parser(
        "predict",
        help="the most probable classes of one clip",
        description="Predict the class of one clip with a checkpoint. INPUT is a video file, "
        "a folder of JPEG frames, or SPLIT:INDEX for a clip of the checkpoint's data set "
        "(e.g. val:0).",
    )
    predict.add_argument(
        "checkpoint", metavar="CHECKPOINT", help="a checkpoint folder, or a clip model export"
    )
    predict.add_argument("input", metavar="INPUT", help="video, frame folder or SPLIT:INDEX")
    predict.add_argument("--topk", type=_positive_int, default=5, help="(5)")
    predict.add_argument("--json", action="store_true", help="print JSON")
    predict.set_defaults(func=_cmd_predict)

    export = commands.add_parser(
        "export",
        help="a checkpoint as ONNX or a torch.export program, for deployment",
        description="Write CHECKPOINT's network to OUT (.onnx for ONNX Runtime, TensorRT; "
        ".pt2 for torch.export.load, ExecuTorch, AOTInductor) with its meta beside it "
        "(OUT.json: classes, clip length, size, mean), and check the file against PyTorch. "
        "The clip model takes clips (B, C, T, H, W) of the checkpoint's clip length; "
        "--streaming writes one step of the causal network on a stream: (2 frames, h, c, "
        "buffers) -> (logits, h, c, buffers), the caller carrying the state. aclstm predict "
        "and aclstm stream run such files. See docs/export.md.",
    )
    export.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint folder")
    export.add_argument("out", metavar="OUT", help="the file to write: NAME.onnx or NAME.pt2")
    export.add_argument("--format", choices=("onnx", "pt2"), help="(from OUT's suffix)")
    export.add_argument(
        "--streaming", action="store_true", help="the streaming step, not the clip model"
    )
    export.set_defaults(func=_cmd_export)

    convert = commands.add_parser(
        "convert-keras",
        help="the authors' released Keras weights -> an aclstm checkpoint folder",
        description="Convert a weights file of the authors' released Keras code (the "
        "published IsoGD models isogr_{rgb,depth,flow}_gatedclstm_weights.zip.001/.002, "
        "TF 1.2 Keras save_weights HDF5) into a checkpoint folder that evaluate, predict and "
        "visualize accept. WEIGHTS is the .h5 file, a .zip holding it, or the first volume "
        "(.zip.001) of the split archive with the others beside it. The checkpoint uses the "
        "'released' preset and preprocessing; its data set is IsoGD (the official lists and "
        "videos for rgb and depth, the released code's frame lists for flow).",
    )
    convert.add_argument("weights", metavar="WEIGHTS", help=".h5, .zip or .zip.001 file")
    convert.add_argument("out", metavar="OUT", help="the checkpoint folder to write")
    convert.add_argument(
        "--modality", choices=["rgb", "depth", "flow"], default="rgb", help="(rgb)"
    )
    convert.add_argument("--frames", type=_positive_int, default=32, help="clip length (32)")
    convert.add_argument("--size", type=_positive_int, default=112, help="clip H = W (112)")
    convert.add_argument("--data", metavar="ROOT", help="the IsoGD root, stored as data.root")
    convert.set_defaults(func=_cmd_convert_keras)

    visualize = commands.add_parser(
        "visualize",
        help="heat-maps of the ConvLSTM's strongest channel per step (Fig. 3) as a PNG",
        description="Draw the paper's Fig. 3 for one clip: for each recurrent step of the "
        "last ConvLSTM layer, the hidden channel with the largest activation sum, upsampled "
        "and laid over the input frame at the centre of the step's temporal receptive field "
        "(frame 2t for step t with Res3D's one temporal stride of 2), mean added back. Layers "
        "with attention (input_attention, input_gate_attention, output_gate_attention) get a "
        "second row: their attention maps, channel-wise maps averaged over channels. The "
        "title gives the predicted class, its probability and the label when known. INPUT "
        "is a video file, a folder of JPEG frames, or SPLIT:INDEX (e.g. val:0).",
    )
    visualize.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint folder")
    visualize.add_argument("input", metavar="INPUT", help="video, frame folder or SPLIT:INDEX")
    visualize.add_argument(
        "--out",
        metavar="PNG",
        help="where to write the figure (CHECKPOINT/../visualize-NAME.png, NAME: the input's "
        "file or folder name without extension, or SPLIT-INDEX)",
    )
    visualize.set_defaults(func=_cmd_visualize)

    stream = commands.add_parser(
        "stream",
        help="find and name gestures in a video, a folder of frames, a camera or a pipe, live",
        description="Run a checkpoint over SOURCE frame by frame, carrying the network's state "
        "(a causal network; others stream with causal padding, less accurately), and print "
        "each gesture once it has ended: START-END  CLASS  SCORE (--render draws the "
        "gesture going on over each frame of a copy of the video). SOURCE: a video file (any "
        "container FFmpeg opens), a folder of JPEG frames, a camera (camera:0, /dev/video0), "
        "or - for raw rgb24 frames on stdin, e.g. ffmpeg -i in.mp4 -f rawvideo -pix_fmt "
        "rgb24 -s 320x240 - | aclstm stream CKPT - --raw-size 320x240 --fps 10. A live "
        "camera's frames that come while the model is behind are dropped and counted. "
        "Ctrl-C ends it cleanly (exit status 130).",
    )
    stream.add_argument(
        "checkpoint", metavar="CHECKPOINT", help="a checkpoint folder, or a streaming export"
    )
    stream.add_argument("source", metavar="SOURCE", help="video, frame folder, camera:N or -")
    stream.add_argument("--json", action="store_true", help="a JSON object per gesture")
    stream.add_argument("--congd", metavar="FILE", help="write the gestures as a ConGD list line")
    stream.add_argument("--name", help="the video's name in the --congd line (the file's stem)")
    stream.add_argument("--timeline", metavar="PNG", help="draw probabilities and gestures")
    stream.add_argument("--render", metavar="MP4", help="the video with the gesture drawn on it")
    stream.add_argument("--fps", type=float, help="frame rate of a frame folder or a pipe (10)")
    stream.add_argument("--raw-size", type=_raw_size, metavar="WxH", help="frames on stdin")
    stream.add_argument("--threads", type=_positive_int, default=1, help="torch threads (1)")
    stream.add_argument(
        "--on-error", choices=("skip", "raise"), default="skip",
        help="a frame that cannot be decoded: skipped and counted (default), or the end",
    )  # fmt: skip
    # Segmentation: the checkpoint's [segment] settings unless given here.
    stream.add_argument("--enter", type=float, help="'something happening' starts a gesture")
    stream.add_argument("--exit", type=float, help="... and below this ends it")
    stream.add_argument("--smoothing", type=_positive_int, help="steps averaged")
    stream.add_argument("--min-steps", type=_positive_int, help="the shortest gesture, in steps")
    stream.add_argument(
        "--phases", type=_positive_int,
        help="run the network at this many offsets of its step (a divisor of its frames a "
        "step; its cost times this) for finer boundaries; smoothing and min-steps, unless "
        "given, are scaled to stay as many frames",
    )  # fmt: skip
    stream.set_defaults(func=_cmd_stream)

    score = commands.add_parser(
        "score",
        help="score continuous recognition: mean Jaccard index and Levenshtein accuracy",
        description="Score a prediction against the truth, both in ConGD's list format (a "
        "line per video: NAME s,e:label ..., frames 1-based and inclusive): ConGD's mean "
        "Jaccard index (2017; --variant 2014 divides by the labels of truth and prediction, "
        "so false alarms count) and Levenshtein accuracy, per video and their means. A video "
        "the prediction leaves out scores 0.",
    )
    score.add_argument("truth", metavar="TRUTH", help="the true list file")
    score.add_argument("prediction", metavar="PRED", help="the predicted list file")
    score.add_argument("--variant", choices=["2017", "2014"], default="2017", help="(2017)")
    score.add_argument("--json", action="store_true", help="print JSON")
    score.set_defaults(func=_cmd_score)

    demo = commands.add_parser(
        "demo",
        help="generate the synthetic set, train, evaluate and predict, offline",
        description="The whole pipeline on the built-in synthetic gesture set: generate it "
        "(unless present), train the demo network with the gated cell, evaluate it, check "
        "that it reads temporal order (validation clips played backwards), draw its curves "
        "and confusion matrix, predict a held-out clip, print val_top1=.",
    )
    demo.add_argument(
        "--continuous", action="store_true",
        help="instead: the synthetic continuous set, synth_continuous trained, scored on the "
        "validation videos, and one of them streamed (its gestures, timeline and Jaccard)",
    )  # fmt: skip
    demo.add_argument("--work-dir", metavar="DIR", help="(runs/demo, runs/demo-continuous)")
    demo.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE", help=cfg_help)
    demo.set_defaults(func=_cmd_demo)

    reproduce = commands.add_parser(
        "reproduce",
        help="Table 1: the five cells trained with one recipe and seeds, with their sizes",
        description="Train and evaluate every cell with the same recipe and seeds, then write "
        "table1.md, table1.json and table1.png (accuracy against multiply-adds) into --out. "
        "The synthetic default takes about half an hour on 2 CPU cores. Finished runs are reused "
        "and interrupted ones resumed, so the same command again completes a broken table. "
        "For IsoGD, train.init_from may contain {cell} and {seed}.",
    )
    reproduce.add_argument(
        "--data",
        nargs="+",
        default=["synth"],
        metavar=("KIND", "ROOT"),
        help="synth [ROOT] (generated at OUT/data unless ROOT), jester ROOT or isogd ROOT",
    )
    reproduce.add_argument("--preset", help="network preset, with its own clip length and size")
    reproduce.add_argument("--epochs", type=_positive_int, help="epochs of every run")
    reproduce.add_argument(
        "--seeds", type=_index_list, default=(0, 1), metavar="S,S,...", help="(0,1)"
    )
    reproduce.add_argument(
        "--cells", nargs="+", metavar="CELL", help="a subset of the cells (all five)"
    )
    reproduce.add_argument(
        "--out", default="runs/reproduce", metavar="DIR", help="(runs/reproduce)"
    )
    reproduce.add_argument(
        "--cfg-options", nargs="+", default=[], metavar="KEY=VALUE", help=cfg_help
    )
    reproduce.add_argument("--no-progress", action="store_true", help="no progress bars")
    reproduce.set_defaults(func=_cmd_reproduce)
    return parser


def print_tracebacks_on_crash() -> None:
    """A crash in native code (a segfault, or an abort in a C++ library such as gloo) prints
    where every Python thread was, not only the bare signal torchrun reports."""
    if faulthandler.is_enabled():
        return
    with contextlib.suppress(OSError, ValueError):  # stderr without a file descriptor (captured)
        faulthandler.enable(all_threads=True)


def main(argv: Sequence[str] | None = None) -> int:
    print_tracebacks_on_crash()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError, FloatingPointError, ImportError) as error:
        # Bad configs, data, checkpoints, a diverged run and a missing optional package: their
        # messages name the file (or the package) and what was expected, so print them
        # without a traceback.
        print(f"aclstm {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C where nothing catches it (a second one, a long setup)
        print(f"aclstm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
