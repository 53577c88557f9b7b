"""Invoice and credit-note documents, as HTML to view and PDF to download: from the
server API (server API key) and from the portal API (the session's customer's only; another
customer's document is "not found", never "forbidden")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse, Response

from api.deps import EngineDep, ServerKey, SettingsDep
from api.routes.customers import responses
from api.routes.portal import Portal
from api.services import documents

DocumentId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
_HTML: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "The document as a web page"}
}
_PDF: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/pdf": {}}, "description": "The document as a PDF"}
}

server = APIRouter(prefix="/v1", tags=["server"])
portal = APIRouter(prefix="/v1/portal", tags=["portal"])


@server.get(
    "/invoices/{invoice_id}/document",
    response_class=HTMLResponse,
    responses={**_HTML, **responses(404)},
)
async def invoice_html(
    _auth: ServerKey, invoice_id: DocumentId, engine: EngineDep, settings: SettingsDep
) -> HTMLResponse:
    """An invoice as a web page, rendered from the finalized record."""
    doc = await documents.invoice_document(engine=engine, settings=settings, invoice_id=invoice_id)
    return documents.html_response(doc)


@server.get(
    "/invoices/{invoice_id}/document.pdf",
    response_class=Response,
    responses={**_PDF, **responses(404)},
)
async def invoice_pdf(
    _auth: ServerKey, invoice_id: DocumentId, engine: EngineDep, settings: SettingsDep
) -> Response:
    """An invoice as a PDF, rendered from the finalized record."""
    doc = await documents.invoice_document(engine=engine, settings=settings, invoice_id=invoice_id)
    return documents.pdf_response(doc)


@server.get(
    "/credit-notes/{note_id}/document",
    response_class=HTMLResponse,
    responses={**_HTML, **responses(404)},
)
async def credit_note_html(
    _auth: ServerKey, note_id: DocumentId, engine: EngineDep, settings: SettingsDep
) -> HTMLResponse:
    """A credit note as a web page; it names the invoice it amends."""
    doc = await documents.credit_note_document(engine=engine, settings=settings, note_id=note_id)
    return documents.html_response(doc)


@server.get(
    "/credit-notes/{note_id}/document.pdf",
    response_class=Response,
    responses={**_PDF, **responses(404)},
)
async def credit_note_pdf(
    _auth: ServerKey, note_id: DocumentId, engine: EngineDep, settings: SettingsDep
) -> Response:
    """A credit note as a PDF; it names the invoice it amends."""
    doc = await documents.credit_note_document(engine=engine, settings=settings, note_id=note_id)
    return documents.pdf_response(doc)


@portal.get(
    "/invoices/{invoice_id}/document",
    response_class=HTMLResponse,
    responses={**_HTML, **responses(404)},
)
async def my_invoice_html(
    claims: Portal, invoice_id: DocumentId, engine: EngineDep, settings: SettingsDep
) -> HTMLResponse:
    """One of my invoices as a web page."""
    doc = await documents.invoice_document(
        engine=engine, settings=settings, invoice_id=invoice_id, customer_id=claims.customer_id
    )
    return documents.html_response(doc)


@portal.get(
    "/invoices/{invoice_id}/document.pdf",
    response_class=Response,
    responses={**_PDF, **responses(404)},
)
async def my_invoice_pdf(
    claims: Portal, invoice_id: DocumentId, engine: EngineDep, settings: SettingsDep
) -> Response:
    """One of my invoices as a PDF."""
    doc = await documents.invoice_document(
        engine=engine, settings=settings, invoice_id=invoice_id, customer_id=claims.customer_id
    )
    return documents.pdf_response(doc)


@portal.get(
    "/credit-notes/{note_id}/document",
    response_class=HTMLResponse,
    responses={**_HTML, **responses(404)},
)
async def my_credit_note_html(
    claims: Portal, note_id: DocumentId, engine: EngineDep, settings: SettingsDep
) -> HTMLResponse:
    """One of my credit notes as a web page."""
    doc = await documents.credit_note_document(
        engine=engine, settings=settings, note_id=note_id, customer_id=claims.customer_id
    )
    return documents.html_response(doc)


@portal.get(
    "/credit-notes/{note_id}/document.pdf",
    response_class=Response,
    responses={**_PDF, **responses(404)},
)
async def my_credit_note_pdf(
    claims: Portal, note_id: DocumentId, engine: EngineDep, settings: SettingsDep
) -> Response:
    """One of my credit notes as a PDF."""
    doc = await documents.credit_note_document(
        engine=engine, settings=settings, note_id=note_id, customer_id=claims.customer_id
    )
    return documents.pdf_response(doc)
