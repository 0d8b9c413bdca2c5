"""``python -m receiver.engine``: the engine process, as the web process starts it."""

from receiver.engine.process import main

main()
