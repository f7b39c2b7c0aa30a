"""Reading py-spy's collapsed stacks (`py-spy record --format raw`): the frames that hold the most samples,
by their own time and with their callees, for the bench's profile section and the README."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


@dataclass(frozen=True)
class ProfileTop:
    """The busiest frames of one profile: (frame, share of samples) by self time and inclusive time."""

    samples: int
    own: list[tuple[str, float]]
    inclusive: list[tuple[str, float]]


def frame_name(frame: str) -> str:
    """`send (faust/topics.py:123)` -> `send (faust/topics.py)`: one function, whatever line was sampled;
    site-packages and the checkout are cut from the path."""
    frame = _LINE.sub(")", frame.strip())
    for marker in ("site-packages/", "/lib/python3.11/"):
        if marker in frame:
            name, _, path = frame.partition(" (")
            return f"{name} ({path.split(marker, 1)[1]}"
    return re.sub(r"\(/work/[^/]+/", "(", frame)


def top_frames(lines: Iterable[str], top: int = 15) -> ProfileTop:
    """The `top` frames by own samples and by inclusive samples (each frame counted once per stack)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(frame) for frame in stack.split(";") if frame.strip()]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    share = (lambda n: n / total) if total else (lambda n: 0.0)
    return ProfileTop(
        total,
        [(frame, share(n)) for frame, n in own.most_common(top)],
        [(frame, share(n)) for frame, n in inclusive.most_common(top)],
    )


def print_profile(path: Path, component: str, top: int, out: Callable[[str], None]) -> ProfileTop | None:
    if not path.exists():
        out(f"  no profile of the {component} at {path}")
        return None
    profile = top_frames(path.read_text(errors="replace").splitlines(), top)
    out(f"\n  profile of the {component} ({profile.samples} samples, {path}):")
    out("    by own time:")
    for frame, share in profile.own:
        out(f"      {share:6.1%}  {frame}")
    out("    with callees (inclusive):")
    for frame, share in profile.inclusive:
        out(f"      {share:6.1%}  {frame}")
    return profile
