"""A stand-in for RT-DETR's ``tools/train.py``: same ``-c``/``-u key=value`` interface, same
``log.txt`` format (one JSON object per epoch), no model. Used by the ``command`` task tests.

Values follow a fixed formula of the overrides, so tests can compute what they expect.
For epoch ``e`` (0-based), with ``lr = optimizer.lr`` and ``g = weight_dict.loss_giou``:
``train_loss_vfl = 1/(e+1)``, ``train_loss_bbox = 0.5/(e+1)``, ``train_loss_giou =
0.5*g/(e+1)``, ``train_loss`` = their sum, ``test_coco_eval_bbox[0] = 100*lr*(e+1)``,
``[1]`` = twice that. ``-u fake.*`` keys inject faults (see ``FAKE``).
"""

import json
import math
import os
import signal
import subprocess
import sys
import time

import yaml

#: fault injection and pacing, set with -u fake.<key>=value
FAKE = {
    "epoch_s": 0.1,  # seconds per epoch
    "nan_giou_above": None,  # the loss is NaN from epoch 1 on when g is above this
    "hang_at": None,  # after this many epochs, stop logging and sleep
    "slow_below_lr": None,  # epochs after the first take 30 s when optimizer.lr is below this
    "fail_at": None,  # after this many epochs, print an error and exit 3
    "ignore_sigterm": False,  # keep running on SIGTERM (only SIGKILL ends it)
    "child": False,  # start a grandchild that sleeps (it must die with the group)
    "tag": "",  # a marker tests look for in process lists
}


def parse_updates(items):
    """``a.b=v`` items -> nested dict, values read as YAML (what RT-DETR's parse_cli does)."""
    cfg = {}
    for item in items:
        key, _, raw = item.partition("=")
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(raw)
    return cfg


def main(argv):
    updates = []
    config = None
    i = 0
    while i < len(argv):
        if argv[i] in ("-c", "--config"):
            config = argv[i + 1]
            i += 2
        elif argv[i] in ("-u", "--update"):
            i += 1
            while i < len(argv) and not argv[i].startswith("-"):
                updates.append(argv[i])
                i += 1
        else:
            sys.exit(f"train.py: unknown argument {argv[i]!r}")
    cfg = parse_updates(updates)
    fake = {**FAKE, **cfg.get("fake", {})}
    lr = cfg["optimizer"]["lr"]
    giou = cfg["RTDETRCriterionv2"]["weight_dict"]["loss_giou"]
    epochs = cfg["epoches"]
    # a value PyYAML read as text (1e-05) would break a real optimizer: fail loudly too
    for name, value in (("optimizer.lr", lr), ("loss_giou", giou)):
        if not isinstance(value, float | int) or isinstance(value, bool):
            sys.exit(f"train.py: {name} must be a number, got {value!r}")
    out = cfg.get("output_dir", ".")
    os.makedirs(out, exist_ok=True)
    print(f"cfg: {json.dumps({'config': config, **cfg})}", flush=True)
    if fake["ignore_sigterm"]:
        signal.signal(signal.SIGTERM, lambda *_: print("ignoring SIGTERM", flush=True))
    if fake["child"]:
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", fake["tag"]])
    for e in range(epochs):
        slow = fake["slow_below_lr"] is not None and lr < fake["slow_below_lr"] and e >= 1
        time.sleep(30 if slow else fake["epoch_s"])
        if fake["hang_at"] is not None and e >= fake["hang_at"]:
            print("hanging", flush=True)
            time.sleep(600)  # bounded: a test that forgets to stop us still ends
            sys.exit(4)
        if fake["fail_at"] is not None and e >= fake["fail_at"]:
            print("Traceback (most recent call last):", file=sys.stderr)
            print(f"ValueError: fake failure at epoch {e}", file=sys.stderr, flush=True)
            sys.exit(3)
        vfl, bbox, giou_loss = 1 / (e + 1), 0.5 / (e + 1), 0.5 * giou / (e + 1)
        total = vfl + bbox + giou_loss
        nan_above = fake["nan_giou_above"]
        if nan_above is not None and giou > nan_above and e >= 1:
            total = giou_loss = math.nan
        ap = 100 * lr * (e + 1)
        stats = {
            "train_lr": lr,
            "train_loss": total,
            "train_loss_vfl": vfl,
            "train_loss_bbox": bbox,
            "train_loss_giou": giou_loss,
            "test_coco_eval_bbox": [ap, 2 * ap] + [0.0] * 10,
            "epoch": e,
            "n_parameters": 42,
        }
        with open(os.path.join(out, "log.txt"), "a") as f:
            f.write(json.dumps(stats) + "\n")
        print(f"Epoch {e}: loss={total} map={ap}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
