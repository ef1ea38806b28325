"""The HTTP API: OpenAI-compatible chat completions, ``rag ask --json`` over HTTP, documents.

Served with the chat UI (``rag ui``: the same server, the same port) or alone (``rag serve``),
behind the same guard (``web.GuardMiddleware``: Host and Origin checks, CSP). When
``RAG_UI_USER`` and ``RAG_UI_PASSWORD`` are set, every route but ``/healthz`` needs them: HTTP
Basic with the user and password, or ``Authorization: Bearer <password>`` (what OpenAI clients
send as their API key); five failures a minute from one client, then 429 for that minute.
Answers of the API and of the UI are generated one at a time, in turn (``shared.TurnLock``).

    POST   /v1/chat/completions   OpenAI chat format, ``stream`` or not
    POST   /v1/ask                {"question", "k"?, "history"?} -> the ``rag ask --json`` shape
    GET    /v1/models             the local models, for clients that list them first
    GET    /v1/documents          the indexed documents
    POST   /v1/documents          multipart upload, the UI's rules (``ChatService.upload``)
    DELETE /v1/documents/{source} remove a document from the index (and an upload's file)
    GET    /healthz               {"status": "ok"}, no login needed
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.middleware import Middleware

from .assistant import Stopped
from .documents import UnknownDocument, collections
from .generation import BackendError
from .ingestion import IngestBusy
from .loaders import escape_name
from .models import ModelError, model_choices
from .questions import QuestionError, clean_question
from .settings import COLLECTION_NAME, Settings
from .store import StoreError, list_collections
from .text import count_tokens
from .types import Answer
from .web import GuardMiddleware, Throttle, allowed_hosts

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from .shared import LockedAssistant
    from .ui import ChatService

MAX_JSON_BYTES = 1_000_000  # a chat request's messages; questions are capped far lower
MAX_UPLOAD_REQUEST_BYTES = 25_000_000  # all files of one upload (each at most the UI's 5 MB)
MAX_UPLOAD_FILES = 10
Credentials = tuple[str, str] | None


class ApiError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {"message", "type", "code"}}``."""

    TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
             409: "conflict_error", 413: "invalid_request_error", 415: "invalid_request_error",
             422: "invalid_request_error", 429: "rate_limit_error", 503: "server_error"}

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None
                 ) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message,
                          "type": self.TYPES.get(self.status, "server_error"), "code": None}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), self.status, headers=self.headers)


class _Route(APIRoute):
    """Answers ``ApiError`` (and any error of the pipeline a user can fix) in OpenAI's shape."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return exc.response()
            except Stopped as exc:
                return ApiError(499, str(exc)).response()
            except QuestionError as exc:
                return ApiError(400, str(exc)).response()
            except IngestBusy as exc:
                return ApiError(409, str(exc)).response()
            except (BackendError, ModelError, StoreError) as exc:
                return ApiError(503, f"the assistant is unavailable: {exc}").response()

        return handle


class Auth:
    """The UI's login for the API: HTTP Basic with the user and password, or a Bearer token
    equal to the password. ``None`` credentials: no login. Failed attempts are throttled per
    client like the UI's logins (``max_failures`` per ``window`` seconds, then 429)."""

    def __init__(self, credentials: Credentials, max_failures: int = 5,
                 window: float = 60.0) -> None:
        self.credentials = credentials
        self.throttle = Throttle(max_failures, window)

    def check(self, request: Request) -> None:
        if self.credentials is None:
            return
        client = request.client.host if request.client else "?"
        if self.throttle.blocked(client):
            raise ApiError(429, "Too many failed logins; wait a minute and try again")
        if self._valid(request.headers.get("authorization", "")):
            return
        self.throttle.failed(client)
        raise ApiError(401, "Log in: HTTP Basic with the UI's user and password, or "
                            "'Authorization: Bearer <password>' (an OpenAI client's api_key)",
                       {"WWW-Authenticate": 'Basic realm="rag"'})

    def _valid(self, header: str) -> bool:
        assert self.credentials is not None
        user, password = self.credentials
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            return secrets.compare_digest(value.encode(), password.encode())
        if scheme.lower() == "basic":
            try:
                given = base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
            name, _, secret = given.partition(":")
            return (secrets.compare_digest(name.encode(), user.encode())
                    & secrets.compare_digest(secret.encode(), password.encode()))
        return False


