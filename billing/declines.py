"""Decline classification: one place that turns a gateway's structured decline fields
into what billing does next and what the customer is told.

    DeclineInfo (code, decline_code, advice_code, network_decline_code,
                 network_advice_code, card_brand)
        -> classify_decline()
        -> Classification(family, reason, customer_message_key, retryable)

Families:

    HARD                     the issuer will never approve this credential: never retry
    SOFT                     cannot approve now: retry later, within network caps
    FIX_DATA                 the customer must fix card data (expiry, CVC, number) first
    AUTHENTICATION_REQUIRED  the customer must confirm on-session (3-D Secure); no auto retry
    GATEWAY_UNAVAILABLE      the gateway or issuer was unreachable: retry soon

Only structured fields are read, never message text. Sources: Stripe decline code
reference (stripe.com/docs/declines/codes), Visa "Excessive Reattempts" categories,
Mastercard Merchant Advice Codes; summarised in the project's DOMAIN notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DeclineFamily(StrEnum):
    HARD = "hard"
    SOFT = "soft"
    FIX_DATA = "fix_data"
    AUTHENTICATION_REQUIRED = "authentication_required"
    GATEWAY_UNAVAILABLE = "gateway_unavailable"


class CustomerMessage(StrEnum):
    """Keys of the customer-facing messages (templates render the wording)."""

    ADD_FUNDS_OR_OTHER_METHOD = "add_funds_or_other_method"
    UPDATE_CARD = "update_card"
    REENTER_CARD_DETAILS = "reenter_card_details"
    CONTACT_ISSUER_LIMIT = "contact_issuer_limit"
    TEMPORARY_PROBLEM = "temporary_problem"
    CONTACT_ISSUER = "contact_issuer"
    CONFIRM_PAYMENT = "confirm_payment"
    GENERIC_DECLINE = "generic_decline"
    USE_ANOTHER_METHOD = "use_another_method"


CUSTOMER_MESSAGES: dict[CustomerMessage, str] = {
    CustomerMessage.ADD_FUNDS_OR_OTHER_METHOD: (
        "Your card was declined for insufficient funds. Add funds or use another payment method."
    ),
    CustomerMessage.UPDATE_CARD: "Your card has expired. Please update your card.",
    CustomerMessage.REENTER_CARD_DETAILS: (
        "Your card details were not accepted. Please re-enter them."
    ),
    CustomerMessage.CONTACT_ISSUER_LIMIT: (
        "Your card has reached its limit. Please contact your card issuer."
    ),
    CustomerMessage.TEMPORARY_PROBLEM: (
        "We hit a temporary problem charging your card. We will retry automatically."
    ),
    CustomerMessage.CONTACT_ISSUER: (
        "Your card was declined. Please contact your card issuer or use another payment method."
    ),
    CustomerMessage.CONFIRM_PAYMENT: (
        "Your bank asks you to confirm this payment. Please confirm it in the portal."
    ),
    # Lost, stolen and fraud declines must never reveal the real reason.
    CustomerMessage.GENERIC_DECLINE: ("Your card was declined. Please use another payment method."),
    CustomerMessage.USE_ANOTHER_METHOD: (
        "This card can no longer be charged. Please use another payment method."
    ),
}


@dataclass(frozen=True, slots=True)
class DeclineInfo:
    """The structured fields of a gateway decline (Stripe's names)."""

    code: str | None = None
    decline_code: str | None = None
    advice_code: str | None = None  # confirm_card_data | do_not_try_again | try_again_later
    network_decline_code: str | None = None  # e.g. Visa "51", "R1"
    network_advice_code: str | None = None  # e.g. Mastercard MAC "03", "24"
    card_brand: str | None = None  # visa | mastercard | amex | ...


@dataclass(frozen=True, slots=True)
class Classification:
    family: DeclineFamily
    reason: str  # the most specific code that decided the family
    message: CustomerMessage

    @property
    def retryable(self) -> bool:
        """Whether an automatic retry may ever follow (network caps still apply)."""
        return self.family in (DeclineFamily.SOFT, DeclineFamily.GATEWAY_UNAVAILABLE)


_F = DeclineFamily
_M = CustomerMessage

# decline_code -> (family, message). Source: Stripe decline code reference.
_DECLINE_CODES: dict[str, tuple[DeclineFamily, CustomerMessage]] = {
    "insufficient_funds": (_F.SOFT, _M.ADD_FUNDS_OR_OTHER_METHOD),
    "expired_card": (_F.FIX_DATA, _M.UPDATE_CARD),
    "incorrect_cvc": (_F.FIX_DATA, _M.REENTER_CARD_DETAILS),
    "invalid_cvc": (_F.FIX_DATA, _M.REENTER_CARD_DETAILS),
    "incorrect_number": (_F.FIX_DATA, _M.REENTER_CARD_DETAILS),
    "invalid_number": (_F.FIX_DATA, _M.REENTER_CARD_DETAILS),
    "invalid_expiry_month": (_F.FIX_DATA, _M.UPDATE_CARD),
    "invalid_expiry_year": (_F.FIX_DATA, _M.UPDATE_CARD),
    "incorrect_zip": (_F.FIX_DATA, _M.REENTER_CARD_DETAILS),
    "card_velocity_exceeded": (_F.SOFT, _M.CONTACT_ISSUER_LIMIT),
    "withdrawal_count_limit_exceeded": (_F.SOFT, _M.CONTACT_ISSUER_LIMIT),
    "processing_error": (_F.GATEWAY_UNAVAILABLE, _M.TEMPORARY_PROBLEM),
    "try_again_later": (_F.GATEWAY_UNAVAILABLE, _M.TEMPORARY_PROBLEM),
    "issuer_not_available": (_F.GATEWAY_UNAVAILABLE, _M.TEMPORARY_PROBLEM),
    "reenter_transaction": (_F.GATEWAY_UNAVAILABLE, _M.TEMPORARY_PROBLEM),
    "do_not_honor": (_F.SOFT, _M.CONTACT_ISSUER),
    "generic_decline": (_F.SOFT, _M.CONTACT_ISSUER),
    "call_issuer": (_F.SOFT, _M.CONTACT_ISSUER),
    "no_action_taken": (_F.SOFT, _M.CONTACT_ISSUER),
    "not_permitted": (_F.SOFT, _M.CONTACT_ISSUER),
    "approve_with_id": (_F.SOFT, _M.CONTACT_ISSUER),
    "authentication_required": (_F.AUTHENTICATION_REQUIRED, _M.CONFIRM_PAYMENT),
    "lost_card": (_F.HARD, _M.GENERIC_DECLINE),
    "stolen_card": (_F.HARD, _M.GENERIC_DECLINE),
    "pickup_card": (_F.HARD, _M.GENERIC_DECLINE),
    "fraudulent": (_F.HARD, _M.GENERIC_DECLINE),
    "merchant_blacklist": (_F.HARD, _M.GENERIC_DECLINE),
    "restricted_card": (_F.HARD, _M.GENERIC_DECLINE),
    "security_violation": (_F.HARD, _M.GENERIC_DECLINE),
    "revocation_of_authorization": (_F.HARD, _M.USE_ANOTHER_METHOD),
    "revocation_of_all_authorizations": (_F.HARD, _M.USE_ANOTHER_METHOD),
    "transaction_not_allowed": (_F.HARD, _M.USE_ANOTHER_METHOD),
    "highest_risk_level": (_F.HARD, _M.USE_ANOTHER_METHOD),
    "card_not_supported": (_F.HARD, _M.USE_ANOTHER_METHOD),
    "currency_not_supported": (_F.HARD, _M.USE_ANOTHER_METHOD),
    "invalid_account": (_F.HARD, _M.USE_ANOTHER_METHOD),
    "new_account_information_available": (_F.FIX_DATA, _M.UPDATE_CARD),
}

# Top-level error codes that are not card declines.
_ERROR_CODES: dict[str, tuple[DeclineFamily, CustomerMessage]] = {
    "authentication_required": (_F.AUTHENTICATION_REQUIRED, _M.CONFIRM_PAYMENT),
    "expired_card": (_F.FIX_DATA, _M.UPDATE_CARD),
    "incorrect_cvc": (_F.FIX_DATA, _M.REENTER_CARD_DETAILS),
    "incorrect_number": (_F.FIX_DATA, _M.REENTER_CARD_DETAILS),
    "invalid_cvc": (_F.FIX_DATA, _M.REENTER_CARD_DETAILS),
    "invalid_expiry_month": (_F.FIX_DATA, _M.UPDATE_CARD),
    "invalid_expiry_year": (_F.FIX_DATA, _M.UPDATE_CARD),
    "processing_error": (_F.GATEWAY_UNAVAILABLE, _M.TEMPORARY_PROBLEM),
    "rate_limit": (_F.GATEWAY_UNAVAILABLE, _M.TEMPORARY_PROBLEM),
    "payment_intent_authentication_failure": (_F.AUTHENTICATION_REQUIRED, _M.CONFIRM_PAYMENT),
}

# Visa Category 1 ("issuer will never approve"): never reattempt.
# Source: Visa Excessive Reattempts rules (April 2021). Processors disagree on a few
# codes (some add 03, 62, 78, 93); we follow the published list.
VISA_CATEGORY_1 = frozenset(
    {"04", "07", "12", "14", "15", "41", "43", "46", "57", "R0", "R1", "R3"}
)
# Visa Category 3: fix data, then retry (54 expired card, N7 CVV2 mismatch, 1A auth).
VISA_CATEGORY_3_FIX_DATA = frozenset({"54", "55", "N7", "82", "70", "1A"})

# Mastercard Merchant Advice Codes that forbid any further attempt.
MASTERCARD_STOP_ADVICE = frozenset({"03", "21"})


def classify_decline(info: DeclineInfo) -> Classification:
    """Classify a decline from its structured fields only."""
    family, message, reason = _base(info)

    # Network signals override a softer gateway reading, never a harder one.
    brand = (info.card_brand or "").lower()
    if info.network_decline_code and brand in ("visa", ""):
        ndc = info.network_decline_code.upper()
        if brand == "visa" and ndc in VISA_CATEGORY_1:
            return Classification(_F.HARD, f"visa_{ndc}", _harden(message))
        if ndc == "1A" and family is not _F.HARD:
            return Classification(_F.AUTHENTICATION_REQUIRED, f"visa_{ndc}", _M.CONFIRM_PAYMENT)
        if brand == "visa" and ndc in VISA_CATEGORY_3_FIX_DATA and family is _F.SOFT:
            fix = _M.UPDATE_CARD if ndc == "54" else _M.REENTER_CARD_DETAILS
            return Classification(_F.FIX_DATA, f"visa_{ndc}", fix)
    if info.network_advice_code and brand in ("mastercard", ""):
        mac = info.network_advice_code
        if mac in MASTERCARD_STOP_ADVICE:
            return Classification(_F.HARD, f"mastercard_mac_{mac}", _harden(message))
        if mac == "01" and family is not _F.HARD:
            return Classification(_F.FIX_DATA, "mastercard_mac_01", _M.UPDATE_CARD)
    if info.advice_code == "do_not_try_again" and family is not _F.HARD:
        return Classification(_F.HARD, "do_not_try_again", _harden(message))
    if info.advice_code == "confirm_card_data" and family is _F.SOFT:
        return Classification(_F.FIX_DATA, "confirm_card_data", _M.REENTER_CARD_DETAILS)
    return Classification(family, reason, message)


def _base(info: DeclineInfo) -> tuple[DeclineFamily, CustomerMessage, str]:
    if info.decline_code and info.decline_code in _DECLINE_CODES:
        family, message = _DECLINE_CODES[info.decline_code]
        return family, message, info.decline_code
    if info.code and info.code in _ERROR_CODES:
        family, message = _ERROR_CODES[info.code]
        return family, message, info.code
    # An unknown decline is treated like generic_decline: soft, capped by the networks.
    reason = info.decline_code or info.code or "unknown"
    return _F.SOFT, _M.CONTACT_ISSUER, reason


def _harden(message: CustomerMessage) -> CustomerMessage:
    # Keep the generic wording for fraud-type declines; otherwise ask for another method.
    return message if message is _M.GENERIC_DECLINE else _M.USE_ANOTHER_METHOD
