"""Train the course's category verifier (v4s_lite.verifier) and save it to data/v4s-lite/verifier.

    python tools/train_verifier.py [--rooms 900] [--steps 3000] [--out data/v4s-lite/verifier]

Rooms: seeds 90,000 + 0..rooms-1 to train, the next 50 to measure it (disjoint from every validation and test
room: 300,000+ and 400,000+; docs/DATA.md lists the ranges). Prints the held-out accuracy; the numbers go to the
model card. CPU: ~1 s a room for the crops, ~10 minutes for 3,000 steps (the shipped one: 900 rooms, 3,000 steps).
"""
import argparse
import json
import time

import torch

from v4s_lite.verifier import train_verifier, verifier_accuracy, verifier_samples

BASE = 90_000

p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
p.add_argument("--rooms", type=int, default=900)
p.add_argument("--steps", type=int, default=3000)
p.add_argument("--out", default="data/v4s-lite/verifier")
a = p.parse_args()
torch.set_num_threads(1)
t = time.time()
train = verifier_samples(range(BASE, BASE + a.rooms), seed=0)
held = verifier_samples(range(BASE + a.rooms, BASE + a.rooms + 50), seed=1)
print(f"crops: {len(train[2])} training, {len(held[2])} held out [{time.time() - t:.0f} s]", flush=True)
model, fit = train_verifier(None, steps=a.steps, samples=train)
acc = verifier_accuracy(model, held)
print(f"training (last 200 steps): {fit}; held out: {acc} [{time.time() - t:.0f} s]", flush=True)
model.save_pretrained(a.out)
with open(f"{a.out}/training.json", "w") as f:
    json.dump({"train_seeds": [BASE, BASE + a.rooms - 1], "held_out_seeds": [BASE + a.rooms, BASE + a.rooms + 49],
               "steps": a.steps, "fit": fit, "held_out": acc, "command": f"python tools/train_verifier.py --rooms "
               f"{a.rooms} --steps {a.steps}"}, f, indent=1)
