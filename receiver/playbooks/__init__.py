"""Remediation playbooks: what they say, what they would do, and whether they may.

``model`` is the YAML format and its loader, ``templating`` the sandboxed
templates and name checks, ``plan`` renders a playbook for an alert (pure),
``guardrails`` judges a planned run (pure), ``executor`` carries a plan out
through the Kubernetes adapter, ``runs`` and ``remediation`` turn news into
recorded run intents, ``permissions`` derives RBAC from the actions. Imports
``incidents``, ``alerts`` and the ``kube`` adapter, never the store or the web.
"""
