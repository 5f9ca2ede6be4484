"""Responses that carry owner-written HTML: always sandboxed."""

from __future__ import annotations

from django.http import HttpResponse

# No scripts, no same origin, nothing loaded but images and inline styles.
SANDBOX_CSP = (
    "sandbox; default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; "
    "font-src https: data:"
)


def sandboxed(html: str, *, frame_ancestors: str = "'none'") -> HttpResponse:
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = f"{SANDBOX_CSP}; frame-ancestors {frame_ancestors}"
    response["X-Content-Type-Options"] = "nosniff"
    response["Referrer-Policy"] = "no-referrer"
    return response


def framed_preview(html: str) -> HttpResponse:
    """For the panel's preview iframes (same origin may frame it; it is still sandboxed)."""
    response = sandboxed(html, frame_ancestors="'self'")
    response["X-Frame-Options"] = "SAMEORIGIN"
    response["Cache-Control"] = "no-store"
    return response
