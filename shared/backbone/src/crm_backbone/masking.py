"""Masking of personal data, as Chinese banks show it to staff who need the record but not
the person (the head-office analyst).

Each mask keeps a fixed, small part of the value and hides the rest; a short value keeps
less, so a mask always hides something, and the output holds no character of the value
beyond the kept ones:

- phone ``139****5678``: the first 3 and last 4 digits (one ``*`` a hidden digit); at least
  4 digits hidden; a ``+86``/``0086`` prefix is shown as ``+86 ``, separators dropped;
- identity document number ``4403**********1234``: the first 4 characters (province and
  prefecture: the level an address keeps) and the last 4 (what a customer confirms on
  the phone); at least half hidden, so a 9-character passport keeps its last 4 only;
- e-mail ``w***@example.com``: the first character of the local part (none when it is
  one character long) and the domain;
- name ``王*``, ``欧阳*``, ``F*** Wang``: the family name and nothing of the given name
  but, in Latin script, its initials; a name with no known family name keeps only its
  first character (Chinese) or its initials (Latin), one-letter words nothing;
- address: province and city (``广东省深圳市***``; a structured address keeps country,
  province and city);
- birth date ``1985-**-**``: the year only;
- free text written about a person (a contact's notes, a remark): ``***``, all of it, since
  it may say anything.

``***`` replaces whatever a mask cannot read; ``None`` stays ``None``. The kinds
(:class:`~crm_events.personal.PersonalData`) are the contracts'.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from crm_events.personal import PersonalData, is_token, personal_fields
from pydantic import BaseModel

HIDDEN = "***"
"""What a masked value shows in place of what it hides."""

DIGITS = "0123456789"


def keep_ends(text: str, head: int, tail: int, min_hidden: int) -> str:
    """``text`` with all but its first ``head`` and last ``tail`` characters as ``*``,
    keeping fewer (the head first) so that at least ``min_hidden`` are hidden."""
    length = len(text)
    kept = min(head + tail, length - min(length, min_hidden))
    kept_tail = min(tail, kept)
    kept_head = kept - kept_tail
    return text[:kept_head] + "*" * (length - kept) + text[length - kept_tail :]


def mask_phone(phone: str) -> str:
    """``+86 139-1234-5678`` -> ``+86 139****5678``."""
    digits = "".join(c for c in phone if c in DIGITS)
    prefix = ""
    if digits.startswith("0086"):
        prefix, digits = "+86 ", digits[4:]
    elif digits.startswith("86") and phone.lstrip().startswith("+"):
        prefix, digits = "+86 ", digits[2:]
    if not digits:
        return HIDDEN if phone else ""
    return prefix + keep_ends(digits, head=3, tail=4, min_hidden=4)


def mask_id_number(number: str) -> str:
    """``440305198501011234`` -> ``4403**********1234`` (separators dropped)."""
    characters = "".join(c for c in number if c.isalnum())
    if not characters:
        return HIDDEN if number else ""
    return keep_ends(characters, head=4, tail=4, min_hidden=(len(characters) + 1) // 2)


def mask_email(email: str) -> str:
    """``wang.fang@example.com`` -> ``w***@example.com``."""
    local, at, domain = email.rpartition("@")
    if not at:
        return HIDDEN if email else ""
    return (local[0] if len(local) > 1 else "") + HIDDEN + "@" + domain


def _is_chinese(text: str) -> bool:
    return any("\u3400" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff" for c in text)


def _mask_word(word: str) -> str:
    """A name part: its first character and ``*`` (Chinese) or ``***`` (Latin); a
    one-character part shows nothing."""
    hidden = "*" if _is_chinese(word) else HIDDEN
    return (word[0] if len(word) > 1 else "") + hidden


def mask_name(name: str, family_name: str | None = None) -> str:
    """``王芳`` -> ``王*``; ``Fang Wang`` with family name ``Wang`` -> ``F*** Wang``."""
    words = name.split()
    if not words:
        return HIDDEN if name else ""
    family = (family_name or "").strip()
    if len(words) == 1:
        word = words[0]
        if family and word.startswith(family) and len(word) > len(family):
            return family + ("*" if _is_chinese(word) else HIDDEN)
        return _mask_word(word)
    kept = {i for i, word in enumerate(words) if family and word.casefold() == family.casefold()}
    if len(kept) == len(words):
        kept = set()
    return " ".join(word if i in kept else _mask_word(word) for i, word in enumerate(words))


def mask_given_name(given_name: str) -> str:
    """``小明`` -> ``*``, ``Fang Mei`` -> ``F*** M***``: as the full name's mask shows it."""
    words = given_name.split()
    if not words:
        return HIDDEN if given_name else ""
    return " ".join("*" if _is_chinese(word) else _mask_word(word) for word in words)


