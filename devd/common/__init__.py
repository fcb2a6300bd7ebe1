"""What both the warm process and the forked (or spawned) child import: warm parent data,
blob downloads, cards, value summaries, forking, flow loading, page checks, the debugger,
errors and the spin options.
"""
