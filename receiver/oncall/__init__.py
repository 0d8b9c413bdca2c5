"""Who is on call: people's rotations, layers and overrides, evaluated as pure functions of an instant.

Schedules are values; evaluating them reads no clock and touches no store, so the escalation engine,
the command line and the coverage check all ask the same question the same way.
"""
