"""Evidence: what is read from the cluster when an incident opens, for the person who looks at it first.

Pure parts decide and shape: ``subject`` (what an alert is about, from its
labels, names validated), ``redact`` (secrets out of text), ``content`` (API
objects to the bounded, redacted snapshot and its one-line summary) and
``requests`` (which alerts of a processed batch ask for evidence). One
effectful part reads: ``capture`` (through ``receiver.kube``, under a
deadline). The engine's evidence worker (``receiver.engine.evidence``) claims
the requests the store holds, captures, and stores what it found.
"""
