"""A deterministic synthetic customer book: the bank's customers as core banking knows them.

``population(seed, size)`` gives the same customers for the same arguments: everything is
drawn from one ``random.Random(seed)``, dates are relative to ``AS_OF``, never the clock.
Phones, e-mails and document numbers are unique within a population; national ids and
credit codes carry valid check characters.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta

from crm_events.common import (
    Address,
    Channel,
    CorporateTier,
    CustomerName,
    CustomerType,
    IdDocument,
    IdDocumentKind,
    ValueBand,
)

from crm_simulator.check_characters import (
    credit_code_check,
    national_id_check,
    organisation_code_check,
    registration_number_check,
)
from crm_simulator.word_lists import (
    BRANDS,
    CN_FAMILY,
    CN_GIVEN,
    CN_MAIL,
    FOREIGN,
    INDUSTRIES,
    INSTITUTIONS,
    MOBILE_PREFIXES,
    OCCUPATIONS,
    ORG_MAILBOXES,
    STREETS,
    TOWERS,
    WESTERN_FAMILY,
    WESTERN_GIVEN,
    WESTERN_MAIL,
)

AS_OF = date(2026, 1, 1)
"""The day the book describes: ages and document expiries are relative to it."""

MANAGERS_PER_BRANCH = 4


@dataclass(frozen=True)
class City:
    """Where a branch is: postal, telephone and administrative codes."""

    name: str
    province: str
    postal_prefix: str
    area_code: str
    region_code: str
    """First six digits of national ids and credit codes issued there."""


CITIES: tuple[City, ...] = (
    City("Shanghai", "Shanghai", "2000", "21", "310101"),
    City("Beijing", "Beijing", "1000", "10", "110101"),
    City("Shenzhen", "Guangdong", "5180", "755", "440303"),
    City("Guangzhou", "Guangdong", "5100", "20", "440106"),
    City("Hangzhou", "Zhejiang", "3100", "571", "330106"),
    City("Nanjing", "Jiangsu", "2100", "25", "320102"),
    City("Suzhou", "Jiangsu", "2150", "512", "320505"),
    City("Chengdu", "Sichuan", "6100", "28", "510104"),
    City("Wuhan", "Hubei", "4300", "27", "420106"),
    City("Tianjin", "Tianjin", "3000", "22", "120101"),
    City("Xi'an", "Shaanxi", "7100", "29", "610113"),
    City("Chongqing", "Chongqing", "4000", "23", "500103"),
)
BRANCH_IDS: tuple[str, ...] = tuple(f"BR-{n:03d}" for n in range(1, len(CITIES) + 1))
"""One branch per city, ``BR-001`` (Shanghai) to ``BR-012`` (Chongqing)."""
_BRANCH_WEIGHTS = (14, 13, 11, 10, 9, 8, 7, 7, 6, 6, 5, 4)


@dataclass(frozen=True)
class SimulatedCustomer:
    """A customer of the simulated bank, with the data core banking masters."""

    customer_id: str
    customer_type: CustomerType
    name: CustomerName
    nationality: str
    id_documents: tuple[IdDocument, ...]
    birth_date: date | None
    phone: str
    email: str
    address: Address
    occupation: str | None
    industry: str | None
    branch_id: str
    manager_id: str
    value_band: ValueBand
    corporate_tier: CorporateTier | None
    preferred_channel: Channel

    @property
    def is_organisation(self) -> bool:
        return self.customer_type is not CustomerType.INDIVIDUAL


def branch_city(branch_id: str) -> City:
    """The city of a branch."""
    return CITIES[BRANCH_IDS.index(branch_id)]


def branch_managers(branch_id: str) -> tuple[str, ...]:
    """Ids of the relationship managers of a branch (``RM-0001`` ... four per branch)."""
    first = BRANCH_IDS.index(branch_id) * MANAGERS_PER_BRANCH + 1
    return tuple(f"RM-{n:04d}" for n in range(first, first + MANAGERS_PER_BRANCH))


def _fill(rng: random.Random, template: str) -> str:
    """``template`` with each ``#`` a random digit and each ``@`` a random capital letter."""
    return "".join(
        str(rng.randrange(10))
        if char == "#"
        else chr(ord("A") + rng.randrange(26))
        if char == "@"
        else char
        for char in template
    )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def new_phone(rng: random.Random, customer: SimulatedCustomer) -> str:
    """A phone number of the customer's kind: an office line, a Chinese or a home mobile."""
    if customer.is_organisation:
        city = branch_city(customer.branch_id)
        return _fill(rng, f"+86 {city.area_code} {rng.randrange(2, 9)}### ####")
    if customer.nationality in FOREIGN and rng.random() < 0.4:
        return _fill(rng, FOREIGN[customer.nationality][1])
    return _fill(rng, f"+86 {rng.choice(MOBILE_PREFIXES)} #### ####")


