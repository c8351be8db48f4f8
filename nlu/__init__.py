"""Vietnamese NLU for dvcbot.

``nlu.normalize`` and ``nlu.gazetteer`` are pure Python (3.10 and 3.11+); ``nlu.tokenizer`` and
``nlu.extractors`` are Rasa 3.6 components and import Rasa. Import nothing here, so that the
project venv can use the pure modules without Rasa.
"""
