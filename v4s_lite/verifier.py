"""The room's own answer to "is there a <category> under this box?": a small detector of the lite world's furniture.

Repeated sampling needs a verifier a generator cannot fool. The colour rule (`bbox.box_colour_share`) reads the named
colour in the drawn box both in the video and in the room re-rendered at the video's poses; where the instruction
names no colour ("Find the stool.", 28% of validation rooms) it has nothing to read. This module reads the *shape*:
a classifier of the furniture categories, run on the room re-rendered under the drawn box (colour and the height
above the floor of each pixel, from the render's depth), never on the generated pixels. It is the lite world's
stand-in for an open-vocabulary detector run on a scan's reconstruction.

    verifier_input(rgb, depth, c2w, K, box)   the crop a verifier reads: colour + height, 24 x 24, and the box's size
    box_label(instance, scene, box)           what a box holds by the room's labels: a category, or "none"
    verifier_samples(seeds)                   crops of rendered training rooms with their labels
    CategoryVerifier                          the classifier (diffusers ModelMixin: save_pretrained/from_pretrained)
    train_verifier(seeds, steps)              fit it; `shipped_verifier()` loads data/v4s-lite/verifier
    CategoryVerifier.category_share(...)      the probability that the box holds the named category

The labels come from the training rooms' instance buffers only: at judging time the verifier sees the re-rendered
room's pixels, never its labels or the target.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from .scene import CATEGORIES, Scene
from .utils import V4SError

CROP = 24  # the crop's side after resizing: enough for the lite world's shapes at 104 x 64
ROOM_HEIGHT = 2.5  # metres: heights are read as a share of it (scene.make_scene's rooms are 2.4-2.8 m high)
NONE = "none"  # a box on a wall, the floor, or a sliver of furniture
MIN_IOU = 0.4  # a box holds an object when it overlaps that object's own 2D box at least this much


def verifier_input(rgb, depth, c2w, K, box) -> tuple[torch.Tensor, torch.Tensor]:
    """What the verifier reads of one view of the room under a box (x0, y0, x1, y1, pixels): the crop's colour and
    each pixel's height above the floor (from depth and pose: shape and size, not only colour), resized to
    CROP x CROP, and the box's physical width and height in metres at its median depth (the resize loses them).
    rgb uint8 (H, W, 3), depth float (H, W) along the camera's z axis, c2w (4, 4), K (3, 3).
    Returns image (4, CROP, CROP), size (2,)."""
    rgb, depth = np.asarray(rgb), np.asarray(depth, np.float64)
    h, w = depth.shape
    if rgb.shape != (h, w, 3):
        raise V4SError(f"rgb {rgb.shape} and depth {depth.shape} must be one view: (H, W, 3) and (H, W)")
    box = np.asarray(box, float)
    if box.shape != (4,) or not np.isfinite(box).all():
        raise V4SError(f"box must be 4 finite numbers (x0, y0, x1, y1), got {box}")
    x0, y0 = int(np.clip(math.floor(box[0]), 0, w - 1)), int(np.clip(math.floor(box[1]), 0, h - 1))
    x1, y1 = int(np.clip(math.ceil(box[2]), x0 + 1, w)), int(np.clip(math.ceil(box[3]), y0 + 1, h))
    u, v = np.meshgrid(np.arange(x0, x1) + 0.5, np.arange(y0, y1) + 0.5)
    z = depth[y0:y1, x0:x1]
    K, c2w = np.asarray(K, float), np.asarray(c2w, float)
    cam = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], -1)
    height = cam @ c2w[2, :3] + c2w[2, 3]  # world z of each pixel: the floor is 0
    crop = np.concatenate([rgb[y0:y1, x0:x1] / 255.0, (height / ROOM_HEIGHT)[..., None]], -1)
    image = F.interpolate(torch.as_tensor(crop, dtype=torch.float32).permute(2, 0, 1)[None], size=(CROP, CROP),
                          mode="bilinear", align_corners=False)[0]
    zm = float(np.median(z))
    size = torch.tensor([(x1 - x0) * zm / K[0, 0], (y1 - y0) * zm / K[1, 1]], dtype=torch.float32)
    return image, size


def box_label(boxes, scene: Scene, box) -> str:
    """What a box holds by the room's labels (training data only): the category of the object whose own 2D box
    (`render.boxes_from_instance`, one view: (n_objects, 4)) overlaps it most, if that IoU >= MIN_IOU, else NONE."""
    from .bbox import box_iou

    iou = np.nan_to_num(box_iou(np.asarray(boxes, float), np.asarray(box, float)[None]), nan=0.0)
    if not len(iou) or iou.max() < MIN_IOU:
        return NONE
    return scene.objects[int(iou.argmax())].category


def _views(scene: Scene, rng, per_object: int):
    """Cameras at eye height looking at each object from about the distance a walk ends at (and nearer, farther,
    off-centre): the views a generated walk's last frames show."""
    from .camera import look_at
    from .scene import EYE_HEIGHT, is_free
    from .trajectories import comfortable_distance

    poses = []
    for obj in scene.objects:
        c = obj.center
        for _ in range(per_object):
            for _try in range(20):
                d = comfortable_distance(obj) * rng.uniform(0.6, 1.5) + max(obj.size[:2]) / 2
                a = rng.uniform(0, 2 * np.pi)
                xy = c[:2] + d * np.array([np.cos(a), np.sin(a)])
                if is_free(scene, xy[None])[0]:
                    aim = c + rng.normal(0, 0.3, 3) * np.array([1, 1, 0.5])
                    poses.append(look_at([xy[0], xy[1], EYE_HEIGHT + rng.normal(0, 0.05)], aim))
                    break
    return np.stack(poses) if poses else np.zeros((0, 4, 4))


