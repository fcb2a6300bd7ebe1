"""A spin's forked child: Metaflow's own task runner on warm parents.

``request`` holds the messages parent and child exchange (the only module the parent
reads); the others run only inside the child: ``run`` (the entry point, the prepared
child's handshake, the debugger), ``takeover`` (Metaflow's CLI and task runner, patched
for warm parents), ``overrides`` (artifact overrides), ``collect`` (the result's
artifacts), ``cards`` (card capture and rendering) and ``state`` (what they share).
"""
