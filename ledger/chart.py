"""Dunwell's billing chart of accounts.

Codes read ``<kind>[:<owner or jurisdiction>]:<CURRENCY>``; the kind comes first and
the currency last, so a customer id containing ``:`` cannot collide with another code.

| kind              | type      | owner    | holds                                         |
| ----------------- | --------- | -------- | --------------------------------------------- |
| receivable        | asset     | customer | invoiced and not yet paid                     |
| customer_credit   | liability | customer | credit balance owed back to the customer      |
| revenue           | revenue   | system   | recognized revenue                            |
| tax_payable       | liability | system   | tax collected, owed to one jurisdiction       |
| gateway_clearing  | asset     | system   | captured by the gateway, not yet paid out     |
| gateway_fees      | expense   | system   | processing fees charged by the gateway        |
| cash              | asset     | system   | the bank account payouts land in              |
| fx_conversion     | asset     | system   | the other side of the gateway's conversions   |
| chargebacks       | expense   | system   | funds the card network withdrew for disputes  |

``chargebacks`` holds what disputes took and did not give back: funds withdrawn
debit it, funds reinstated (a dispute won) credit it; the dispute fee goes to
``gateway_fees``.

``fx_conversion`` takes a converted settlement in both currencies (the charged amount
in one, the settled amount in the other), so each currency's clearing nets on its own;
its balances, valued at the day's rates, are the conversion gain or loss.
"""

from __future__ import annotations

from ledger.accounts import AccountRow, AccountSpec
from ledger.models import AccountType
from ledger.posting import Ledger


def _part(value: str, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 150:
        raise ValueError(f"{what} must be 1..150 characters, got {value!r}")
    return value


def accounts_receivable(customer_id: str, currency: str) -> AccountSpec:
    customer = _part(customer_id, "customer_id")
    return AccountSpec(f"receivable:{customer}:{currency}", AccountType.ASSET, currency, customer)


def customer_credit(customer_id: str, currency: str) -> AccountSpec:
    customer = _part(customer_id, "customer_id")
    return AccountSpec(
        f"customer_credit:{customer}:{currency}", AccountType.LIABILITY, currency, customer
    )


def revenue(currency: str) -> AccountSpec:
    return AccountSpec(f"revenue:{currency}", AccountType.REVENUE, currency)


def tax_payable(jurisdiction: str, currency: str) -> AccountSpec:
    where = _part(jurisdiction, "jurisdiction")
    return AccountSpec(f"tax_payable:{where}:{currency}", AccountType.LIABILITY, currency)


def gateway_clearing(currency: str) -> AccountSpec:
    return AccountSpec(f"gateway_clearing:{currency}", AccountType.ASSET, currency)


def gateway_fees(currency: str) -> AccountSpec:
    return AccountSpec(f"gateway_fees:{currency}", AccountType.EXPENSE, currency)


def cash(currency: str) -> AccountSpec:
    return AccountSpec(f"cash:{currency}", AccountType.ASSET, currency)


def fx_conversion(currency: str) -> AccountSpec:
    return AccountSpec(f"fx_conversion:{currency}", AccountType.ASSET, currency)


def chargebacks(currency: str) -> AccountSpec:
    return AccountSpec(f"chargebacks:{currency}", AccountType.EXPENSE, currency)


class Chart:
    """Get-or-create access to the chart's accounts through a ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def accounts_receivable(self, customer_id: str, currency: str) -> AccountRow:
        return self._ledger.get_or_create_account(accounts_receivable(customer_id, currency))

    def customer_credit(self, customer_id: str, currency: str) -> AccountRow:
        return self._ledger.get_or_create_account(customer_credit(customer_id, currency))

    def revenue(self, currency: str) -> AccountRow:
        return self._ledger.get_or_create_account(revenue(currency))

    def tax_payable(self, jurisdiction: str, currency: str) -> AccountRow:
        return self._ledger.get_or_create_account(tax_payable(jurisdiction, currency))

    def gateway_clearing(self, currency: str) -> AccountRow:
        return self._ledger.get_or_create_account(gateway_clearing(currency))

    def gateway_fees(self, currency: str) -> AccountRow:
        return self._ledger.get_or_create_account(gateway_fees(currency))

    def cash(self, currency: str) -> AccountRow:
        return self._ledger.get_or_create_account(cash(currency))
