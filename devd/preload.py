"""What the warm parent imports before it forks spins, so that no child pays for it."""

from __future__ import annotations


def preload() -> None:
    """Import in the warm parent what every child needs, so no child pays for it."""
    import importlib

    for name in (
        "metaflow.cli", "metaflow.task", "metaflow.lint", "metaflow.clone_util",
        "metaflow.system", "metaflow.cli_components.utils", "metaflow.util",
        "metaflow.plugins.cards.card_creator", "metaflow.plugins.cards.component_serializer",
        "metaflow.plugins.datastores.spin_storage", "metaflow.plugins.metadata_providers.spin",
        "metaflow.cards", "metaflow.plugins.cards.card_cli",
        "metaflow.plugins.cards.card_modules.basic",
        "metaflow.plugins.cards.card_modules.chevron", "devd.cards", "devd.loader",
        "cloudpickle",
    ):
        try:
            importlib.import_module(name)
        except Exception:  # an optional part of Metaflow missing must not stop spins
            pass
    try:
        from .cards import cache_card_assets

        cache_card_assets()
    except Exception:
        pass
    # Caches children inherit: tokenizer regexes (graph building reads step source) and
    # Metaflow's version string (it runs `git describe` the first time).
    import io
    import tokenize

    list(tokenize.generate_tokens(io.StringIO("x = 1\n").readline))
    try:
        from metaflow.metaflow_version import get_version

        get_version()
    except Exception:
        pass
