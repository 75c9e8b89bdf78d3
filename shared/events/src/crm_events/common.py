"""Value types shared by the payload models of several producers."""

import re
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from crm_events.personal import ERASED, Personal, PersonalData
from crm_events.registry import FrozenModel

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@~-]{0,127}$"
"""Letters, digits and ``. _ : @ ~ -`` (first a letter or digit), at most 128 characters:
an id is a URL path segment, a Kafka key and a log field as it is, never escaped."""

Id = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=ID_PATTERN)]
"""Identifier of an aggregate or a person (customer, manager, branch, ...)."""

DocumentNumber = Annotated[str, StringConstraints(min_length=1, max_length=128)]
"""The number printed on an identity document, as printed (it may hold spaces)."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
"""A short text: a title, a product's or a unit's name (a person's: :data:`PersonName`)."""
Email = Annotated[
    str,
    StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$", max_length=254),
    Personal(PersonalData.EMAIL),
]
Phone = Annotated[
    str, StringConstraints(pattern=r"^\+?[0-9][0-9 \-]{3,30}$"), Personal(PersonalData.PHONE)
]
PersonName = Annotated[Name, Personal(PersonalData.NAME)]
"""A person's name as one text (a lead's contact, an opportunity's contacts)."""
BirthDate = Annotated[date, Personal(PersonalData.BIRTH_DATE)]
Notes = Annotated[str, Personal(PersonalData.FREE_TEXT)]
"""Free text written about a person or their affairs (a note, a remark, a reason): it may
say anything, so it is personal data."""
ShortNotes = Annotated[Name, Personal(PersonalData.FREE_TEXT)]
"""A short free text about a person (a summary, a description): at most 200 characters."""
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
"""ISO 3166-1 alpha-2."""
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
"""ISO 4217."""
Percent = Annotated[int, Field(ge=0, le=100)]

_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
DECIMAL_PATTERN = f"^{_DECIMAL.pattern}$"


def _written_as_documented(value: Any, info: ValidationInfo) -> Any:
    """Read from JSON, a decimal is the string its schema documents (``"12.50"``): a
    number (inexact as a float), an exponent, spaces or underscores are refused, as the
    schema refuses them. Python code gives :class:`Decimal` values, as before."""
    if info.mode == "json" and not (isinstance(value, str) and _DECIMAL.fullmatch(value)):
        raise PydanticCustomError(
            "decimal_string", 'Input should be a decimal string such as "12.50"'
        )
    return value


DecimalString = Annotated[
    Decimal,
    Field(allow_inf_nan=False),
    BeforeValidator(_written_as_documented),
    PlainSerializer(lambda value: format(value, "f"), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": DECIMAL_PATTERN}),
]
"""Exact decimal, written in JSON as a plain decimal string (never a float)."""


class Money(FrozenModel):
    """An exact amount in one currency."""

    amount: DecimalString
    currency: CurrencyCode


class Channel(StrEnum):
    """Channel through which the bank reaches a customer."""

    SMS = "sms"
    EMAIL = "email"
    PHONE = "phone"
    MAIL = "mail"
    APP = "app"
    BRANCH = "branch"
    EVENT = "event"


class CustomerType(StrEnum):
    INDIVIDUAL = "individual"
    CORPORATE = "corporate"
    INSTITUTION = "institution"


class ValueBand(StrEnum):
    """Customer value band (segment)."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class CorporateTier(StrEnum):
    """Tier of a corporate customer, from most to least favoured."""

    GOLD = "gold"
    KEY = "key"
    QUALITY = "quality"
    GENERAL = "general"
    RESTRICTED = "restricted"
    EXIT = "exit"


class IdDocumentKind(StrEnum):
    NATIONAL_ID = "national_id"
    PASSPORT = "passport"
    RESIDENCE_PERMIT = "residence_permit"
    BUSINESS_LICENSE = "business_license"
    UNIFIED_SOCIAL_CREDIT_CODE = "unified_social_credit_code"
    OTHER = "other"


class IdDocument(FrozenModel):
    kind: IdDocumentKind
    number: DocumentNumber
    issuing_country: CountryCode
    expires_on: date | None = None


class Address(FrozenModel):
    line1: Name
    line2: str | None = None
    city: Name
    province: str | None = None
    postal_code: str | None = None
    country: CountryCode


class CustomerName(FrozenModel):
    """Full (legal) name; family and given names for individuals where known."""

    full_name: Name
    family_name: str | None = None
    given_name: str | None = None


FullName = Annotated[CustomerName, Personal(PersonalData.NAME, erased={"full_name": ERASED})]
"""A customer's name, personal data as a whole."""
IdDocuments = Annotated[list[IdDocument], Personal(PersonalData.ID_DOCUMENT, erased=[])]
"""A person's identity documents, personal data as a whole."""
PostalAddress = Annotated[Address, Personal(PersonalData.ADDRESS)]
"""A person's address, personal data as a whole."""


class Assignment(FrozenModel):
    """Who is now responsible; ``previous_manager_id`` is null on a first assignment."""

    manager_id: Id
    previous_manager_id: Id | None = None
    reason: Notes | None = None


class CoreOwnedData(FrozenModel):
    """Customer data mastered by core banking; a null field is unchanged."""

    name: FullName | None = None
    id_documents: IdDocuments | None = None
    birth_date: BirthDate | None = None
    phone: Phone | None = None
    email: Email | None = None
    address: PostalAddress | None = None
