from v4s_lite.cli import build_parser

EXPECTED = {"course", "make-data", "train", "sample", "eval"}


def test_every_command_is_registered():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    missing = EXPECTED - set(sub.choices)
    assert not missing, f"v4s lacks commands {sorted(missing)}: their module's add_cli is missing"