# -- request bodies ----------------------------------------------------------------------------
class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # [{"type": "text", "text": ...}, ...]
            return "\n".join(str(p.get("text", "")) for p in self.content
                             if p.get("type") == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, max_tokens…: accepted, not used
    model: str = ""
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str
    collection: str | None = None
    k: int | None = Field(default=None, ge=1, le=20)
    history: list[str] = Field(default_factory=list, max_length=50)


async def _read(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The request body, refused (413) as soon as it exceeds ``limit`` bytes."""
    if int(request.headers.get("content-length") or 0) > limit:
        raise ApiError(413, f"the request is larger than {limit // 1_000_000} MB")
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise ApiError(413, f"the request is larger than {limit // 1_000_000} MB")
        yield chunk


async def _json(request: Request, model: type[BaseModel]) -> Any:
    body = b"".join([chunk async for chunk in _read(request, MAX_JSON_BYTES)])
    try:
        return model.model_validate(json.loads(body or b"null"))
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not JSON: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
                             for e in exc.errors())
        raise ApiError(400, f"invalid request: {problems}") from exc


# -- answers -----------------------------------------------------------------------------------
_MARKUP = re.compile(r"!\[|<(?=[A-Za-z/!?])")


def inert(text: str) -> str:
    """``text`` with Markdown image syntax and HTML tags escaped by a backslash, so a client
    that renders Markdown fetches nothing a document put there (the text reads the same)."""
    return _MARKUP.sub(lambda m: "!\\[" if m.group(0) == "![" else "\\<", text)


def message_text(answer: Answer) -> str:
    """The chat message: the checked answer, then its footnotes (source, span, quote)."""
    if not answer.citations:
        return inert(answer.text)
    lines = [answer.text, "", "Sources:"]
    lines += [f"[{c.n}] {escape_name(c.source)} (chars {c.start}-{c.end}): \u201c{c.quote}\u201d"
              for c in answer.citations]
    return inert("\n".join(lines))


def extras(answer: Answer) -> dict[str, Any]:
    """The fields added to OpenAI's response: citations (verbatim), the abstention flag…"""
    out = answer.to_dict()
    out.pop("answer")
    return out


def _pieces(text: str, size: int = 24) -> Iterator[str]:
    """``text`` in pieces of about ``size`` characters, cut after whitespace."""
    piece = ""
    for word in re.findall(r"\S+\s*|\s+", text):
        piece += word
        if len(piece) >= size:
            yield piece
            piece = ""
    if piece:
        yield piece


def _sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


def model_ids(service: ChatService) -> list[str]:
    """The models a client may name: one per embedded model (``models.model_choices``), the
    default first."""
    settings = service.settings
    if settings.backend != "llama":
        return ["rag"]
    return [f"rag-{choice}" for choice in model_choices(settings)]


def _size_of(service: ChatService, model: str) -> tuple[str | None, str]:
    """(model choice, model id) for the model a request names; anything unknown is the
    default."""
    for mid in model_ids(service):
        if model == mid and mid.startswith("rag-"):
            return mid.removeprefix("rag-"), mid
    return None, model_ids(service)[0]


# -- documents ---------------------------------------------------------------------------------
def documents(service: ChatService, collection: str | None = None) -> list[dict[str, Any]]:
    """The indexed documents of ``collection`` (``Assistant.documents``), with ``uploaded`` for
    the UI's and the API's uploads."""
    uploads = service.uploads_for(collection).resolve()
    return [{"source": d.source, "chunks": d.chunks, "bytes": d.bytes,
             "indexed_at": d.indexed_at, "uploaded": Path(d.root) == uploads}
            for d in service.assistant(None, collection).documents()]  # no server paths leave


def remove_document(service: ChatService, source: str, collection: str | None = None
                    ) -> dict[str, Any]:
    """Take ``source`` out of the index with ``Assistant.remove`` (store and lexical index
    together, under the ingest lock; an upload's copy is deleted, a corpus file is not)."""
    try:
        removed = service.assistant(None, collection).remove(source)
    except UnknownDocument as exc:
        raise ApiError(404, str(exc)) from exc
    return {"source": removed.document.source, "chunks": int(removed),
            "file_deleted": removed.deleted_copy is not None, "message": removed.message}


def _saved_as(uploads: Path, src: Path) -> str | None:
    """The name ``ChatService.upload`` kept ``src`` under: ``name.ext`` or ``name-N.ext`` with
    the same content."""
    pattern = re.compile(rf"{re.escape(src.stem)}(-\d+)?{re.escape(src.suffix)}")
    data = src.read_bytes()
    for path in sorted(uploads.iterdir()) if uploads.is_dir() else []:
        if pattern.fullmatch(path.name) and path.is_file() and path.read_bytes() == data:
            return path.name
    return None


# -- the routes --------------------------------------------------------------------------------
def build_api(service: ChatService, credentials: Credentials = None) -> APIRouter:
    """The API's routes over ``service`` (whose assistants are ``LockedAssistant``s: the UI's
    answers and these take turns). ``credentials``: (user, password), or None for no login."""
    auth = Auth(credentials)
    router = APIRouter(route_class=_Route)
    limiter = anyio.CapacityLimiter(16)  # threads waiting for their turn or answering

    def login(request: Request) -> None:
        auth.check(request)

    def assistant(size: str | None = None, collection: str | None = None) -> LockedAssistant:
        return service.assistant(size, collection)  # type: ignore[return-value]

    def collection_of(name: str | None) -> str | None:
        """A request's collection (None: the server's own), 400 for a malformed name and 404
        for one that has no index."""
        if not name or name == service.settings.collection:
            return None
        if not COLLECTION_NAME.fullmatch(name):
            raise ApiError(400, f"bad collection name {name!r}")
        if name not in list_collections(service.settings):
            raise ApiError(404, f"no collection {name!r}: GET /v1/collections lists them; "
                                "uploading a document to a new name creates it")
        return name

    async def answer(request: Request, question: str, history: list[str], k: int | None,
                     size: str | None = None, watch: bool = True,
                     collection: str | None = None) -> Answer:
        """The answer, in a thread, in turn; stopped if the client goes away meanwhile."""
        stop = threading.Event()

        def run() -> Answer:
            return assistant(size, collection).ask(question, history=history,
                                                   k=k or service.settings.k,
                                       stop=stop)

        job = asyncio.ensure_future(anyio.to_thread.run_sync(
            run, abandon_on_cancel=True, limiter=limiter))
        job.add_done_callback(lambda j: j.cancelled() or j.exception())  # never "unretrieved"
        try:
            while watch:
                done, _ = await asyncio.wait({job}, timeout=0.25)
                if done:
                    break
                if await request.is_disconnected():  # (the job is cancelled below)
                    raise ApiError(499, "the client closed the request")
            return await job
        finally:
            # the client left (or a stream was cancelled): the thread leaves the queue, or the
            # model stops at its next token; nobody waits for its result any more
            stop.set()
            if not job.done():
                job.cancel()

    @router.get("/healthz")
    def health() -> dict[str, Any]:
        return {"status": "ok", "waiting": service.generation.waiting}

    @router.get("/v1/models")
    def models(request: Request) -> dict[str, Any]:
        login(request)
        return {"object": "list", "data": [{"id": m, "object": "model", "created": 0,
                                            "owned_by": "rag"} for m in model_ids(service)]}

    @router.get("/v1/models/{model}")
    def get_model(request: Request, model: str) -> dict[str, Any]:
        login(request)
        if model not in model_ids(service):
            raise ApiError(404, f"no model {model!r}; use one of {model_ids(service)}")
        return {"id": model, "object": "model", "created": 0, "owned_by": "rag"}

    @router.post("/v1/ask")
    async def ask(request: Request) -> dict[str, Any]:
        login(request)
        body: AskRequest = await _json(request, AskRequest)
        clean_question(body.question, service.settings.max_question_chars)  # 400 before waiting
        t0 = time.perf_counter()
        result = await answer(request, body.question, body.history, body.k,
                              collection=collection_of(body.collection))
        out = result.to_dict()
        out["seconds"] = round(time.perf_counter() - t0, 3)
        return out

    @router.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> dict[str, Any] | StreamingResponse:
        login(request)
        body: ChatRequest = await _json(request, ChatRequest)
        asked = [m.text() for m in body.messages if m.role == "user"]
        if not asked:
            raise ApiError(400, "no user message: the last one with role 'user' is the question")
        question, history = asked[-1], [q for q in asked[:-1] if q.strip()]
        clean_question(question, service.settings.max_question_chars)  # 400 before waiting
        size, model_id = _size_of(service, body.model)
        collection = collection_of((body.model_extra or {}).get("collection"))
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        prompt_tokens = sum(count_tokens(m.text()) for m in body.messages)

        def usage(text: str) -> dict[str, int]:
            n = count_tokens(text)
            return {"prompt_tokens": prompt_tokens, "completion_tokens": n,
                    "total_tokens": prompt_tokens + n}

        if not body.stream:
            result = await answer(request, question, history, None, size,
                                  collection=collection)
            text = message_text(result)
            return {"id": cid, "object": "chat.completion", "created": created,
                    "model": model_id, "system_fingerprint": None,
                    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": usage(text), **extras(result)}

        def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any
                  ) -> dict[str, Any]:
            return {"id": cid, "object": "chat.completion.chunk", "created": created,
                    "model": model_id, "system_fingerprint": None,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                                 "logprobs": None}], **more}

        async def events() -> AsyncIterator[str]:
            # Only the checked answer is ever sent: it is streamed once it is checked.
            yield _sse(chunk({"role": "assistant", "content": ""}))
            try:
                # watched like the other routes: a client that left is never answered
                result = await answer(request, question, history, None, size,
                                  collection=collection)
            except ApiError:
                return  # the client left; nobody reads this stream any more
            except (QuestionError, BackendError, ModelError, StoreError, Stopped) as exc:
                yield _sse(ApiError(503, f"the assistant is unavailable: {exc}").body())
                return
            text = message_text(result)
            for piece in _pieces(text):
                yield _sse(chunk({"content": piece}))
            yield _sse(chunk({}, "stop", **extras(result)))
            if (body.stream_options or {}).get("include_usage"):
                yield _sse({**chunk({}), "choices": [], "usage": usage(text)})
            yield _sse("[DONE]")

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"})

    @router.get("/v1/collections")
    def collections_(request: Request) -> dict[str, Any]:
        login(request)
        return {"collections": [c.to_dict() for c in collections(service.settings)],
                "default": service.settings.collection}

    @router.get("/v1/documents")
    def list_documents(request: Request, collection: str | None = None) -> dict[str, Any]:
        login(request)
        return {"documents": documents(service, collection_of(collection))}

    @router.post("/v1/documents")
    async def upload(request: Request, collection: str | None = None) -> JSONResponse:
        login(request)
        if collection and not COLLECTION_NAME.fullmatch(collection):
            raise ApiError(400, f"bad collection name {collection!r}")
        collection = None if collection == service.settings.collection else collection
        from .ui import MAX_UPLOAD_BYTES

        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise ApiError(415, "send the files as multipart/form-data (field 'file' or "
                                "'files')")
        parser = MultiPartParser(request.headers, _read(request, MAX_UPLOAD_REQUEST_BYTES),
                                 max_files=MAX_UPLOAD_FILES, max_fields=MAX_UPLOAD_FILES)
        try:
            form = await parser.parse()
        except MultiPartException as exc:
            raise ApiError(400, f"bad multipart body: {exc.message}") from exc
        files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        try:
            if not files:
                raise ApiError(400, "no file: send it as multipart field 'file'")
            with tempfile.TemporaryDirectory(prefix="rag-upload-") as tmp:
                paths: list[str] = []
                for i, f in enumerate(files):
                    name = re.sub(r"[^\w.-]", "_", Path(f.filename or "").name).lstrip(".")
                    data = await f.read()
                    if len(data) > MAX_UPLOAD_BYTES:
                        raise ApiError(413, f"{name}: larger than "
                                            f"{MAX_UPLOAD_BYTES // 1_000_000} MB")
                    folder = Path(tmp, str(i))  # two files of one name stay apart
                    folder.mkdir()
                    path = folder / (name or "upload.txt")
                    path.write_bytes(data)
                    paths.append(str(path))  # the UI passes path strings
                message = await anyio.to_thread.run_sync(
                    lambda: service.upload(paths, collection=collection))
                kept = ({_saved_as(service.uploads_for(collection), Path(p)) for p in paths}
                        - {None})
        finally:
            for f in files:
                await f.close()
        indexed = [d for d in documents(service, collection)
                   if d["uploaded"] and d["source"] in kept]
        if not indexed:
            raise ApiError(422, message)
        return JSONResponse({"message": message, "documents": indexed})

    @router.delete("/v1/documents/{source:path}")
    async def delete_document(request: Request, source: str, collection: str | None = None
                              ) -> dict[str, Any]:
        login(request)
        return await anyio.to_thread.run_sync(remove_document, service, source,
                                              collection_of(collection))

    return router