def new_email(rng: random.Random, customer: SimulatedCustomer) -> str:
    """An e-mail address: an organisation keeps its domain, a person may change provider."""
    if customer.is_organisation:
        domain = customer.email.partition("@")[2]
        return f"{rng.choice(ORG_MAILBOXES)}{rng.randrange(1, 100)}@{domain}"
    given, family = customer.name.given_name or "", customer.name.family_name or ""
    local = rng.choice((f"{given}.{family}", f"{family}{given}", f"{given[:1]}{family}"))
    if rng.random() < 0.7:
        local += f"{rng.randrange(100):02d}"
    mail = CN_MAIL if customer.nationality == "CN" else WESTERN_MAIL
    return f"{local.lower()}@{rng.choice(mail)}"


def new_address(rng: random.Random, city: City, organisation: bool = False) -> Address:
    """A street address in ``city``: an office floor or a flat."""
    if organisation:
        line2 = f"Floor {rng.randrange(2, 40)}, {rng.choice(TOWERS)}"
    else:
        building, floor, flat = rng.randrange(1, 20), rng.randrange(1, 33), rng.randrange(1, 9)
        line2 = f"Building {building}, Room {floor}{flat:02d}"
    return Address(
        line1=f"{rng.randrange(1, 2000)} {rng.choice(STREETS)}",
        line2=line2,
        city=city.name,
        province=city.province,
        postal_code=f"{city.postal_prefix}{rng.randrange(100):02d}",
        country="CN",
    )


def population(seed: int, size: int) -> list[SimulatedCustomer]:
    """``size`` customers of the simulated bank; the same arguments give the same book."""
    return _Book(random.Random(seed)).customers(size)


