"""``dedup review``: the plan in the browser, served by a local Starlette app.

The server binds 127.0.0.1 only and knows one random token, made for this run. The address
it prints carries the token in its fragment (``/#token=``), which browsers never send to a
server; the page keeps it for its tab (sessionStorage, scoped to this origin and port) and
sends it in the ``X-Dedup-Token`` header of every API request, which another page on this
machine cannot add (no CSRF, no CORS is ever allowed). No cookie is set: cookies are shared
by every port of 127.0.0.1. Pictures, which an ``<img>`` fetches without headers, are
fetched by signed addresses handed out in the plan document. A ``Host`` other than the
loopback address the server listens on is refused (DNS rebinding).

Files are addressed by their place in the plan (group, file), never by a path from the
request, and opened folder by folder from their root without following symlinks, so
nothing outside the reviewed folders, and nothing not in the plan, can be read through it.
Decisions are saved in the database as they are made (``review.decisions``). **Apply**
carries out the accepted groups through ``act.carry_out``, with the checks and journal of
``find --action``; the page asks for confirmation and sends back the counts it showed,
which must match what would be done.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dedup_cli.config import ACTIONS
from dedup_cli.core.files import FileInfo
from dedup_cli.core.methods import EXACT, GEOMETRY, PIXELS
from dedup_cli.errors import DedupError
from dedup_cli.media.decode import ImageDecodeError, decode_for_display
from dedup_cli.media.fsops import Pinned
from dedup_cli.media.provenance import photo_facts
from dedup_cli.media.raw import is_raw, raw_preview
from dedup_cli.review.decisions import restore_decisions, save_decision
from dedup_cli.review.session import ReviewGroup, ReviewSession
from dedup_cli.store import Store

TOKEN_HEADER = "x-dedup-token"
THUMBNAIL_SIDE = 360
# Formats every browser shows as they are; others (HEIC, TIFF, BMP, RAW previews) are
# decoded here and sent as JPEG.
BROWSER_FORMATS = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STATIC = {"review.js": "text/javascript", "review.css": "text/css"}
# Match kinds, from the firmest proof to the loosest: a group is as loose as its loosest file.
KINDS = (EXACT, PIXELS, GEOMETRY)


@dataclass
class WebReview:
    """The plan under review, its decisions and the runs made from the page."""

    session: ReviewSession
    stores: Sequence[Store]  # of the plan's folders; the first keeps journal and decisions
    allow_delete: bool = False
    title: str = "dedup review"
    runs: list[dict[str, Any]] = field(default_factory=list)  # applied from the page
    finish: Callable[[], None] | None = None  # ``find --review web``: back to the terminal
    lock: threading.Lock = field(default_factory=threading.Lock)
    thumbnails: ThumbnailCache = field(default_factory=lambda: ThumbnailCache())
    _facts: dict[Path, dict[str, str | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        restore_decisions(self.session, self.stores[0])

    @property
    def actions(self) -> list[str]:
        """What Apply may do: none when the terminal acts (``find --review web``); delete
        only when the server was started with ``--allow-delete``."""
        if self.finish is not None:
            return []
        return [a for a in ACTIONS if a != "delete" or self.allow_delete]

    def roots(self) -> list[Path]:
        plan = self.session.plan
        return [r.resolve() for r in (plan.roots or [plan.root])]

    def file(self, group: int, position: int) -> FileInfo:
        groups = self.session.groups
        if not (0 <= group < len(groups) and 0 <= position < len(groups[group].files)):
            raise LookupError("no such file in the plan")
        return groups[group].files[position]

    def save(self, group: ReviewGroup) -> None:
        save_decision(self.stores[0], group)

    def remember(self, group: ReviewGroup) -> None:
        """ "Not duplicates" is remembered by content the moment it is marked, in every
        folder's database (no ``find`` proposes the group again, Apply or not), and
        forgotten when the mark is taken back."""
        hashes = [f.content_hash for f in group.files if f.content_hash]
        for store in {id(s): s for s in self.stores}.values():
            if group.not_duplicates:
                store.remember_not_duplicates(hashes)
            else:
                store.forget_not_duplicates(hashes)

    def facts(self, file: FileInfo) -> dict[str, str | None]:
        """Format, capture time and camera, read once per file through its pinned folder."""
        absolute = Path(file.absolute)
        if absolute not in self._facts:
            try:
                with _pinned(self, file) as pinned, pinned.open_read() as handle:
                    self._facts[absolute] = photo_facts(handle)
            except (LookupError, OSError):
                self._facts[absolute] = photo_facts(io.BytesIO(b""))
        return self._facts[absolute]


def group_kind(group: ReviewGroup) -> str:
    """``related`` or the loosest proof among the files to remove (exact < pixels <
    geometry); ``reviewed`` when the reviewer chose another keeper."""
    if group.related is not None:
        return "related"
    methods = {group.method.get(i) for i in range(1, len(group.files))}
    return next((kind for kind in reversed(KINDS) if kind in methods), "reviewed")


def _file_facts(review: WebReview, group: ReviewGroup, position: int) -> dict[str, Any]:
    file = group.files[position]
    facts = review.facts(file)
    shown = review.session.plan.shown(file)
    folder, _, name = shown.rpartition("/")
    return {
        "index": position,
        "name": name,
        "folder": folder,
        "path": str(file.absolute),
        "size": file.size,
        "width": file.width,
        "height": file.height,
        "format": facts.get("format"),
        "captured": facts.get("captured"),
        "camera": facts.get("camera"),
        "similarity": group.similarity.get(position),
        "method": group.method.get(position),
    }


def group_state(review: WebReview, number: int) -> dict[str, Any]:
    """A group as the page shows it: files with their facts, and the decisions so far."""
    group = review.session.groups[number]
    freed = sum(group.files[i].size for i in group.remove if i != group.keeper)
    proposed = ""
    if group.related is None:
        proposed = review.session.plan.groups[number].why if group.keeper == 0 else "chosen here"
    return {
        "id": number,
        "kind": group_kind(group),
        "related": group.related,
        "why": proposed,
        "files": [_file_facts(review, group, k) for k in range(len(group.files))],
        "keeper": group.keeper,
        "remove": sorted(group.remove),
        "not_duplicates": group.not_duplicates,
        "accepted": group.accepted,
        "applied": group.applied,
        "bytes_to_free": 0 if group.not_duplicates else freed,
        "total_bytes": sum(f.size for f in group.files),
    }


def _pinned(review: WebReview, file: FileInfo) -> Pinned:
    """The file opened below the root it lies in, no symlink followed on the way; a file
    outside every root is refused."""
    absolute = Path(file.absolute)
    for root in review.roots():
        if absolute.is_relative_to(root):
            return Pinned(root, absolute.relative_to(root).as_posix())
    raise LookupError("outside the reviewed folders")


class ThumbnailCache:
    """JPEG thumbnails by file version (absolute path, device, inode, size, mtime): made once
    per version, the least recently shown dropped past ``capacity`` (tens of KB each).
    Relative paths repeat across folders, so they never name a thumbnail."""

    def __init__(self, capacity: int = 2048) -> None:
        self.capacity = capacity
        self._made: OrderedDict[tuple[str, int, int, int, int], bytes | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, pinned: Pinned, absolute: Path) -> bytes | None:
        info = pinned.lstat()
        key = (str(absolute), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        with self._lock:
            if key in self._made:
                self._made.move_to_end(key)
                return self._made[key]
        with pinned.open_read() as handle:
            if is_raw(absolute):  # the camera's embedded JPEG (media.raw)
                try:
                    thumb = _thumbnail(io.BytesIO(raw_preview(handle.read())))
                except ImageDecodeError:
                    thumb = None
            else:
                thumb = _thumbnail(handle)
        with self._lock:
            self._made[key] = thumb
            while len(self._made) > self.capacity:
                self._made.popitem(last=False)
        return thumb


def _thumbnail(source: BinaryIO) -> bytes | None:
    try:
        image = decode_for_display(source, THUMBNAIL_SIDE)
    except (OSError, ImageDecodeError):
        return None
    image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def _full(data: bytes) -> tuple[bytes, str] | None:
    """The file as the browser can show it: its own bytes for the formats browsers read,
    otherwise decoded and sent as JPEG."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            media = BROWSER_FORMATS.get(image.format or "")
    except Exception:  # noqa: BLE001 - an unreadable header: decode says why below
        media = None
    if media is not None:
        return data, media
    try:
        image = decode_for_display(io.BytesIO(data), 1 << 14)
    except (OSError, ImageDecodeError):
        return None
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92)
    return out.getvalue(), "image/jpeg"


