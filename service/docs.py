"""``GET /docs``: the API explorer — Swagger UI over ``/openapi.json``, served from this machine.

Swagger UI's files come from the Python package that ships them (``flask-openapi3-swagger``, pinned
in requirements.txt; only its files are used, nothing of it is imported), under ``/docs/assets/``,
and a short starter script from ``static/docs.js``: no CDN, no inline script. The page carries the
dashboard's Content-Security-Policy with one addition, ``img-src data:``: Swagger UI's stylesheet
draws eight icons (the select arrow, copy-to-clipboard, ...) as ``data:`` SVG images, which are inert
(an SVG loaded as an image runs no script). Scripts, styles and requests stay this origin's only
(``connect-src 'self'``: the document and "Try it out"), and the validator badge, which would send
the document to an outside service, is off.

The page is not an API operation, so it is not in /openapi.json; the operations it lists are.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from flask import Blueprint, render_template, request, send_from_directory
from werkzeug.exceptions import NotFound

from service.dashboard import CONTENT_SECURITY_POLICY, SECURITY_HEADERS

#: The package holding Swagger UI's distribution files, and where they sit inside it.
SWAGGER_PACKAGE = "flask_openapi3_swagger"
SWAGGER_FILES = "templates/swagger"
#: The files the page loads (anything else under the package stays unserved).
ASSETS = {"swagger-ui-bundle.js": "js", "swagger-ui.css": "css"}
ASSET_MAX_AGE = 24 * 3600  # seconds: the files change only with the pinned package



def _with_data_images(policy: str) -> str:
    directives = [d.strip() for d in policy.split(";")]
    return "; ".join(f"{d} data:" if d.split()[0] == "img-src" else d for d in directives)


POLICY = _with_data_images(CONTENT_SECURITY_POLICY)
HEADERS = {**SECURITY_HEADERS, "Content-Security-Policy": POLICY}

bp = Blueprint("docs", __name__, template_folder="templates")


@functools.cache
def swagger_dir() -> Path:
    """The package's Swagger UI folder, found without importing the package (it imports a framework)."""
    spec = importlib.util.find_spec(SWAGGER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{SWAGGER_PACKAGE} is not installed (pip install -r requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / SWAGGER_FILES


@bp.route("/docs")
def page():
    return render_template("docs.html")


@bp.route("/docs/assets/<name>")
def asset(name: str):
    if name not in ASSETS:
        raise NotFound()
    return send_from_directory(swagger_dir() / ASSETS[name], name, max_age=ASSET_MAX_AGE)


@bp.after_request
def _secure(response):
    for header, value in HEADERS.items():
        response.headers.setdefault(header, value)
    if request.endpoint == "docs.asset" and response.status_code == 200:
        response.headers["Cache-Control"] = f"public, max-age={ASSET_MAX_AGE}"
    return response
