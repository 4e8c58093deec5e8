"""What a container lets go of when something its values were built from changes
(shop_common/container.py): exactly what was built from it, directly or through another value,
closed; everything else kept."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from shop_common import container


@dataclass
class Client:
    uri: str
    closed: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.closed.append(self.uri)


@dataclass
class Service:
    client: Client


def test_a_changed_source_lets_go_of_what_was_built_from_it_and_closes_it() -> None:
    secrets = {"mongodb-uri": "mongodb://first"}
    closed: list[str] = []

    def read(secret_id: str) -> str:
        container.built_from((secret_id, secrets[secret_id]))
        return secrets[secret_id]

    def is_current(source: Hashable) -> bool:
        return source in set(secrets.items())

    @container.per_container(close=lambda client: client.close())
    def client_for(uri: str) -> Client:
        return Client(uri, closed)

    @container.per_container
    def service() -> Service:
        return Service(client_for(read("mongodb-uri")))  # the client is built from the secret too

    @container.per_container
    def unrelated() -> Client:
        return Client("mongodb://from-the-environment", closed)

    first, other = service(), unrelated()
    container.release_outdated(is_current)
    assert (service(), unrelated(), closed) == (first, other, [])  # nothing changed: all kept

    secrets["mongodb-uri"] = "mongodb://second"
    container.release_outdated(is_current)

    assert closed == ["mongodb://first"]
    assert service().client.uri == "mongodb://second"
    assert unrelated() is other
    container.release_all()
