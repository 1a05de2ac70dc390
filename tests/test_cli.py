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

    monkeypatch.setattr(cli, "COMMAND_MODULES", {"data": ["make-data"], "no_such_module": ["nothing"]})
    with pytest.raises(V4SError, match=r"`v4s nothing` unavailable: importing v4s_lite\.no_such_module .*"
                                       r"ModuleNotFoundError.*python -c 'import v4s_lite\.no_such_module'"):
        cli.build_parser()
    monkeypatch.setitem(sys.modules, "v4s_lite.broken", None)  # importing it raises ImportError
    monkeypatch.setattr(cli, "COMMAND_MODULES", {"broken": ["broken"]})
    assert cli.main(["train", "x.yaml"]) == 2
    assert "v4s_lite.broken" in capsys.readouterr().err


def test_a_missing_extra_names_the_command_and_the_install(monkeypatch, capsys):
    """A command module whose third-party import is missing says which commands it costs and what to install."""
    import importlib

    from v4s_lite import cli

    real = importlib.import_module

    def without_tensorboard(name, *args):
        if name == "v4s_lite.evaluate":
            raise ModuleNotFoundError("No module named 'tensorboard'", name="tensorboard")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_tensorboard)
    monkeypatch.setattr(cli, "install_hint", lambda package: f"HINT({package})")
    assert cli.main(["eval", "--videos", "x", "--out", "y"]) == 2
    err = capsys.readouterr().err
    assert "`v4s eval` unavailable" in err and "No module named 'tensorboard'" in err and "HINT(tensorboard)" in err


def test_install_hint_points_at_the_extra_or_a_reinstall():
    from v4s_lite.cli import install_hint

    reqs = ["torch>=2.4", "pyyaml>=6", 'pytest>=8; extra == "test"', 'tensorboard>=2.14; extra == "test"',
            'tensorboard>=2.14; extra == "tensorboard"', 'selenium>=4.10; extra == "browser"']
    assert 'pip install -e ".[tensorboard]"' in install_hint("tensorboard", reqs)  # the extra named after it
    assert 'pip install -e ".[browser]"' in install_hint("selenium", reqs)
    assert "reinstall" in install_hint("yaml", reqs) and "pyyaml" in install_hint("yaml", reqs)  # core, pip name
    assert install_hint("somewhere_else", reqs) == "Install it: pip install somewhere_else"


def test_the_command_list_matches_what_each_module_registers():
    """COMMAND_MODULES names the commands an import failure costs: it must say what add_cli really adds."""
    import argparse
    import importlib

    from v4s_lite.cli import COMMAND_MODULES

    for name, commands in COMMAND_MODULES.items():
        sub = argparse.ArgumentParser().add_subparsers()
        before = set() if name == "train" else {"train"}
        for command in before:  # v4s sample's add_cli hooks its validation videos into `v4s train`
            sub.add_parser(command)
        importlib.import_module(f"v4s_lite.{name}").add_cli(sub)
        assert sorted(set(sub.choices) - before) == sorted(commands), name


def test_v4s_closes_the_process_group_a_launcher_opened(capsys):
    """Under torchrun / accelerate launch, `v4s` ends its process group before the interpreter exits (gloo's threads
    outliving it abort the process at exit, pytorch/pytorch#179291; accelerate closes it only with trackers)."""
    import socket

    import torch.distributed as dist

    from v4s_lite.cli import main
    from v4s_lite.resources import course_file

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", world_size=1, rank=0)
    try:
        assert main(["wan-memory", str(course_file("configs/wan22_ti2v_5b.yaml"))]) == 0
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    assert "GiB" in capsys.readouterr().out  # the command ran
