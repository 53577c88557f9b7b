"""Ops API (ops API key): the seller's tax registrations and nexus changes, and customers'
exemption certificates. Each is appended to the compliance ledger with its actor and
can be listed; a refused request (409: ``overlapping_registration``; 422:
``invalid_date_range``, ``unknown_jurisdiction``, ``invalid_field``, or a
malformed body) writes nothing. A certificate for an unknown customer is a 404."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.audit import OpsAudit
from api.deps import EngineDep, OpsKey
from api.errors import OPS_ERROR_RESPONSES, ApiError, ErrorResponse
from api.schemas import IsoDate
from ledger.tax_records import (
    CertificateRecord,
    NexusRecord,
    RegistrationRecord,
    TaxRecordRefused,
    TaxRecords,
)
from ledger.unit_of_work import read
from stores.customers import get_customer
from tax import ExemptionCertificate, Registration, TaxType

router = APIRouter(
    prefix="/v1/ops/tax",
    tags=["ops"],
    responses={
        **OPS_ERROR_RESPONSES,
        404: {"model": ErrorResponse, "description": "No such customer"},
        409: {"model": ErrorResponse, "description": "Overlaps a registration in force"},
    },
)

Actor = Annotated[str, Field(min_length=1, max_length=200, description="Who records it")]


class CertificateIn(BaseModel):
    customer_id: str = Field(min_length=1, max_length=200)
    jurisdiction: str = Field(min_length=2, max_length=32, examples=["US-TX"])
    number: str = Field(min_length=1, max_length=100)
    valid_from: IsoDate
    valid_to: IsoDate | None = None
    document_ref: str = Field(min_length=1, max_length=2000)
    actor: Actor


class CertificateOut(BaseModel):
    id: int
    customer_id: str
    jurisdiction: str
    number: str
    valid_from: date
    valid_to: date | None
    document_ref: str
    actor: str | None
    recorded_at: datetime


class RegistrationIn(BaseModel):
    jurisdiction: str = Field(min_length=2, max_length=32, examples=["EU", "US-NY"])
    tax_type: TaxType | None = None
    registration_number: str = Field(min_length=1, max_length=100)
    valid_from: IsoDate
    valid_to: IsoDate | None = None
    note: str = Field(default="", max_length=2000)
    actor: Actor


class RegistrationOut(BaseModel):
    id: int
    jurisdiction: str
    tax_type: str | None
    registration_number: str
    valid_from: date
    valid_to: date | None
    note: str
    actor: str | None
    recorded_at: datetime


class NexusIn(BaseModel):
    jurisdiction: str = Field(min_length=2, max_length=32, examples=["US-TX"])
    basis: Literal["economic", "physical"]
    valid_from: IsoDate
    valid_to: IsoDate | None = None
    note: str = Field(default="", max_length=2000)
    actor: Actor


class NexusOut(BaseModel):
    id: int
    jurisdiction: str
    basis: str
    valid_from: date
    valid_to: date | None
    note: str
    actor: str
    recorded_at: datetime


class CertificateListOut(BaseModel):
    items: list[CertificateOut]


class RegistrationListOut(BaseModel):
    items: list[RegistrationOut]


class NexusListOut(BaseModel):
    items: list[NexusOut]


# A request that conflicts with what is recorded, not a malformed one.
CONFLICTS = frozenset({"overlapping_registration"})


def _refused(err: TaxRecordRefused) -> ApiError:
    return ApiError(409 if err.code in CONFLICTS else 422, err.code, err.message)


def certificate_out(r: CertificateRecord) -> CertificateOut:
    c = r.certificate
    return CertificateOut(
        id=r.id,
        customer_id=r.customer_id,
        jurisdiction=c.jurisdiction,
        number=c.number,
        valid_from=c.valid_from,
        valid_to=c.valid_to,
        document_ref=c.document_ref,
        actor=r.actor,
        recorded_at=r.recorded_at,
    )


def registration_out(r: RegistrationRecord) -> RegistrationOut:
    g = r.registration
    return RegistrationOut(
        id=r.id,
        jurisdiction=g.jurisdiction,
        tax_type=None if g.tax_type is None else str(g.tax_type),
        registration_number=g.registration_number,
        valid_from=g.valid_from,
        valid_to=g.valid_to,
        note=r.note,
        actor=r.actor,
        recorded_at=r.recorded_at,
    )


def nexus_out(r: NexusRecord) -> NexusOut:
    return NexusOut(
        id=r.id,
        jurisdiction=r.jurisdiction,
        basis=r.basis,
        valid_from=r.valid_from,
        valid_to=r.valid_to,
        note=r.note,
        actor=r.actor,
        recorded_at=r.recorded_at,
    )


@router.post("/certificates", status_code=201, response_model=CertificateOut)
async def record_certificate(
    audit: OpsAudit, engine: EngineDep, body: CertificateIn
) -> CertificateOut:
    """Record a customer's exemption certificate; quotes from now on apply it while valid."""
    customer = await asyncio.to_thread(read, engine, lambda c: get_customer(c, body.customer_id))
    if customer is None:
        raise ApiError(404, "unknown_customer", f"no customer {body.customer_id!r}")
    certificate = ExemptionCertificate(
        body.jurisdiction, body.number, body.valid_from, body.valid_to, body.document_ref
    )
    records = TaxRecords(engine)
    try:
        recorded = await asyncio.to_thread(
            records.record_certificate,
            body.customer_id,
            certificate,
            actor=body.actor,
            at=datetime.now(UTC),
            also=lambda conn, r: audit.record(
                conn,
                "tax.certificate.record",
                f"customer:{r.customer_id}",
                after=certificate_out(r).model_dump(mode="json"),
            ),
        )
    except TaxRecordRefused as err:
        raise _refused(err) from None
    return certificate_out(recorded)


