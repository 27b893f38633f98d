"""The ``lake serve`` application: FastAPI routes over ``LakeClient``, auth, structured request logs, metrics.

Every route is a plain (sync) function run in the server's thread pool; row streams are sync generators
read one batch at a time in that pool, so a slow client holds no thread while it is not reading, and
never the event loop.

One lock (``warm_lock``) serializes everything that opens the warm DuckDB file: planning a read (locating
partitions reads the warm catalogue), reading a warm partition, the catalogue endpoints and ``/sql``.
DuckDB's lock on the file is a POSIX lock, which the process loses as soon as *any* of its handles on the
file closes; two threads overlapping there would let the pipelines' writer in while a read is under way.
Hot and cold rows stream outside the lock, so reads of different clients still overlap. Errors are one JSON line ``{"error": "..."}`` with a 4xx status for bad input
(400 a bad value, 401/403 auth, 404 an unknown dataset or partition, 408 a query over its time limit,
501 a feature not built yet); no traceback ever reaches a client.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Literal

import duckdb
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from lake_resources.catalog.datasets import DATASETS
from lake_resources.catalog.instruments import UnknownSymbolError
from lake_resources.catalog.validation import LakeValidationError
from lake_resources.client import LakeClient, QueryTimeout
from lake_resources.serve import catalog
from lake_resources.serve.auth import LOCAL, Principal, TokenStore, is_loopback
from lake_resources.serve.formats import MEDIA_TYPES, encode
from lake_resources.serve.metrics import Metrics
from lake_resources.serve.rows import iter_batches, plan_rows
from lake_resources.settings import LakeSettings
from lake_resources.storage import PartitionNotFound
from lake_resources.storage.layout import PartitionDamaged

log = logging.getLogger("lake.serve")

_QUERY_ERRORS = (duckdb.BinderException, duckdb.ParserException, duckdb.CatalogException, duckdb.ConversionException,
                 duckdb.InvalidInputException, duckdb.PermissionException, duckdb.OutOfRangeException,
                 duckdb.NotImplementedException, duckdb.TypeMismatchException)

Format = Literal["arrow", "parquet", "json", "csv"]
MAX_SQL_ROWS = 1_000_000
MAX_SQL_SECONDS = 300.0


class SqlRequest(BaseModel):
    query: str = Field(description="read-only SQL over the lake's views (one per dataset)")
    params: list | None = None
    limit: int = Field(10_000, ge=1, le=MAX_SQL_ROWS, description="rows returned at most")
    timeout: float = Field(30.0, gt=0, le=MAX_SQL_SECONDS, description="seconds before the query is stopped")
    format: Format = "json"
    as_of: str | None = None


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "bad_input", headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.headers = status, message, kind, headers


class RequestInfo:
    """What the request log line and the metrics say about one request."""

    def __init__(self):
        self.who = "-"
        self.endpoint = "other"
        self.rows = 0
        self.error: str | None = None


def no_as_of(as_of: str | None) -> None:
    if as_of is not None:
        raise ApiError(501, "as_of: versioned (as-of) reads are not available in this lake yet; omit as_of "
                            "to read the current data", kind="not_implemented")


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


class _Observe:
    """ASGI middleware: request info for routes, then one structured log line and the metrics per request."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        info = RequestInfo()
        scope.setdefault("state", {})["lake"] = info
        status, sent, t0 = [500], [0], time.perf_counter()

        async def counting_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body":
                sent[0] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            seconds = time.perf_counter() - t0
            self.metrics.observe(info.endpoint, status[0], seconds, info.rows, sent[0])
            if status[0] >= 400 and info.error:
                self.metrics.error(info.error)
            log.info(json.dumps({
                "event": "request", "who": info.who, "method": scope["method"], "path": scope["path"],
                "query": scope.get("query_string", b"").decode("latin-1"), "status": status[0],
                "rows": info.rows, "bytes": sent[0], "ms": round(seconds * 1000, 1),
                **({"error": info.error} if info.error else {}),
            }))


class ClosingStream(StreamingResponse):
    """A streaming response whose sync generator is closed however the response ends (a client that
    disconnects mid-stream included), so its scan and its file handles are released at once."""

    def __init__(self, gen: Iterator[bytes], **kwargs):
        self._gen = gen
        super().__init__(self._pull(), **kwargs)

    async def _pull(self):
        done = object()
        while True:
            chunk = await run_in_threadpool(next, self._gen, done)
            if chunk is done:
                return
            yield chunk

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                self._gen.close()
            except ValueError:  # still running in its thread: it ends at its next yield
                pass