def _token_ok(request: Request, token: str) -> bool:
    sent = request.headers.get(TOKEN_HEADER)
    return sent is not None and hmac.compare_digest(sent.encode(), token.encode())


def image_signature(token: str, group: int, position: int, full: bool) -> str:
    """What lets an ``<img>`` (which cannot send a header) fetch one picture of the plan:
    an HMAC of its place under the run's token, handed out only in the plan document."""
    message = f"{group}/{position}/{int(full)}".encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()[:32]


def _signed(request: Request, token: str) -> bool:
    # Before routing: the place is read from the path itself.
    found = re.fullmatch(r"/api/image/(-?\d{1,9})/(-?\d{1,9})", request.url.path)
    if found is None:
        return False
    group, position = int(found.group(1)), int(found.group(2))
    full = request.query_params.get("full") == "1"
    sent = request.query_params.get("s", "")
    expected = image_signature(token, group, position, full)
    return hmac.compare_digest(sent.encode(), expected.encode())


def _flag(body: dict[str, Any], name: str, current: bool) -> bool:
    value = body.get(name, current)
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


def _index(value: Any, count: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < count:
        raise ValueError(f"no such {what}")
    return value


def make_app(
    review: WebReview, token: str, allowed_hosts: Sequence[str] | None = None
) -> Starlette:
    """The reviewer's web app. ``allowed_hosts``: the ``Host`` values accepted (the server
    sets its loopback address and port; None accepts any, for tests only)."""
    static = resources.files("dedup_cli.review") / "web_static"

    async def page(request: Request) -> Response:
        # The page holds no secret: its script reads the token from the address's fragment,
        # which the browser never sends to any server.
        return Response((static / "index.html").read_bytes(), media_type="text/html")

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return Response("not found", 404)
        return Response((static / name).read_bytes(), media_type=STATIC[name])

    def plan_now() -> dict[str, Any]:
        with review.lock:
            groups = [group_state(review, k) for k in range(len(review.session.groups))]
        for group in groups:
            for file in group["files"]:
                where = f"/api/image/{group['id']}/{file['index']}"
                thumb = image_signature(token, group["id"], file["index"], False)
                full = image_signature(token, group["id"], file["index"], True)
                file["thumb"] = f"{where}?s={thumb}"
                file["full"] = f"{where}?full=1&s={full}"
        plan = review.session.plan
        return {
            "title": review.title,
            "roots": [str(r) for r in review.roots()],
            "model": plan.model,
            "threshold": plan.threshold,
            "keep_strategy": plan.keep_strategy,
            "actions": review.actions,
            "finish": review.finish is not None,
            "groups": groups,
            "runs": review.runs,
        }

    async def plan_document(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(plan_now))

    def image(request: Request) -> Response:
        full = request.query_params.get("full") == "1"
        try:
            group, position = int(request.path_params["group"]), int(request.path_params["file"])
            file = review.file(group, position)
            raw = is_raw(file.absolute)
            with _pinned(review, file) as pinned:
                if full:
                    data = pinned.read_bytes()
                    shown = _full(raw_preview(data) if raw else data)
                else:
                    thumb = review.thumbnails.get(pinned, Path(file.absolute))
        except (LookupError, ValueError, OSError, ImageDecodeError):
            return Response("not found", 404)
        # The browser may keep pictures a while: redrawing a card must not fetch them again.
        cache = {"Cache-Control": "private, max-age=600"}
        if full:
            if shown is None:
                return Response("not a readable image", 404)
            return Response(shown[0], media_type=shown[1], headers=cache)
        if thumb is None:
            return Response("not a readable image", 404)
        return Response(thumb, media_type="image/jpeg", headers=cache)

    def decide_now(body: dict[str, Any]) -> Response:
        with review.lock:
            try:
                number = _index(body.get("group"), len(review.session.groups), "group")
                group = review.session.groups[number]
                was_rejected = group.not_duplicates
                _apply_decision(group, body)
            except ValueError as exc:
                return JSONResponse({"error": f"bad decision: {exc}"}, 400)
            review.save(group)
            if group.not_duplicates != was_rejected:
                review.remember(group)
            return JSONResponse(group_state(review, number))

    def accept_all_now(body: dict[str, Any]) -> Response:
        with review.lock:
            changed = 0
            for group in review.session.groups:
                undecided = not (group.not_duplicates or group.accepted or group.applied)
                if group.related is None and undecided:
                    group.accepted = True
                    review.save(group)
                    changed += 1
        return JSONResponse({"accepted": changed})

    def pending_counts() -> dict[str, int]:
        plan = review.session.result(only_accepted=True)
        return {
            "groups": len(plan.groups),
            "files": plan.files_to_remove,
            "bytes": plan.bytes_to_free,
            "not_duplicates": len(plan.not_duplicates),
        }

    def pending_now(body: dict[str, Any]) -> Response:
        with review.lock:
            return JSONResponse(pending_counts())

    def apply_now(body: dict[str, Any]) -> Response:
        from dedup_cli.act.execute import carry_out, checked_quarantine

        action = body.get("action")
        if action not in review.actions:
            return JSONResponse({"error": f"action must be one of {review.actions}"}, 400)
        move_to = None
        if action == "move":
            to = body.get("to")
            if not isinstance(to, str) or not to.strip():
                return JSONResponse({"error": "moving needs a quarantine folder"}, 400)
            chosen = Path(to.strip()).expanduser()
            if not chosen.is_absolute():
                # Relative to what? The server's working folder is nowhere on the page.
                return JSONResponse({"error": "give the quarantine folder as a full path"}, 400)
            try:
                move_to = checked_quarantine(chosen, review.roots())
            except DedupError as exc:
                return JSONResponse({"error": str(exc)}, 400)
        with review.lock:
            counts = pending_counts()
            if body.get("confirm") != {"files": counts["files"], "bytes": counts["bytes"]}:
                return JSONResponse(
                    {"error": "the plan changed since it was confirmed; look again", **counts},
                    409,
                )
            reviewed = review.session.result(only_accepted=True)
            try:
                outcome = carry_out(
                    reviewed,
                    review.stores[0],
                    action,
                    move_to=move_to,
                    remember_in=review.stores[1:],
                )
            except DedupError as exc:
                return JSONResponse({"error": str(exc)}, 409)
            result: dict[str, Any] = {
                "not_duplicates_remembered": outcome.not_duplicates_remembered,
                "quarantine": None if move_to is None else str(move_to),
            }
            if outcome.report is not None:
                result.update(outcome.report.as_dict())
                run_id = outcome.report.run_id
                done = {str(entry["path"]) for entry in outcome.report.done}
                for group in review.session.groups:
                    # A group is carried out when a file of it went; one whose files were
                    # all skipped stays open, to be looked at again.
                    if group.accepted and any(
                        str(group.files[i].absolute) in done for i in group.remove
                    ):
                        group.applied = run_id
                        review.save(group)
                review.runs.append({"run_id": run_id, "action": action, "undone": False})
            return JSONResponse(result)

    def undo_now(body: dict[str, Any]) -> Response:
        from dedup_cli.act.execute import undo_run

        run_id = body.get("run_id")
        known = next((r for r in review.runs if r["run_id"] == run_id), None)
        if known is None or known["action"] != "move":
            return JSONResponse(
                {"error": "only a move made from this page can be undone here"}, 400
            )
        with review.lock:
            try:
                report = undo_run(review.stores[0], str(run_id))
            except DedupError as exc:
                return JSONResponse({"error": str(exc)}, 409)
            restored = set(report.restored)
            complete = not (report.skipped or report.failed or report.interrupted)
            known["undone"] = complete
            for group in review.session.groups:
                back = any(str(group.files[i].absolute) in restored for i in group.remove)
                if group.applied == run_id and (complete or back):
                    group.applied = None
                    review.save(group)
        return JSONResponse({**report.as_dict(), "complete": complete})

    def finish_now(body: dict[str, Any]) -> Response:
        if review.finish is None:
            return JSONResponse({"error": "nothing waits for this review"}, 400)
        review.session.finish()
        review.finish()
        return JSONResponse({"finished": True})

    def with_body(work: Callable[[dict[str, Any]], Response]) -> Callable[[Request], Any]:
        """A handler that reads the JSON body, then does ``work`` in a worker thread: work
        that waits on the review's lock (an Apply of thousands of files) never stops the
        server from answering meanwhile."""

        async def handler(request: Request) -> Response:
            body = await _json_body(request) if request.method == "POST" else {}
            return await run_in_threadpool(work, body)

        return handler

    routes = [
        Route("/", page),
        Route("/static/{name}", asset),
        Route("/api/plan", plan_document),
        Route("/api/image/{group}/{file}", image),
        Route("/api/pending", with_body(pending_now)),
        Route("/api/decision", with_body(decide_now), methods=["POST"]),
        Route("/api/accept-all", with_body(accept_all_now), methods=["POST"]),
        Route("/api/apply", with_body(apply_now), methods=["POST"]),
        Route("/api/undo", with_body(undo_now), methods=["POST"]),
        Route("/api/finish", with_body(finish_now), methods=["POST"]),
    ]

    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        host = request.headers.get("host", "")
        if allowed_hosts is not None and host not in allowed_hosts:
            return Response("forbidden host", 403)
        path = request.url.path
        if path.startswith("/api/image/"):
            if request.method != "GET" or not _signed(request, token):
                return Response("forbidden", 403)
        elif path.startswith("/api/"):
            # No cookie is ever set (a cookie is shared by every port of 127.0.0.1): the
            # token travels in a header, which no other page can add to a request.
            if not _token_ok(request, token):
                return Response("forbidden", 403)
            content_type = request.headers.get("content-type", "")
            if request.method != "GET" and not content_type.startswith("application/json"):
                return Response("JSON only", 415)
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    return Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)])


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {}


