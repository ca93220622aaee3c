"""The review page as a local web app: FastAPI routes over a `ReviewSession` (Jinja2 pages, JSON actions, photos).

Routes (numbers count the queue from 1; a candidate is named by its rank on the page):

    GET  /                                  the first photo still open
    GET  /review/{n}                        photo n beside its answers, with the actions and shortcuts
    GET  /api/queue                         every photo with its standing decision
    GET  /api/photos/{n}                    photo n's answers (ids, calibrated probabilities, new_individual)
    POST /api/photos/{n}/confirm            {"individual_id": ...}: the photo shows that individual
    POST /api/photos/{n}/new                {"individual_id": ... or null for a suggested one}: a new individual
    POST /api/photos/{n}/skip               no call for now
    POST /api/undo                          {"photo": n or null}: take back photo n's decision, or the last one
    GET  /images/query/{n}                  the query photo (JPEG, its crop box outlined)
    GET  /images/catalogue/{token}          a catalogue photo (JPEG)
    GET  /images/pair/{n}/{rank}            local-feature correspondences of photo n and that candidate (PNG)

Errors answer JSON `{"error": "..."}`: 404 for an unknown photo or image, 409 for a decision the photo's state
does not allow (decided twice, an id taken, nothing to undo), 422 for bad input.
"""

from __future__ import annotations

import functools
import io
import socket
from dataclasses import asdict
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from pydantic import BaseModel

from spotter.errors import SpotterError
from spotter.metrics import NEW_INDIVIDUAL
from spotter.whale.review.session import DecisionConflict, ReviewSession, UnknownPhoto, image_token

HERE = Path(__file__).resolve().parent
QUERY_SIDE = 720  # longest side of a query photo on the page, in pixels
CANDIDATE_SIDE = 320
MAX_SIDE = 1600
SHORTCUTS = (
    ("1–{top}", "the answer at that rank (confirm it; at new_individual: mark new)"),
    ("N", "new individual (the id in the box)"),
    ("S", "skip"),
    ("U", "undo the last decision"),
    ("← →", "previous / next photo"),
)


class Choice(BaseModel):
    """The body of confirm and new: the individual's id (new: None for a suggested one)."""

    individual_id: str | None = None


class UndoRequest(BaseModel):
    """The body of undo: the photo whose decision to take back (None: the most recent decision)."""

    photo: int | None = None


def create_app(session: ReviewSession) -> FastAPI:
    """The review app over a session (the caller serves it, e.g. with uvicorn, or tests it with a TestClient)."""
    app = FastAPI(title="spotter whale review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.session = session
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    # autoescape on: the templates are .j2 files, which Jinja2 would not escape by their name
    templates = Jinja2Templates(env=Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True))

    for error, status in ((UnknownPhoto, 404), (DecisionConflict, 409), (SpotterError, 422)):
        app.add_exception_handler(error, _error_handler(status))

    @app.get("/", include_in_schema=False)
    def first_open() -> RedirectResponse:
        return RedirectResponse(f"/review/{session.next_open() or 1}", status_code=303)

    @app.get("/review/{number}", response_class=HTMLResponse)
    def review_page(request: Request, number: int) -> HTMLResponse:
        data = photo_data(session, number)
        context = {
            "photo": data,
            "queue": queue_data(session),
            "counts": session.counts(),
            "user": session.user,
            "run_name": Path(session.run).name,
            "shortcuts": [(key.format(top=min(session.top, 9)), meaning) for key, meaning in SHORTCUTS],
            "total": len(session.items),
        }
        return templates.TemplateResponse(request, "review.html.j2", context)

    @app.get("/api/queue")
    def queue() -> dict:
        return {"photos": queue_data(session), "counts": session.counts()}

    @app.get("/api/photos/{number}")
    def photo(number: int) -> dict:
        return photo_data(session, number)

    @app.post("/api/photos/{number}/confirm")
    def confirm(number: int, choice: Choice) -> dict:
        return _answer(session, number, session.confirm(number, choice.individual_id))

    @app.post("/api/photos/{number}/new")
    def new(number: int, choice: Choice | None = None) -> dict:
        return _answer(session, number, session.new(number, choice.individual_id if choice else None))

    @app.post("/api/photos/{number}/skip")
    def skip(number: int) -> dict:
        return _answer(session, number, session.skip(number))

    @app.post("/api/undo")
    def undo(body: UndoRequest | None = None) -> dict:
        decision = session.undo(body.photo if body else None)
        number = session.number_of(decision.photo)
        return {"decision": asdict(decision), "next": f"/review/{number}"}

    @app.get("/images/query/{number}")
    def query_image(number: int, side: int = QUERY_SIDE) -> Response:
        item = session.item(number)
        return Response(photo_jpeg(str(item.photo), item.box, _side(side), _mtime(item.photo)), media_type="image/jpeg")

    @app.get("/images/catalogue/{token}")
    def catalogue_image(token: str, side: int = CANDIDATE_SIDE) -> Response:
        path, _ = session.catalogue_photo(token)
        return Response(photo_jpeg(str(path), None, _side(side), _mtime(path)), media_type="image/jpeg")

    @app.get("/images/pair/{number}/{rank}")
    def pair_image(number: int, rank: int) -> Response:
        try:  # a module of its own (OpenCV); the page works without it
            from spotter.whale.local_features import draw_correspondences
        except ImportError as err:
            return PlainTextResponse(
                f"local-feature matching is not available in this spotter ({err})", status_code=404
            )
        item = session.item(number)
        answer = next((c for c in session.match(number).candidates if c.rank == rank), None)
        if answer is None or not answer.catalogue_photo:
            raise UnknownPhoto(f"photo {number} has no catalogue candidate at rank {rank}")
        path, box = session.catalogue_photo(image_token(answer.catalogue_photo))
        drawing = draw_correspondences(item.photo, item.box, path, box)
        buffer = io.BytesIO()
        drawing.save(buffer, format="PNG")
        return Response(buffer.getvalue(), media_type="image/png")

    return app


