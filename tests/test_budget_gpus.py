"""budget.choose_checkpointing and budget.gpu_table: what notebook 10 picks for the GPU it finds, and its GPU table."""
import pytest

from v4s_lite import budget
from v4s_lite.budget import GPUS, MEASURED_STEP, MEASURED_STEP_FP8, choose_checkpointing, estimate_memory, gpu_table
from v4s_lite.model import transformer_config
from v4s_lite.utils import V4SError

CFG = transformer_config("wan2.2-ti2v-5b")
TOKENS = 9256  # the training shape: 43 + 46 latent frames of 8 x 13 patches
KW = dict(compiled=True, lora_rank=32, batch=1)


def gib(setting, **kw):
    return estimate_memory(CFG, TOKENS, checkpointing=setting, **{**KW, **kw}).total_gib


def one_fewer(setting):
    """The setting with one checkpointed block fewer (None: there is none)."""
    if setting == "none":
        return None
    n = CFG["num_layers"] if setting == "full" else setting
    return "none" if n == 1 else n - 1


def test_tokens_of_the_training_shape():
    assert budget.latent_tokens(CFG, 416, 256, 43 + 46) == TOKENS == MEASURED_STEP["tokens"]


@pytest.mark.parametrize("memory", [16.5, 22.0, 30.0, 39.4, 48.0, 79.1, 139.8])
def test_choice_fits_and_one_block_fewer_does_not(memory):
    choice = choose_checkpointing(CFG, TOKENS, memory, **KW)
    assert gib(choice) <= memory * 0.9
    fewer = one_fewer(choice)
    if fewer is not None:
        assert gib(fewer) > memory * 0.9, (choice, fewer)
        # and nothing with still fewer blocks fits either (the estimate is not monotone at n = 1)
        n = CFG["num_layers"] if choice == "full" else 0 if choice == "none" else choice
        assert all(gib(k if k else "none") > memory * 0.9 for k in range(n))


def test_known_gpus():
    l4 = choose_checkpointing(CFG, TOKENS, GPUS["L4 24 GB"]["memory_gib"], **KW)
    assert l4 == "full" or (isinstance(l4, int) and l4 >= 20)  # 24 GB: nearly every block recomputed
    assert choose_checkpointing(CFG, TOKENS, GPUS["H100 80 GB"]["memory_gib"], **KW) == "none"
    assert isinstance(choose_checkpointing(CFG, TOKENS, GPUS["A100 40 GB"]["memory_gib"], **KW), int)
    # the margin is honoured: a smaller margin needs more checkpointing
    tight = choose_checkpointing(CFG, TOKENS, 39.4, margin=0.7, **KW)
    assert tight == "full" or tight > choose_checkpointing(CFG, TOKENS, 39.4, **KW)


def test_too_small_a_gpu_says_what_to_do():
    with pytest.raises(V4SError, match="context chunks"):
        choose_checkpointing(CFG, TOKENS, 12.0, **KW)
    with pytest.raises(V4SError, match="more memory"):
        choose_checkpointing(CFG, TOKENS, 12.0, **KW)


def test_one_block_is_one_block_not_full():
    """checkpointing=1 once meant "full" (1 == True); one block recomputed keeps the other 29 blocks' activations."""
    assert len(budget.checkpointed_blocks(30, 1)) == 1
    assert budget.checkpointed_blocks(30, True) == list(range(30))
    assert gib(1) > gib("none") > gib(29) > gib("full")


def test_gpu_table():
    rows = {r["gpu"]: r for r in gpu_table(CFG)}
    assert set(rows) == set(GPUS)
    h200 = rows[MEASURED_STEP["gpu"]]
    assert h200["source"] == "measured" and h200["seconds"] == MEASURED_STEP["seconds"] == 0.805
    assert h200["hours"] == round(0.805 * 3000 / 3600, 2)
    est = gib("full")
    for name, r in rows.items():
        spec = GPUS[name]
        if spec["bf16_tflops"] is None:  # the T4
            assert r["source"] == "cannot run" and not r["fits"] and r["seconds"] is None and "lite course" in r["note"]
            continue
        assert r["fits"] == (est <= spec["memory_gib"] * 0.9)  # consistent with estimate_memory
        if name != MEASURED_STEP["gpu"]:
            assert r["source"] == "estimated"
        if r["fits"]:  # seconds x TFLOP/s is the same for every GPU: the step scales inversely with the peak
            assert r["seconds"] * spec["bf16_tflops"] == pytest.approx(0.805 * GPUS[MEASURED_STEP["gpu"]]["bf16_tflops"],
                                                                       rel=1e-3)
            assert r["checkpointing"] == choose_checkpointing(CFG, TOKENS, spec["memory_gib"], **KW)
    assert rows["L4 24 GB"]["seconds"] > rows["A100 40 GB"]["seconds"] > rows["H100 80 GB"]["seconds"]
    assert not rows["T4 16 GB"]["fits"]
    # a GPU too small for full checkpointing: listed, not fitting, no time
    small = {"tiny 12 GB": dict(memory_gib=12.0, bf16_tflops=100.0), **GPUS}
    r = gpu_table(CFG, gpus=small)[0]
    assert not r["fits"] and r["checkpointing"] is None and r["seconds"] is None
    # twice the tokens: more work per step, no longer "measured"
    longer = {r["gpu"]: r for r in gpu_table(CFG, tokens=2 * TOKENS)}
    assert longer[MEASURED_STEP["gpu"]]["source"] == "estimated"
    assert longer[MEASURED_STEP["gpu"]]["seconds"] > 2 * 0.805


def test_fp8_base_frees_the_projections_bytes_and_its_table_lists_only_fp8_gpus():
    """wan.fp8_base stores the blocks' projections in 1 byte: the estimate drops by projection_params bytes
    (measured on the H200: 14.8 -> 10.2 GB at full checkpointing), which buys fewer checkpointed blocks on a
    24 GB card; GPUs without FP8 tensor cores (T4, A100) get no time in the FP8 table, with the way out."""
    drop = gib("full") - gib("full", fp8_base=True)
    assert drop == pytest.approx(budget.projection_params(CFG) / budget.GiB)
    assert 4.3 < drop < 4.8  # ~4.9e9 bytes, the measured 14.8 -> 10.2 GB
    l4 = GPUS["L4 24 GB"]["memory_gib"]
    bf16, fp8 = (choose_checkpointing(CFG, TOKENS, l4, **KW, fp8_base=f) for f in (False, True))
    n = lambda c: CFG["num_layers"] if c == "full" else 0 if c == "none" else c
    assert n(fp8) < n(bf16)  # the freed memory buys blocks without recomputation
    rows = {r["gpu"]: r for r in gpu_table(CFG, fp8_base=True)}
    assert rows["H200 141 GB"]["source"] == "measured" and rows["H200 141 GB"]["seconds"] == MEASURED_STEP_FP8["seconds"]
    assert MEASURED_STEP_FP8["seconds"] < MEASURED_STEP["seconds"]
    for name in ("T4 16 GB", "A100 40 GB", "A100 80 GB"):
        assert rows[name]["source"] == "cannot run" and rows[name]["seconds"] is None
    assert "fp8_base: false" in rows["A100 40 GB"]["note"]
    assert rows["L4 24 GB"]["fits"] and rows["L4 24 GB"]["checkpointing"] == fp8
    with pytest.raises(V4SError, match="MEASURED_STEP_FP8"):
        gpu_table(CFG, fp8_base=True, measured=MEASURED_STEP)
