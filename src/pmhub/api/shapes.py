"""Request bodies: strict models (unknown fields refused, sizes capped) for the routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field

Name = Annotated[str, Field(min_length=1, max_length=200)]
Secret = Annotated[str, Field(min_length=1, max_length=1024)]
Reason = Annotated[str, Field(min_length=1, max_length=5000)]
# a row of the platform state by its 64-bit key: a larger number names nothing (and
# SQLite refuses to be asked about it)
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Login(Strict):
    username: Name
    password: Secret


class NewUser(Strict):
    username: Name
    display_name: Annotated[str, Field(max_length=200)] = ""
    email: Annotated[str, Field(max_length=254)] | None = None
    organisation: Annotated[str, Field(max_length=80)] | None = None
    password: Secret | None = None


class NewGrant(Strict):
    role: Name
    scope: Annotated[str, Field(max_length=40)] | None = None
    external: bool = False
    represents_data_subjects: bool = False


class NewToken(Strict):
    name: Annotated[str, Field(min_length=1, max_length=80)]
    ttl_days: Annotated[float, Field(gt=0, le=366)] = 30


class NewPassword(Strict):
    password: Secret


class NewOrganisation(Strict):
    name: Annotated[str, Field(min_length=1, max_length=80)]
    kind: Annotated[str, Field(min_length=1, max_length=20)]
    site: Annotated[str, Field(max_length=40)] | None = None


class NewProject(Strict):
    id: Annotated[str, Field(min_length=1, max_length=40)]
    title: Annotated[str, Field(min_length=1, max_length=200)]
    organisation: Annotated[str, Field(max_length=80)] | None = None


def out(value: Any) -> Any:
    """Dataclasses, enums and datetimes as JSON."""
    return jsonable_encoder(value)
