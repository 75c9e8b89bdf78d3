"""A query names each parameter the operation takes one value of at most once: a repeated
one is a 422 ``invalid-request`` naming it (FastAPI alone would keep the last value); a
list parameter may repeat, as its schema says."""

from __future__ import annotations

from typing import Annotated

from crm_backbone.http import PROBLEM_JSON, install_problem_handlers, one_value_per_query_parameter
from fastapi import Depends, FastAPI, Query
from fastapi.testclient import TestClient


def paging(limit: int = 50) -> int:
    return limit


def make_app() -> FastAPI:
    app = FastAPI(dependencies=[Depends(one_value_per_query_parameter)])
    install_problem_handlers(app, {})

    @app.get("/items")
    async def items(
        limit: Annotated[int, Depends(paging)],
        manager_id: str | None = None,
        stage: Annotated[list[str] | None, Query()] = None,
    ) -> dict[str, object]:
        return {"manager_id": manager_id, "stage": stage, "limit": limit}

    return app


CLIENT = TestClient(make_app())


def test_a_parameter_of_one_value_given_twice_is_refused_naming_it() -> None:
    answer = CLIENT.get("/items?manager_id=RM-1&manager_id=RM-2&limit=1&limit=2&stage=a")
    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM_JSON
    problem = answer.json()
    assert problem["type"] == "/problems/invalid-request"
    assert [e["location"] for e in problem["errors"]] == [
        ["query", "limit"],
        ["query", "manager_id"],
    ]


def test_a_list_parameter_and_unknown_names_may_repeat() -> None:
    answer = CLIENT.get("/items?manager_id=RM-1&stage=a&stage=b&other=1&other=2")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"manager_id": "RM-1", "stage": ["a", "b"], "limit": 50}