# -- the server --------------------------------------------------------------------------------
def credentials_from_env() -> Credentials:
    """(RAG_UI_USER, RAG_UI_PASSWORD) when both are set, else None."""
    user, password = os.environ.get("RAG_UI_USER"), os.environ.get("RAG_UI_PASSWORD")
    return (user, password) if user and password else None


def create_app(service: ChatService, hosts: set[str], credentials: Credentials = None,
               lifespan: Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]
               | None = None) -> FastAPI:
    """The API alone as an ASGI app, behind the UI's guard (answers only ``hosts``)."""
    app = FastAPI(title="rag", docs_url=None, redoc_url=None, openapi_url=None,
                  middleware=[Middleware(GuardMiddleware, hosts=hosts)], lifespan=lifespan,
                  **_no_telemetry())
    app.include_router(build_api(service, credentials))
    return app


def _no_telemetry() -> dict[str, Any]:
    """FastAPI's own OpenTelemetry hooks off, where this FastAPI has them."""
    import inspect

    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    return {}


def serve(settings: Settings | None = None, host: str = "127.0.0.1", port: int = 8000) -> None:
    """``rag serve``: index what changed, then serve the API (no UI) until interrupted."""
    import uvicorn

    from .ui import ChatService  # its uploads and assistants (Gradio is imported, not served)

    settings = settings or Settings.load()
    t0 = time.perf_counter()
    service = ChatService(settings)
    report = service.assistant().ingest(progress=True)
    log.info("Index: %s", report.summary())
    hosts = allowed_hosts(host, port, os.environ.get("RAG_ALLOWED_HOSTS", "").split(","))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info("API ready on http://%s:%d/v1 in %.1f s", host, port,
                 time.perf_counter() - t0)
        # load the LLM now rather than on the first question (after the print: llama.cpp
        # silences stdout/stderr while it loads)
        threading.Thread(target=service.warm_up, daemon=True).start()
        yield

    app = create_app(service, hosts, credentials_from_env(), lifespan)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
