"""What a coding agent needs from a spin's JSON: where to look, what is stale, what to run next.

The spin result says what happened; an agent also needs the failing source line without
opening the file, and the one command that moves it on (fix FILE:LINE and spin again, spin
the next step, or run the flow). ``devd spin --json`` and ``devd mcp`` add these fields.
Standard library only, no ``re``: the CLI imports it on its fast path.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_")


def quote(arg: str) -> str:
    """Shell quoting as ``shlex.quote`` does it (shlex imports ``re``)."""
    if arg and all(c in _SAFE for c in arg):
        return arg
    return "'" + arg.replace("'", "'\"'\"'") + "'"


def shown_path(path: str, cwd: str | None = None) -> str:
    """``path`` relative to the working directory when it is below it, else absolute."""
    full = os.path.abspath(path)
    base = os.path.abspath(cwd or os.getcwd())
    if full.startswith(base.rstrip(os.sep) + os.sep):
        return os.path.relpath(full, base)
    return full


def source_line(path: str | None, line: int | None) -> str | None:
    """Line ``line`` (1-based) of ``path``, stripped; None when it cannot be read."""
    if not path or not line or line < 1:
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for number, text in enumerate(fh, 1):
                if number == line:
                    return text.strip()
    except OSError:
        return None
    return None


def spin_command(flow: str, target: str, tools: bool = False, from_spin: bool = False) -> str:
    """The command that spins ``target``: a shell line, or with ``tools`` an MCP tool call."""
    if tools:
        return f'spin(flow="{flow}", step="{target}"' + (", from_spin=true)" if from_spin
                                                          else ")")
    chain = ["--from-spin"] if from_spin else []
    return " ".join(["devd", "spin", quote(flow), quote(target), *chain, "--json"])


def run_command(flow: str, tools: bool = False) -> str:
    return f'run(flow="{flow}")' if tools else f"devd run {quote(flow)}"


def add_agent_fields(data: dict[str, Any], flow: str, target: str | None = None,
                     cwd: str | None = None, tools: bool = False,
                     from_spin: bool = False) -> dict[str, Any]:
    """Add ``error.where``/``error.source``, ``warnings``, ``next`` and ``nextCommand``.

    ``flow`` is the flow file as the user (or agent) named it, so the commands read as
    theirs; ``target`` the step or pathspec they spun (default: the result's step). With
    ``tools`` the commands are calls of ``devd mcp``'s tools; after a ``from_spin`` spin
    they chain on spins too. Only adds keys: every existing field keeps its meaning.
    """
    shown = shown_path(flow, cwd) if os.path.isabs(flow) else flow
    step = data.get("step") or target or "?"
    target = target or step
    error = data.get("error")
    run = run_command(shown, tools)
    warnings: list[str] = []
    fixes: list[str] = []
    for mark in data.get("stale") or []:
        reason = str(mark.get("reason"))
        # stale against a recorded run: run again; against a chained spin: spin that parent
        fix = run if " since run " in reason else spin_command(shown, str(mark.get("step")),
                                                                tools)
        fixes.append(fix)
        warnings.append(f"{reason}: the parents do not reflect it; `{fix}` records them again")
    data["warnings"] = warnings
    if data.get("ok"):
        nxt = list(data.get("nextSteps") or [])
        if not nxt:
            data["nextCommand"] = run
            data["next"] = (f"'{step}' is the last step and it works: `{run}` runs the whole "
                            "flow for real")
        elif warnings:
            data["nextCommand"] = fixes[0]
            data["next"] = (f"parents are stale: `{fixes[0]}` records the changed steps, then "
                            f"`{spin_command(shown, step, tools, from_spin)}` again")
        elif from_spin:  # the next step can take this spin's outputs: no run needed
            command = spin_command(shown, nxt[0], tools, True)
            others = ", ".join(f"`{spin_command(shown, s, tools, True)}`" for s in nxt[1:])
            data["nextCommand"] = command
            data["next"] = (f"'{step}' works: spin the next step on this spin's outputs with "
                            f"`{command}`" + (f" (also {others})" if others else ""))
        else:
            command = spin_command(shown, nxt[0], tools)
            others = ", ".join(f"`{spin_command(shown, s, tools)}`" for s in nxt[1:])
            data["nextCommand"] = command
            data["next"] = (f"'{step}' works: write or check the next step and spin it with "
                            f"`{command}`" + (f" (also {others})" if others else "")
                            + f"; it takes its parents from run {data.get('originRunId')}, so "
                            f"after changing '{step}' run `{run}` first to "
                            "record its new outputs")
        return data
    if not isinstance(error, dict):
        return data
    kind = error.get("type")
    if kind == "devd.BadRequest":
        data["nextCommand"] = None
        data["next"] = f"the spin did not start: {error.get('message')}"
        return data
    if kind == "devd.Cancelled":
        data["nextCommand"] = spin_command(shown, target, tools, from_spin)
        data["next"] = f"the spin was cancelled; spin again with `{data['nextCommand']}`"
        return data
    file, line = error.get("file"), error.get("line")
    if file:
        where = shown_path(file, cwd) + (f":{line}" if line else "")
        error["where"] = where
        error["source"] = source_line(file, line)
    else:
        where = shown
    data["nextCommand"] = spin_command(shown, target, tools, from_spin)
    data["next"] = (f"fix {where} ({kind}: {error.get('message')}), then spin again with "
                    f"`{data['nextCommand']}`")
    return data
