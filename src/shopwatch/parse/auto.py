"""Format sniffing: which registered format reads most of a file's first lines."""

from __future__ import annotations

from typing import Final

from shopwatch.parse.base import FORMATS

__all__ = ["MIN_SHARE", "SAMPLE_LINES", "sniff_format", "sniff_scores"]

#: Non-empty lines a file is judged on.
SAMPLE_LINES: Final = 50
#: A format must read at least this share of the sample to be chosen.
MIN_SHARE: Final = 0.5


def sniff_scores(sample_lines: list[str]) -> dict[str, float]:
    """Each format's share (0..1) of the first :data:`SAMPLE_LINES` non-empty lines.

    Aliases (another name for the same parser, as ``apache``) are left out.
    """
    sample = [line for line in sample_lines if line.strip()][:SAMPLE_LINES]
    scores: dict[str, float] = {}
    seen = set()
    for name, fmt in FORMATS.items():
        if fmt.parse in seen:
            continue
        seen.add(fmt.parse)
        scores[name] = fmt.sniff(sample) if sample else 0.0
    return scores


def sniff_format(sample_lines: list[str]) -> str | None:
    """The format that reads most of the sample (at least :data:`MIN_SHARE`), else ``None``.

    Blank lines are ignored; ties go to the format registered first.
    """
    scores = sniff_scores(sample_lines)
    best = max(scores, key=lambda name: scores[name], default=None)
    if best is None or scores[best] < MIN_SHARE:
        return None
    return best
