"""Tenant credential routes (admin): configure, verify, device-code sign-in."""

from __future__ import annotations

from flask import Blueprint, Response, url_for

from service.api.hooks import runtime, valid
from service.api.responses import call_context, if_match, json_response, no_content
from service.services import credentials, device_logins

bp = Blueprint("credentials", __name__)

CREDENTIAL = "/v1/tenants/<tenant>/credential"


@bp.put(CREDENTIAL)
def put_credential(tenant: str) -> Response:
    rt = runtime()
    view, created = credentials.put_credential(rt, call_context(), tenant, valid().body, if_match())
    return json_response(view, 201 if created else 200, etag=view.etag)


@bp.get(CREDENTIAL)
def get_credential(tenant: str) -> Response:
    view = credentials.get_credential(runtime(), call_context(), tenant)
    return json_response(view, etag=view.etag)


@bp.delete(CREDENTIAL)
def delete_credential(tenant: str) -> Response:
    rt = runtime()
    credentials.delete_credential(rt, call_context(), tenant, if_match())
    return no_content()


@bp.post(CREDENTIAL + "/verify")
def verify_credential(tenant: str) -> Response:
    rt = runtime()
    return json_response(credentials.verify_credential(rt, call_context(), tenant))


@bp.post(CREDENTIAL + "/device-logins")
def start_device_login(tenant: str) -> Response:
    rt = runtime()
    login = device_logins.start_device_login(rt, call_context(), tenant)
    location = url_for("credentials.get_device_login", tenant=tenant, login_id=login.id)
    return json_response(login, 202, location=location)


@bp.get(CREDENTIAL + "/device-logins/<login_id>")
def get_device_login(tenant: str, login_id: str) -> Response:
    rt = runtime()
    return json_response(device_logins.get_device_login(rt, call_context(), tenant, login_id))