def _jitter(box, rng, w, h, amount=0.2):
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    x0, x1 = x0 + rng.normal(0, amount) * bw, x1 + rng.normal(0, amount) * bw
    y0, y1 = y0 + rng.normal(0, amount) * bh, y1 + rng.normal(0, amount) * bh
    x0, x1 = sorted((float(np.clip(x0, 0, w - 2)), float(np.clip(x1, 0, w))))
    y0, y1 = sorted((float(np.clip(y0, 0, h - 2)), float(np.clip(y1, 0, h))))
    return np.array([x0, y0, max(x1, x0 + 2), max(y1, y0 + 2)])


def verifier_samples(seeds, width: int = 104, height: int = 64, per_object: int = 2, seed: int = 0,
                     device: str = "cpu"):
    """Training crops from the rooms of `seeds` (scene.make_scene): for each view (`_views`), a jittered box around
    every object it shows (>= 1% of the view) and two random boxes, each labelled by `box_label`.
    Returns images (N, 4, CROP, CROP), sizes (N, 2), labels (N,) as indices into CATEGORIES + (NONE,)."""
    from .camera import intrinsics
    from .render import boxes_from_instance, render
    from .scene import make_scene

    classes = list(CATEGORIES) + [NONE]
    rng = np.random.default_rng(seed)
    K = intrinsics(width, height)
    images, sizes, labels = [], [], []
    for s in seeds:
        scene = make_scene(int(s))
        c2w = _views(scene, rng, per_object)
        if not len(c2w):
            continue
        out = render(scene, c2w, K, width, height, antialias=2, device=device)
        boxes, _ = boxes_from_instance(out.instance, len(scene.objects))
        for i in range(len(c2w)):
            area = (boxes[i, :, 2] - boxes[i, :, 0]) * (boxes[i, :, 3] - boxes[i, :, 1])
            drawn = [_jitter(b, rng, width, height) for b, a in zip(boxes[i], area)
                     if np.isfinite(a) and a >= 0.01 * width * height]
            for _ in range(2):  # anywhere: mostly walls and floor, sometimes a piece of furniture
                bw, bh = rng.uniform(0.1, 0.6) * width, rng.uniform(0.15, 0.8) * height
                x0, y0 = rng.uniform(0, width - bw), rng.uniform(0, height - bh)
                drawn.append(np.array([x0, y0, x0 + bw, y0 + bh]))
            for b in drawn:
                image, size = verifier_input(out.rgb[i], out.depth[i], c2w[i], K, b)
                images.append(image)
                sizes.append(size)
                labels.append(classes.index(box_label(boxes[i], scene, b)))
    if not images:
        raise V4SError(f"no views could be made in the rooms of seeds {list(seeds)[:5]}...: pass more seeds")
    return torch.stack(images), torch.stack(sizes), torch.tensor(labels)


