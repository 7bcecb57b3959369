"""The FastAPI application: ``create_app(settings)`` wires routes, errors and limits."""

from __future__ import annotations

import logging
import secrets
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from threadpoolctl import threadpool_limits

from index.config import Settings
from index.errors import (
    BuildInProgressError,
    CorpusNotFoundError,
    DocumentNotFoundError,
    EmptyCorpusError,
    IndexMissingError,
    InvalidQueryError,
    ModelUnavailableError,
    QAError,
)
from index.searcher import Searcher
from service.limits import BodySizeLimit
from service.schemas import AskRequest, AskResponse, DocumentOut, ErrorOut, HealthOut, RebuildOut
from service.state import ServiceState

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"

# HTTP status of each core error; anything unlisted is a 500 with its message.
STATUS = {
    InvalidQueryError: 422,
    DocumentNotFoundError: 404,
    IndexMissingError: 503,
    ModelUnavailableError: 503,
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
    503: {"model": ErrorOut, "description": "No index loaded"},
}


class AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def create_app(settings: Settings | None = None, state: ServiceState | None = None) -> FastAPI:
    """Build the API around one ``ServiceState``; the index loads at startup."""
    settings = settings or Settings()
    state = state or ServiceState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # One BLAS/OpenMP thread per process: pools of their own would oversubscribe the
        # cores (OpenBLAS threads spin while they wait); workers give the parallelism.
        threadpool_limits(limits=1)
        if state.searcher is None:
            await run_in_threadpool(state.load)
        yield

    app = FastAPI(
        title="Question-answering retrieval",
        version="0.1.0",
        description="Ask a question, get the passages of the corpus that answer it, with exact offsets.",
        lifespan=lifespan,
    )
    app.state.qa = state
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    _add_error_handlers(app)
    _add_routes(app, state, settings)
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(QAError)
    async def core_error(request: Request, exc: QAError) -> JSONResponse:
        status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 500)
        if status == 500:
            log.error("request failed: %s", exc)
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


def build_name(searcher: Searcher) -> str:
    folder = searcher.data.folder
    return folder.name if folder is not None else ""


def get_state(request: Request) -> ServiceState:
    return request.app.state.qa


async def live_searcher(state: Annotated[ServiceState, Depends(get_state)]) -> Searcher:
    """The searcher of the index loaded now; 503 (via IndexMissingError) when there is none."""
    searcher = state.current()
    if searcher is None:
        raise IndexMissingError(
            f"no index is loaded from {state.settings.index_dir}: build one with `qa build` "
            "or POST /index/rebuild, then retry"
        )
    return searcher


def require_admin(
    state: Annotated[ServiceState, Depends(get_state)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Bearer-token check, in constant time; admin endpoints are off without a configured token."""
    token = state.settings.api_token
    if token is None or not token.get_secret_value():
        raise AuthError(403, "admin endpoints are disabled: set QA_API_TOKEN on the server to enable them")
    if credentials is None:
        raise AuthError(401, "missing bearer token: send 'Authorization: Bearer <QA_API_TOKEN>'")
    if not secrets.compare_digest(credentials.credentials.encode(), token.get_secret_value().encode()):
        raise AuthError(403, "invalid token")


SearcherDep = Annotated[Searcher, Depends(live_searcher)]


def _add_routes(app: FastAPI, state: ServiceState, settings: Settings) -> None:

    if (STATIC / "index.html").is_file():

        @app.get("/", include_in_schema=False)
        def page() -> FileResponse:
            return FileResponse(STATIC / "index.html")

    @app.post("/ask", response_model=AskResponse, responses={**ERRORS, 422: {"model": ErrorOut}})
    async def ask(body: AskRequest, searcher: SearcherDep, response: Response) -> dict:
        """Return the ``k`` passages that best answer the question, best first."""
        # Searched on the event loop, not in a thread: a search is ~10 ms of CPU that holds the
        # GIL for much of it, so a thread hop per request adds contention and no parallelism
        # (under load with 2 workers it cost about a third of the throughput). Parallelism
        # comes from `qa serve --workers N`.
        result = searcher.search(body.question, body.k)
        response.headers[BUILD_HEADER] = build_name(searcher)
        # A plain dict: the response_model validates and serialises it once.
        passages = [asdict(passage) for passage in result.passages]
        return {"question": result.question, "passages": passages, "took_ms": round(result.took_ms, 2)}

    @app.get("/documents/{doc_id:path}", response_model=DocumentOut, responses=ERRORS)
    def document(doc_id: str, searcher: SearcherDep) -> DocumentOut:
        """The full text of one indexed document; ids are looked up, never used as paths."""
        doc = searcher.document(doc_id)
        return DocumentOut(doc_id=doc.doc_id, title=doc.title, text=doc.text, metadata=doc.metadata)

    @app.get("/health", response_model=HealthOut)
    def health() -> HealthOut:
        """Liveness and what is loaded."""
        searcher = state.current()
        if searcher is None:
            return HealthOut(status="no index", documents=0, chunks=0, model=settings.model)
        manifest = searcher.data.manifest
        return HealthOut(
            status="ok",
            documents=len(searcher.data.documents),
            chunks=len(searcher.data.chunks),
            model=searcher.model,
            index_built_at=manifest.created_at,
            build=build_name(searcher),
        )

    @app.post("/index/rebuild", response_model=RebuildOut, responses=ERRORS, dependencies=[Depends(require_admin)])
    async def rebuild() -> RebuildOut:
        """Rebuild from the corpus folder and swap the new index in; queries continue meanwhile."""
        report = await run_in_threadpool(state.rebuild)
        return RebuildOut(
            documents=report.documents,
            chunks=report.chunks,
            reused_documents=report.reused_documents,
            embedded_texts=report.embedded_texts,
            seconds=round(report.seconds, 3),
            skipped=report.warnings,
        )
