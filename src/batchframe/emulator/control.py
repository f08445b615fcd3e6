"""The /_emulator/* control endpoints: the Emulator methods, for tests in another process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .faults import FaultPlan
from .server import Request, Response, Router

if TYPE_CHECKING:
    from .app import App


def stats(app: App) -> dict[str, Any]:
    app.refresh_all()
    with app.state.lock:
        return app.state.stats()


def set_faults(app: App, plan: FaultPlan) -> None:
    with app.state.lock:
        app.state.plan = plan.copy()


def advance(app: App, seconds: float) -> float:
    with app.state.lock:
        app.state.clock.advance(seconds)
        return app.state.clock.offset


def reset(app: App) -> None:
    with app.state.lock:
        app.state.reset()


def register(router: Router, app: App) -> None:
    def get_stats(req: Request) -> Response:
        return Response.json(stats(app))

    def get_faults(req: Request) -> Response:
        with app.state.lock:
            return Response.json(app.state.plan.to_dict())

    def post_faults(req: Request) -> Response:
        plan = FaultPlan.from_dict(req.json_object())
        set_faults(app, plan)
        return Response.json(plan.to_dict())

    def post_advance(req: Request) -> Response:
        seconds = req.json_object().get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValueError('advance needs {"seconds": <number>}')
        offset = advance(app, float(seconds))
        return Response.json({"clock_offset": offset, "now": app.state.clock.now()})

    def post_reset(req: Request) -> Response:
        reset(app)
        return Response.json({"reset": True})

    router.add("GET", "/_emulator/stats", get_stats)
    router.add("GET", "/_emulator/faults", get_faults)
    router.add("POST", "/_emulator/faults", post_faults)
    router.add("POST", "/_emulator/advance", post_advance)
    router.add("POST", "/_emulator/reset", post_reset)