_PLACE_NAME = r"[^\s\d区县旗镇乡村路街道巷弄号楼室]"
"""A character of a province's or a city's name: none of a district's, street's or house's."""
_PROVINCE = rf"(?:{_PLACE_NAME}{{2,8}}?(?:省|自治区|特别行政区))"
_CITY = rf"(?:{_PLACE_NAME}{{2,10}}?(?:市|自治州|地区|盟))"
_REGION_PREFIX = re.compile(rf"{_PROVINCE}?{_CITY}|{_PROVINCE}")


def mask_address_text(address: str) -> str:
    """``广东省深圳市南山区科技园路1号`` -> ``广东省深圳市***``; an address this cannot read
    (no province or city first) keeps nothing."""
    if not address:
        return ""
    region = _REGION_PREFIX.match(address.strip())
    return (region.group() if region else "") + HIDDEN


ADDRESS_KEPT = frozenset({"country", "province", "city"})
ID_DOCUMENT_KEPT = frozenset({"kind", "issuing_country", "expires_on"})


def _mask_fields(
    record: Mapping[str, Any], kept: frozenset[str], masks: Mapping[str, Callable[[str], str]]
) -> dict[str, Any]:
    """A structured value: ``kept`` fields as they are, ``masks`` applied to theirs, every
    other field hidden (an unknown field is never shown)."""
    return {name: _mask_field(name, value, kept, masks) for name, value in record.items()}


def _mask_field(
    name: str, value: Any, kept: frozenset[str], masks: Mapping[str, Callable[[str], str]]
) -> Any:
    if name in kept or value is None:
        return value
    if name in masks and isinstance(value, str):
        return masks[name](value)
    return HIDDEN


def _masker(mask_text: Callable[[str], str]) -> Callable[[Any], Any]:
    """A mask of any value: ``mask_text`` on text, ``***`` for what it cannot read."""

    def mask(value: Any) -> Any:
        return mask_text(value) if isinstance(value, str) else HIDDEN

    return mask


def _mask_name_value(value: Any) -> Any:
    """A name as text, or as a customer name (``full_name``, ``family_name``, ``given_name``)."""
    if not isinstance(value, Mapping):
        return _masker(mask_name)(value)
    family = value.get("family_name") if isinstance(value.get("family_name"), str) else None
    masks: dict[str, Callable[[str], str]] = {
        "full_name": lambda full: mask_name(full, family),
        "given_name": mask_given_name,
    }
    return _mask_fields(value, frozenset({"family_name"}), masks)


def _mask_address_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _mask_fields(value, ADDRESS_KEPT, {})
    return _masker(mask_address_text)(value)


def _mask_id_document_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _mask_fields(value, ID_DOCUMENT_KEPT, {"number": mask_id_number})
    return _masker(mask_id_number)(value)


def mask_birth_date(value: Any) -> Any:
    """``1985-03-14`` (text or date) -> ``1985-**-**``."""
    text = value.isoformat() if isinstance(value, date) else value
    if isinstance(text, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", text, re.ASCII):
        return text[:4] + "-**-**"
    return HIDDEN


_MASKS: Mapping[PersonalData, Callable[[Any], Any]] = {
    PersonalData.NAME: _mask_name_value,
    PersonalData.PHONE: _masker(mask_phone),
    PersonalData.EMAIL: _masker(mask_email),
    PersonalData.ID_DOCUMENT: _mask_id_document_value,
    PersonalData.ADDRESS: _mask_address_value,
    PersonalData.BIRTH_DATE: mask_birth_date,
    PersonalData.FREE_TEXT: _masker(lambda text: HIDDEN if text else ""),
}
"""The mask of each kind of personal data (a note written about a person: hidden whole,
``***``; an empty one stays empty)."""


def mask_value(kind: PersonalData, value: Any) -> Any:
    """``kind``'s mask of ``value``; ``None`` stays ``None``."""
    return None if value is None else _MASKS[kind](value)


def mask_payload(data: Mapping[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """A payload's JSON ``data`` (a ``model``) with its personal fields masked by kind; a
    sealed one (a token) shows nothing of the person and stays as it is."""
    personal = personal_fields(model)
    return {
        name: mask_value(personal[name], value)
        if name in personal and not is_token(value)
        else value
        for name, value in data.items()
    }


def mask_document(
    document: Mapping[str, Any], personal: Mapping[str, PersonalData]
) -> dict[str, Any]:
    """A copy of ``document`` with the personal data at each dotted path of ``personal``
    masked by its kind; a path through a list masks the field in each element."""
    masked = copy.deepcopy(dict(document))
    for path, kind in personal.items():
        masked = _mask_at(masked, path.split("."), kind)
    return masked


def _mask_at(value: Any, path: Sequence[str], kind: PersonalData) -> Any:
    if isinstance(value, list):
        return [_mask_at(element, path, kind) for element in value]
    if not path:
        return mask_value(kind, value)
    if isinstance(value, dict) and path[0] in value:
        value[path[0]] = _mask_at(value[path[0]], path[1:], kind)
    return value
