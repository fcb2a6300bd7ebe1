"""A spin's forked child: Metaflow's own task runner on warm parents.

``request`` holds the messages parent and child exchange: the parent reads nothing else
(it only hands ``run.run_spin`` to the process it forks). The rest runs only inside the
child, each module using only ``request``, ``state`` and the modules listed after it:
``run`` (the entry point, the step, the debugger, the result), ``takeover`` (Metaflow's
CLI and task runner, patched for warm parents), ``collect`` (the task's artifacts),
``cardcapture`` (card capture and rendering), ``overrides`` (artifact and Config
overrides), ``handshake`` (a prepared child's side of the handshake), ``failure`` (the
error's shape) and ``state`` (the one spin they share).
"""
