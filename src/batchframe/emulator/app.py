"""Request dispatch: counting, auth, injected HTTP faults, routing and error envelopes."""

from __future__ import annotations

import logging
import traceback

from . import anthropic_batch, control, ids, openai_batch
from .anthropic_api import AnthropicApi
from .errors import ApiError, anthropic_envelope, is_anthropic_path, openai_envelope
from .openai_api import OpenAIApi
from .server import Request, Response, Router
from .state import State

log = logging.getLogger("batchframe.emulator")


class App:
    def __init__(self, state: State) -> None:
        self.state = state
        self.router = Router()
        OpenAIApi(state).register(self.router)
        AnthropicApi(state).register(self.router)
        self.control = Router()
        control.register(self.control, self)

    def refresh_all(self) -> None:
        """Bring every batch up to the clock, so output files exist before files are listed."""
        with self.state.lock:
            for batch in list(self.state.batches.values()):
                if batch.provider == "openai":
                    openai_batch.materialize(self.state, batch)
                else:
                    anthropic_batch.materialize(self.state, batch)

    def dispatch(self, req: Request) -> Response:
        if req.path.startswith("/_emulator/"):
            return self._control(req)
        anthropic = is_anthropic_path(req.path)
        rid = ids.anthropic_request_id() if anthropic else "req_" + ids.request_id()
        try:
            resp = self._api(req)
        except ApiError as err:
            resp = self._error(err, anthropic, rid)
        except Exception as exc:  # a bug here must still reach the client as an answer
            log.error("emulator error on %s %s\n%s", req.method, req.path, traceback.format_exc())
            resp = self._error(ApiError(500, f"Internal emulator error: {exc!r}"), anthropic, rid)
        resp.headers.setdefault("x-request-id", rid)
        if anthropic:
            resp.headers.setdefault("request-id", rid)
        return resp

    def _api(self, req: Request) -> Response:
        route, params, path_known = self.router.match(req.method, req.path)
        name = f"{req.method} {route.template if route else req.path}"
        with self.state.lock:
            self.state.counters.http_calls[name] += 1
            rule = self.state.plan.match_http_error(req.method, req.path)
            if rule is not None:
                self.state.counters.http_errors_injected += 1
        if rule is not None:
            headers = {}
            if rule.get("retry_after") is not None:
                headers["retry-after"] = str(rule["retry_after"])
            if rule.get("retry_after_ms") is not None:
                headers["retry-after-ms"] = str(rule["retry_after_ms"])
            if rule.get("should_retry") is not None:
                headers["x-should-retry"] = "true" if rule["should_retry"] else "false"
            message = (
                rule.get("message") or f"Injected HTTP {rule['status']} (FaultPlan.http_errors)."
            )
            raise ApiError(int(rule["status"]), str(message), headers=headers)
        if "authorization" not in req.headers and "x-api-key" not in req.headers:
            raise ApiError(
                401, "You didn't provide an API key (Authorization: Bearer or x-api-key)."
            )
        if is_anthropic_path(req.path) and not req.headers.get("anthropic-version"):
            # As the real API: any version is accepted, but one must be sent.
            raise ApiError(400, "anthropic-version: header is required")
        if route is None:
            status = 405 if path_known else 404
            raise ApiError(status, f"Invalid URL ({req.method} {req.path})")
        req.params = params
        resp = route.handler(req)
        if resp.download:
            with self.state.lock:
                if self.state.plan.take("truncate_downloads"):
                    resp.truncate = True
                    self.state.counters.truncated_downloads += 1
        return resp

    def _error(self, err: ApiError, anthropic: bool, rid: str) -> Response:
        if anthropic:
            body = anthropic_envelope(err.status, err.message, rid)
        else:
            body = openai_envelope(err.status, err.message, err.param, err.code)
        resp = Response.json(body, err.status)
        resp.headers.update(err.headers)
        return resp

    def _control(self, req: Request) -> Response:
        route, params, _ = self.control.match(req.method, req.path)
        if route is None:
            return Response.json({"error": f"unknown control call {req.method} {req.path}"}, 404)
        req.params = params
        try:
            return route.handler(req)
        except (ValueError, TypeError, ApiError) as exc:
            return Response.json({"error": str(exc)}, 400)
