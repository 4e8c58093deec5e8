"""Stands in for API Gateway's Cognito authorizer.

A route behind it needs an ID token of the user pool in ``Authorization`` (``Bearer <token>``
or the bare token), verified as API Gateway verifies it: signature against the pool's
published keys, expiry, issuer, audience (an app client of the pool) and token use. The
function then finds the token's claims in ``requestContext.authorizer.claims``, every value
a string, as API Gateway passes them.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.request import urlopen

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from devstack.template import REGION


class CognitoAuthorizer:
    def __init__(self, keys: KeySet, pool_id: str, client_ids: set[str]) -> None:
        self.keys = keys
        self.issuer = f"https://cognito-idp.{REGION}.amazonaws.com/{pool_id}"
        self.client_ids = client_ids

    @classmethod
    def of_pool(cls, endpoint_url: str, pool_id: str, client_ids: set[str]) -> CognitoAuthorizer:
        """With the keys the pool publishes (on the local AWS endpoint, as AWS publishes them)."""
        with urlopen(f"{endpoint_url}/{pool_id}/.well-known/jwks.json", timeout=10) as response:
            return cls(KeySet.import_key_set(json.loads(response.read())), pool_id, client_ids)

    def claims(self, authorization: str | None) -> dict[str, str] | None:
        """The claims of a valid ID token, or None: API Gateway answers 401 without calling."""
        token = (authorization or "").removeprefix("Bearer ").strip()
        if not token:
            return None
        try:
            claims = jwt.decode(token, self.keys, algorithms=["RS256"]).claims
        except (JoseError, ValueError):
            return None
        valid = (
            claims.get("token_use") == "id"
            and claims.get("iss") == self.issuer
            and claims.get("aud") in self.client_ids
            and isinstance(claims.get("exp"), int)
            and claims["exp"] > time.time()
        )
        return {name: _as_string(value) for name, value in claims.items()} if valid else None


def _as_string(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):  # cognito:groups
        return ",".join(str(item) for item in value)
    return str(value)
