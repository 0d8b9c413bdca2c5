"""The HTTP edge: authenticate, decode, hand over, answer. It decides nothing.

Handlers are small classes built with exactly the collaborators they use, so
the app factory wires them explicitly and tests can build them alone.
"""