def create_app(settings: LakeSettings | None = None, tokens: TokenStore | None = None,
               client: LakeClient | None = None) -> FastAPI:
    client = client or LakeClient(settings)
    tokens = tokens or TokenStore([])
    metrics = Metrics()
    warm_lock = threading.Lock()
    app = FastAPI(title="quant-lake data server", version="1",
                  description="Every dataset of the lake over HTTP: discovery, coverage, rows as Arrow/Parquet/"
                              "JSON lines/CSV with cursor pagination, and read-only SQL. Bearer tokens.")
    app.state.client, app.state.metrics, app.state.tokens = client, metrics, tokens

    def _fail(request: Request, status: int, message: str, kind: str, headers: dict | None = None) -> JSONResponse:
        info = getattr(request.state, "lake", None)
        if info is not None:
            info.error = kind
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return _fail(request, exc.status, exc.message, exc.kind, exc.headers)

    @app.exception_handler(LakeValidationError)
    async def _bad_input(request: Request, exc: LakeValidationError):
        text = str(exc)
        status = 404 if text.startswith("unknown dataset") else 400
        return _fail(request, status, text, "not_found" if status == 404 else "bad_input")

    @app.exception_handler(UnknownSymbolError)
    async def _unknown_symbol(request: Request, exc: UnknownSymbolError):
        return _fail(request, 400, str(exc), "bad_input")

    @app.exception_handler(PartitionNotFound)
    async def _not_found(request: Request, exc: PartitionNotFound):
        return _fail(request, 404, str(exc), "not_found")

    @app.exception_handler(QueryTimeout)
    async def _timeout(request: Request, exc: QueryTimeout):
        return _fail(request, 408, str(exc), "timeout")

    @app.exception_handler(PartitionDamaged)
    async def _damaged(request: Request, exc: PartitionDamaged):
        return _fail(request, 503, str(exc), "damaged")

    @app.exception_handler(duckdb.Error)
    async def _sql_error(request: Request, exc: duckdb.Error):
        # The query's own mistakes (a column or function that does not exist, a bad cast, a path outside
        # the lake) are bad input; anything else from DuckDB is the server's failure.
        text = str(exc).splitlines()[0][:400] if str(exc) else type(exc).__name__
        if isinstance(exc, _QUERY_ERRORS):
            return _fail(request, 400, text, "bad_input")
        log.error("internal error on %s: %s: %s", request.url.path, type(exc).__name__, text)
        return _fail(request, 500, f"internal error ({type(exc).__name__}); the server log has the details", "internal")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        parts = ["{}: {}".format(".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "body", "path")) or "request",
                                 e.get("msg", "invalid")) for e in exc.errors()]
        return _fail(request, 400, "; ".join(parts), "bad_input")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return _fail(request, exc.status_code, str(exc.detail), "not_found" if exc.status_code == 404 else "bad_input")

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        log.error("internal error on %s: %s: %s", request.url.path, type(exc).__name__, str(exc).splitlines()[0][:300]
                  if str(exc) else "")
        return _fail(request, 500, f"internal error ({type(exc).__name__}); the server log has the details", "internal")

    def need(scope: str):
        def dependency(request: Request) -> Principal:
            info: RequestInfo = request.state.lake
            if not len(tokens):
                host = request.client.host if request.client else ""
                if not is_loopback(host):
                    raise ApiError(403, "this server has no tokens configured: it answers loopback clients only",
                                   kind="auth")
                who = LOCAL
            else:
                who = tokens.who(request.headers.get("authorization"))
                if who is None:
                    raise ApiError(401, "missing or unknown bearer token (Authorization: Bearer <token>)", kind="auth",
                                   headers={"WWW-Authenticate": "Bearer"})
            info.who = who.name
            if not who.may(scope):
                raise ApiError(403, f"token {who.name!r} has the {who.scope} scope; this needs the {scope} scope",
                               kind="auth")
            return who
        return dependency

    read, sql_scope = Depends(need("read")), Depends(need("sql"))

    def endpoint(request: Request, name: str) -> RequestInfo:
        info: RequestInfo = request.state.lake
        info.endpoint = name
        return info

    @app.get("/health", summary="Liveness: no token needed")
    def health(request: Request):
        endpoint(request, "health")
        return {"status": "ok", "datasets": len(DATASETS)}

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus text format")
    def get_metrics(request: Request, _who=read):
        endpoint(request, "metrics")
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/datasets", summary="Every dataset: tiers, partitioning, schema, rows and partitions")
    def datasets(request: Request, _who=read):
        endpoint(request, "datasets")
        with warm_lock:
            return {"datasets": [catalog.describe(client, name) for name in sorted(DATASETS)]}

    @app.get("/datasets/{name}", summary="One dataset: tiers, partitioning, schema, rows and partitions")
    def dataset(request: Request, name: str, _who=read):
        endpoint(request, "datasets")
        with warm_lock:
            return catalog.describe(client, name)

    @app.get("/datasets/{name}/partitions", summary="Partitions: tier, rows, time range, SHA-256")
    def partitions(request: Request, name: str, symbols: str | None = None, start: str | None = None,
                   end: str | None = None, tier: str | None = None, as_of: str | None = None, _who=read):
        info = endpoint(request, "partitions")
        no_as_of(as_of)
        with warm_lock:
            out = catalog.partitions(client, name, _csv(symbols), start, end, tier)
        info.rows = len(out)
        return {"dataset": name, "partitions": out}

    @app.get("/datasets/{name}/coverage", summary="Which days (and hours) are present, empty or missing")
    def coverage(request: Request, name: str, symbol: str | None = None, start: str | None = None,
                 end: str | None = None, granularity: Literal["day", "hour"] = "day", as_of: str | None = None,
                 _who=read):
        endpoint(request, "coverage")
        no_as_of(as_of)
        with warm_lock:
            return catalog.coverage(client, name, symbol, start, end, granularity)

    @app.get("/datasets/{name}/rows", summary="Rows, streamed in record batches (Arrow IPC stream by default)",
             responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}}})
    def rows(request: Request, name: str, symbols: str | None = None, start: str | None = None,
             end: str | None = None, columns: str | None = None,
             where: str | None = Query(None, description="column op literal [and ...]; ops = != < <= > >= in"),
             limit: int | None = None, cursor: str | None = None, format: Format = "arrow",
             tier: str | None = None, as_of: str | None = None, _who=read):
        info = endpoint(request, "rows")
        no_as_of(as_of)
        with warm_lock:
            plan = plan_rows(client, name, symbols=_csv(symbols), start=start, end=end, columns=_csv(columns),
                             where=where, limit=limit, cursor=cursor, tier=tier)
        batches = iter_batches(client, plan, warm_lock)
        first = next(batches, None)  # read errors answer with a status, before the first byte is sent
        headers = {"X-Lake-Partitions": str(len(plan.located))}
        if plan.next_cursor:
            headers["X-Lake-Next-Cursor"] = plan.next_cursor
        second = next(batches, None) if first is not None else None
        if second is None:  # the whole result is one batch: one body, no hops to the thread pool per chunk
            info.rows = first.height if first is not None else 0
            body = b"".join(encode([first] if first is not None else [], plan.schema, format))
            return Response(body, media_type=MEDIA_TYPES[format], headers=headers)

        def counted():
            for df in (first, second):
                info.rows += df.height
                yield df
            for df in batches:
                info.rows += df.height
                yield df

        def stream():
            metrics.stream(+1)
            try:
                yield from encode(counted(), plan.schema, format)
            except Exception as exc:  # after the first byte: the client sees the stream break off
                info.error = "stream_broken"
                log.error("row stream of %s broke off after %d rows: %s: %s", request.url.path, info.rows,
                          type(exc).__name__, (str(exc).splitlines() or [""])[0][:300])
                raise
            finally:
                batches.close()
                metrics.stream(-1)

        return ClosingStream(stream(), media_type=MEDIA_TYPES[format], headers=headers)

    @app.post("/sql", summary="Read-only SQL (the `lake sql` session), with a row and a time limit")
    def sql(request: Request, body: SqlRequest, _who=sql_scope):
        info = endpoint(request, "sql")
        no_as_of(body.as_of)
        with warm_lock:
            df = client.sql(body.query, body.params, max_rows=body.limit, timeout=body.timeout)
        truncated = df.height > body.limit
        df = df.head(body.limit)
        info.rows = df.height
        headers = {"X-Lake-Truncated": "true" if truncated else "false"}
        return Response(b"".join(encode([df], df.schema, body.format)), media_type=MEDIA_TYPES[body.format],
                        headers=headers)

    app.add_middleware(_Observe, metrics=metrics)
    return app
