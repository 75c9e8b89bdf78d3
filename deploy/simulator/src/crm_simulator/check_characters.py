"""Check characters of the identity documents the simulated customers carry: PRC resident
identity card numbers, unified social credit codes (and the organisation codes inside
them) and business licence registration numbers."""

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CREDIT_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = tuple(3**i % 31 for i in range(17))
ORG_CODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def national_id_check(body: str) -> str:
    """Check character of the first 17 digits of a PRC resident identity card number."""
    total = sum(int(digit) * weight for digit, weight in zip(body, _ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11]


def credit_code_check(body: str) -> str:
    """Check character of the first 17 characters of a unified social credit code."""
    pairs = zip(body, _CREDIT_WEIGHTS, strict=True)
    total = sum(_CREDIT_CHARS.index(char) * weight for char, weight in pairs)
    return _CREDIT_CHARS[-total % 31]


def registration_number_check(body: str) -> str:
    """Check digit (ISO 7064 MOD 11,10) of the first 14 digits of a business licence number."""
    product = 10
    for digit in body:
        product = ((product % 11 + int(digit)) % 10 or 10) * 2
    return str((11 - product % 11) % 10)


def organisation_code_check(body: str) -> str:
    """Check character of the first 8 digits of an organisation code."""
    check = 11 - sum(int(d) * w for d, w in zip(body, ORG_CODE_WEIGHTS, strict=True)) % 11
    return {10: "X", 11: "0"}.get(check, str(check))
