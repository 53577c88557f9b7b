import calendar
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from billing.catalog import Catalog, Plan, Price
from billing.periods import Interval, periods_from
from billing.proration import ChangeKind, classify_change, prorate

CURRENCIES = st.sampled_from(["EUR", "JPY", "KWD", "USD"])
AMOUNTS = st.integers(min_value=0, max_value=10**10)


@st.composite
def period_and_change(draw: st.DrawFn) -> tuple[Interval, datetime, datetime, datetime]:
    interval = draw(st.sampled_from(list(Interval)))
    anchor = draw(
        st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
        )
    ).replace(microsecond=0)
    index = draw(st.integers(min_value=0, max_value=30))
    period = periods_from(anchor, interval, 1, index + 1)[-1]
    offset = draw(st.integers(min_value=0, max_value=period.seconds - 1))
    return interval, period.start, period.end, period.start + timedelta(seconds=offset)


@given(period_and_change(), CURRENCIES, AMOUNTS, AMOUNTS)
def test_lines_never_exceed_the_full_period_prices(
    case: tuple[Interval, datetime, datetime, datetime], currency: str, old: int, new: int
) -> None:
    interval, start, end, at = case
    old_price = Price(plan_id="old", currency=currency, amount=old, interval=interval)
    new_price = Price(plan_id="new", currency=currency, amount=new, interval=interval)
    result = prorate(
        old_price=old_price, new_price=new_price, period_start=start, period_end=end, change_at=at
    )
    credit, charge = result.lines
    assert -old <= credit.amount <= 0
    assert 0 <= charge.amount <= new
    remaining = Fraction(int((end - at).total_seconds()), int((end - start).total_seconds()))
    assert abs(Fraction(-credit.amount) - old * remaining) <= Fraction(1, 2)
    assert abs(Fraction(charge.amount) - new * remaining) <= Fraction(1, 2)


@given(period_and_change(), CURRENCIES, AMOUNTS, st.integers(min_value=1, max_value=5))
def test_lateral_change_nets_to_zero_within_one_minor_unit(
    case: tuple[Interval, datetime, datetime, datetime], currency: str, amount: int, tier: int
) -> None:
    interval, start, end, at = case
    old_price = Price(plan_id="a", currency=currency, amount=amount, interval=interval)
    new_price = Price(plan_id="b", currency=currency, amount=amount, interval=interval)
    catalog = Catalog(
        version=1,
        plans=(
            Plan(plan_id="a", name="A", tier=tier, prices=(old_price,)),
            Plan(plan_id="b", name="B", tier=tier, prices=(new_price,)),
        ),
    )
    assert classify_change(old_price, new_price, catalog) is ChangeKind.LATERAL
    result = prorate(
        old_price=old_price, new_price=new_price, period_start=start, period_end=end, change_at=at
    )
    assert abs(result.net_amount) <= 1


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
    ),
    st.sampled_from(list(Interval)),
    st.integers(min_value=1, max_value=4),
)
def test_periods_are_contiguous_and_keep_the_anchor_day_when_it_exists(
    anchor: datetime, interval: Interval, count: int
) -> None:
    periods = periods_from(anchor, interval, count, 24)
    assert periods[0].start == anchor
    for earlier, later in pairwise(periods):
        assert earlier.end == later.start
    for period in periods:
        assert period.end > period.start
        assert period.end.time() == anchor.time()
        last_day = calendar.monthrange(period.end.year, period.end.month)[1]
        assert period.end.day == min(anchor.day, last_day)
