"""Masks of personal data: the usual examples, and for any input (short, empty, any
script, any type) a mask shows only the part it keeps and always hides something."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest
from crm_backbone.masking import (
    HIDDEN,
    keep_ends,
    mask_address_text,
    mask_birth_date,
    mask_document,
    mask_email,
    mask_given_name,
    mask_id_number,
    mask_name,
    mask_phone,
    mask_value,
)
from crm_events.personal import PersonalData
from hypothesis import assume, given
from hypothesis import strategies as st

ASCII_DIGITS = st.text(alphabet="0123456789", max_size=20)
SEPARATORS = st.text(alphabet=" -().", max_size=2)
CHINESE = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
LATIN_WORD = st.text(alphabet=st.characters(categories=["Lu", "Ll"]), min_size=1, max_size=10)


@pytest.mark.parametrize(
    ("mask", "value", "shown"),
    [
        (mask_phone, "13912345678", "139****5678"),
        (mask_phone, "+86 139-1234-5678", "+86 139****5678"),
        (mask_phone, "0086 13912345678", "+86 139****5678"),
        (mask_phone, "(0755) 8123-4567", "075*****4567"),
        (mask_phone, "12345", "****5"),
        (mask_id_number, "440305198501011234", "4403**********1234"),
        (mask_id_number, "44030519850101123X", "4403**********123X"),
        (mask_id_number, "E12345678", "*****5678"),
        (mask_email, "wang.fang@example.com", "w***@example.com"),
        (mask_email, "w@example.com", "***@example.com"),
        (mask_email, "not an address", HIDDEN),
        (mask_name, "王芳", "王*"),
        (mask_name, "王小明", "王*"),
        (mask_name, "Fang Wang", "F*** W***"),
        (mask_given_name, "小明", "*"),
        (mask_address_text, "广东省深圳市南山区科技园路1号", "广东省深圳市***"),
        (mask_address_text, "北京市朝阳区建国路1号", "北京市***"),
        (mask_address_text, "新疆维吾尔自治区乌鲁木齐市天山区", "新疆维吾尔自治区乌鲁木齐市***"),
        (mask_address_text, "12 Baker Street, London", HIDDEN),
        (mask_address_text, "朝阳区建国路市场街1号", HIDDEN),
        (mask_birth_date, "1985-03-14", "1985-**-**"),
        (mask_birth_date, date(1985, 3, 14), "1985-**-**"),
        (mask_birth_date, "14/03/1985", HIDDEN),
    ],
)
def test_the_usual_masks(mask: Any, value: Any, shown: str) -> None:
    assert mask(value) == shown


@pytest.mark.parametrize(
    ("name", "family", "shown"),
    [
        ("欧阳娜娜", "欧阳", "欧阳*"),
        ("王芳", "王", "王*"),
        ("Fang Wang", "Wang", "F*** Wang"),
        ("Wang", "Wang", "W***"),
        ("Fang Wang", "Li", "F*** W***"),
    ],
)
def test_a_name_keeps_its_known_family_name(name: str, family: str, shown: str) -> None:
    assert mask_name(name, family) == shown


@given(
    text=st.text(alphabet=st.characters(exclude_characters="*"), max_size=30),
    head=st.integers(0, 6),
    tail=st.integers(0, 6),
    min_hidden=st.integers(0, 12),
)
def test_keep_ends_shows_at_most_its_ends_and_hides_at_least_what_it_must(
    text: str, head: int, tail: int, min_hidden: int
) -> None:
    masked = keep_ends(text, head, tail, min_hidden)
    assert len(masked) == len(text)
    shown = [i for i, c in enumerate(masked) if c != "*"]
    assert all(masked[i] == text[i] for i in shown)
    kept_tail = min(tail, len(shown))  # a short text keeps fewer, the head first
    kept_head = len(shown) - kept_tail
    assert kept_head <= head
    assert shown == [*range(kept_head), *range(len(text) - kept_tail, len(text))]
    assert len(text) - len(shown) >= min(len(text), min_hidden)
    # As much as allowed is kept: the mask stays useful.
    assert len(shown) == min(head + tail, len(text) - min(len(text), min_hidden))


@given(digits=ASCII_DIGITS, separators=st.lists(SEPARATORS, max_size=20), plus=st.booleans())
def test_a_phone_shows_three_and_four_digits_at_most_and_hides_four(
    digits: str, separators: list[str], plus: bool
) -> None:
    assume(not digits.startswith(("86", "0086")))  # a country code, shown as "+86 "
    phone = ("+" if plus else "") + "".join(
        d + s for d, s in zip(digits, separators + [""] * 20, strict=False)
    )
    masked = mask_phone(phone)
    if not digits:
        assert masked in {"", HIDDEN}
        return
    assert masked == keep_ends(digits, head=3, tail=4, min_hidden=4)
    assert masked.count("*") >= min(4, len(digits))


@given(phone=st.text(max_size=24))
def test_a_phone_mask_shows_only_digits_and_stars(phone: str) -> None:
    masked = mask_phone(phone)
    shown = masked.removeprefix("+86 ")
    assert set(shown) <= set("0123456789*")
    assert sum(c.isdigit() for c in shown) <= 7
    assert not phone or "*" in masked


@given(number=st.text(max_size=24))
def test_an_id_number_mask_hides_at_least_half(number: str) -> None:
    masked = mask_id_number(number)
    characters = [c for c in number if c.isalnum()]
    if not characters:
        assert masked == (HIDDEN if number else "")
        return
    assert len(masked) == len(characters)
    assert masked.count("*") >= (len(characters) + 1) // 2
    assert sum(c != "*" for c in masked) <= 8


@given(local=st.text(max_size=12), domain=st.text(max_size=12))
def test_an_email_mask_shows_one_character_of_the_local_part_and_the_domain(
    local: str, domain: str
) -> None:
    email = f"{local}@{domain}"
    local_part, _, domain_part = email.rpartition("@")  # the domain follows the last "@"
    masked = mask_email(email)
    assert masked == (local_part[0] if len(local_part) > 1 else "") + HIDDEN + "@" + domain_part


@given(family=CHINESE, given_name=st.text(alphabet=CHINESE, min_size=1, max_size=4))
def test_a_chinese_name_shows_its_family_name_only_whatever_the_length(
    family: str, given_name: str
) -> None:
    assert mask_name(family + given_name) == family + "*"
    assert mask_given_name(given_name) == "*"


@given(words=st.lists(LATIN_WORD, min_size=1, max_size=4))
def test_a_latin_name_shows_at_most_the_initials_of_its_words(words: list[str]) -> None:
    masked = mask_name(" ".join(words)).split(" ")
    assert len(masked) == len(words)
    for word, shown in zip(words, masked, strict=True):
        assert shown == (word[0] if len(word) > 1 else "") + HIDDEN


@given(name=st.text(max_size=20), family=st.none() | st.text(max_size=6))
def test_a_name_mask_always_hides_something(name: str, family: str | None) -> None:
    masked = mask_name(name, family)
    assert not name or "*" in masked
    kept = set(name[:1]) | set(family or "") | {w[0] for w in name.split()} | set("* ")
    assert set(masked) <= kept


@given(address=st.text(max_size=40))
def test_an_address_mask_shows_at_most_its_province_and_city(address: str) -> None:
    masked = mask_address_text(address)
    if not address:
        assert masked == ""
        return
    region = masked.removesuffix(HIDDEN)
    assert address.strip().startswith(region)
    assert region == "" or region.endswith(
        ("省", "自治区", "特别行政区", "市", "自治州", "地区", "盟")
    )
    assert len(region) <= 25
    assert not any(c in region for c in "区县路街道号")


@given(born=st.dates())
def test_a_birth_date_shows_its_year_only(born: date) -> None:
    assert mask_birth_date(born) == f"{born.year:04d}-**-**"
    assert mask_birth_date(born.isoformat()) == f"{born.year:04d}-**-**"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(kind=st.sampled_from(PersonalData), value=JSON)
def test_any_value_of_a_personal_field_is_masked_without_error(
    kind: PersonalData, value: Any
) -> None:
    masked = mask_value(kind, value)
    if value is None:
        assert masked is None
    elif isinstance(value, str):
        assert value == "" or "*" in masked
    elif not isinstance(value, dict):
        assert masked == HIDDEN


@given(value=st.dictionaries(st.text(max_size=12), JSON, max_size=5))
def test_a_structured_value_shows_only_the_fields_its_kind_keeps(value: dict[str, Any]) -> None:
    kept = {
        PersonalData.NAME: {"family_name"},
        PersonalData.ADDRESS: {"country", "province", "city"},
        PersonalData.ID_DOCUMENT: {"kind", "issuing_country", "expires_on"},
    }
    for kind, fields in kept.items():
        masked = mask_value(kind, value)
        assert masked.keys() == value.keys()
        for name, shown in masked.items():
            if name in fields or value[name] is None:
                assert shown == value[name]
            else:
                assert isinstance(shown, str)
                assert "*" in shown or value[name] == ""


CUSTOMER = {
    "_id": "C0001",
    "manager_id": "rm-1",
    "name": {"full_name": "王小明", "family_name": "王", "given_name": "小明"},
    "profile": {
        "phone": "+86 139-1234-5678",
        "email": "xiaoming.wang@example.com",
        "birth_date": "1985-03-14",
        "id_documents": [
            {"kind": "national_id", "number": "440305198501011234", "issuing_country": "CN"},
            {"kind": "passport", "number": "E12345678", "issuing_country": "CN"},
        ],
        "address": {
            "line1": "科技园路1号",
            "city": "深圳市",
            "province": "广东省",
            "country": "CN",
        },
    },
}
PERSONAL = {
    "name": PersonalData.NAME,
    "profile.phone": PersonalData.PHONE,
    "profile.email": PersonalData.EMAIL,
    "profile.birth_date": PersonalData.BIRTH_DATE,
    "profile.id_documents": PersonalData.ID_DOCUMENT,
    "profile.address": PersonalData.ADDRESS,
    "profile.mobile": PersonalData.PHONE,
}


def test_a_customer_document_is_masked_field_by_field_and_left_untouched() -> None:
    original = copy.deepcopy(CUSTOMER)
    masked = mask_document(CUSTOMER, PERSONAL)
    assert original == CUSTOMER
    assert masked == {
        "_id": "C0001",
        "manager_id": "rm-1",
        "name": {"full_name": "王*", "family_name": "王", "given_name": "*"},
        "profile": {
            "phone": "+86 139****5678",
            "email": "x***@example.com",
            "birth_date": "1985-**-**",
            "id_documents": [
                {"kind": "national_id", "number": "4403**********1234", "issuing_country": "CN"},
                {"kind": "passport", "number": "*****5678", "issuing_country": "CN"},
            ],
            "address": {"line1": HIDDEN, "city": "深圳市", "province": "广东省", "country": "CN"},
        },
    }


@given(document=st.dictionaries(st.sampled_from(["a", "b", "c"]), JSON, max_size=3))
def test_masking_a_document_changes_only_its_personal_paths(document: dict[str, Any]) -> None:
    original = copy.deepcopy(document)
    masked = mask_document(document, {"a": PersonalData.PHONE, "b.x": PersonalData.EMAIL})
    assert document == original
    assert masked.keys() == document.keys()
    if "c" in document:
        assert masked["c"] == document["c"]
    if isinstance(document.get("a"), str):
        assert masked["a"] == mask_phone(document["a"])
