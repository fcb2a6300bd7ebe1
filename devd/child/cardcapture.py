"""A spin's cards inside the child: captured in memory, rendered there, stored if persisted.

Metaflow's ``card create`` runs in a subprocess that reads the task back from the
datastore; a spin has the task in memory, so devd keeps the card's components as the
step adds them and renders each card in the child with its values (devd/common/cardrender.py).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from .state import State, Tee, report_problem


def install_card_capture() -> None:
    """Keep card components in memory instead of Metaflow's ``card create`` subprocess."""
    from metaflow.plugins.cards.card_creator import CardCreator

    from ..common.childside import emit
    from .request import CardUpdate

    def create(self: Any, card_uuid: Any = None, user_set_card_id: Any = None,
               runtime_card: bool = False, decorator_attributes: Any = None,
               card_options: Any = None, logger: Any = None, mode: str = "render",
               final: bool = False, sync: bool = False) -> None:
        from metaflow import current

        if mode != "render" and not runtime_card:
            return
        collector = current.card  # type: ignore[attr-defined]  # the card decorator adds it
        components = collector._serialize_components(card_uuid) \
            if mode in ("render", "render_runtime") else []
        try:
            data = collector._get_latest_data(card_uuid, final=final, mode=mode)
        except Exception as exc:  # noqa: BLE001 - said: the card renders without its data
            report_problem(f"card {user_set_card_id or card_uuid}: its data not read", exc)
            data = None
        attrs = decorator_attributes or {}
        entry = {
            "uuid": card_uuid,
            "id": user_set_card_id,
            "type": attrs.get("type", "default"),
            "options": card_options or {},
            "attributes": {k: v for k, v in attrs.items() if _jsonable(v)},
            "components": components,
            "data": data,
            "mode": mode,
            "final": final,
        }
        if final and mode == "render":
            State.cards = [c for c in State.cards if c["uuid"] != card_uuid] + [entry]
        elif not final:
            if mode == "render_runtime":
                entry["html"] = _render_runtime(entry)
            emit(CardUpdate(entry))

    CardCreator.create = create  # type: ignore[method-assign]


def _task_view(values: dict[str, Any], finished: bool) -> Any:
    """The spun task as card classes see it (they expect a Client Task)."""
    import datetime

    from metaflow.util import get_username

    from ..common.cardrender import TaskView

    req = State.request
    flow = State.flow
    params = {}
    for var, _param in flow._get_parameters():
        if var in values:
            params[var] = values[var]
    run_id = State.run_id or "devd-spin"
    pathspec = f"{flow.name}/{run_id}/{req.step}/{State.task_id or 0}"
    out = sys.stdout.text if isinstance(sys.stdout, Tee) else []
    err = sys.stderr.text if isinstance(sys.stderr, Tee) else []
    return TaskView(pathspec, values, stdout="".join(out), stderr="".join(err),
                    created_at=State.created_at, finished_at=datetime.datetime.now(),
                    finished=finished, tags=[f"user:{get_username()}", "devd:spin"],
                    parameters=params)


def _render_runtime(entry: dict[str, Any]) -> str | None:
    """A live card's page as it stands now; None (no update shown) if it cannot render."""
    from ..common.cardrender import render_card

    try:
        flow = State.flow
        values = {k: v for k, v in vars(flow).items() if not k.startswith("_")}
        return render_card(entry, _task_view(values, finished=False), flow,
                           mode="render_runtime")
    except Exception as exc:  # noqa: BLE001 - said; the card's own errors are on its page
        report_problem(f"live card {entry.get('id') or entry.get('uuid')} not rendered", exc)
        return None


def render_final_cards(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Every card of the step, rendered with the task's final artifacts."""
    from ..common.cardrender import render_card

    rendered = []
    for entry in State.cards:
        html = render_card(entry, _task_view(values, finished=True), State.flow)
        rendered.append({"id": entry.get("id"), "type": entry.get("type"),
                         "uuid": entry.get("uuid"), "html": html})
    return rendered


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError, RecursionError):  # not JSON: the attribute is left out
        return False


def store_cards(flow_datastore: Any, pathspec: str, cards: list[dict[str, Any]],
                notices: list[str]) -> None:
    """A persisted spin's cards go where Metaflow's ``get_cards(task)`` looks for them:
    ``<ds-root>/mf.cards/...`` of the spun task's datastore, as ``card create`` writes."""
    try:
        from metaflow.datastore import FlowDataStore
        from metaflow.metaflow_config import CARD_SUFFIX
        from metaflow.plugins.cards.card_datastore import CardDatastore

        card_fds = FlowDataStore(
            flow_name=pathspec.split("/")[0], environment=None,
            storage_impl=type(flow_datastore._storage_impl),
            ds_root=os.path.join(flow_datastore.datastore_root, CARD_SUFFIX))
        store = CardDatastore(card_fds, pathspec=pathspec)
        for card in cards:
            if card.get("uuid") and card.get("html") and card.get("type") != "error":
                store.save_card(card["uuid"], card["type"], card["html"], card_id=card["id"])
    except Exception as exc:  # noqa: BLE001 - a notice: the result stands, the card unstored
        notices.append(f"cards of {pathspec} not stored ({type(exc).__name__}: {exc})")
