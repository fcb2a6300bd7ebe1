"""What the warm parent imports before it forks spins, so that no child pays for it."""

from __future__ import annotations

import importlib
import logging
import sys

log = logging.getLogger("devd.preload")

# What every spin's child needs: Metaflow's CLI, task runner and cards, devd's card
# rendering and flow loading.
MODULES = (
    "metaflow.cli", "metaflow.task", "metaflow.lint", "metaflow.clone_util",
    "metaflow.system", "metaflow.cli_components.utils", "metaflow.util",
    "metaflow.plugins.cards.card_creator", "metaflow.plugins.cards.component_serializer",
    "metaflow.plugins.datastores.spin_storage", "metaflow.plugins.metadata_providers.spin",
    "metaflow.cards", "metaflow.plugins.cards.card_cli",
    "metaflow.plugins.cards.card_modules.basic",
    "metaflow.plugins.cards.card_modules.chevron", "devd.common.cardrender", "devd.common.loader",
    "cloudpickle",
)


def preload() -> None:
    """Import in the warm parent what every child needs, so no child pays for it.

    Nothing here may stop spins: what fails is logged, and each child then does it
    itself (and reports it, if the spin needs it).
    """
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - an optional part of Metaflow missing
            log.warning("preload: %s not imported (%s: %s); each child imports it",
                        name, type(exc).__name__, exc)
    try:
        from ..common.cardpage import cache_card_assets

        cache_card_assets()
    except Exception:  # children read the card assets themselves
        log.warning("preload: Metaflow's card assets not cached", exc_info=True)
    # Caches children inherit: tokenizer regexes (graph building reads step source) and
    # Metaflow's version string (it runs `git describe` the first time).
    import io
    import tokenize

    list(tokenize.generate_tokens(io.StringIO("x = 1\n").readline))
    try:
        from metaflow.metaflow_version import get_version

        get_version()
    except Exception:  # each child asks Metaflow for it again
        log.warning("preload: Metaflow's version not read", exc_info=True)


def preload_libraries(names: list[str]) -> None:
    """Import in the warm parent the libraries the flow imports (numpy, pandas, ...), so
    that children inherit them instead of importing them on every spin."""
    for name in names:
        if name not in sys.modules:
            try:
                importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - it fails in the child too, with a line
                log.info("preload: %s not imported (%s: %s); the flow's child reports it",
                         name, type(exc).__name__, exc)
