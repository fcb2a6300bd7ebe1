"""``SpinOptions``: what a spin is asked for, the one value every layer passes along; and
``SpinHooks``: how its caller follows it and what it wants back.

The Python API, the CLI, the protocol and the engine all hand a ``SpinOptions`` down;
how clients spell each field (CLI flag, JSON-RPC field) is in ``devd.common.optiontable``.
A new option is a field here and a row there, nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .errors import DevdError


@dataclass(frozen=True)
class SpinOptions:
    """How one step is re-run: its target and every option of a spin.

    ``target`` is a step name (parents from the newest run that has them), ``RUN/STEP``
    or ``Flow/RUN/STEP/TASK``. Frozen: one value is shared by threads and kept with results.
    """

    target: str
    artifacts: dict[str, Any] = field(default_factory=dict)
    artifacts_module: str | None = None
    config: dict[str, str] = field(default_factory=dict)
    config_value: dict[str, Any] = field(default_factory=dict)
    persist: bool = False
    from_spin: bool = False
    debug: bool = False
    debug_timeout: float = 120.0  # seconds a debug spin waits for its debugger
    pdb: bool = False
    split: int | None = None  # a foreach body: which split (0-based); default the recorded's
    # Metaflow's top-level options: None is what the parents' run used (devd/core/stepenv.py)
    environment: str | None = None
    datastore: str | None = None
    metadata: str | None = None
    decospecs: tuple[str, ...] = ()  # --with, as Metaflow's CLI takes it

    def __post_init__(self) -> None:
        # Checked once, here, for every client: a bad value is bad input, told in one line.
        if not (isinstance(self.debug_timeout, (int, float)) and self.debug_timeout > 0):
            raise DevdError(f"the debug timeout must be a positive number of seconds, "
                            f"not {self.debug_timeout!r}")
        if self.split is not None and (isinstance(self.split, bool) or
                                       not isinstance(self.split, int) or self.split < 0):
            raise DevdError(f"the split must be a whole number from 0 (the first split), "
                            f"not {self.split!r}")
        for name in ("environment", "datastore", "metadata"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()
                                      or value.startswith("-")):
                raise DevdError(f"--{name} takes a name (as Metaflow's --{name} does), "
                                f"not {value!r}")
        if isinstance(self.decospecs, str) or not all(
                isinstance(d, str) and d.strip() for d in self.decospecs):
            raise DevdError(f"--with takes decorator specs ('timeout:seconds=60'), "
                            f"not {self.decospecs!r}")
        object.__setattr__(self, "decospecs", tuple(self.decospecs))

    def changed(self, **changes: Any) -> SpinOptions:
        """A copy with some fields changed."""
        return replace(self, **changes)

    @classmethod
    def of(cls, target: str | SpinOptions, **keywords: Any) -> SpinOptions:
        """The options a keyword-style call means (``devd.spin(flow, "train", persist=True)``,
        ``Session.spin(...)``): the one place keywords become a ``SpinOptions``.

        ``target`` is a target or whole options that the keywords change. A keyword given
        as None keeps the field's value (``artifacts=None`` is no artifacts); an unknown
        keyword is a TypeError, as for any function.
        """
        options = target if isinstance(target, SpinOptions) else cls(target)
        given: dict[str, Any] = {name: dict(value) if isinstance(value, dict) else value
                 for name, value in keywords.items() if value is not None}
        return replace(options, **given) if given else options


@dataclass(frozen=True)
class SpinHooks:
    """How the caller of one spin follows it, and what it wants back (the engine, the CLI,
    a worker and the Python API pass one down; the spin itself is its ``SpinOptions``).

    ``on_output(stream, text)``: the step's output as it comes. ``on_card(entry)``: a
    card's live update. ``on_started(child)``: the child process, once it has the spin (to
    cancel it). ``on_debug_ready({host, port})``: a debug spin's child listens (without
    it, the address is printed on stderr). ``want_values``: the values the step set come
    back (pickled); ``want_private``: ``_``-prefixed ones too (to chain spins); ``diff``:
    their content hashes, to compare with the recorded task.
    """

    on_output: Callable[[str, str], None] | None = None
    on_card: Callable[[dict[str, Any]], None] | None = None
    on_started: Callable[[Any], None] | None = None
    on_debug_ready: Callable[[dict[str, Any]], None] | None = None
    want_values: bool = True
    want_private: bool = False
    diff: bool = False

    @classmethod
    def split(cls, keywords: dict[str, Any]) -> tuple[SpinHooks, dict[str, Any]]:
        """The hooks among keyword arguments (``session.spin("train", diff=True,
        persist=True)``) and the rest, the spin's options."""
        names = {f.name for f in fields(cls)}
        return (cls(**{k: v for k, v in keywords.items() if k in names}),
                {k: v for k, v in keywords.items() if k not in names})
