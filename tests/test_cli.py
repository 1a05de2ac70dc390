from v4s_lite.cli import build_parser

EXPECTED = {"course", "make-data", "train", "sample", "eval"}


def test_every_command_is_registered():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    missing = EXPECTED - set(sub.choices)
    assert not missing, f"v4s lacks commands {sorted(missing)}: their module's add_cli is missing"


def test_v4s_train_and_wan_train_read_one_config_story(monkeypatch):
    """`v4s train` and `v4s wan-train` both run train() on the same TrainConfig; a `wan:` section selects the
    5B factories, `--set wan.x=...` overrides one of its fields."""
    from v4s_lite import train as train_module
    from v4s_lite.cli import main

    seen = []
    monkeypatch.setattr(train_module, "train", lambda cfg, resume=None, **kw: seen.append(cfg) or "run")
    assert main(["wan-train", "configs/wan22_ti2v_5b_24gb.yaml", "--set", "steps=1",
                 "--set", "wan.checkpointing=4"]) == 0
    cfg = seen[-1]
    assert cfg.steps == 1 and cfg.wan.checkpointing == 4 and cfg.model == "v4s_lite.full:wan_model"
    assert cfg.codec == "v4s_lite.full:wan_vae" and cfg.text_encoder == "v4s_lite.full:wan_text_encoder"
    assert main(["wan-train", "configs/quick.yaml"]) == 2  # a lite config has no `wan:` section: a clear error


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
