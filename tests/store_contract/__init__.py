"""Contract tests of ``receiver.store``: what any backend must do, written from the protocols' documented behaviour.

Every test takes the ``store`` fixture (and ``backend`` to reopen one), parameterized over
``receiver.store.backends.BACKENDS``: a new backend passes these without any change to the engine.
"""
