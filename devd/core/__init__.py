"""The core: the warm engine, sessions and prepared children, parents and configs, run
previews and the daemon's machinery (project paths, watching, memory, threads, its log).

It sits below the protocol (devd.lsp) and the clients (devd.cli), above the child and
devd.common, and never imports the language server's libraries.
"""
