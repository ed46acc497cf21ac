"""The inbox API the carrier's app reads (issue 14, item 5): pages newest first, badge counts,
marks, read-all up to what the user saw, tenant and customer isolation."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.keys import Scope, create_key
from hub.runtime import HubRuntime
from tests.hub.inbox_rows import add_item


@pytest.fixture
def anna(client: TestClient) -> str:
    assert client.put("/v1/customers/c-1", json={"name": "Anna"}).status_code == 201
    assert client.put("/v1/customers/c-2", json={"name": "Piotr"}).status_code == 201
    return "c-1"


def _ids(page: dict[str, Any]) -> list[int]:
    return [item["id"] for item in page["items"]]


def test_hostile_input_is_refused_and_other_customers_items_are_404(
        runtime: HubRuntime, client: TestClient, anna: str) -> None:
    theirs = add_item(runtime.db, "c-2")
    assert client.post(f"/v1/inbox/c-1/items/{theirs}/read").status_code == 404
    assert client.get("/v1/inbox/c-2").json()["unread_count"] == 1  # untouched
    other = create_key(runtime.db, "other-carrier", [Scope.ADMIN], tenant="t-2")
    foreign = client.get("/v1/inbox/c-1", headers={"Authorization": f"Bearer {other}"})
    assert foreign.status_code == 404
    assert foreign.headers["content-type"] == "application/problem+json"
    for path in ("/v1/inbox/c-1/items/99999999999999999999/read", "/v1/inbox/c-1/items/0/read",
                 "/v1/inbox/c-1/items/1/delete", "/v1/inbox/c-1/read-all?up_to=-1"):
        reply = client.post(path)
        assert reply.status_code in (404, 422), path
        assert reply.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/inbox/c-1?limit=1000").status_code == 422
    assert client.get("/v1/inbox/c-1?cursor=abc").status_code == 422
    assert client.get("/v1/inbox/nobody").status_code == 404
    reader = create_key(runtime.db, "test-carrier", [Scope.EVENTS_READ])
    assert client.get("/v1/inbox/c-1", headers={"Authorization": f"Bearer {reader}"}
                      ).status_code == 403


def test_pages_are_newest_first_and_stable_under_inserts(
        runtime: HubRuntime, client: TestClient, anna: str) -> None:
    ids = [add_item(runtime.db, anna, f"m{n}") for n in range(5)]
    first = client.get("/v1/inbox/c-1?limit=2").json()
    assert _ids(first) == [ids[4], ids[3]]
    assert (first["unread_count"], first["unseen_count"]) == (5, 5)
    add_item(runtime.db, anna, "arrived meanwhile")
    second = client.get(f"/v1/inbox/c-1?limit=2&cursor={first['next_cursor']}").json()
    assert _ids(second) == [ids[2], ids[1]]
    last = client.get(f"/v1/inbox/c-1?limit=2&cursor={second['next_cursor']}").json()
    assert (_ids(last), last["next_cursor"]) == ([ids[0]], None)
    assert last["unread_count"] == 6
    item = first["items"][0]
    assert item["title"] == "m4" and item["parcel"] == "PL0001234567"
    assert item["read_at"] is None and item["created_at"]


def test_marks_are_idempotent_and_move_the_badges(
        runtime: HubRuntime, client: TestClient, anna: str) -> None:
    a, b = add_item(runtime.db, anna), add_item(runtime.db, anna)
    seen = client.post(f"/v1/inbox/c-1/items/{a}/seen").json()
    assert (seen["unread_count"], seen["unseen_count"]) == (2, 1)
    read = client.post(f"/v1/inbox/c-1/items/{b}/read").json()
    assert (read["unread_count"], read["unseen_count"]) == (1, 0)  # read implies seen
    again = client.post(f"/v1/inbox/c-1/items/{b}/read").json()
    assert again["item"]["read_at"] == read["item"]["read_at"]  # the first read counts
    assert client.post(f"/v1/inbox/c-1/items/{b}/unread").json()["unread_count"] == 2
    archived = client.post(f"/v1/inbox/c-1/items/{a}/archive").json()
    assert archived["item"]["archived_at"] and archived["unread_count"] == 1
    assert _ids(client.get("/v1/inbox/c-1").json()) == [b]
    assert _ids(client.get("/v1/inbox/c-1?archived=true").json()) == [a]
    client.post(f"/v1/inbox/c-1/items/{a}/unarchive")
    assert _ids(client.get("/v1/inbox/c-1").json()) == [b, a]


def test_read_all_stops_at_what_the_user_saw(
        runtime: HubRuntime, client: TestClient, anna: str) -> None:
    looked_at = [add_item(runtime.db, anna) for _ in range(3)]
    newer = add_item(runtime.db, anna, "arrived after the user looked")
    theirs = add_item(runtime.db, "c-2")
    done = client.post(f"/v1/inbox/c-1/read-all?up_to={looked_at[-1]}").json()
    assert (done["changed"], done["unread_count"], done["unseen_count"]) == (3, 1, 1)
    unread = [i["id"] for i in client.get("/v1/inbox/c-1").json()["items"] if not i["read_at"]]
    assert unread == [newer]
    assert client.post("/v1/inbox/c-1/read-all").json()["changed"] == 1
    assert client.post("/v1/inbox/c-1/read-all").json()["changed"] == 0
    seen = client.post("/v1/inbox/c-2/seen-all").json()
    assert (seen["changed"], seen["unread_count"], seen["unseen_count"]) == (1, 1, 0)
    assert theirs in _ids(client.get("/v1/inbox/c-2").json())