class CategoryVerifier(ModelMixin, ConfigMixin):
    """A small CNN: the crop (colour + height) through three conv blocks, joined with the box's size in metres,
    to one logit per class (CATEGORIES, then NONE)."""

    @register_to_config
    def __init__(self, categories: tuple = CATEGORIES, widths: tuple = (16, 32, 64), crop: int = CROP):
        super().__init__()
        layers, c = [], 4
        for wd in widths:
            layers += [nn.Conv2d(c, wd, 3, padding=1), nn.GroupNorm(4, wd), nn.SiLU(), nn.MaxPool2d(2)]
            c = wd
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(3), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(c * 9 + 2, 64), nn.SiLU(), nn.Linear(64, len(categories) + 1))

    @property
    def classes(self) -> list[str]:
        return list(self.config.categories) + [NONE]

    def forward(self, images: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.features(images), torch.log(sizes.clamp(min=0.05))], 1))

    @torch.no_grad()
    def category_share(self, rgb, depth, c2w, K, box, category: str) -> float:
        """The probability that the room under `box` (one view: rgb, depth, c2w, K) holds a `category`; 0.0 when
        no box was drawn. Reads the rendered room only: the generator cannot paint its answer into it."""
        if category not in self.config.categories:
            raise V4SError(f"unknown category {category!r}; choose from {tuple(self.config.categories)}")
        if box is None or not np.isfinite(np.asarray(box, float)).all():
            return 0.0
        image, size = verifier_input(rgb, depth, c2w, K, box)
        p = self(image[None].to(self.device), size[None].to(self.device)).softmax(-1)[0]
        return float(p[self.classes.index(category)])


def train_verifier(seeds, steps: int = 3000, batch: int = 256, lr: float = 2e-3, seed: int = 0,
                   samples=None) -> tuple[CategoryVerifier, dict]:
    """Fit a CategoryVerifier on crops of the rooms of `seeds` (or on `samples`, verifier_samples' output), with
    colour jitter (the palette's colours change with the shade) and horizontal flips. Returns it (eval mode) and the
    training loss / accuracy of the last 200 steps."""
    torch.manual_seed(seed)
    images, sizes, labels = samples if samples is not None else verifier_samples(seeds, seed=seed)
    model = CategoryVerifier()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    losses, hits = [], []
    model.train()
    for _ in range(steps):
        i = torch.randint(len(labels), (batch,), generator=g)
        x = images[i].clone()
        x[:, :3] *= 0.8 + 0.4 * torch.rand(batch, 1, 1, 1, generator=g)  # brightness: a shade, not a new colour
        flip = torch.rand(batch, generator=g) < 0.5
        x[flip] = x[flip].flip(-1)
        logits = model(x, sizes[i])
        loss = F.cross_entropy(logits, labels[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        hits.append((logits.argmax(1) == labels[i]).float().mean().item())
    model.eval()
    return model, {"loss": float(np.mean(losses[-200:])), "accuracy": float(np.mean(hits[-200:]))}


def verifier_accuracy(model: CategoryVerifier, samples) -> dict:
    """Accuracy on held-out crops (verifier_samples of other rooms): overall, on boxes that hold an object, and the
    share of NONE boxes called furniture."""
    images, sizes, labels = samples
    with torch.no_grad():
        pred = torch.cat([model(images[i:i + 1024], sizes[i:i + 1024]).argmax(1) for i in range(0, len(labels), 1024)])
    none = len(model.classes) - 1
    obj = labels != none
    return {"accuracy": float((pred == labels).float().mean()),
            "object_accuracy": float((pred[obj] == labels[obj]).float().mean()),
            "none_called_furniture": float((pred[~obj] != none).float().mean()) if (~obj).any() else float("nan"),
            "n": int(len(labels))}


def shipped_verifier(must_exist: bool = True) -> CategoryVerifier | None:
    """The course's verifier, data/v4s-lite/verifier (tools/train_verifier.py made it); None when absent and
    must_exist=False."""
    from .resources import course_file

    try:
        path = course_file("data/v4s-lite/verifier")
    except V4SError:
        if must_exist:
            raise
        return None
    return CategoryVerifier.from_pretrained(str(path)).eval()