@router.get("/certificates", response_model=CertificateListOut)
async def list_certificates(
    _auth: OpsKey,
    engine: EngineDep,
    customer_id: Annotated[str | None, Query(max_length=200)] = None,
) -> CertificateListOut:
    """Every certificate record, oldest first; a later record of the same number supersedes."""
    found = await asyncio.to_thread(TaxRecords(engine).certificates, customer_id=customer_id)
    return CertificateListOut(items=[certificate_out(r) for r in found])


@router.post("/registrations", status_code=201, response_model=RegistrationOut)
async def record_registration(
    audit: OpsAudit, engine: EngineDep, body: RegistrationIn
) -> RegistrationOut:
    """Record a registration (recording its number again, e.g. with an end, supersedes it)."""
    registration = Registration(
        body.jurisdiction, body.tax_type, body.valid_from, body.valid_to, body.registration_number
    )
    records = TaxRecords(engine)
    try:
        recorded = await asyncio.to_thread(
            records.record_registration,
            registration,
            actor=body.actor,
            at=datetime.now(UTC),
            note=body.note,
            also=lambda conn, r: audit.record(
                conn,
                "tax.registration.record",
                f"jurisdiction:{r.registration.jurisdiction}",
                after=registration_out(r).model_dump(mode="json"),
            ),
        )
    except TaxRecordRefused as err:
        raise _refused(err) from None
    return registration_out(recorded)


@router.get("/registrations", response_model=RegistrationListOut)
async def list_registrations(
    _auth: OpsKey,
    engine: EngineDep,
    jurisdiction: Annotated[str | None, Query(max_length=32)] = None,
) -> RegistrationListOut:
    """Every registration record, oldest first."""
    found = await asyncio.to_thread(TaxRecords(engine).registrations, jurisdiction=jurisdiction)
    return RegistrationListOut(items=[registration_out(r) for r in found])


@router.post("/nexus", status_code=201, response_model=NexusOut)
async def record_nexus(audit: OpsAudit, engine: EngineDep, body: NexusIn) -> NexusOut:
    """Record a nexus change: where the seller has nexus, on what basis, from when."""
    records = TaxRecords(engine)
    try:
        recorded = await asyncio.to_thread(
            records.record_nexus,
            body.jurisdiction,
            basis=body.basis,
            valid_from=body.valid_from,
            valid_to=body.valid_to,
            actor=body.actor,
            at=datetime.now(UTC),
            note=body.note,
            also=lambda conn, r: audit.record(
                conn,
                "tax.nexus.record",
                f"jurisdiction:{r.jurisdiction}",
                after=nexus_out(r).model_dump(mode="json"),
            ),
        )
    except TaxRecordRefused as err:
        raise _refused(err) from None
    return nexus_out(recorded)


@router.get("/nexus", response_model=NexusListOut)
async def list_nexus(
    _auth: OpsKey,
    engine: EngineDep,
    jurisdiction: Annotated[str | None, Query(max_length=32)] = None,
) -> NexusListOut:
    """Every nexus record, oldest first."""
    found = await asyncio.to_thread(TaxRecords(engine).nexus, jurisdiction=jurisdiction)
    return NexusListOut(items=[nexus_out(r) for r in found])
