"""The working tree that travels to a GPU device machine: every tracked file plus `.site/site.tar.xz` (the packages
the machine lacks, `tools/device_site.sh`), at most 64 MiB in all. A call over the limit is refused before it
starts, in a session whose device time is 30 minutes; so the limit is checked here, where CI sees every commit."""
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAVEL_LIMIT = 64 * 2**20  # bytes: the device tool's limit on what travels (tracked files + carried paths)
SITE_BYTES = 31_800_000  # .site/site.tar.xz as tools/device_site.sh builds it (31.7 MB: diffusers, decord, ffmpeg, diffsynth)


BLOCK = 4096  # the tool counts what the files take on disk, not their bytes: on 2026-12-07 it refused a tree whose
# files held 35.3 MB (+ .site 31.7 = 67.0 MB, under 64 MiB = 67.1 MB) but took 37.3 MB in 4 KiB blocks (789 files)


def tracked_bytes(root: Path) -> int:
    """What the tracked files take on disk: each file's size rounded up to whole 4 KiB blocks."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    sizes = [(root / n).stat().st_size for n in names.decode().split("\0") if n and (root / n).is_file()]
    return sum(-(-size // BLOCK) * BLOCK for size in sizes)


def test_the_tracked_tree_leaves_room_for_the_device_site():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    used = tracked_bytes(ROOT)
    room = TRAVEL_LIMIT - SITE_BYTES
    assert used <= room, (
        f"the tracked files take {used / 1e6:.1f} MB; with .site ({SITE_BYTES / 1e6:.1f} MB) a device call would carry "
        f"more than 64 MiB and be refused. Keep large records compressed (`xz -9`; notebooks read them with "
        f"`v4s_lite.resources.results_json`, which finds NAME.json.xz under NAME.json) or out of the tree; "
        f"{room / 1e6:.1f} MB is the room")


def test_the_tree_size_counts_what_git_tracks(tmp_path):
    # the measure itself: a tracked file counts, an untracked one does not
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "a.bin").write_bytes(b"x" * 1000)
    (tmp_path / "b.bin").write_bytes(b"y" * 500)
    subprocess.run(["git", "add", "a.bin"], cwd=tmp_path, check=True)
    assert tracked_bytes(tmp_path) == 4096  # one block: a small file takes a whole one
