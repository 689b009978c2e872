"""How much the suite proves: plant realistic bugs one at a time and see which the tests catch.

Each mutation replaces one piece of source text (which must occur exactly once) in a copy of
the project in a temporary folder, then runs the tests meant to catch it there, against the
mutated package. A mutation the tests pass is a claim no test defends. Not part of
``make test``; run it with ``make mutation-check`` (a few minutes), or name mutations:

    python tests/mutation_check.py top5 jitter
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    bug: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]  # pytest arguments: files, or file::test, or "-k" expressions


MUTATIONS = [
    Mutation(
        "kernel-vertical",
        "the compiled resize's vector code blends each output row from one source row only",
        "src/aclstm/data/_cropresize.c",
        "_mm256_fmadd_ps(w, _mm256_sub_ps(vb, va), va)",
        "_mm256_fmadd_ps(w, _mm256_sub_ps(va, va), va)",
        ("tests/test_resize.py", "-k", "dispatched"),
    ),
    Mutation(
        "kernel-lanes",
        "the compiled resize permutes blocks that read more than 8 row values",
        "src/aclstm/data/_cropresize.c",
        "if (hi - lo > 7) p->permutable = 0;",
        "if (hi - lo > 8) p->permutable = 0;",
        ("tests/test_resize.py", "-k", "dispatched"),
    ),
    Mutation(
        "kernel-crop-swapped",
        "the crop's top and left are passed to the compiled resize the wrong way round",
        "src/aclstm/data/resize.py",
        "(top, left, side, size), means",
        "(left, top, side, size), means",
        ("tests/test_resize.py", "tests/test_transforms.py"),
    ),
    Mutation(
        "lookahead-untrained",
        "training ignores the network's lookahead (targets not shifted)",
        "src/aclstm/train/loop.py",
        "lookahead = lookahead_of(model)",
        "lookahead = 0",
        ("tests/test_recognition.py", "-k", "training_and_evaluating"),
    ),
    Mutation(
        "lookahead-unflushed",
        "a stream with a lookahead ends without naming its last steps",
        "src/aclstm/live.py",
        "if self.lookahead and last is not None:",
        "if False:",
        ("tests/test_live.py", "-k", "offline_network"),
    ),
    Mutation(
        "phase-lead",
        "phase-combined rows said to stand for frames half a row earlier than they do",
        "src/aclstm/analysis/phases.py",
        "self.lead = (frames_per_step // 2) % self.frames_per_row",
        "self.lead = self.frames_per_row // 2",
        ("tests/test_phases.py", "tests/test_recognition.py", "-k", "centred or oracle"),
    ),
    Mutation(
        "phase-offsets-ignored",
        "a stream runs every phase on the same frames",
        "src/aclstm/live.py",
        "if index >= offset and (index - offset) % self.stride == 0",
        "if index % self.stride == 0",
        ("tests/test_live.py", "-k", "offline_network"),
    ),
    Mutation(
        "one-frame-refused",
        "a causal network refuses a one-frame clip that a stream names a step from",
        "src/aclstm/models/gesture_net.py",
        'min_frames = 1 if self.config.temporal_padding == "causal" else 2',
        "min_frames = 2",
        ("tests/test_live.py", "-k", "short_stream"),
    ),
    Mutation(
        "phase-ends-dropped",
        "the rows that only some phases reach, at a video's end, are dropped",
        "src/aclstm/analysis/phases.py",
        "while self._next * self.frames_per_row < num_frames:",
        "while False:",
        ("tests/test_phases.py", "tests/test_live.py", "-k", "phase or offline_network"),
    ),
    Mutation(
        "message-drift",
        "an error message reworded in the code, not in docs/reliability.md",
        "src/aclstm/train/checkpoint.py",
        "checkpoint write failed",
        "checkpoint could not be written",
        ("tests/test_reliability_doc.py",),
    ),
    Mutation(
        "top5",
        "evaluate's top-5 counted as top-1",
        "src/aclstm/train/loop.py",
        "sums[1] += (top == labels[:, None])",
        "sums[1] += (top[:, :1] == labels[:, None])",
        ("tests/test_loop.py", "-k", "top1_and_top5"),
    ),
    Mutation(
        "init-from",
        "train.init_from ignored (fresh weights)",
        "src/aclstm/train/runner.py",
        "if config.train.init_from and not resume:",
        "if config.train.init_from and not resume and False:",
        ("tests/test_cli.py", "-k", "init_from"),
    ),
    Mutation(
        "best",
        "best/ rewritten every epoch",
        "src/aclstm/train/loop.py",
        'if metrics["val_top1"] >= position["best_top1"]:',
        "if True:",
        ("tests/test_loop.py", "-k", "best_holds"),
    ),
    Mutation(
        "bn-average",
        "BatchNorm statistics summed over processes, not averaged",
        "src/aclstm/train/distributed.py",
        "buffer.copy_(all_reduce_sum(buffer) / world)",
        "buffer.copy_(all_reduce_sum(buffer))",
        ("tests/test_distributed.py",),
    ),
    Mutation(
        "dropout-eval",
        "ConvLSTM dropout applied in eval mode too",
        "src/aclstm/nn/convlstm.py",
        "if self.dropout > 0 and self.training and layer",
        "if self.dropout > 0 and layer",
        ("tests/test_cells.py", "-k", "dropout"),
    ),
    Mutation(
        "attention-order",
        "a backward direction's attention maps left in reverse time order",
        "src/aclstm/nn/convlstm.py",
        "        attentions.reverse()\n",
        "",
        ("tests/test_cells.py", "-k", "fast_path_equals_reference and bidir"),
    ),
    Mutation(
        "coarse-decode",
        "JPEGs decoded at a quarter of the needed size",
        "src/aclstm/data/clips.py",
        'return 0 if self.preprocessing == "released" else self.size\n',
        'return 0 if self.preprocessing == "released" else self.size // 4\n',
        ("tests/test_jester.py", "-k", "reduced_size"),
    ),
    Mutation(
        "crop-axes",
        "the crop's top and left offsets swapped",
        "src/aclstm/data/transforms.py",
        "top, left, side = crop_box(height, width, training, rng, floor=released)",
        "left, top, side = crop_box(height, width, training, rng, floor=released)",
        ("tests/test_jester.py", "-k", "reduced_size"),
    ),
    Mutation(
        "folder-fsync",
        "the checkpoint's temporary folder not fsynced",
        "src/aclstm/train/checkpoint.py",
        "        _fsync_dir(partial)\n",
        "",
        ("tests/test_checkpoint.py", "-k", "fsynced"),
    ),
    Mutation(
        "jitter",
        "temporal jitter drawn from u instead of u - 0.5",
        "src/aclstm/data/sampling.py",
        "(rng.random() - 0.5)",
        "(rng.random())",
        ("tests/test_sampling.py", "-k", "centred"),
    ),
    Mutation(
        "he-correction",
        "he_normal with later TF's 0.8796 correction",
        "src/aclstm/nn/init.py",
        "std = math.sqrt(2.0 / fan_in)",
        "std = math.sqrt(2.0 / fan_in) / 0.87962566103423978",
        ("tests/test_init.py",),
    ),
    Mutation(
        "depthwise-fan",
        "a depthwise kernel's fan-in taken as K*K (not K*K*C)",
        "src/aclstm/nn/init.py",
        "        return receptive_field * module.in_channels, receptive_field * multiplier",
        "        return receptive_field, receptive_field * multiplier",
        ("tests/test_init.py",),
    ),
    Mutation(
        "tf-pad-side",
        "TensorFlow's extra padding put before instead of after",
        "src/aclstm/models/layers.py",
        "pads += [total // 2, total - total // 2]",
        "pads += [total - total // 2, total // 2]",
        ("tests/test_released.py",),
    ),
    Mutation(
        "released-sigmoid",
        "the released preset with sigmoid gates",
        "src/aclstm/models/presets.py",
        'mobilenet_bias=True, gate_activation="hard_sigmoid"',
        'mobilenet_bias=True, gate_activation="sigmoid"',
        ("tests/test_released.py", "-k", "convlstm_matches or logits_match"),
    ),
    Mutation(
        "released-aliasing",
        "the released resize without antialiasing",
        "src/aclstm/data/transforms.py",
        "antialias=released",
        "antialias=False",
        ("tests/test_released_data.py",),
    ),
    Mutation(
        "released-crop",
        "the released crop offset rounded, not floored",
        "src/aclstm/data/transforms.py",
        "offset = math.floor if floor else round",
        "offset = round",
        ("tests/test_released_data.py",),
    ),
    Mutation(
        "congd-overlap",
        "two ConGD ranges sharing their boundary frame accepted",
        "src/aclstm/data/congd.py",
        "if segment.start <= before.end:",
        "if segment.start < before.end:",
        ("tests/test_congd.py",),
    ),
    Mutation(
        "congd-frames",
        "ConGD's 1-based frame numbers taken as 0-based",
        "src/aclstm/data/congd.py",
        "labels[segment.start - 1 : segment.end] = segment.label",
        "labels[segment.start : segment.end + 1] = segment.label",
        ("tests/test_congd.py",),
    ),
    Mutation(
        "jaccard-2017",
        "the 2017 Jaccard index divided by the labels of truth and prediction (2014's)",
        "src/aclstm/analysis/continuous.py",
        'return total / (len(true_frames) if variant == "2017" else len(labels))',
        "return total / len(labels)",
        ("tests/test_continuous_scores.py",),
    ),
    Mutation(
        "no-back-to-back",
        "the continuous synthetic videos never put two gestures back to back",
        "src/aclstm/data/synth_continuous.py",
        "BACK_TO_BACK = 0.15",
        "BACK_TO_BACK = 0.0",
        ("tests/test_synth_continuous.py", "-k", "idle"),
    ),
    Mutation(
        "stream-phase",
        "a streamed stride-2 convolution keeps the wrong frames after an odd chunk",
        "src/aclstm/models/layers.py",
        "phase = (-buffer.next_index) % self.stride[0]",
        "phase = 0",
        ("tests/test_streaming.py",),
    ),
    Mutation(
        "stream-buffer",
        "a streamed convolution forgets the frames before the chunk (zeros instead)",
        "src/aclstm/models/layers.py",
        "buffer.frames = window[:, :, window.shape[2] - before :]",
        "buffer.frames = torch.zeros_like(window[:, :, window.shape[2] - before :])",
        ("tests/test_streaming.py",),
    ),
    Mutation(
        "step-targets",
        "each ConvLSTM step trained on the label of the frame after the one it ends on",
        "src/aclstm/train/loop.py",
        "targets = labels[:, ::FRAMES_PER_STEP][:, : logits.shape[1]]",
        "targets = labels[:, 1::FRAMES_PER_STEP][:, : logits.shape[1]]",
        ("tests/test_recognition.py",),
    ),
    Mutation(
        "stride-steps",
        "a step of a strided network taken for two frames of the video, not 2 x stride",
        "src/aclstm/analysis/segmentation.py",
        "return max(1, first), f * self.last_step - lead + f",
        "return max(1, 2 * self.first_step), 2 * self.last_step + 1",
        ("tests/test_recognition.py", "-k", "oracle"),
    ),
    Mutation(
        "stride-labels",
        "a strided window's labels taken from consecutive frames instead of its own",
        "src/aclstm/data/congd.py",
        "labels = labels[start : start + len(frames) * stride : stride]",
        "labels = labels[start : start + len(frames)]",
        ("tests/test_congd.py", "-k", "stride"),
    ),
    Mutation(
        "resume-streams",
        "a run resumed mid-epoch keeps the random streams its data loader moved on",
        "src/aclstm/train/loop.py",
        "                _restore_rng(resumed.rng)\n            bar = tqdm(",
        "                pass\n            bar = tqdm(",
        ("tests/test_loop.py", "-k", "random_streams"),
    ),
    Mutation(
        "resume-skip",
        "a run resumed mid-epoch replays the epoch from its start",
        "src/aclstm/train/loop.py",
        "sampler.set_epoch(epoch, done)",
        "sampler.set_epoch(epoch)",
        ("tests/test_faults.py", "-k", "mid_epoch"),
    ),
    Mutation(
        "signal-ignored",
        "SIGTERM stops nothing: the run goes on to the end",
        "src/aclstm/train/interrupt.py",
        "self._previous[signum] = signal.signal(signum, self._handle)",
        "self._previous[signum] = signal.signal(signum, signal.SIG_IGN)",
        ("tests/test_faults.py", "-k", "signal"),
    ),
    Mutation(
        "export-stale-buffers",
        "the exported streaming step hands back the buffers it was given, not the new ones",
        "src/aclstm/export/graphs.py",
        "new_buffers = [streams[id(conv)].frames for conv in self._buffered]",
        "new_buffers = list(buffers)",
        ("tests/test_export.py", "-k", "whole_stream"),
    ),
    Mutation(
        "export-state-dropped",
        "the host of an exported streaming step does not carry h, c and buffers",
        "src/aclstm/export/runtime.py",
        "            self._state = out[1:]\n",
        "            pass\n",
        ("tests/test_export.py", "-k", "whole_stream"),
    ),
    Mutation(
        "export-scan-order",
        "the scanned backward direction's outputs left in reversed time",
        "src/aclstm/export/graphs.py",
        "return (outputs.flip(0) if reverse else outputs), (h, c)",
        "return outputs, (h, c)",
        ("tests/test_export.py", "-k", "both_directions"),
    ),
    Mutation(
        "export-fast-path",
        "the CPU's hand-written tanh (through the sigmoid) kept while exporting",
        "src/aclstm/nn/ops.py",
        "return torch.compiler.is_compiling() or torch.jit.is_tracing()",
        "return torch.jit.is_tracing()",
        ("tests/test_export.py", "-k", "each_cell_exported"),
    ),
    Mutation(
        "export-in-place",
        "an export written straight to its destination (a failure leaves half a file)",
        "src/aclstm/export/program.py",
        "atomic_write(path, lambda partial: torch.export.save(program, partial))",
        "torch.export.save(program, path)",
        ("tests/test_export.py", "-k", "leaves_nothing"),
    ),
    Mutation(
        "export-needs-training-code",
        "aclstm stream on an export loads the training code (checkpoint loading) all the same",
        "src/aclstm/cli.py",
        "    from aclstm.export.runtime import is_exported, load_exported\n",
        "    from aclstm.export.runtime import is_exported, load_exported\n"
        "    from aclstm.train.runner import load_model  # noqa: F401\n",
        ("tests/test_export.py", "-k", "without_the_training"),
    ),
    Mutation(
        "no-hysteresis",
        "a gesture ends when 'something happens' drops below enter instead of exit",
        "src/aclstm/analysis/segmentation.py",
        "if self._first is not None and happening < s.exit:",
        "if self._first is not None and happening < s.enter:",
        ("tests/test_segmentation.py",),
    ),
]


def copy_project(target: Path) -> None:
    """The project's sources, tests, docs and metadata (not the virtualenv, runs or history)."""
    ignore = shutil.ignore_patterns("*.egg-info", "__pycache__")
    for name in ("src", "tests", "docs", "README.md", "pyproject.toml", "setup.py"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)


