"""The FastAPI application: ``create_app(settings)`` wires routes, errors and limits."""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from threadpoolctl import threadpool_limits

from index.config import Settings
from index.errors import (
    BuildInProgressError,
    CorpusNotFoundError,
    DocumentNotFoundError,
    EmptyCorpusError,
    IndexMissingError,
    InvalidFilterError,
    InvalidQueryError,
    ModelUnavailableError,
    QAError,
    SearchUnavailableError,
)
from service.backend import LocalBackend, PoolBackend
from service.limits import BodySizeLimit
from service.logs import RequestObserver, note_ask
from service.metrics import CONTENT_TYPE, Metrics
from service.schemas import AskRequest, AskResponse, DocumentOut, ErrorOut, HealthOut, RebuildOut
from service.state import ServiceState

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"

# HTTP status of each core error; anything unlisted is a 500 with its message.
STATUS = {
    InvalidFilterError: 422,  # an unknown field or a malformed date: the message names it
    InvalidQueryError: 422,
    DocumentNotFoundError: 404,
    IndexMissingError: 503,
    ModelUnavailableError: 503,
    SearchUnavailableError: 503,
    BuildInProgressError: 409,
    EmptyCorpusError: 409,
    CorpusNotFoundError: 409,
}
ERRORS = {
    401: {"model": ErrorOut, "description": "Missing bearer token"},
    403: {"model": ErrorOut, "description": "Wrong token, or admin endpoints disabled"},
    404: {"model": ErrorOut, "description": "Unknown document"},
    409: {"model": ErrorOut, "description": "A rebuild is already running, or the corpus is unusable"},
    413: {"model": ErrorOut, "description": "Request body too large"},
    503: {"model": ErrorOut, "description": "No index loaded, or a search process is being replaced"},
}


class AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def create_app(
    settings: Settings | None = None,
    state: ServiceState | None = None,
    processes: int = 1,
    backend: LocalBackend | PoolBackend | None = None,
) -> FastAPI:
    """Build the API; the index loads at startup.

    With ``processes`` > 1, searches run in that many search processes behind
    this one (``PoolBackend``); otherwise in this process, around ``state``;
    or in the given ``backend`` (``service.cluster.ClusterBackend``: shards on Ray).
    """
    settings = settings or Settings()
    if backend is None:
        backend = PoolBackend(settings, processes) if processes > 1 else LocalBackend(state or ServiceState(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # One BLAS/OpenMP thread per process: pools of their own would oversubscribe the
        # cores (OpenBLAS threads spin while they wait); processes give the parallelism.
        threadpool_limits(limits=1)
        await backend.start()
        yield
        await backend.stop()

    app = FastAPI(
        title="Question-answering retrieval",
        version="0.1.0",
        description="Ask a question, get the passages of the corpus that answer it, with exact offsets.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics = Metrics()
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    token = settings.api_token.get_secret_value() if settings.api_token else None
    app.add_middleware(  # added last, so outermost: it sees every response, a 413 included
        RequestObserver, metrics=metrics, json_log=settings.log_format == "json",
        questions=settings.log_questions, secret=token, routes=app.routes,
    )  # fmt: skip
    _add_error_handlers(app)
    _add_routes(app, backend, metrics)
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(QAError)
    async def core_error(request: Request, exc: QAError) -> JSONResponse:
        status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 500)
        if status == 500:
            log.error("request %s failed: %s", getattr(request.state, "request_id", "-"), exc)
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(AuthError)
    async def auth_error(request: Request, exc: AuthError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        messages = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
            messages.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
        return JSONResponse({"detail": "; ".join(messages) or "invalid request"}, status_code=422)


_bearer = HTTPBearer(auto_error=False)
BUILD_HEADER = "X-Index-Build"  # the build folder that answered: old or new, never a mix


def require_admin(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Bearer-token check, in constant time; admin endpoints are off without a configured token."""
    token = request.app.state.settings.api_token
    if token is None or not token.get_secret_value():
        raise AuthError(403, "admin endpoints are disabled: set QA_API_TOKEN on the server to enable them")
    if credentials is None:
        raise AuthError(401, "missing bearer token: send 'Authorization: Bearer <QA_API_TOKEN>'")
    if not secrets.compare_digest(credentials.credentials.encode(), token.get_secret_value().encode()):
        raise AuthError(403, "invalid token")


def _add_routes(app: FastAPI, backend: LocalBackend | PoolBackend, metrics: Metrics) -> None:

    if (STATIC / "index.html").is_file():

        @app.get("/", include_in_schema=False)
        def page() -> FileResponse:
            return FileResponse(STATIC / "index.html")

    @app.post("/ask", response_model=AskResponse, responses={**ERRORS, 422: {"model": ErrorOut}})
    async def ask(body: AskRequest, request: Request) -> Response:
        """Return the ``k`` passages that best answer the question, best first.

        With ``filters``, only passages of the documents they allow are searched (inside retrieval, so ``k``
        come back whenever that many match); an unknown field or a malformed date is a 422 naming it, a
        filter that matches nothing an empty list.
        """
        note_ask(request, body)
        filters = body.filters.model_dump(exclude_none=True) if body.filters is not None else None
        answer = await backend.ask(body.question, body.k, filters)
        metrics.stages(answer.stages)
        # Already JSON of the AskResponse shape, built from the same dataclasses, so it is not
        # validated a second time (tests/test_api.py::test_the_ask_body_matches_its_declared_schema).
        return Response(answer.body, media_type="application/json", headers={BUILD_HEADER: answer.build})

    @app.get("/documents/{doc_id:path}", response_model=DocumentOut, responses=ERRORS)
    async def document(doc_id: str) -> dict:
        """The full text of one indexed document; ids are looked up, never used as paths."""
        return await backend.document(doc_id)

    @app.get("/health", response_model=HealthOut)
    async def health() -> dict:
        """Liveness and what is loaded."""
        return await backend.health()

    @app.post("/index/rebuild", response_model=RebuildOut, responses=ERRORS, dependencies=[Depends(require_admin)])
    async def rebuild() -> dict:
        """Rebuild from the corpus and swap the new index in; queries continue meanwhile."""
        began, outcome = time.perf_counter(), "failed"
        try:
            report = await backend.rebuild()
            outcome = "ok"
            return report
        except BuildInProgressError:
            outcome = "busy"
            raise
        finally:
            metrics.rebuild(outcome, time.perf_counter() - began, time.time())

    @app.get("/metrics", response_class=PlainTextResponse, responses={200: {"content": {CONTENT_TYPE: {}}}})
    async def metrics_text() -> Response:
        """Prometheus metrics of the whole server, search processes included (docs/operations.md)."""
        with contextlib.suppress(QAError):  # a pool being replaced: keep the index figures last seen
            metrics.index(await backend.health())
        metrics.processes(backend.processes_alive(), backend.restarts)
        return Response(metrics.render(), media_type=CONTENT_TYPE)