class _Book:
    """Draws customers from one random stream, keeping identifiers unique."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def unique(self, make: Callable[[], str]) -> str:
        """The first value of ``make`` not handed out before."""
        while (value := make()) in self.used:
            pass
        self.used.add(value)
        return value

    def customers(self, size: int) -> list[SimulatedCustomer]:
        rng = self.rng
        numbers = rng.sample(range(1, 10**8), size)
        kinds = rng.choices(list(CustomerType), weights=(85, 12, 3), k=size)
        branches = rng.choices(BRANCH_IDS, weights=_BRANCH_WEIGHTS, k=size)
        return [
            self.individual(f"C{number:08d}", branch)
            if kind is CustomerType.INDIVIDUAL
            else self.organisation(f"C{number:08d}", kind, branch)
            for number, kind, branch in zip(numbers, kinds, branches, strict=True)
        ]

    def individual(self, customer_id: str, branch_id: str) -> SimulatedCustomer:
        rng = self.rng
        city = branch_city(branch_id)
        age = rng.triangular(18, 88, 38)
        birth = AS_OF - timedelta(days=int(age * 365.25))
        chinese = rng.random() < 0.9
        if chinese:
            nationality = "CN"
            family, given = rng.choice(CN_FAMILY), rng.choice(CN_GIVEN)
            full_name = f"{family} {given}"
            home = city if rng.random() < 0.7 else rng.choice(CITIES)
            validity = 10 if age < 26 else 20 if age < 46 else None
            document = IdDocument(
                kind=IdDocumentKind.NATIONAL_ID,
                number=self.unique(lambda: self.national_id(home.region_code, birth)),
                issuing_country="CN",
                expires_on=None if validity is None else self.expiry(validity),
            )
        else:
            nationality = rng.choice(list(FOREIGN))
            family, given = rng.choice(WESTERN_FAMILY), rng.choice(WESTERN_GIVEN)
            full_name = f"{given} {family}"
            passport = FOREIGN[nationality][0]
            document = IdDocument(
                kind=IdDocumentKind.PASSPORT,
                number=self.unique(lambda: _fill(rng, passport)),
                issuing_country=nationality,
                expires_on=self.expiry(10),
            )
        if age < 23 and rng.random() < 0.6:
            occupation = "student"
        elif age >= 62 and rng.random() < 0.7:
            occupation = "retired"
        else:
            occupation = rng.choice(OCCUPATIONS)
        draft = SimulatedCustomer(
            customer_id=customer_id,
            customer_type=CustomerType.INDIVIDUAL,
            name=CustomerName(full_name=full_name, family_name=family, given_name=given),
            nationality=nationality,
            id_documents=(document,),
            birth_date=birth,
            phone="",
            email="",
            address=new_address(rng, city),
            occupation=occupation,
            industry=None,
            branch_id=branch_id,
            manager_id=rng.choice(branch_managers(branch_id)),
            value_band=rng.choices(list(ValueBand), weights=(8, 32, 60))[0],
            corporate_tier=None,
            preferred_channel=rng.choices(
                (Channel.APP, Channel.SMS, Channel.PHONE, Channel.EMAIL, Channel.BRANCH),
                weights=(40, 20, 15, 15, 10),
            )[0],
        )
        return self.contactable(draft)

    def organisation(
        self, customer_id: str, kind: CustomerType, branch_id: str
    ) -> SimulatedCustomer:
        rng = self.rng
        city = branch_city(branch_id)
        brand = rng.choice(BRANDS)
        if kind is CustomerType.CORPORATE:
            industry, business = rng.choice(INDUSTRIES)
            suffix = rng.choice(("Co., Ltd.", "Group Co., Ltd.", "Holdings Co., Ltd."))
            full_name = f"{city.name} {brand} {business} {suffix}"
            domain = f"{_slug(f'{city.name} {brand} {business}')}.com.cn"
            registration = "91"  # industry and commerce: enterprise
            band = rng.choices(list(ValueBand), weights=(30, 45, 25))[0]
        else:
            industry, template, suffix = rng.choice(INSTITUTIONS)
            full_name = template.format(city=city.name, n=rng.randrange(1, 20), brand=brand)
            domain = f"{_slug(full_name)}.{suffix}"
            registration = "12"  # institution registration: public institution
            band = rng.choices(list(ValueBand), weights=(40, 50, 10))[0]
        documents = [
            IdDocument(
                kind=IdDocumentKind.UNIFIED_SOCIAL_CREDIT_CODE,
                number=self.unique(lambda: self.credit_code(registration, city.region_code)),
                issuing_country="CN",
            )
        ]
        if kind is CustomerType.CORPORATE and rng.random() < 0.4:
            documents.append(
                IdDocument(
                    kind=IdDocumentKind.BUSINESS_LICENSE,
                    number=self.unique(lambda: self.registration_number(city.region_code)),
                    issuing_country="CN",
                    expires_on=self.expiry(30),
                )
            )
        tiers = {
            ValueBand.HIGH: ((CorporateTier.GOLD, CorporateTier.KEY), (1, 2)),
            ValueBand.MEDIUM: (
                (CorporateTier.KEY, CorporateTier.QUALITY, CorporateTier.GENERAL),
                (1, 3, 3),
            ),
            ValueBand.LOW: (
                (CorporateTier.GENERAL, CorporateTier.RESTRICTED, CorporateTier.EXIT),
                (8, 2, 1),
            ),
        }
        tier_choices, tier_weights = tiers[band]
        draft = SimulatedCustomer(
            customer_id=customer_id,
            customer_type=kind,
            name=CustomerName(full_name=full_name),
            nationality="CN",
            id_documents=tuple(documents),
            birth_date=None,
            phone="",
            email=f"info@{domain}",
            address=new_address(rng, city, organisation=True),
            occupation=None,
            industry=industry,
            branch_id=branch_id,
            manager_id=rng.choice(branch_managers(branch_id)),
            value_band=band,
            corporate_tier=rng.choices(tier_choices, weights=tier_weights)[0],
            preferred_channel=rng.choice((Channel.PHONE, Channel.EMAIL, Channel.BRANCH)),
        )
        return self.contactable(draft)

    def contactable(self, draft: SimulatedCustomer) -> SimulatedCustomer:
        """``draft`` with a phone and an e-mail address of its own."""
        return replace(
            draft,
            phone=self.unique(lambda: new_phone(self.rng, draft)),
            email=self.unique(lambda: new_email(self.rng, draft)),
        )

    def expiry(self, validity_years: int) -> date:
        """Expiry of a document valid ``validity_years`` and issued before ``AS_OF``."""
        return AS_OF + timedelta(days=self.rng.randrange(30, validity_years * 365))

    def national_id(self, region_code: str, birth: date) -> str:
        body = f"{region_code}{birth:%Y%m%d}{self.rng.randrange(1000):03d}"
        return body + national_id_check(body)

    def credit_code(self, registration: str, region_code: str) -> str:
        organisation = _fill(self.rng, "########")
        organisation += organisation_code_check(organisation)
        body = f"{registration}{region_code}{organisation}"
        return body + credit_code_check(body)

    def registration_number(self, region_code: str) -> str:
        body = region_code + _fill(self.rng, "########")
        return body + registration_number_check(body)
