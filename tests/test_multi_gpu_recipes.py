"""The several-GPU recipes (issue 16) can't run here: check that what they say is well formed."""
import json
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from v4s_lite.config import TrainConfig, WanConfig

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gpu_multi.sh"


def test_gpu_multi_script_parses_and_sets_only_real_config_fields():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    keys = set(re.findall(r"--set ([a-z_.]+)=", text))
    train_fields, wan_fields = {f.name for f in fields(TrainConfig)}, {f.name for f in fields(WanConfig)}
    bad = {k for k in keys if not (k in train_fields or k.startswith("wan.") and k[4:] in wan_fields)}
    assert keys and not bad, bad
    for conf in re.findall(r"configs/accelerate/[\w.${}]+\.yaml", text):  # every accelerate config it names exists
        assert (ROOT / conf.replace("${N}", "8")).exists(), conf
    for command in set(re.findall(r"(?:\$V4S|v4s_lite\.cli) ([a-z-]+)", text)):  # and every v4s command
        r = subprocess.run([sys.executable, "-m", "v4s_lite.cli", command, "--help"], capture_output=True, text=True)
        assert r.returncode == 0, (command, r.stderr[-500:])


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "accelerate").glob("*.yaml")), ids=lambda p: p.name)
def test_accelerate_configs_load(path):
    from accelerate.commands.config.config_args import load_config_from_file

    conf = load_config_from_file(str(path))
    n = int(re.search(r"_(\d)gpu", path.name).group(1))
    assert conf.num_processes == n and conf.num_machines == 1 and not conf.use_cpu
    if path.name.startswith("fsdp2"):
        assert conf.distributed_type == "FSDP" and conf.fsdp_config["fsdp_version"] == 2
        assert conf.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == "WanTransformerBlock"
    else:
        assert conf.distributed_type == "MULTI_GPU"


def test_multi_gpu_report(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    import multi_gpu_report as R

    for name, losses in (("a", [1.0, 0.5, 0.25, 0.2]), ("b", [1.0, 0.52, 0.25, 0.21])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "loss.jsonl").write_text("".join(
            json.dumps({"step": i + 1, "loss": v, "seconds": 2.0 * (i + 1)}) + "\n" for i, v in enumerate(losses)))
    d = R.compare_losses(tmp_path / "a", tmp_path / "b")
    assert d["steps"] == 4 and abs(d["max_abs_diff"] - 0.02) < 1e-12
    s = R.speed(2, tmp_path / "a", skip=1)
    assert s["steps"] == 2 and s["steps_per_s"] == pytest.approx(0.5) and s["steps_per_s_per_gpu"] == pytest.approx(0.25)
    assert R.main(["losses", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "r" / "x.json")]) == 0
    assert json.loads((tmp_path / "r" / "x.json").read_text())["steps"] == 4
