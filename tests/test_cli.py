from v4s_lite.cli import build_parser

EXPECTED = {"course", "make-data", "train", "sample", "eval"}


def test_every_command_is_registered():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    missing = EXPECTED - set(sub.choices)
    assert not missing, f"v4s lacks commands {sorted(missing)}: their module's add_cli is missing"


def test_v4s_train_hands_a_wan_config_to_the_full_model_path(monkeypatch):
    """`v4s train configs/wan22_ti2v_5b.yaml` is the Wan2.2 LoRA path (v4s_lite.full), a lite config is not."""
    from v4s_lite import full
    from v4s_lite.cli import main

    seen = []
    monkeypatch.setattr(full, "_cli_train", lambda args: seen.append(args.config) or 0)
    assert main(["train", "configs/wan22_ti2v_5b.yaml", "--set", "steps=1"]) == 0
    assert seen == ["configs/wan22_ti2v_5b.yaml"]


def test_readme_commands_parse():
    """Every `v4s` line of the README's command block is a command the CLI accepts (flags that no longer exist,
    or a positional argument written as a flag, fail here rather than on a student's machine)."""
    import re
    import shlex
    from pathlib import Path

    from v4s_lite.cli import build_parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("## Commands", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.startswith("v4s ")]
    assert len(lines) >= 5
    parser = build_parser()
    for line in lines:
        args = shlex.split(re.sub(r"\[[^\]]*\]", "", line))[1:]  # optional parts in [brackets] are left out
        parser.parse_args(args)


def test_a_command_module_that_fails_to_import_is_an_error(monkeypatch, capsys):
    """A broken command module must not vanish from `v4s` silently: the error names the module and the exception."""
    import sys

    import pytest

    from v4s_lite import cli
    from v4s_lite.utils import V4SError

    monkeypatch.setattr(cli, "COMMAND_MODULES", ["data", "no_such_module"])
    with pytest.raises(V4SError, match=r"v4s_lite\.no_such_module .*ModuleNotFoundError"):
        cli.build_parser()
    monkeypatch.setitem(sys.modules, "v4s_lite.broken", None)  # importing it raises ImportError
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["broken"])
    assert cli.main(["train", "x.yaml"]) == 2
    assert "v4s_lite.broken" in capsys.readouterr().err
