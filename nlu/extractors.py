"""Rasa 3.6 entity extractor for dvcbot: procedures, places, dossier codes, phone digits.

Reference it from ``config.yml`` as ``nlu.extractors.CatalogEntityExtractor``.

Entities:

* ``procedure`` — a procedure id or a group id from ``data/catalog``
  (``cấp lại căn cước`` → the specific procedure, ``căn cước`` → the group),
  plus names that editors annotated in the NLU training data;
* ``location`` — a ward or former district from ``data/post_offices.yml``,
  with or without its prefix ("phường", "p.", "quận", "q."...); the value is
  the name as written in that file;
* ``dossier_code`` — ``000.00.04.H51-200221-0001`` in canonical form, also
  when typed with spaces, in lower case or with the letter O for a zero;
* ``phone_digits`` — exactly four digits standing alone (the last digits of
  the phone number a dossier was filed with).

The catalog, the directory and the abbreviation dictionary are read when the
model is trained and stored inside the model.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from pathlib import Path
from typing import Any

import rasa.shared.utils.io
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from nlu.gazetteer import LOCATION, PRIORITY_EXAMPLE, PROCEDURE, Gazetteer, build_gazetteer
from nlu.normalize import Syllable, syllables
from nlu.tokenizer import DEFAULT_ABBREVIATIONS_FILE, file_fingerprint, read_abbreviations

logger = logging.getLogger(__name__)

DOSSIER_CODE = "dossier_code"
PHONE_DIGITS = "phone_digits"
CONFIDENCE = "confidence_entity"

_FOUR_DIGITS = re.compile(r"[0-9]{4}")


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=True)
class CatalogEntityExtractor(GraphComponent, EntityExtractorMixin):
    """Extracts dvcbot's entities from gazetteers and patterns (see the module docstring)."""

    FILE_NAME = "catalog_entities.json"

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Returns the component's default config (paths relative to the working directory)."""
        return {
            "catalog_dir": "data/catalog",
            "post_offices_file": "data/post_offices.yml",
            "abbreviations_file": DEFAULT_ABBREVIATIONS_FILE,
            # allow one typo in one syllable of names of three syllables or more
            "fuzzy": True,
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        gazetteer: Gazetteer | None = None,
        abbreviations: dict[str, str] | None = None,
    ) -> None:
        """Creates the extractor with already built tables."""
        self._config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.gazetteer = gazetteer or Gazetteer(fuzzy=bool(self._config["fuzzy"]))
        self.abbreviations: dict[str, str] = dict(abbreviations or {})

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> CatalogEntityExtractor:
        """Creates an untrained extractor (only patterns, no names)."""
        return cls(config, model_storage, resource)

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> CatalogEntityExtractor:
        """Loads the tables stored with the model."""
        try:
            with model_storage.read_from(resource) as directory:
                data = rasa.shared.utils.io.read_json_file(directory / cls.FILE_NAME)
        except (ValueError, FileNotFoundError):
            logger.warning("No tables stored for %s (resource '%s'); only patterns.", cls.__name__, resource.name)
            return cls(config, model_storage, resource)
        return cls(
            config,
            model_storage,
            resource,
            Gazetteer.from_dict(data.get("gazetteer", {})),
            data.get("abbreviations", {}),
        )

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> str | None:
        """Retrains when the catalog, the directory or the dictionary changes."""
        paths: list[Path] = []
        catalog_dir = config.get("catalog_dir")
        if catalog_dir and Path(catalog_dir).is_dir():
            paths += sorted(Path(catalog_dir).glob("*.y*ml"))
        else:
            paths.append(Path(str(catalog_dir)))
        paths += [Path(str(config.get("post_offices_file"))), Path(str(config.get("abbreviations_file")))]
        return file_fingerprint(*paths)

    # ------------------------------------------------------------------

    def train(self, training_data: TrainingData) -> Resource:
        """Builds the tables from the catalog, the directory and the training data."""
        self.abbreviations = read_abbreviations(self._config.get("abbreviations_file") or "")
        catalog_dir = self._config.get("catalog_dir")
        post_offices = self._config.get("post_offices_file")
        gazetteer, warnings = build_gazetteer(
            Path(catalog_dir) if catalog_dir else None,
            Path(post_offices) if post_offices else None,
            self.abbreviations,
            fuzzy=bool(self._config["fuzzy"]),
        )
        for warning in warnings:
            rasa.shared.utils.io.raise_warning(warning)
        self._add_training_names(gazetteer, training_data)
        self.gazetteer = gazetteer
        self.persist()
        return self._resource

    def _add_training_names(self, gazetteer: Gazetteer, training_data: TrainingData) -> None:
        known = {PROCEDURE: gazetteer.values(PROCEDURE), LOCATION: gazetteer.values(LOCATION)}
        for example in training_data.training_examples:
            text = example.get(TEXT)
            if not isinstance(text, str):
                continue
            for word in syllables(text, self.abbreviations):
                gazetteer.vocabulary.add(word.lemma)
            for entity in example.get(ENTITIES) or []:
                kind = entity.get(ENTITY_ATTRIBUTE_TYPE)
                if kind not in known:
                    continue
                start, end = entity.get(ENTITY_ATTRIBUTE_START), entity.get(ENTITY_ATTRIBUTE_END)
                if not isinstance(start, int) or not isinstance(end, int) or end <= start:
                    continue
                mention = text[start:end]
                value = str(entity.get(ENTITY_ATTRIBUTE_VALUE) or mention)
                if self._already_known(gazetteer, mention, None if value == mention else value):
                    continue
                gazetteer.add_name(kind, value, mention, PRIORITY_EXAMPLE, self.abbreviations)
        # synonyms whose value is a catalog id or a place: "sổ đỏ" → dat_dai
        for synonym, value in (training_data.entity_synonyms or {}).items():
            for kind, values in known.items():
                if value in values:
                    gazetteer.add_name(kind, value, synonym, PRIORITY_EXAMPLE, self.abbreviations)

    def _already_known(self, gazetteer: Gazetteer, mention: str, value: str | None) -> bool:
        """True if the catalog/directory already reads ``mention`` (as ``value``, if given).

        "[phường Hoàn Kiếm](location)" without a value must keep giving the
        directory's canonical "Phường Hoàn Kiếm", not the annotated spelling.
        """
        tokens = [s.text for s in syllables(mention, self.abbreviations)]
        matches = gazetteer.match(tokens)
        return (
            len(matches) == 1
            and matches[0].exact
            and (matches[0].first, matches[0].last) == (0, len(tokens))
            and (value is None or matches[0].value == value)
        )

    def persist(self) -> None:
        """Writes the tables into the model storage."""
        with self._model_storage.write_to(self._resource) as directory:
            rasa.shared.utils.io.dump_obj_as_json_to_file(
                directory / self.FILE_NAME,
                {"version": 1, "gazetteer": self.gazetteer.to_dict(), "abbreviations": self.abbreviations},
            )

    # ------------------------------------------------------------------

    def process(self, messages: list[Message]) -> list[Message]:
        """Adds this extractor's entities to each message."""
        for message in messages:
            existing = list(message.get(ENTITIES) or [])
            text = message.get(TEXT)
            found = self.extract(text) if isinstance(text, str) and text else []
            fresh = [e for e in found if not _overlaps_same_type(e, existing)]
            message.set(ENTITIES, existing + self.add_extractor_name(fresh), add_to_output=True)
        return messages

    def extract(self, text: str) -> list[dict[str, Any]]:
        """Returns the entities found in ``text`` (offsets into ``text``), sorted by start."""
        words = syllables(text, self.abbreviations)
        entities: list[dict[str, Any]] = []
        for word in words:
            if word.kind == "code":
                entities.append(_entity(DOSSIER_CODE, word.start, word.end, word.text))
        matches = self.gazetteer.without_redundant_groups(self.gazetteer.match([w.text for w in words]))
        for match in matches:
            # An expanded abbreviation shares its span among its syllables
            # ("CCCD" → căn|cước|công|dân): widen to whole words of the text.
            start, end = _whole_words(text, words[match.first].start, words[match.last - 1].end)
            entities.append(_entity(match.entity, start, end, match.value, 1.0 if match.exact else 0.8))
        for index, word in enumerate(words):
            if _is_phone_digits(text, words, index):
                entities.append(_entity(PHONE_DIGITS, word.start, word.end, word.text))
        kept: list[dict[str, Any]] = []
        for entity in entities:  # codes first, then names, then digits
            if not any(_overlap(entity, other) or _same(entity, other) for other in kept):
                kept.append(entity)
        return sorted(kept, key=lambda e: (e[ENTITY_ATTRIBUTE_START], e[ENTITY_ATTRIBUTE_END]))


