"""Rasa 3.6 tokenizer for Vietnamese: syllables of the normalised text.

Reference it from ``config.yml`` as ``nlu.tokenizer.VietnameseTokenizer``.

Each token's ``text`` is a normalised, accented, lower-case syllable and its
``lemma`` the same syllable without diacritics, so that one
CountVectorsFeaturizer can use accented features (``use_lemma: false``) and
another accent-insensitive ones (``use_lemma: true``). Dossier codes, numbers,
e-mails and URLs stay single tokens. Token offsets point into the original
message text. The abbreviation dictionary is read when the model is trained
and stored inside the model, so a server needs no ``data/`` folder.

``word_segmenter: pyvi`` joins syllables into words with the pyvi package
("khai sinh" → "khai_sinh"). It is not installed and not used: it was measured
against plain syllables and did not win (``reports/nlu.md``, "Choices"); the
option stays so that the comparison can be repeated.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rasa.shared.utils.io
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.tokenizer import Token, Tokenizer
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from nlu.normalize import load_abbreviations, normalize_with_offsets, syllables_of

logger = logging.getLogger(__name__)

NORMALIZED_TEXT = "normalized_text"
"""Message key holding the normalised text (also in the parse output)."""

DEFAULT_ABBREVIATIONS_FILE = "data/lexicon/abbreviations.yml"


def file_fingerprint(*paths: Path) -> str:
    """Hashes the contents of files (missing ones count as missing) for Rasa's cache."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path).encode("utf-8") + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<missing>")
        digest.update(b"\0")
    return digest.hexdigest()


def read_abbreviations(path: str) -> dict[str, str]:
    """Loads the dictionary at training time; a missing file gives a warning and ``{}``."""
    if not path:
        return {}
    if not Path(path).is_file():
        rasa.shared.utils.io.raise_warning(
            f"Abbreviation dictionary '{path}' not found; training without abbreviation expansion."
        )
        return {}
    return load_abbreviations(path)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=True)
class VietnameseTokenizer(Tokenizer):
    """Tokenises normalised Vietnamese text into syllables (see the module docstring)."""

    FILE_NAME = "abbreviations.json"

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Returns the component's default config."""
        return {
            "intent_tokenization_flag": False,
            "intent_split_symbol": "_",
            "token_pattern": None,
            "prefix_separator_symbol": None,
            # read at training time, relative to the working directory
            "abbreviations_file": DEFAULT_ABBREVIATIONS_FILE,
            # None: syllables; "pyvi": words from pyvi's segmenter (pip install pyvi)
            "word_segmenter": None,
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage | None = None,
        resource: Resource | None = None,
        abbreviations: dict[str, str] | None = None,
    ) -> None:
        """Creates the tokenizer with an already loaded dictionary."""
        super().__init__({**self.get_default_config(), **config})
        self._model_storage = model_storage
        self._resource = resource
        self.abbreviations: dict[str, str] = dict(abbreviations or {})
        # imported here, not on the first message, so that loading a model pays for it
        self._segment = pyvi_segmenter() if self._config.get("word_segmenter") == "pyvi" else None

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> VietnameseTokenizer:
        """Creates an untrained tokenizer (no dictionary yet)."""
        return cls(config, model_storage, resource)

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> VietnameseTokenizer:
        """Loads the dictionary stored with the model."""
        abbreviations: dict[str, str] = {}
        try:
            with model_storage.read_from(resource) as directory:
                abbreviations = rasa.shared.utils.io.read_json_file(directory / cls.FILE_NAME)
        except (ValueError, FileNotFoundError):
            logger.warning(
                "No abbreviation dictionary stored for %s (resource '%s'); expanding none.",
                cls.__name__,
                resource.name,
            )
        return cls(config, model_storage, resource, abbreviations)

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> str | None:
        """Retrains when the dictionary file changes, not only the training data."""
        path = config.get("abbreviations_file")
        return file_fingerprint(Path(path)) if path else None

    def train(self, training_data: TrainingData) -> Resource:
        """Reads the dictionary file and stores it with the model."""
        self.abbreviations = read_abbreviations(self._config.get("abbreviations_file") or "")
        self.persist()
        assert self._resource is not None
        return self._resource

    def persist(self) -> None:
        """Writes the dictionary into the model storage."""
        if self._model_storage is None or self._resource is None:
            return
        with self._model_storage.write_to(self._resource) as directory:
            rasa.shared.utils.io.dump_obj_as_json_to_file(directory / self.FILE_NAME, self.abbreviations)

    def tokenize(self, message: Message, attribute: str) -> list[Token]:
        """Returns syllable tokens; for the text attribute also stores the normalised text."""
        text = message.get(attribute)
        if not isinstance(text, str):
            text = "" if text is None else str(text)
        normalized = normalize_with_offsets(text, self.abbreviations)
        if attribute == TEXT:
            message.set(NORMALIZED_TEXT, normalized.text, add_to_output=True)
        tokens = [Token(s.text, s.start, s.end, lemma=s.lemma) for s in syllables_of(normalized)]
        if self._segment is not None:
            tokens = join_words(tokens, self._segment)
        if not tokens:
            # Like Rasa's WhitespaceTokenizer: text without words ("😀", "...")
            # becomes one token, so featurizers and classifiers still get input.
            tokens = [Token(normalized.text, 0, len(text), lemma=normalized.text)]
        patterned: list[Token] = self._apply_token_pattern(tokens)
        return patterned


def pyvi_segmenter() -> Callable[[str], str]:
    """pyvi's ``ViTokenizer.tokenize`` (imported on first use: an optional, measured alternative)."""
    try:
        from pyvi import ViTokenizer  # type: ignore[import-not-found]
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("word_segmenter 'pyvi' needs the pyvi package (pip install pyvi)") from exc
    segment: Callable[[str], str] = ViTokenizer.tokenize
    return segment


def join_words(tokens: list[Token], segment: Callable[[str], str]) -> list[Token]:
    """Joins runs of syllable tokens into the words ``segment`` finds ("khai sinh" → "khai_sinh").

    ``segment`` takes space-separated syllables and returns them with the syllables of each word joined by
    "_". Tokens that hold digits (codes, numbers) are never joined; if the segmenter's output does not line
    up with the syllables, the syllables are kept.
    """
    out: list[Token] = []
    run: list[Token] = []

    def flush() -> None:
        if not run:
            return
        words = segment(" ".join(t.text for t in run)).split()
        joined: list[Token] = []
        position = 0
        for word in words:
            parts = word.split("_")
            chunk = run[position : position + len(parts)]
            if [t.text for t in chunk] != parts:
                out.extend(run)
                run.clear()
                return
            lemma = "_".join(t.lemma for t in chunk)
            joined.append(Token(word, chunk[0].start, chunk[-1].end, lemma=lemma))
            position += len(parts)
        out.extend(joined if position == len(run) else run)
        run.clear()

    for token in tokens:
        if any(ch.isdigit() for ch in token.text) or not token.text.isalpha():
            flush()
            out.append(token)
        else:
            run.append(token)
    flush()
    return out
