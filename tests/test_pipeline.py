"""One encoder, one item schema, one pipeline (issue 11): the unified paths compute bit for bit what the two old
encoders and the old sampling plumbing computed. The old encoders are kept below verbatim as the references."""
from pathlib import Path

import pytest
import torch

from v4s_lite.codec import LiteCodec, LiteTextEncoder, frames_to_video
from v4s_lite.config import LITE
from v4s_lite.data import ClipDataset
from v4s_lite.latents import encode_clip

pytestmark = pytest.mark.usefixtures("one_thread")

LITE_DIR = Path(__file__).resolve().parents[1] / "data" / "v4s-lite"
CLIPS = LITE_DIR / "clips"


def old_training_encoder(item, codec, text_encoder, box_frames=0):
    """latents.encode_clip before issue 11 (training, the latent cache)."""
    from v4s_lite.bbox import bbox_frames

    target = item["target"]
    if box_frames and item.get("meta", {}).get("task") == "grounding":
        target = bbox_frames(torch.as_tensor(target).numpy(), torch.as_tensor(item["boxes"]).numpy(), box_frames)
    idx = torch.as_tensor(item.get("context_frame_indices", range(len(item["context"]))), dtype=torch.long)
    video = lambda x: frames_to_video(torch.as_tensor(x))  # noqa: E731
    return {"context_latents": codec.encode(video(item["context"]))[0].contiguous().cpu(),
            "target_latents": codec.encode(video(target))[0].contiguous().cpu(),
            "prompt_embeds": text_encoder.encode([item["instruction"]])[0].contiguous().cpu(),
            "context_frame_indices": idx.contiguous(), "instruction": item["instruction"]}


def old_sampling_encoder(example, codec, text_encoder, device="cpu"):
    """sample.encode_example before issue 11 (sampling)."""
    from v4s_lite.rope import context_positions

    with torch.no_grad():
        first = codec.encode(frames_to_video(example["target"][:1]).to(device))
        if len(example["context"]):
            ctx = codec.encode(frames_to_video(example["context"]).to(device))
        else:
            ctx = first.new_zeros(*first.shape[:2], 0, *first.shape[3:])
        return {"context_latents": ctx, "first_latent": first,
                "text_emb": text_encoder.encode([example["instruction"]]).to(device),
                "null_text_emb": text_encoder.encode([""]).to(device),
                "context_positions": context_positions(torch.as_tensor(example["context_frame_indices"]).tolist())}


@pytest.fixture(scope="module")
def example():
    return ClipDataset(CLIPS, LITE, seed=0)[0]


def equal(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    assert torch.equal(a, b)


@pytest.mark.parametrize("box_frames", [0, LITE.box_frames])
def test_one_encoder_equals_the_training_encoder(example, box_frames):
    codec, text = LiteCodec(), LiteTextEncoder()
    new, old = encode_clip(example, codec, text, box_frames), old_training_encoder(example, codec, text, box_frames)
    for k in ("context_latents", "target_latents", "prompt_embeds", "context_frame_indices"):
        equal(new[k], old[k])
    assert new["instruction"] == old["instruction"]


def test_one_encoder_equals_the_sampling_encoder(example):
    from v4s_lite.sample import sampling_inputs

    codec, text = LiteCodec(), LiteTextEncoder()
    new, old = sampling_inputs(example, codec, text), old_sampling_encoder(example, codec, text)
    for k in ("context_latents", "first_latent", "text_emb", "null_text_emb"):
        equal(new[k], old[k])
    assert list(new["context_positions"]) == old["context_positions"]
    empty = {**example, "context": example["context"][:0],
             "context_frame_indices": example["context_frame_indices"][:0],
             "context_positions": example["context_positions"][:0]}
    new, old = sampling_inputs(empty, codec, text), old_sampling_encoder(empty, codec, text)
    equal(new["context_latents"], old["context_latents"])  # the first-frame-only ablation: no context latents


def test_one_item_schema(example):
    """Training and sampling read the same keys; the positions are computed once, in the data layer."""
    from v4s_lite.rope import context_positions

    assert example["context_positions"].tolist() == context_positions(example["context_frame_indices"])
    item = encode_clip(example, LiteCodec(), LiteTextEncoder())
    assert set(item) == {"context_latents", "target_latents", "prompt_embeds", "context_frame_indices",
                         "context_positions", "instruction"}
    equal(item["context_positions"], example["context_positions"])


def test_pipeline_equals_sample_clip(example):
    """V4SPipeline (the one entrance for "a video from a run") samples what load_model + sample_clip sampled."""
    from v4s_lite.checkpoints import load_model
    from v4s_lite.sample import V4SPipeline
    from v4s_lite.sample import SamplingSettings, sample_clip

    settings = SamplingSettings(steps=2)
    model, codec, text, cfg = load_model(LITE_DIR)
    old = sample_clip(model, codec, text, example, LITE, tries=2, seed=3, **settings.for_run(cfg).generate_kwargs())
    pipe = V4SPipeline.from_pretrained(LITE_DIR, device="cpu")
    assert pipe.clip_config == LITE
    new = pipe(example, settings, tries=2, seed=3)
    for a, b in zip(old, new):
        assert a.seed == b.seed and (a.frames == b.frames).all() and torch.equal(a.latents, b.latents)
        assert ((a.boxes == b.boxes) | (a.boxes != a.boxes)).all()
    assert pipe.load_example(CLIPS / "grounding_100000")["instruction"] == example["instruction"]
    from v4s_lite.utils import V4SError
    with pytest.raises(V4SError, match="load_example"):
        pipe(CLIPS / "grounding_100000")
    with pytest.raises(V4SError, match="SamplingSettings"):
        pipe(example, {"steps": 2})
