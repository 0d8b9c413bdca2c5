"""The engine: the one writer of everything derived from the inbox.

``admission`` stands in front of the inbox (overload is refused, not dropped),
``processor`` turns inbox entries into alert state, incidents and run intents
(``batch`` decides a batch's alerts, purely) and hands the store one batch to
write in one transaction, ``runner`` carries recorded runs through guardrails and the
executor, ``process`` is the engine process beside the web process, and
``builder`` is the one place that assembles these parts from settings, a clock
and a store (for the engine process, the web process's inline mode and tests).
"""
