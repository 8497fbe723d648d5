"""Entra ID: azure-identity credentials (secret and certificate) and the wire contract of errors."""

from __future__ import annotations

import ssl
import time
import uuid

import jwt
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CertificateCredential, ClientSecretCredential

from emulator.testing import EmulatorHandle, Sandbox
from emulator.tls import generate_client_certificate
from emulator.tokens import ARM_AUDIENCES

ARM_SCOPE = "https://management.azure.com/.default"


def test_client_secret_credential_gets_a_verifiable_jwt(
    emulator: EmulatorHandle, sandbox: Sandbox
) -> None:
    token = sandbox.credential().get_token(ARM_SCOPE)
    assert token.expires_on - time.time() > 3000
    claims = jwt.decode(token.token, options={"verify_signature": False})
    assert claims["tid"] == sandbox.tenant_id
    assert claims["aud"] == "https://management.azure.com"
    assert claims["appid"] == sandbox.client_id
    assert {"exp", "iat", "nbf", "oid", "iss", "sub", "azp"} <= claims.keys()
    identity = emulator.state.signer.verify_bearer(f"Bearer {token.token}", ARM_AUDIENCES)
    assert identity is not None
    assert identity.kind == "app"


def test_token_signature_verifies_against_published_jwks(
    emulator: EmulatorHandle, sandbox: Sandbox
) -> None:
    token = sandbox.credential().get_token(ARM_SCOPE).token
    config = requests.get(
        f"{emulator.url}/{sandbox.tenant_id}/v2.0/.well-known/openid-configuration", timeout=5
    ).json()
    assert config["issuer"] == f"{emulator.url}/{sandbox.tenant_id}/v2.0"
    assert config["device_authorization_endpoint"].endswith("/oauth2/v2.0/devicecode")
    tls = ssl.create_default_context(cafile=str(emulator.ca_path))
    key = jwt.PyJWKClient(config["jwks_uri"], ssl_context=tls).get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token, key.key, algorithms=["RS256"], audience="https://management.azure.com"
    )
    assert claims["iss"] == config["issuer"]


def test_wrong_secret_is_invalid_client_7000215(emulator: EmulatorHandle, sandbox: Sandbox) -> None:
    credential = ClientSecretCredential(
        sandbox.tenant_id,
        sandbox.client_id,
        "bad_secret",
        authority=emulator.authority,
        disable_instance_discovery=True,
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        credential.get_token(ARM_SCOPE)


def test_raw_error_body_has_entra_shape(emulator: EmulatorHandle, sandbox: Sandbox) -> None:
    response = requests.post(
        f"{emulator.url}/{sandbox.tenant_id}/oauth2/v2.0/token",
        data={
            "client_id": sandbox.client_id,
            "client_secret": "bad_secret",
            "grant_type": "client_credentials",
            "scope": ARM_SCOPE,
        },
        timeout=5,
    )
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "invalid_client"
    assert body["error_codes"] == [7000215]
    assert body["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert {"timestamp", "trace_id", "correlation_id"} <= body.keys()


def test_unknown_client_is_unauthorized_client_700016(
    emulator: EmulatorHandle, sandbox: Sandbox
) -> None:
    credential = ClientSecretCredential(
        sandbox.tenant_id,
        str(uuid.uuid4()),
        "x",
        authority=emulator.authority,
        disable_instance_discovery=True,
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS700016"):
        credential.get_token(ARM_SCOPE)


def test_unknown_tenant_is_rejected_with_90002(emulator: EmulatorHandle) -> None:
    response = requests.get(
        f"{emulator.url}/{uuid.uuid4()}/v2.0/.well-known/openid-configuration", timeout=5
    )
    assert response.status_code == 400
    assert response.json()["error_codes"] == [90002]


def test_certificate_credential_signs_a_verified_assertion(
    emulator: EmulatorHandle, tmp_path
) -> None:
    tenant = emulator.state.add_tenant()
    cert = generate_client_certificate()
    sp = emulator.state.add_service_principal(tenant.id, certificate_pem=cert.cert_pem)
    pem_path = tmp_path / "client.pem"
    pem_path.write_bytes(cert.combined_pem)
    credential = CertificateCredential(
        tenant.id,
        sp.client_id,
        str(pem_path),
        authority=emulator.authority,
        disable_instance_discovery=True,
    )
    claims = jwt.decode(credential.get_token(ARM_SCOPE).token, options={"verify_signature": False})
    assert (claims["tid"], claims["appid"]) == (tenant.id, sp.client_id)


def test_certificate_not_registered_for_the_app_is_refused(emulator: EmulatorHandle) -> None:
    tenant = emulator.state.add_tenant()
    sp = emulator.state.add_service_principal(
        tenant.id, certificate_pem=generate_client_certificate().cert_pem
    )
    impostor = generate_client_certificate()
    credential = CertificateCredential(
        tenant.id,
        sp.client_id,
        certificate_data=impostor.combined_pem,
        authority=emulator.authority,
        disable_instance_discovery=True,
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
        credential.get_token(ARM_SCOPE)


def test_assertion_for_another_audience_is_refused(emulator: EmulatorHandle) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from emulator.tls import certificate_thumbprints

    tenant = emulator.state.add_tenant()
    cert = generate_client_certificate()
    sp = emulator.state.add_service_principal(tenant.id, certificate_pem=cert.cert_pem)
    now = int(time.time())
    assertion = jwt.encode(
        {
            "aud": "https://login.microsoftonline.com/x/oauth2/v2.0/token",
            "iss": sp.client_id,
            "sub": sp.client_id,
            "exp": now + 600,
            "nbf": now,
            "jti": str(uuid.uuid4()),
        },
        load_pem_private_key(cert.key_pem, None),  # type: ignore[arg-type]
        algorithm="RS256",
        headers={"x5t": certificate_thumbprints(cert.cert_pem)[0]},
    )
    response = requests.post(
        f"{emulator.url}/{tenant.id}/oauth2/v2.0/token",
        data={
            "client_id": sp.client_id,
            "grant_type": "client_credentials",
            "scope": ARM_SCOPE,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
        timeout=5,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_client_credentials_requires_a_default_scope(
    emulator: EmulatorHandle, sandbox: Sandbox
) -> None:
    response = requests.post(
        f"{emulator.url}/{sandbox.tenant_id}/oauth2/v2.0/token",
        data={
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
            "grant_type": "client_credentials",
            "scope": "https://management.azure.com/user_impersonation",
        },
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
