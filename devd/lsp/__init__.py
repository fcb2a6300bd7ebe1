"""The protocol layer: devd's language server, JSON-RPC framing and the wire forms of the
engine's events. Only this package (and the daemon that hosts it) imports pygls."""