def _entity(kind: str, start: int, end: int, value: str, confidence: float = 1.0) -> dict[str, Any]:
    return {
        ENTITY_ATTRIBUTE_TYPE: kind,
        ENTITY_ATTRIBUTE_START: start,
        ENTITY_ATTRIBUTE_END: end,
        ENTITY_ATTRIBUTE_VALUE: value,
        CONFIDENCE: confidence,
    }


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_" or unicodedata.combining(ch) > 0


def _whole_words(text: str, start: int, end: int) -> tuple[int, int]:
    while start > 0 and _is_word_char(text[start - 1]) and _is_word_char(text[start]):
        start -= 1
    while end < len(text) and _is_word_char(text[end]) and _is_word_char(text[end - 1]):
        end += 1
    return start, end


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same entity value said twice ("mảnh đất ... nơi có đất") is reported once."""
    return bool(
        a[ENTITY_ATTRIBUTE_TYPE] == b[ENTITY_ATTRIBUTE_TYPE] and a[ENTITY_ATTRIBUTE_VALUE] == b[ENTITY_ATTRIBUTE_VALUE]
    )


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(
        a[ENTITY_ATTRIBUTE_START] < b[ENTITY_ATTRIBUTE_END] and b[ENTITY_ATTRIBUTE_START] < a[ENTITY_ATTRIBUTE_END]
    )


def _overlaps_same_type(entity: dict[str, Any], others: list[dict[str, Any]]) -> bool:
    return any(
        isinstance(o, dict)
        and o.get(ENTITY_ATTRIBUTE_TYPE) == entity[ENTITY_ATTRIBUTE_TYPE]
        and isinstance(o.get(ENTITY_ATTRIBUTE_START), int)
        and isinstance(o.get(ENTITY_ATTRIBUTE_END), int)
        and _overlap(entity, o)
        for o in others
    )


def _is_phone_digits(text: str, words: list[Syllable], index: int) -> bool:
    """Four digits alone: not next to another number ("0912 345 678"), not a year."""
    word = words[index]
    if word.kind != "number" or not _FOUR_DIGITS.fullmatch(word.text):
        return False
    for neighbour in (index - 1, index + 1):
        if 0 <= neighbour < len(words) and words[neighbour].kind in ("number", "code"):
            a, b = sorted((words[neighbour], word), key=lambda w: w.start)
            if not text[a.end : b.start].strip():
                return False
    if index > 0 and words[index - 1].text == "năm":
        return False  # "năm 2024"
    return True
