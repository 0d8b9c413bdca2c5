"""Remediation playbooks: what they say, what they would do, and whether they may.

``actions`` holds one module per action and their registry (a step's model,
plan, RBAC, execution and blast radius); ``model`` is the YAML format and its
loader, ``templating`` the sandboxed templates and name checks, ``plan`` renders a playbook for an alert (pure),
``guardrails`` judges a planned run (pure), ``executor`` carries a plan out
through the Kubernetes adapter, ``runs`` and ``remediation`` turn news into
recorded run intents, ``permissions`` derives RBAC from the actions. Imports
``incidents``, ``alerts``, the ``kube`` adapter and its client-free vocabulary
``cluster``, never the store or the web.
"""
