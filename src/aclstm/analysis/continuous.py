"""Scores of continuous recognition: where each gesture is and what it is.

* Mean Jaccard index as ChaLearn LAP ConGD defines it (2017; the challenge's
  ``score/con_score.py``): for each video s and each label n of the truth or the prediction,
  J(s, n) = |A ∩ B| / |A ∪ B| over the frames labelled n in the truth (A) and the prediction
  (B); J(s) = Σ_n J(s, n) / (number of labels in the truth of s); the score is the mean of J(s)
  over the truth's videos, a video without a prediction scoring 0.
* The ChaLearn 2014 variant divides by the number of labels in truth ∪ prediction instead, so
  a label predicted where the truth has none lowers the score (2017 ignores it).
* Levenshtein accuracy (Köpüklü et al. 2019, nvGesture / EgoGesture): 1 − the edit distance
  between the predicted and true label sequences / the number of true gestures, floored at 0,
  averaged over videos. It judges the order of the gestures, not their frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aclstm.data.congd import Segment, read_congd_segments
from aclstm.data.io import DataError

__all__ = [
    "JACCARD_VARIANTS",
    "ContinuousScores",
    "VideoScore",
    "edit_distance",
    "format_scores",
    "jaccard_index",
    "levenshtein_accuracy",
    "score_lists",
    "score_videos",
]

JACCARD_VARIANTS = ("2017", "2014")


def _frames_by_label(segments: Sequence[Segment]) -> dict[int, set[int]]:
    frames: dict[int, set[int]] = {}
    for segment in segments:
        frames.setdefault(segment.label, set()).update(range(segment.start, segment.end + 1))
    return frames


def jaccard_index(
    truth: Sequence[Segment], predicted: Sequence[Segment], variant: str = "2017"
) -> float:
    """J(s) of one video (see the module's docstring); ``truth`` must hold a gesture."""
    if variant not in JACCARD_VARIANTS:
        raise ValueError(f"variant must be one of {JACCARD_VARIANTS}, got {variant!r}")
    if not truth:
        raise ValueError("the truth of a video must hold at least one gesture")
    true_frames, predicted_frames = _frames_by_label(truth), _frames_by_label(predicted)
    labels = true_frames.keys() | predicted_frames.keys()
    total = 0.0
    for label in sorted(labels):  # a fixed order: the same labels, the same sum
        a, b = true_frames.get(label, set()), predicted_frames.get(label, set())
        total += len(a & b) / len(a | b)
    return total / (len(true_frames) if variant == "2017" else len(labels))


def edit_distance(a: Sequence[int], b: Sequence[int]) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions from a to b."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def levenshtein_accuracy(truth: Sequence[Segment], predicted: Sequence[Segment]) -> float:
    """1 − edit distance of the label sequences / true gestures, floored at 0."""
    if not truth:
        raise ValueError("the truth of a video must hold at least one gesture")
    true_labels = [s.label for s in sorted(truth, key=lambda s: s.start)]
    predicted_labels = [s.label for s in sorted(predicted, key=lambda s: s.start)]
    return max(0.0, 1.0 - edit_distance(predicted_labels, true_labels) / len(true_labels))


@dataclass(frozen=True)
class VideoScore:
    video: str
    jaccard: float
    levenshtein_accuracy: float
    true_gestures: int
    predicted_gestures: int | None  # None: the prediction did not name the video


@dataclass
class ContinuousScores:
    """The scores of a prediction against the truth, over the truth's videos."""

    variant: str
    mean_jaccard: float
    levenshtein_accuracy: float
    videos: list[VideoScore] = field(default_factory=list)

    @property
    def unpredicted(self) -> list[str]:
        return [v.video for v in self.videos if v.predicted_gestures is None]

    def to_dict(self) -> dict:
        return {
            "jaccard_variant": self.variant,
            "mean_jaccard": self.mean_jaccard,
            "levenshtein_accuracy": self.levenshtein_accuracy,
            "videos_scored": len(self.videos),
            "videos_unpredicted": len(self.unpredicted),
            "videos": [asdict(v) for v in self.videos],
        }


def score_videos(
    truth: Mapping[str, Sequence[Segment]],
    predicted: Mapping[str, Sequence[Segment]],
    variant: str = "2017",
) -> ContinuousScores:
    """Score every video of ``truth``; one missing from ``predicted`` scores 0, and a predicted
    video the truth lacks is an error."""
    extra = sorted(predicted.keys() - truth.keys())
    if extra:
        raise ValueError(f"the prediction names videos the truth lacks: {', '.join(extra[:5])}")
    if not truth:
        raise ValueError("the truth holds no video")
    videos = []
    for name, segments in truth.items():
        guess = predicted.get(name)
        videos.append(
            VideoScore(
                name,
                jaccard_index(segments, guess or (), variant),
                levenshtein_accuracy(segments, guess or ()),
                len(segments),
                None if guess is None else len(guess),
            )
        )
    return ContinuousScores(
        variant,
        sum(v.jaccard for v in videos) / len(videos),
        sum(v.levenshtein_accuracy for v in videos) / len(videos),
        videos,
    )


def score_lists(
    truth_file: str | Path, prediction_file: str | Path, variant: str = "2017"
) -> ContinuousScores:
    """:func:`score_videos` on two files in ConGD's list format. A truth line without gestures
    (an unlabelled test list) and a predicted video the truth lacks are errors naming the line."""
    truth = {}
    for entry in read_congd_segments(truth_file):
        if entry.segments is None:
            raise DataError(
                truth_file, f"video {entry.video!r} has no gestures: not a truth file", entry.line
            )
        truth[entry.video] = entry.segments
    predicted = {}
    for entry in read_congd_segments(prediction_file):
        if entry.video not in truth:
            raise DataError(
                prediction_file, f"video {entry.video!r} is not in {truth_file}", entry.line
            )
        predicted[entry.video] = entry.segments or ()
    return score_videos(truth, predicted, variant)


def format_scores(scores: ContinuousScores) -> str:
    """A table of the videos' scores, then the means."""
    width = max(len("video"), *(len(v.video) for v in scores.videos))
    lines = [f"{'video':<{width}}  jaccard  levenshtein  true  predicted"]
    for v in scores.videos:
        predicted = "-" if v.predicted_gestures is None else str(v.predicted_gestures)
        lines.append(
            f"{v.video:<{width}}  {v.jaccard:7.4f}  {v.levenshtein_accuracy:11.4f}  "
            f"{v.true_gestures:4d}  {predicted:>9}"
        )
    missing = len(scores.unpredicted)
    lines += [
        f"mean Jaccard index (ConGD {scores.variant}): {scores.mean_jaccard:.4f} over "
        f"{len(scores.videos)} videos",
        f"Levenshtein accuracy: {scores.levenshtein_accuracy:.4f}",
    ]
    if missing:
        lines.append(f"{missing} video{'s' if missing > 1 else ''} without a prediction (scored 0)")
    return "\n".join(lines)
