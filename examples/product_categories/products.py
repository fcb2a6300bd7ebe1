"""A deterministic, made-up product catalogue: the example needs no download.

Each product has a category, a sub-category, a title and a price. Titles mix words typical
of the sub-category with words of the category and plain noise, and a few products are
labelled "wrong", so a classifier has something to learn and something to get wrong.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

# The computer-related categories the flow trains on, each with its sub-categories and the
# words their titles tend to use.
COMPUTER = {
    "laptops": {
        "ultrabook": ["thin", "light", "14-inch", "aluminium", "all-day", "battery"],
        "gaming": ["rtx", "144hz", "rgb", "cooling", "esports", "turbo"],
        "workstation": ["xeon", "ecc", "quadro", "certified", "cad", "64gb"],
    },
    "monitors": {
        "office": ["ergonomic", "flicker-free", "24-inch", "vesa", "eye-care", "matte"],
        "gaming": ["240hz", "1ms", "freesync", "curved", "hdr", "esports"],
        "professional": ["4k", "calibrated", "srgb", "colour", "32-inch", "usb-c"],
    },
    "keyboards": {
        "mechanical": ["switches", "hot-swap", "tactile", "keycaps", "clicky", "tkl"],
        "wireless": ["bluetooth", "receiver", "multi-device", "rechargeable", "slim", "2.4ghz"],
        "ergonomic": ["split", "tented", "wrist-rest", "curved", "low-profile", "palm"],
    },
    "storage": {
        "ssd": ["nvme", "m.2", "pcie", "7000mb/s", "tlc", "heatsink"],
        "hdd": ["7200rpm", "nas", "cmr", "3.5-inch", "surveillance", "sata"],
        "usb": ["flash", "thumb", "keychain", "usb-a", "pocket", "otg"],
    },
}
# Categories in the catalogue that the flow leaves out.
OTHER = {
    "kitchen": {"cookware": ["pan", "non-stick", "lid"], "appliances": ["blender", "watt"]},
    "garden": {"tools": ["spade", "pruner", "rake"], "furniture": ["bench", "teak", "chair"]},
}
CATEGORY_WORDS = {
    "laptops": ["laptop", "notebook", "ssd", "ram", "display"],
    "monitors": ["monitor", "display", "panel", "ips", "stand"],
    "keyboards": ["keyboard", "keys", "layout", "usb", "backlit"],
    "storage": ["drive", "tb", "storage", "backup", "speed"],
    "kitchen": ["kitchen", "steel"],
    "garden": ["garden", "outdoor"],
}
NOISE = ["new", "2025", "black", "silver", "pro", "plus", "edition", "value", "pack", "max"]
BRANDS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark"]
BASE_PRICE = {"laptops": 900.0, "monitors": 250.0, "keyboards": 80.0, "storage": 60.0,
              "kitchen": 40.0, "garden": 50.0}


def make_products(rows: int, seed: int = 7, label_noise: float = 0.08) -> pa.Table:
    """`rows` products (the same ones for the same arguments), as an Arrow table."""
    rng = np.random.default_rng(seed)
    catalogue = {**COMPUTER, **OTHER}
    names = list(catalogue)
    weights = np.array([4.0 if n in COMPUTER else 1.0 for n in names])
    cats = rng.choice(names, size=rows, p=weights / weights.sum())
    out: dict[str, list] = {"product_id": [], "category": [], "subcategory": [], "title": [],
                            "price": []}
    for i, cat in enumerate(cats):
        subs = list(catalogue[cat])
        sub = subs[rng.integers(len(subs))]
        words = list(rng.choice(catalogue[cat][sub], size=2, replace=False))
        if rng.random() < 0.5:  # a weak cue: one signal word borrowed from a sibling
            other = subs[rng.integers(len(subs))]
            words.append(str(rng.choice(catalogue[cat][other])))
        words += list(rng.choice(CATEGORY_WORDS[cat], size=2, replace=False))
        words += list(rng.choice(NOISE, size=2, replace=False))
        rng.shuffle(words)
        label = sub if rng.random() >= label_noise else subs[rng.integers(len(subs))]
        out["product_id"].append(f"P{i:06d}")
        out["category"].append(str(cat))
        out["subcategory"].append(str(label))
        out["title"].append(f"{rng.choice(BRANDS)} " + " ".join(map(str, words)))
        out["price"].append(round(float(BASE_PRICE[cat] * rng.lognormal(0.0, 0.35)), 2))
    return pa.table(out)