def plant(root: Path, mutation: Mutation) -> None:
    path = root / mutation.path
    text = path.read_text()
    count = text.count(mutation.old)
    if count != 1:
        raise SystemExit(
            f"{mutation.name}: {mutation.path} holds the text to replace {count} times, not once"
        )
    path.write_text(text.replace(mutation.old, mutation.new))


def caught(mutation: Mutation) -> tuple[bool, float]:
    """Whether the mutation's tests fail on it, and how long they took."""
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutation.name}-") as folder:
        root = Path(folder)
        copy_project(root)
        plant(root, mutation)
        env = {**os.environ, "PYTHONPATH": str(root / "src")}
        started = time.perf_counter()
        if mutation.path.endswith(".c"):  # the compiled kernel, rebuilt from the mutant
            subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                           cwd=root, check=True, capture_output=True)  # fmt: skip
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
             *mutation.tests],
            cwd=root, env=env, capture_output=True, text=True,
        )  # fmt: skip
        return result.returncode == 1, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.names or m.name in args.names]
    unknown = set(args.names) - {m.name for m in MUTATIONS}
    if unknown:
        parser.error(f"unknown mutation(s): {', '.join(sorted(unknown))}")
    survivors = []
    for mutation in chosen:
        ok, seconds = caught(mutation)
        print(
            f"{'caught ' if ok else 'MISSED '} {mutation.name:18s} {seconds:5.1f} s  {mutation.bug}"
        )
        if not ok:
            survivors.append(mutation.name)
    print(f"{len(chosen) - len(survivors)} of {len(chosen)} planted bugs caught")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
