"""Dossier status look-up that protects citizens' data.

One module per concern: ``codes`` (the dossier-code format), ``models`` (the register tables), ``register`` and
``importer`` (the agent's own register and its CSV import), ``sources`` / ``api_source`` / ``breaker`` (where a
status comes from), ``limits`` and ``audit`` (abuse limits, the look-up audit), ``notify`` (subscriptions and change
detection), ``texts`` (answers built from ``data/content/dossiers.yml``), ``forms`` and ``actions`` (the Rasa
actions), ``retention`` and ``cli``.
"""
