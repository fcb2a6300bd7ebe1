"""How each spin option is spelled by devd's clients: one row an option.

The CLI builds ``devd spin``'s argparse options and its quick reader from these rows; the
protocol builds ``devd/spin``'s params model (and so the extension's TypeScript type) from
the rows with a ``wire`` name. The option itself (its type and default) is a field of
``devd.common.options.SpinOptions``, whose type the wire field takes;
tests/test_options.py checks that the two name the same options.

Every client builds ``devd/spin``'s params (and any method's step-or-pathspec) here, from
the rows: the CLI, ``devd mcp``.

Imports nothing but ``os``: the CLI's fast path (a spin answered by a running daemon) reads it.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # `typing` costs the CLI's fast path its import
if TYPE_CHECKING:
    from typing import Any


class Spelling:
    """One option of a spin as clients write it.

    ``wire``: its field in ``devd/spin`` params (None: not on the wire), of the type its
    ``SpinOptions`` field has. ``flag``: its ``devd spin`` flag (None: not on the command
    line), of ``kind`` "flag" (store_true), "value" (one value), "many" (one value, repeatable: a
    list) or "pairs" (NAME VALUE, repeatable).
    ``paths``: its values are file paths, made absolute before they leave the client (a
    daemon runs elsewhere).
    """

    __slots__ = ("dest", "doc", "field", "flag", "kind", "metavar", "paths", "value_type",
                 "wire")

    def __init__(self, field: str, doc: str, *, wire: str | None = None,
                 flag: str | None = None, kind: str = "flag",
                 metavar: tuple[str, ...] = (), dest: str | None = None,
                 value_type: str = "str", paths: bool = False) -> None:
        self.field = field
        self.doc = doc
        self.wire = wire
        self.flag = flag
        self.kind = kind
        self.metavar = metavar
        self.dest = dest or field  # argparse's attribute (``debug`` is taken by ``devd --debug``)
        self.value_type = value_type
        self.paths = paths


SPIN_SPELLINGS: tuple[Spelling, ...] = (
    Spelling("artifacts", "values that replace the parents' artifacts of those names",
             wire="artifacts"),
    Spelling("artifacts_module",
             "a .py file defining ARTIFACTS = {name: value} to override inputs",
             wire="artifactsModule",
             flag="--artifacts-module", kind="value", metavar=("FILE",), paths=True),
    Spelling("config", "a Config from a file (repeatable)",
             wire="config",
             flag="--config", kind="pairs", metavar=("NAME", "PATH"), paths=True),
    Spelling("config_value", "a Config's value as text, read by its parser (repeatable)",
             wire="configValue",
             flag="--config-value", kind="pairs", metavar=("NAME", "TEXT")),
    Spelling("persist", "store the spun task where Metaflow's inspect_spin('.') reads it",
             wire="persist", flag="--persist"),
    Spelling("from_spin", "take parents from the last spins of the parent steps (daemon)",
             wire="fromSpin", flag="--from-spin"),
    Spelling("debug", "wait for a debugger (DAP: VS Code, PyCharm, nvim-dap) on a loopback "
             "port, printed, then run the step under it",
             wire="debug", flag="--debug", dest="debug_spin"),
    Spelling("debug_timeout", "how long --debug waits for the debugger (default 120)",
             wire="debugTimeout",
             flag="--debug-timeout", kind="value", metavar=("SECONDS",), value_type="float"),
    Spelling("pdb", "run the step in this terminal; pdb post-mortem on an exception, and "
             "breakpoint() works", flag="--pdb"),
    # Metaflow's own top-level options (`python flow.py --environment=pypi spin train`):
    # where the step runs and what it reads; spelled as Metaflow spells them, before or
    # after the step (docs/usage.md, "Environments").
    Spelling("environment", "Metaflow's --environment (local, uv, pypi, conda...): the step "
             "runs in that environment's interpreter (default: what the parents' run used)",
             wire="environment",
             flag="--environment", kind="value", metavar=("ENV",)),
    Spelling("datastore", "Metaflow's --datastore, for the step's Metaflow CLI",
             wire="datastore",
             flag="--datastore", kind="value", metavar=("TYPE",)),
    Spelling("metadata", "Metaflow's --metadata, for the step's Metaflow CLI",
             wire="metadata",
             flag="--metadata", kind="value", metavar=("TYPE",)),
    Spelling("decospecs", "Metaflow's --with: add a decorator to the step (repeatable; a "
             "spin keeps those Metaflow's spin keeps)", wire="decospecs",
             flag="--with", kind="many", metavar=("DECORATOR",)),
    Spelling("split", "a foreach body: which split to spin, 0-based (default: the one the "
             "recorded task took)", wire="split",
             flag="--split", kind="value", metavar=("N",), value_type="int"),
)


def target_params(target: str) -> dict[str, str]:
    """What a devd method's params name to spin or read: a step name as ``step``, a
    pathspec (RUN/STEP, Flow/RUN/STEP/TASK) as ``pathspec``."""
    return {"pathspec" if "/" in target else "step": target}


def spin_params(uri: str, target: str, options: dict[str, Any]) -> dict[str, Any]:
    """``devd/spin``'s params: the flow's ``uri``, the target, and each given option (by its
    ``SpinOptions`` field name; None is not given) by its row's wire name, file paths made
    absolute (the daemon runs in another directory). Options not on the wire are left out."""
    params: dict[str, Any] = {"uri": uri, **target_params(target)}
    for row in SPIN_SPELLINGS:
        value = options.get(row.field)
        if row.wire is None or value is None:
            continue
        if row.paths:
            value = {k: os.path.abspath(v) for k, v in value.items()} \
                if isinstance(value, dict) else os.path.abspath(value)
        params[row.wire] = value
    return params
