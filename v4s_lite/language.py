"""The words of the world (notebook 01): grounding instructions that name an object uniquely, and the
navigation commands ("move forward 1.5 m", "turn left 30 degrees") parsed and spelled out.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .scene import Scene
from .utils import V4SError

# ---------------------------------------------------------------------------------------------------------
# Navigation commands

_MOVE = re.compile(r"^(?:move|walk|go|step)\s+(forward|forwards|backward|backwards|back|left|right)\s+"
                   r"([0-9]*\.?[0-9]+)\s*(m|meter|meters|metre|metres)$")
_TURN = re.compile(r"^(?:turn|rotate)\s+(left|right)\s+([0-9]*\.?[0-9]+)\s*(degrees|degree|deg|°)$")


@dataclass(frozen=True)
class Command:
    kind: str  # "move" | "turn"
    direction: str  # move: forward/backward/left/right; turn: left/right
    amount: float  # metres or degrees

    def __str__(self):
        return (f"move {self.direction} {self.amount:g} m" if self.kind == "move"
                else f"turn {self.direction} {self.amount:g} degrees")


def parse_command(text) -> Command:
    """'move forward 1.5 m' / 'turn left 30 degrees' -> Command; anything else raises V4SError."""
    if isinstance(text, Command):
        return text
    if not isinstance(text, str):
        raise V4SError(f"a command must be a string like 'move forward 1.5 m', got {type(text).__name__}")
    t = " ".join(text.strip().lower().rstrip(".").split())
    m = _MOVE.match(t)
    if m:
        d = {"forwards": "forward", "backwards": "backward", "back": "backward"}.get(m[1], m[1])
        amount = float(m[2])
        if not 0 < amount <= 20:
            raise V4SError(f"command {text!r}: distance must be in (0, 20] metres")
        return Command("move", d, amount)
    m = _TURN.match(t)
    if m:
        amount = float(m[2])
        if not 0 < amount <= 360:
            raise V4SError(f"command {text!r}: angle must be in (0, 360] degrees")
        return Command("turn", m[1], amount)
    raise V4SError(f"cannot parse command {text!r}; write 'move forward|backward|left|right <metres> m' "
                   "or 'turn left|right <degrees> degrees'")


def describe_commands(commands) -> str:
    parts = [str(parse_command(c)) for c in commands]
    text = ", then ".join(parts)
    return text[0].upper() + text[1:] + "."


# ---------------------------------------------------------------------------------------------------------
# Instructions

TEMPLATES = ("Find the {}.", "Walk to the {} and look at it.", "Go to the {}.", "Look at the {}.",
             "Where is the {}? Take me there.", "Approach the {}.", "Show me the {}.", "Turn to face the {}.")


class AmbiguousTarget(V4SError):
    """No phrase names the target uniquely (look-alikes with no anchor to tell them apart): `make-data` skips such a
    room's seed, as it skips a seed of the wrong split."""


def describe(scene: Scene, target_id: int, rng=None) -> str:
    """A phrase that names the target uniquely: 'plant', 'blue chair', or 'chair next to the table'."""
    rng = rng if rng is not None else np.random.default_rng(0)
    t = scene.object(target_id)
    same_cat = [o for o in scene.objects if o.category == t.category and o.id != t.id]
    if not same_cat:
        return t.name if rng.random() < 0.6 else t.category
    twins = [o for o in same_cat if o.color == t.color]
    if not twins:
        return t.name
    group = [t] + twins
    anchors = sorted((o for o in scene.objects if o.category != t.category),
                     key=lambda a: np.linalg.norm(a.center[:2] - t.center[:2]))
    dist = lambda o, a: np.linalg.norm(o.center[:2] - a.center[:2])  # noqa: E731
    for a in anchors:  # the anchor whose nearest look-alike is the target
        if min(group, key=lambda o: dist(o, a)) is t:
            return f"{t.name} next to the {a.name}"
    for a in anchors:  # two look-alikes: the target is the farther one from some anchor
        if len(group) == 2 and max(group, key=lambda o: dist(o, a)) is t:
            return f"{t.name} farther from the {a.name}"
    raise AmbiguousTarget(f"object {target_id} cannot be told apart from {[o.id for o in twins]}; pick another target")


def make_instruction(scene: Scene, target_id: int, rng) -> str:
    """A templated grounding instruction, e.g. 'Walk to the green plant and look at it.'"""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return TEMPLATES[int(rng.integers(len(TEMPLATES)))].format(describe(scene, target_id, rng))


def named_colour(instruction: str) -> str | None:
    """The colour an instruction gives its target ('Walk to the green plant and look at it.' -> 'green'), None when
    it names none ('Find the plant.'). `describe` puts the target's own name first, so the first colour word is the
    target's, not an anchor's ('blue chair next to the white table' -> 'blue'). Reads the words only: no ground truth
    (repeated sampling's colour rule, `statistics.SELECTION_RULES`, uses it to judge a try)."""
    from .scene import PALETTE

    words = re.findall(r"[a-z]+", str(instruction).lower())
    return next((w for w in words if w in PALETTE), None)


def named_category(instruction: str) -> str | None:
    """The category an instruction names its target by ('Find the stool.' -> 'stool'; 'Show me the chair next to
    the table.' -> 'chair': `describe` names the target first), None when it names none (a navigation command).
    Reads the words only, like `named_colour` (the category verifier, `verifier.CategoryVerifier`, uses it)."""
    from .scene import CATEGORIES

    words = re.findall(r"[a-z]+", str(instruction).lower())
    return next((w for w in words if w in CATEGORIES), None)


def vocabulary() -> set[str]:
    """Every lower-case word and punctuation mark the course's instructions and commands can contain (an offline
    tokenizer's vocabulary: full.offline_tokenizer)."""
    from .scene import CATEGORIES, PALETTE

    text = " ".join(TEMPLATES) + " next to the farther from then move turn forward backward left right m degrees"
    text += " " + " ".join(CATEGORIES) + " " + " ".join(PALETTE) + " 0 1 2 3 4 5 6 7 8 9 , ."
    return set(re.findall(r"\w+|[^\w\s]", text.replace("{}", " ").lower()))
