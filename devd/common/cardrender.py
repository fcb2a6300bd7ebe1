"""Metaflow cards rendered in-process, in the spin's child: no `card create`, no server.

Metaflow renders a card by running ``python flow.py card create`` after the task, giving
the card class a Client ``Task``. Here the same card classes (``default``, ``blank``, and
any registered by installed extensions) render inside the child, given a Task look-alike
built from what the child holds: the artifacts, the step's output, its timing.
"""

from __future__ import annotations

import datetime
import inspect
from typing import Any

from .cardpage import with_live_bridge


class ArtifactView:
    """What card code reads of a Client ``DataArtifact``."""

    def __init__(self, name: str, value: Any, size: int) -> None:
        self.id = name
        self.data = value
        self.size = size

    @property
    def pathspec(self) -> str:
        return self.id


class _ParametersStep:
    def __init__(self, task: TaskView) -> None:
        self.task = task


class RunView:
    """The run a spun task appears to belong to (tags and Parameters, for the default card)."""

    def __init__(self, run_id: str, tags: list[str], parameters: TaskView | None) -> None:
        self.id = run_id
        self.tags = tags
        self._parameters = parameters

    def __contains__(self, name: str) -> bool:
        return name == "_parameters" and self._parameters is not None

    def __getitem__(self, name: str) -> _ParametersStep:
        if name == "_parameters" and self._parameters is not None:
            return _ParametersStep(self._parameters)
        raise KeyError(name)


class StepView:
    def __init__(self, step: str, run: RunView) -> None:
        self.id = step
        self.parent = run


class TaskView:
    """A Client ``Task`` look-alike for a spun task, which no metadata service knows about."""

    def __init__(self, pathspec: str, artifacts: dict[str, Any], *, stdout: str = "",
                 stderr: str = "", created_at: datetime.datetime | None = None,
                 finished_at: datetime.datetime | None = None, finished: bool = True,
                 tags: list[str] | None = None, parameters: dict[str, Any] | None = None,
                 sizes: dict[str, int] | None = None) -> None:
        self.pathspec = pathspec
        parts = pathspec.split("/")
        self.id = parts[-1]
        self._artifacts = artifacts
        self._sizes = sizes or {}
        self.stdout = stdout
        self.stderr = stderr
        self.created_at = created_at or datetime.datetime.now()
        self.finished_at = finished_at if finished else None
        self.finished = finished
        self.successful = finished
        self.current_attempt = 0
        params = None
        if parameters is not None:
            params = TaskView("/".join([*parts[:2], "_parameters", "0"]), parameters)
        run = RunView(parts[1] if len(parts) > 1 else "", tags or [], params)
        self.parent = StepView(parts[2] if len(parts) > 2 else "", run)

    def __iter__(self) -> Any:
        for name, value in self._artifacts.items():
            yield ArtifactView(name, value, self._sizes.get(name, 0))

    def __getitem__(self, name: str) -> ArtifactView:
        return ArtifactView(name, self._artifacts[name], self._sizes.get(name, 0))

    def __contains__(self, name: str) -> bool:
        return name in self._artifacts

    @property
    def data(self) -> Any:
        import types

        return types.SimpleNamespace(**self._artifacts)


def card_class(card_type: str) -> Any:
    """Metaflow's card class for ``card_type`` (built in or from an installed extension)."""
    from metaflow.plugins import CARDS

    cards: list[Any] = CARDS  # Metaflow declares them as plain types; each has a ``type``
    return next((c for c in cards if c.type == card_type), None)


def _graph_args(flow: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    graph = flow._graph
    graph_dict, _ = graph.output_steps()
    return graph_dict, {"steps": graph_dict, "start_step": graph.start_step,
                        "end_step": graph.end_step}


def _instantiate(cls: Any, entry: dict[str, Any], flow: Any) -> Any:
    graph_dict, graph_info = _graph_args(flow)
    extra: dict[str, Any] = {}
    try:
        if "graph_info" in inspect.signature(cls).parameters:
            extra["graph_info"] = graph_info
    except (TypeError, ValueError):
        pass
    kwargs = dict(components=list(entry.get("components") or []), graph=graph_dict,
                  flow=flow, **extra)
    if entry.get("options"):
        kwargs["options"] = entry["options"]
    return cls(**kwargs)


def render_card(entry: dict[str, Any], task: TaskView, flow: Any,
                mode: str = "render") -> str:
    """One complete, offline HTML document for a card, or Metaflow's error card.

    Mirrors ``card create``: unknown card type, bad options, an exception or a timeout in
    the card's code, or a card that renders nothing all give the error card with the
    reason, as Metaflow would save it.
    """
    from metaflow.plugins.cards.card_cli import update_card
    from metaflow.plugins.cards.card_modules.basic import ErrorCard
    from metaflow.plugins.cards.exception import (
        CardClassFoundException,
        IncorrectCardArgsException,
        UnrenderableCardException,
    )

    card_type = entry.get("type") or "default"
    data = entry.get("data") or {}
    timeout = (entry.get("attributes") or {}).get("timeout")
    error = None
    html = None
    cls = card_class(card_type)
    if cls is None:
        error = str(CardClassFoundException(card_type))  # Metaflow's words, on its error card
    else:
        try:
            card = _instantiate(cls, entry, flow)
        except TypeError:
            card = None
            error = str(IncorrectCardArgsException(card_type, entry.get("options")))
        if card is not None:
            try:
                info = update_card(card, mode, task, data, timeout_value=timeout)
                html = info.data
                if info.timed_out:
                    error = (f"Card rendering timed out after {timeout} seconds. To increase "
                             "the timeout, set `timeout` in the @card decorator.\n"
                             f"{info.timeout_stack_trace}")
                elif html is None and info.is_implemented:
                    error = f"No information rendered from card of type {card_type}"
                elif not info.is_implemented:
                    error = (f"Card of type {card_type} has no `render_runtime`: it cannot "
                             "be shown while the step runs.")
            except Exception:  # noqa: BLE001 - the card's own code failed: shown as
                # Metaflow shows it, an error card in the card's place
                error = str(UnrenderableCardException(card_type, entry.get("options")))
    if error is not None:
        error_card = ErrorCard()
        html = error_card.render(task, stack_trace=error)
        html = html.replace(error_card.RELOAD_POLICY_TOKEN, "final")
    return with_live_bridge(str(html))
