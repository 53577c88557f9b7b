"""The portal page's Content-Security-Policy.

In production the page loads Stripe.js from Stripe, so the policy allows exactly the
origins Stripe publishes for Stripe.js (docs.stripe.com/security/guide, "Content
Security Policy"): scripts from ``js.stripe.com`` and its subdomains, frames from the
same and from ``hooks.stripe.com`` (the bank's 3-D Secure challenge), and API calls to
``api.stripe.com``. The same list names ``maps.googleapis.com`` for the Address
Element's autocomplete, which the portal does not use, so it is left out. In dev and
test the page loads localstripe's fake Stripe.js from the configured gateway address,
which is then the one extra origin.
"""

from __future__ import annotations

from dunwell.settings import Settings

STRIPE_SCRIPT_SRC = ("https://js.stripe.com", "https://*.js.stripe.com")
STRIPE_FRAME_SRC = ("https://js.stripe.com", "https://*.js.stripe.com", "https://hooks.stripe.com")
STRIPE_CONNECT_SRC = ("https://api.stripe.com",)


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def portal_csp(settings: Settings) -> str:
    """The policy for the portal page: its own script and API, and the gateway's."""
    script: tuple[str, ...]
    frame: tuple[str, ...]
    connect: tuple[str, ...]
    if settings.stripe_api_base:
        gateway = _origin(settings.stripe_api_base)
        script, frame, connect = (gateway,), (gateway,), (gateway,)
    else:
        script, frame, connect = STRIPE_SCRIPT_SRC, STRIPE_FRAME_SRC, STRIPE_CONNECT_SRC
    directives = {
        "default-src": ("'self'",),
        "script-src": ("'self'", *script),
        "connect-src": ("'self'", *connect),
        "frame-src": frame,
        # The page's own <style> block; Stripe.js also sets inline styles on its frames.
        "style-src": ("'self'", "'unsafe-inline'"),
        "img-src": ("'self'", "data:"),
        "base-uri": ("'none'",),
        "form-action": ("'none'",),
        "frame-ancestors": ("'none'",),
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())