def _apply_decision(group: ReviewGroup, body: dict[str, Any]) -> None:
    """Set a group's keeper, removals and marks from the page; a related pair and a group
    already carried out are never edited, and the keeper is never removed."""
    if group.related is not None:
        raise ValueError("a related pair is shown, never edited")
    if group.applied:
        raise ValueError("this group was carried out; undo the run first")
    count = len(group.files)
    keeper = _index(body.get("keeper", group.keeper), count, "file")
    chosen = body.get("remove", sorted(group.remove))
    if not isinstance(chosen, list):
        raise ValueError("remove must be a list of files")
    remove = {_index(i, count, "file") for i in chosen}
    not_duplicates = _flag(body, "not_duplicates", group.not_duplicates)
    accepted = _flag(body, "accepted", group.accepted)
    group.keeper = keeper
    group.remove = remove - {keeper}
    group.not_duplicates = not_duplicates
    group.accepted = accepted and not not_duplicates


def new_token() -> str:
    return secrets.token_urlsafe(24)


def prepare_server(
    review: WebReview, port: int = 0, *, returns_to_terminal: bool = False
) -> tuple[Any, Any, str]:
    """A uvicorn server for the review, its socket bound to 127.0.0.1 (``port`` 0: any free
    port), and the address to open, token included."""
    import socket

    import uvicorn

    from dedup_cli.errors import UsageError

    token = new_token()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(128)  # a browser opened at once waits in the queue, never refused
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None
    bound = sock.getsockname()[1]
    hosts = [f"127.0.0.1:{bound}", f"localhost:{bound}"]
    server = uvicorn.Server(
        uvicorn.Config(make_app(review, token, hosts), log_level="warning", lifespan="off")
    )
    if returns_to_terminal:

        def stop() -> None:
            server.should_exit = True

        review.finish = stop
    return server, sock, f"http://127.0.0.1:{bound}/#token={token}"


def serve(
    review: WebReview,
    port: int = 0,
    *,
    open_browser: bool = True,
    announce: Callable[[str], None] = print,
    returns_to_terminal: bool = False,
) -> None:
    """Serve the review until Ctrl-C (uvicorn stops cleanly; this returns), or, with
    ``returns_to_terminal``, until the page's "Finish review"; ``announce`` gets the URL."""
    import webbrowser

    server, sock, url = prepare_server(review, port, returns_to_terminal=returns_to_terminal)
    announce(url)
    if open_browser:
        threading.Timer(0.5, webbrowser.open, [url]).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn has shut down; it hands the Ctrl-C back, which here means "stop"
    finally:
        sock.close()
