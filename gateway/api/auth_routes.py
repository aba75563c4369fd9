"""Routes of logging in and out, and of managing users (administrators only).

``POST /api/v1/auth/login`` answers the token once, in the body for scripts and as the
``rw_session`` cookie for the browser; ``GET /api/v1/auth/me`` says who the caller is
(the page asks it first); ``POST /api/v1/auth/logout`` ends the session.  Users are
listed, created and changed under ``/api/v1/users``; nobody is ever deleted, since audit
records name them: a leaver is disabled, which also ends their sessions.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.access import SESSION_COOKIE, Access, ApiError, principal_json, request_token
from gateway.auth.passwords import MAX_PASSWORD, WeakPassword
from gateway.auth.principal import Principal, Role, ScopeError
from gateway.auth.users import UserExists, UserNotFound


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(max_length=64)
    password: str = Field(max_length=MAX_PASSWORD)


class UserBody(BaseModel):
    username: str
    display_name: str
    role: Role
    scope: str | None
    read_only: bool = False
    anonymous: bool = False


class LoginResponse(BaseModel):
    token: str = Field(description="Send as ``Authorization: Bearer <token>``; the "
                       "browser gets it as the HttpOnly cookie rw_session too")
    expires_at: float = Field(description="Epoch seconds")
    user: UserBody


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"username": "town-101", "password": "change-me-now", "role": "town",
         "scope": "370829101", "display_name": "某某镇安监站 李四"}]})
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(max_length=MAX_PASSWORD)
    role: Role
    scope: str | None = Field(None, description="County code (county), town code (town), "
                              "enterprise id (enterprise); none for admin")
    display_name: str | None = Field(None, max_length=128)
    locale: str = Field("zh", pattern="^(zh|en)$")


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    display_name: str | None = Field(None, max_length=128)
    password: str | None = Field(None, max_length=MAX_PASSWORD)
    disabled: bool | None = None
    locale: str | None = Field(None, pattern="^(zh|en)$")


class StoredUser(BaseModel):
    username: str
    display_name: str
    role: Role
    scope: str | None
    locale: str
    disabled: bool


class UserList(BaseModel):
    items: list[StoredUser]


def auth_router(access: Access, *, secure_cookie: bool = False) -> APIRouter:
    """Login, logout, who-am-I and user management on ``access``'s user store."""
    router = APIRouter()
    users = access.users

    @router.post("/api/v1/auth/login", tags=["auth"], response_model=LoginResponse,
                 summary="Log in", responses={401: {"description": "bad_credentials"}})
    async def login(body: LoginRequest, response: Response) -> Any:
        session = await users.login(body.username, body.password)
        if session is None:
            raise ApiError(401, "bad_credentials", "wrong user name or password, or the "
                           "user is disabled")
        response.set_cookie(SESSION_COOKIE, session.token, httponly=True, samesite="lax",
                            secure=secure_cookie, path="/",
                            max_age=max(1, int(users.session_ttl_s)))
        return {"token": session.token, "expires_at": session.expires_at,
                "user": principal_json(session.user.principal())}

    @router.post("/api/v1/auth/logout", tags=["auth"], status_code=204, summary="Log out")
    async def logout(request: Request, response: Response) -> None:
        token = request_token(request)
        if token:
            await users.logout(token)
        response.delete_cookie(SESSION_COOKIE, path="/")

    @router.get("/api/v1/auth/me", tags=["auth"], response_model=UserBody,
                summary="Who am I", responses={401: {"description": "unauthenticated"}})
    async def me(principal: Principal = Depends(access.user)) -> Any:
        return principal_json(principal)

    @router.get("/api/v1/users", tags=["users"], response_model=UserList,
                summary="List users (admin)")
    async def list_users(_: Principal = Depends(access.admin)) -> Any:
        return {"items": [u.to_json() for u in await users.list()]}

    @router.post("/api/v1/users", tags=["users"], response_model=StoredUser, status_code=201,
                 summary="Create a user (admin)",
                 responses={409: {"description": "user_exists"},
                            422: {"description": "invalid_user"}})
    async def create_user(body: NewUser,
                          _: Principal = Depends(access.admin)) -> Any:
        try:
            user = await users.create(body.username, body.password, body.role, body.scope,
                                      display_name=body.display_name, locale=body.locale)
        except UserExists as exc:
            raise ApiError(409, "user_exists", str(exc)) from None
        except (ScopeError, WeakPassword, ValueError) as exc:
            raise ApiError(422, "invalid_user", str(exc)) from None
        return user.to_json()

    @router.patch("/api/v1/users/{username}", tags=["users"], response_model=StoredUser,
                  summary="Change, disable or re-enable a user (admin)",
                  responses={404: {"description": "user_not_found"},
                             422: {"description": "invalid_user"}})
    async def change_user(username: str, body: UserChange,
                          admin: Principal = Depends(access.admin)) -> Any:
        if body.disabled and username == admin.username:
            raise ApiError(422, "invalid_user", "you cannot disable yourself")
        try:
            user = await users.update(username, display_name=body.display_name,
                                      password=body.password, disabled=body.disabled,
                                      locale=body.locale)
        except UserNotFound as exc:
            raise ApiError(404, "user_not_found", str(exc)) from None
        except (WeakPassword, ValueError) as exc:
            raise ApiError(422, "invalid_user", str(exc)) from None
        return user.to_json()

    return router