def photo_data(session: ReviewSession, number: int) -> dict:
    """Photo `number` as the page and `/api/photos/{n}` show it: its answers and its standing decision."""
    item = session.item(number)
    match = session.match(number)
    candidates = []
    for c in match.candidates:
        known = c.individual_id != NEW_INDIVIDUAL
        candidates.append(
            {
                "rank": c.rank,
                "individual_id": c.individual_id,
                "probability": c.probability,
                "score": c.score,
                "catalogue_photo": c.catalogue_photo,
                "inliers": getattr(c, "inliers", None),  # local-feature inliers, when the run re-ranks by them
                "image": f"/images/catalogue/{image_token(c.catalogue_photo)}" if known and c.catalogue_photo else None,
                "pair": f"/images/pair/{number}/{c.rank}" if known and c.catalogue_photo else None,
            }
        )
    decision = session.decision(number)
    return {
        "number": number,
        "photo": str(item.photo),
        "name": item.photo.name,
        "box": list(item.box) if item.box else None,
        "image": f"/images/query/{number}",
        "new_threshold": match.new_threshold,
        "looks_new": match.looks_new,
        "candidates": candidates,
        "decision": asdict(decision) if decision else None,
        "catalogued_as": session.catalogued_as(number),
        "open": session.is_open(number),
        "suggested_new_id": session.suggest_new_id(),
        "previous": number - 1 if number > 1 else None,
        "next": number + 1 if number < len(session.items) else None,
    }


def queue_data(session: ReviewSession) -> list[dict]:
    """Every queue photo with its standing decision (the page's strip, `/api/queue`)."""
    out = []
    for item in session.items:
        decision = session.decision(item.number)
        catalogued = session.catalogued_as(item.number)
        out.append(
            {
                "number": item.number,
                "photo": str(item.photo),
                "name": item.photo.name,
                "status": decision.action if decision else ("catalogued" if catalogued else "open"),
                "individual_id": decision.individual_id if decision else catalogued,
                "user": decision.user if decision else None,
            }
        )
    return out


def _answer(session: ReviewSession, number: int, decision) -> dict:
    following = session.next_open(number)
    return {"decision": asdict(decision), "next": f"/review/{following or number}"}


def _error_handler(status: int):
    async def handle(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=status)

    return handle


def _side(side: int) -> int:
    if not 16 <= side <= MAX_SIDE:
        raise SpotterError(f"side must be within 16..{MAX_SIDE} pixels, got {side}")
    return side


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        raise UnknownPhoto(f"photo no longer on disk: {path}") from None


@functools.lru_cache(maxsize=512)
def photo_jpeg(path: str, box: tuple | None, side: int, mtime: int) -> bytes:
    """A photo scaled to `side` pixels at most as JPEG bytes, its crop box outlined (cached by file and time)."""
    from PIL import Image, ImageDraw, ImageOps

    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise SpotterError(f"unreadable image ({type(err).__name__})", path) from None
    if box is not None:
        width = max(2, round(max(image.size) / 200))
        ImageDraw.Draw(image).rectangle(box, outline=(255, 196, 0), width=width)
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def listen_socket(port: int) -> socket.socket:
    """A socket bound to 127.0.0.1:`port` (0: any free port), taken before the slow start so a busy port is
    refused at once, and handed to the server so no other process can take it in between.

    Raises:
        SpotterError: If the port is out of range or in use.
    """
    if not 0 <= port <= 65535:
        raise SpotterError(f"--port must be within 0..65535, got {port}")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as err:
        sock.close()
        raise SpotterError(
            f"cannot listen on 127.0.0.1:{port} ({err.strerror}); pick another --port (0: any free one)"
        ) from None
    return sock


def serve(app: FastAPI, sock: socket.socket) -> None:
    """Serves the app with uvicorn on a bound socket until interrupted (Ctrl+C)."""
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])
