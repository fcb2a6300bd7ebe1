"""Clients: the ``devd`` command line (``main``), the daemon's JSON-RPC client (``client``,
``wire``), the MCP server for coding agents (``mcp``) and their shared output helpers
(``agent``, ``progressline``). They reach the daemon over its socket or run the core in
process; nothing below imports them.

Kept empty: ``devd spin`` answered by a running daemon must import nothing it does not use.
"""
