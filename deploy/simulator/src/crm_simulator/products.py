"""The simulated bank's products: what customers open, in what amounts, at what rates."""

from __future__ import annotations

from dataclasses import dataclass

from crm_events.common import ValueBand
from crm_events.core_banking import ProductType


@dataclass(frozen=True)
class Product:
    """A product of the simulated bank."""

    code: str
    name: str
    type: ProductType
    weight: int
    amount: tuple[float, float]
    """CNY range of the opening amount (deposit, principal, credit limit or annual premium)
    before the value-band factor."""
    term_months: int | None = None
    rate: str | None = None
    """Annual interest rate or expected yield, percent."""


_T = ProductType
INDIVIDUAL_PRODUCTS: tuple[Product, ...] = (
    Product("CUR-P01", "Personal Current Account", _T.CURRENT, 30, (500, 20e3), None, "0.20"),
    Product("SAV-P01", "Personal Savings Account", _T.SAVINGS, 25, (1e3, 50e3), None, "0.35"),
    Product("TD-P06M", "6-Month Time Deposit", _T.TIME_DEPOSIT, 6, (10e3, 200e3), 6, "1.30"),
    Product("TD-P01Y", "1-Year Time Deposit", _T.TIME_DEPOSIT, 6, (10e3, 300e3), 12, "1.55"),
    Product("TD-P03Y", "3-Year Time Deposit", _T.TIME_DEPOSIT, 3, (20e3, 500e3), 36, "1.95"),
    Product("LN-MTG", "Home Mortgage", _T.LOAN, 2, (300e3, 3e6), 300, "3.60"),
    Product("LN-CON", "Consumer Loan", _T.LOAN, 4, (20e3, 200e3), 24, "4.85"),
    Product("CC-PLT", "Platinum Credit Card", _T.CREDIT_CARD, 10, (10e3, 100e3)),
    Product("WM-P180", "Wealth Plan 180 Days", _T.WEALTH_MANAGEMENT, 4, (50e3, 1e6), 6, "2.90"),
    Product("FND-MMF", "Money Market Fund", _T.FUND, 5, (1e3, 100e3)),
    Product("INS-WL", "Whole Life Insurance", _T.INSURANCE, 3, (5e3, 50e3)),
)
ORGANISATION_PRODUCTS: tuple[Product, ...] = (
    Product("CUR-C01", "Corporate Current Account", _T.CURRENT, 30, (50e3, 5e6), None, "0.35"),
    Product("SAV-C01", "Corporate Call Deposit", _T.SAVINGS, 8, (100e3, 10e6), None, "1.00"),
    Product(
        "TD-C01Y", "Corporate Time Deposit 1 Year", _T.TIME_DEPOSIT, 8, (1e6, 50e6), 12, "1.75"
    ),
    Product("LN-WCL", "Working Capital Loan", _T.LOAN, 8, (1e6, 30e6), 12, "3.85"),
    Product("LN-FAL", "Fixed Asset Loan", _T.LOAN, 3, (5e6, 100e6), 60, "4.20"),
    Product("CC-CORP", "Corporate Card", _T.CREDIT_CARD, 4, (50e3, 500e3)),
    Product(
        "WM-C090", "Structured Deposit 90 Days", _T.WEALTH_MANAGEMENT, 5, (1e6, 20e6), 3, "2.40"
    ),
    Product("FND-CMF", "Corporate Money Market Fund", _T.FUND, 4, (1e6, 20e6)),
    Product("INS-GRP", "Group Employee Insurance", _T.INSURANCE, 2, (50e3, 2e6)),
)
MATURING = frozenset({_T.TIME_DEPOSIT, _T.LOAN, _T.WEALTH_MANAGEMENT})
"""Product types with a maturity date."""
BAND_FACTOR = {ValueBand.LOW: 0.3, ValueBand.MEDIUM: 1.0, ValueBand.HIGH: 4.0}
CNY_PER_UNIT = {"CNY": 1.0, "USD": 7.1, "EUR": 7.8, "GBP": 9.0, "HKD": 0.91}
FOREIGN_CURRENCIES = ("USD", "EUR", "GBP", "HKD")
