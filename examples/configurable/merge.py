"""Merge an experiment's config over the global one, as the Configs post's Metaboost does.

    python merge.py EXP_01        # writes build/EXP_01.toml, prints its path

then `devd run flow.py --config config build/EXP_01.toml`, or spin one step with it:
`devd spin flow.py train --config config build/EXP_01.toml`. Tables merge key by key; any
other value (numbers, strings, lists) in the experiment replaces the global one.
OmegaConf users get the same result with `OmegaConf.merge(global_cfg, experiment_cfg)`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import tomllib

HERE = Path(__file__).resolve().parent


def merge(base: dict, extra: dict) -> dict:
    """`extra` over `base`: nested tables merged, everything else replaced."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def to_toml(data: dict, prefix: str = "") -> str:
    """TOML text for tables of strings, numbers, booleans and lists of them."""
    lines = [f"{key} = {json.dumps(value)}" for key, value in data.items()
             if not isinstance(value, dict)]  # JSON's strings, numbers and lists are TOML's
    for key, value in data.items():
        if isinstance(value, dict):
            lines += ["", f"[{prefix}{key}]", to_toml(value, f"{prefix}{key}.").strip()]
    return "\n".join(lines).strip() + "\n"


def build(experiment: str) -> Path:
    """Write build/EXPERIMENT.toml (the global config with the experiment merged in)."""
    source = HERE / "experiments" / f"{experiment}.toml"
    if not source.exists():
        known = ", ".join(sorted(p.stem for p in (HERE / "experiments").glob("*.toml")))
        raise SystemExit(f"no experiment {experiment!r}: pick one of {known}")
    merged = merge(tomllib.loads((HERE / "config.toml").read_text()),
                   tomllib.loads(source.read_text()))
    target = HERE / "build" / f"{experiment}.toml"
    target.parent.mkdir(exist_ok=True)
    target.write_text(f"# {experiment}: experiments/{experiment}.toml over config.toml\n"
                      + to_toml(merged))
    return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python merge.py EXPERIMENT   (e.g. EXP_01)")
    print(os.path.relpath(build(sys.argv[1])))
