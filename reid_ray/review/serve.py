"""Review the mined pairs in a real Label Studio, then fold the verdicts back in.

    python -m reid_ray.review.serve --out DIR [--port 8080]                  # start, set up, serve until Ctrl-C
    python -m reid_ray.review.serve --out DIR --export EXPORT.json           # export the verdicts (Label Studio JSON)
    python jobs/form_pairs.py --out DIR --verdicts EXPORT.json
    python -m reid_ray.review.serve --out DIR --url http://host:8080 --token TOKEN [--document-root ROOT]

Started here, Label Studio (its own virtual environment: scripts/install_label_studio.sh) keeps its SQLite data
in DIR/label_studio/ and serves local files rooted at DIR, so the tasks' images (``/data/local-files/?d=review/
<pair_id>.png``, as the pair job writes them by default) are DIR/review's packets. The first start creates the
admin user (--username/--password, else ``admin@localhost`` with a generated password, kept in
DIR/label_studio/credentials.json); other annotators sign up with the invite link printed. The project (titled as
the run's review.project_title, keyed to DIR by its description) gets DIR/review/labeling_config.xml, a local
storage on DIR/review (Label Studio serves a local file only under a project's storage) and the tasks of
DIR/review/tasks.json that it does not hold yet, so a rerun after more mining adds only the new pairs.

--url connects to a running Label Studio instead, with --token (a legacy token, sent as ``Token``, or a personal
access token, a JWT exchanged at /api/token/refresh/ for ``Bearer`` access tokens) or --username/--password
(a session login). Its LOCAL_FILES_DOCUMENT_ROOT must hold DIR (--document-root, default DIR).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from reid_ray.io import atomic_paths
from reid_ray.review.json_stream import iter_json_array
from reid_ray.review.label_studio import CONFIG_FILE, LOCAL_FILES_URL, RECORDS_FILE, TASKS_FILE, iter_records
from reid_ray.review.verdicts import ADJUDICATION_TASKS_FILE
from reid_ray.run_state import RUN_STATE

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV = REPO_ROOT / ".venv-label-studio"  # scripts/install_label_studio.sh
TEMPLATE_DB = VENV / "template" / "label_studio.sqlite3"  # migrated once by the install script
DB_FILE = "label_studio.sqlite3"
DATA_DIR = "label_studio"  # under --out
CREDENTIALS_FILE = "credentials.json"
DEFAULT_USERNAME = "admin@localhost"
TITLE_MIN, TITLE_MAX = 3, 50  # Label Studio's PROJECT_TITLE_MIN_LEN / MAX_LEN
IMPORT_BATCH = 1000
PAGE_SIZE = 1000
EXPORT_FORMAT = "JSON"  # Label Studio's own JSON: what jobs/form_pairs.py reads
NEVER_SYNC = "^$"  # the local storage's regex_filter: no file has an empty name


class LabelStudioError(RuntimeError):
    """Label Studio answered with an error or could not be started; the message says which call and why."""


# ---------------------------------------------------------------- the server process


def label_studio_exe() -> str:
    """LABEL_STUDIO_EXE, else the project's own environment (scripts/install_label_studio.sh), else PATH."""
    for exe in (os.environ.get("LABEL_STUDIO_EXE"), str(VENV / "bin" / "label-studio"), shutil.which("label-studio")):
        if exe and Path(exe).is_file() and os.access(exe, os.X_OK):
            return exe
    raise LabelStudioError("label-studio is not installed: run scripts/install_label_studio.sh "
                           "(it goes into .venv-label-studio/, beside this project's environment)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Credentials:
    username: str
    password: str
    token: str | None = None  # the admin's legacy API token

    @classmethod
    def load_or_create(cls, data_dir: Path, username: str | None, password: str | None, token: str | None) -> "Credentials":
        """What was given, else what the first start kept in ``data_dir/credentials.json``, else new ones (kept there:
        Label Studio makes the admin only on the first start, so a later start must log in with the same)."""
        path = data_dir / CREDENTIALS_FILE
        kept = json.loads(path.read_text()) if path.exists() else {}
        creds = cls(username or kept.get("username") or DEFAULT_USERNAME,
                    password or kept.get("password") or secrets.token_urlsafe(12),
                    token or kept.get("token") or secrets.token_hex(20))
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(creds.__dict__, f)
        return creds


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen
    log_path: Path

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: SIGINT may be ignored (a server started from a background job)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)


def start_server(
    data_dir: str | Path,
    document_root: str | Path,
    creds: Credentials,
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    timeout_s: float = 300.0,
) -> RunningServer:
    """``label-studio start`` with SQLite in ``data_dir``, local files served from ``document_root``, the admin user
    and its legacy API token from ``creds`` (legacy tokens enabled), signup only by invite link, no calls home.
    Returns once /health answers; a fresh ``data_dir`` starts from the migrated template database when there is one."""
    data_dir, document_root = Path(data_dir).resolve(), Path(document_root).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if not (data_dir / DB_FILE).exists() and TEMPLATE_DB.is_file():
        shutil.copyfile(TEMPLATE_DB, data_dir / DB_FILE)  # skips a minute of migrations on a first start
    port = port or free_port()
    env = {
        **os.environ,
        "LABEL_STUDIO_USERNAME": creds.username,
        "LABEL_STUDIO_PASSWORD": creds.password,
        "LABEL_STUDIO_USER_TOKEN": creds.token or "",
        "LOCAL_FILES_SERVING_ENABLED": "true",
        "LOCAL_FILES_DOCUMENT_ROOT": str(document_root),
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
    }
    cmd = [label_studio_exe(), "start", "--no-browser", "--enable-legacy-api-token", "--data-dir", str(data_dir),
           "--internal-host", host, "--port", str(port)]
    log_path = data_dir / "server.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(cmd, cwd=data_dir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    server = RunningServer(f"http://{host}:{port}", proc, log_path)
    try:
        wait_for_health(server.url, proc, log_path, timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


def wait_for_health(url: str, proc: subprocess.Popen | None, log_path: Path | None, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with requests.Session() as s:
        s.trust_env = False  # loopback: never through a proxy
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise LabelStudioError(f"label-studio exited with {proc.returncode}: {_tail(log_path)}")
            with contextlib.suppress(requests.RequestException):
                if s.get(f"{url}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.5)
    raise LabelStudioError(f"Label Studio did not answer {url}/health within {timeout_s:.0f} s: {_tail(log_path)}")


def _tail(path: Path | None, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path is not None and path.exists() else ""


@contextlib.contextmanager
def running_server(*args, **kwargs) -> Iterator[RunningServer]:
    server = start_server(*args, **kwargs)
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------- the HTTP API


class LabelStudio:
    """The few Label Studio API calls the review needs, over ``requests``.

    Authenticates with ``token`` (legacy: ``Authorization: Token``; a personal access token, which is a JWT refresh
    token: exchanged for short-lived ``Bearer`` access tokens, again on a 401) or ``username``/``password`` (the
    login form; then a session cookie and Django's CSRF header on writes, as the browser does). With neither it
    starts anonymous, for ``signup``."""

    def __init__(self, url: str, *, token: str | None = None, username: str | None = None, password: str | None = None,
                 timeout_s: float = 120.0) -> None:
        self.url, self.timeout_s = url.rstrip("/"), timeout_s
        self.session = requests.Session()
        self.session.trust_env = url.startswith("https://")  # a proxy never sits in front of loopback
        self._refresh_token: str | None = None
        if token:
            if _is_jwt(token):
                self._refresh_token = token
                self._refresh_access()
            else:
                self.session.headers["Authorization"] = f"Token {token}"
        elif username and password:
            self.login(username, password)

    # -- auth
    def _refresh_access(self) -> None:
        r = self.session.post(f"{self.url}/api/token/refresh/", json={"refresh": self._refresh_token}, timeout=self.timeout_s)
        _check(r, "exchange the personal access token (POST /api/token/refresh/)")
        self.session.headers["Authorization"] = f"Bearer {r.json()['access']}"

    def login(self, username: str, password: str) -> None:
        """The login form, as a browser posts it: the session cookie then authenticates the API calls."""
        self.session.get(f"{self.url}/user/login/", timeout=self.timeout_s)
        r = self.session.post(f"{self.url}/user/login/", timeout=self.timeout_s, allow_redirects=False,
                              data={"email": username, "password": password, "csrfmiddlewaretoken": self._csrf()},
                              headers={"Referer": f"{self.url}/user/login/"})
        if r.status_code != 302 or "sessionid" not in self.session.cookies:
            raise LabelStudioError(f"login as {username} at {self.url}/user/login/ failed (HTTP {r.status_code})")

    def signup(self, invite_url: str, username: str, password: str) -> None:
        """A new annotator signing up through an invite link (then logged in)."""
        self.session.get(f"{self.url}/user/signup/", timeout=self.timeout_s)
        r = self.session.post(f"{self.url}{invite_url}" if invite_url.startswith("/") else invite_url, timeout=self.timeout_s,
                              allow_redirects=False, headers={"Referer": f"{self.url}/user/signup/"},
                              data={"email": username, "password": password, "csrfmiddlewaretoken": self._csrf()})
        if r.status_code != 302 or "sessionid" not in self.session.cookies:
            raise LabelStudioError(f"signup of {username} failed (HTTP {r.status_code}): {r.text[:300]}")

    def _csrf(self) -> str:
        return self.session.cookies.get("csrftoken", "")

    def request(self, method: str, path: str, what: str, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if method != "GET" and "sessionid" in self.session.cookies:
            headers = {"X-CSRFToken": self._csrf(), "Referer": f"{self.url}/", **headers}
        kwargs.setdefault("timeout", self.timeout_s)
        r = self.session.request(method, f"{self.url}{path}", headers=headers, **kwargs)
        if r.status_code == 401 and self._refresh_token:  # the access token expired
            self._refresh_access()
            r = self.session.request(method, f"{self.url}{path}", headers=headers, **kwargs)
        return _check(r, what)

    # -- calls
    def whoami(self) -> dict:
        return self.request("GET", "/api/current-user/whoami", "who am I").json()

    def invite_url(self) -> str:
        """The organisation's signup link (other annotators join through it)."""
        return self.request("GET", "/api/invite", "get the invite link").json()["invite_url"]

    def projects(self) -> list[dict]:
        out, page = [], 1
        while True:
            data = self.request("GET", "/api/projects/", "list projects", params={"page": page, "page_size": 100}).json()
            out += data["results"]
            if not data.get("next"):
                return out
            page += 1

    def create_project(self, title: str, label_config: str, description: str) -> dict:
        return self.request("POST", "/api/projects/", f"create project {title!r}",
                            json={"title": title, "label_config": label_config, "description": description}).json()

    def update_project(self, project_id: int, **fields) -> dict:
        return self.request("PATCH", f"/api/projects/{project_id}", "update the project", json=fields).json()

    def local_storages(self, project_id: int) -> list[dict]:
        return self.request("GET", "/api/storages/localfiles/", "list local storages", params={"project": project_id}).json()

    def add_local_storage(self, project_id: int, path: Path, title: str) -> dict:
        """A local-files source storage on ``path`` (under the server's LOCAL_FILES_DOCUMENT_ROOT): Label Studio
        serves /data/local-files/ only under a storage of a project the user may see. Its filter matches no file, so
        a sync from the UI adds nothing: the tasks are imported from tasks.json, with their pair ids."""
        return self.request("POST", "/api/storages/localfiles/", f"connect local storage {path}",
                            json={"project": project_id, "path": str(path), "title": title, "use_blob_urls": True,
                                  "regex_filter": NEVER_SYNC}).json()

    def project_tasks(self, project_id: int) -> Iterator[dict]:
        """The project's tasks, a page at a time."""
        page, seen = 1, 0
        while True:
            data = self.request("GET", "/api/tasks/", f"list tasks of project {project_id}",
                                params={"project": project_id, "page": page, "page_size": PAGE_SIZE}).json()
            yield from data["tasks"]
            seen += len(data["tasks"])
            if not data["tasks"] or seen >= data.get("total", 0):
                return
            page += 1

    def task(self, task_id: int) -> dict:
        return self.request("GET", f"/api/tasks/{task_id}", f"get task {task_id}").json()

    def import_tasks(self, project_id: int, tasks: list[dict]) -> int:
        r = self.request("POST", f"/api/projects/{project_id}/import", f"import {len(tasks)} tasks", json=tasks)
        return int(r.json().get("task_count", len(tasks)))

    def annotate(self, task_id: int, verdict: str, *, lead_time: float | None = None, from_name: str = "verdict",
                 to_name: str = "packet") -> dict:
        """One annotation of the review config's single choice, as the labelling page submits it (with the seconds
        the annotator spent, which the page measures and QA reads)."""
        result = [{"from_name": from_name, "to_name": to_name, "type": "choices", "value": {"choices": [verdict]}}]
        body = {"result": result} | ({"lead_time": lead_time} if lead_time is not None else {})
        return self.request("POST", f"/api/tasks/{task_id}/annotations/", f"annotate task {task_id}", json=body).json()

    def export(self, project_id: int, dest: str | Path, export_type: str = EXPORT_FORMAT) -> Path:
        """The project's annotated tasks in Label Studio's own export format, streamed to ``dest`` (then renamed)."""
        dest = Path(dest)
        with self.request("GET", f"/api/projects/{project_id}/export", f"export project {project_id}",
                          params={"exportType": export_type}, stream=True) as r:
            with atomic_paths(dest) as (tmp,), tmp.open("wb") as f:
                for chunk in r.iter_content(1 << 20):
                    f.write(chunk)
        return dest


def _is_jwt(token: str) -> bool:
    return token.startswith("eyJ") and token.count(".") == 2


def _check(r: requests.Response, what: str) -> requests.Response:
    if r.status_code >= 400:
        raise LabelStudioError(f"Label Studio refused to {what}: HTTP {r.status_code} {r.text[:500]}")
    return r


# ---------------------------------------------------------------- the review project


@dataclass
class ReviewProject:
    id: int
    title: str
    imported: int  # tasks added by this call
    total: int  # tasks the project holds

    def url(self, base_url: str) -> str:
        return f"{base_url}/projects/{self.id}/data"


def project_title(out: Path) -> str:
    """The run's review.project_title (its _run.json), else the first review record's, else the default; cut to
    what Label Studio accepts."""
    from reid_ray.config import ReviewConfig

    title = None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        title = json.loads((out / RUN_STATE).read_text())["config"]["review"]["project_title"]
    if not title:
        title = next((r.get("project_title") for r in iter_records(out / "review" / RECORDS_FILE)), None)
    title = str(title or ReviewConfig().project_title)[:TITLE_MAX]
    return title if len(title) >= TITLE_MIN else f"{title} review"


def project_key(out: Path) -> str:
    """The project's description: ties the project to its --out, so two runs with one title get two projects."""
    return f"reid-ray review of {out}"


def task_image(image: str, review_dir: Path, document_root: Path) -> str:
    """A task's image as this server must see it: a bare packet name (older runs) or the default local-files URL
    relative to --out become local-files URLs relative to ``document_root``; any other URL stays as it is."""
    name = None
    if "/" not in image and ":" not in image:
        name = image
    elif image.startswith(f"{LOCAL_FILES_URL}review/") and "/" not in image[len(LOCAL_FILES_URL) + 7:]:
        name = image[len(LOCAL_FILES_URL) + 7:]
    if name is None:
        return image
    return f"{LOCAL_FILES_URL}{(review_dir / name).relative_to(document_root).as_posix()}"


def review_tasks(review_dir: Path, document_root: Path) -> Iterator[dict]:
    """DIR/review/tasks.json, then DIR/final_pairs/adjudication_tasks.json when form_pairs left conflicts, a task at
    a time, images as this server sees them."""
    adjudication = review_dir.parent / "final_pairs" / ADJUDICATION_TASKS_FILE
    for path in (review_dir / TASKS_FILE, adjudication):
        if not path.is_file():
            continue
        with path.open(encoding="utf-8") as f:
            for t in iter_json_array(f):
                # NaN or Infinity (tasks.json of older runs) would break the labelling page's JSON.parse
                data = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in t["data"].items()}
                if isinstance(data.get("image"), str):
                    data["image"] = task_image(data["image"], review_dir, document_root)
                yield {**t, "data": data}


def task_key(data: dict) -> tuple[str, bool]:
    """A pair's first-round task and its adjudication task are two tasks."""
    return data.get("pair_id"), bool(data.get("adjudication"))


def set_up_project(ls: LabelStudio, out: str | Path, document_root: str | Path | None = None) -> ReviewProject:
    """The --out's project (made if missing, its labeling config refreshed), its local storage, and the tasks of
    tasks.json (and of final_pairs/adjudication_tasks.json) it does not hold yet (by pair_id and round). Idempotent."""
    out = Path(out).resolve()
    review_dir = out / "review"
    root = Path(document_root).resolve() if document_root else out
    if not (review_dir / TASKS_FILE).is_file():
        raise LabelStudioError(f"{review_dir / TASKS_FILE} is missing: run jobs/generate_pairs.py --out {out} first")
    if root != review_dir and root not in review_dir.parents:
        raise LabelStudioError(f"--document-root {root} does not hold {review_dir}: Label Studio could not serve its packets")
    label_config = (review_dir / CONFIG_FILE).read_text(encoding="utf-8")
    title, key = project_title(out), project_key(out)
    project = next((p for p in ls.projects() if p.get("description") == key), None)
    if project is None:
        project = ls.create_project(title, label_config, key)
    elif project.get("label_config") != label_config:
        ls.update_project(project["id"], label_config=label_config)
    pid = int(project["id"])
    if not any(Path(s.get("path") or "") == review_dir for s in ls.local_storages(pid)):
        ls.add_local_storage(pid, review_dir, "reid-ray packets")
    have = {task_key(t["data"]) for t in ls.project_tasks(pid)}
    imported, batch = 0, []
    for t in review_tasks(review_dir, root):
        if task_key(t["data"]) in have:
            continue
        have.add(task_key(t["data"]))
        batch.append(t)
        if len(batch) == IMPORT_BATCH:
            imported += ls.import_tasks(pid, batch)
            batch = []
    if batch:
        imported += ls.import_tasks(pid, batch)
    return ReviewProject(pid, project.get("title", title), imported, len(have))


def project_of(ls: LabelStudio, out: str | Path) -> int:
    key = project_key(Path(out).resolve())
    project = next((p for p in ls.projects() if p.get("description") == key), None)
    if project is None:
        raise LabelStudioError(f"no Label Studio project for {out} on {ls.url}: run python -m reid_ray.review.serve --out {out} first")
    return int(project["id"])


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="the --out of jobs/generate_pairs.py (holds review/)")
    p.add_argument("--url", help="a running Label Studio (default: start one on --port)")
    p.add_argument("--port", type=int, default=8080, help="port of the server started here (default 8080)")
    p.add_argument("--host", default="127.0.0.1", help="address the server started here listens on (default loopback)")
    p.add_argument("--data-dir", type=Path, help="Label Studio's data of the server started here (default DIR/label_studio)")
    p.add_argument("--document-root", type=Path, help="LOCAL_FILES_DOCUMENT_ROOT of a --url server (default DIR)")
    p.add_argument("--username", default=os.environ.get("LABEL_STUDIO_USERNAME"), help="admin email (first start) or login")
    p.add_argument("--password", default=os.environ.get("LABEL_STUDIO_PASSWORD"))
    p.add_argument("--token", default=os.environ.get("LABEL_STUDIO_API_KEY") or os.environ.get("LABEL_STUDIO_USER_TOKEN"),
                   help="API token: legacy, or a personal access token (JWT)")
    p.add_argument("--export", type=Path, metavar="FILE", help="export the project's verdicts (Label Studio JSON) to FILE and exit")
    args = p.parse_args(argv)
    if str(args.out).startswith("s3://"):
        print("error: for an s3:// --out, connect an S3 source storage on its review/ prefix to a Label Studio project "
              "and import review/tasks.json (the task images are s3:// URIs); this command serves local folders",
              file=sys.stderr)
        return 2
    out = args.out.resolve()
    data_dir = (args.data_dir or out / DATA_DIR).resolve()
    if not args.export and not (out / "review" / TASKS_FILE).is_file():
        print(f"error: {out / 'review' / TASKS_FILE} is missing: run jobs/generate_pairs.py --out {out} first", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # `kill` stops the server started here too, as Ctrl-C does
    try:
        if args.url:
            creds = _kept(data_dir)
            ls = LabelStudio(args.url, token=args.token or (None if args.username else creds.get("token")),
                             username=args.username or creds.get("username"), password=args.password or creds.get("password"))
            return _run(ls, out, args, args.document_root, server=None)
        creds = Credentials.load_or_create(data_dir, args.username, args.password, args.token)
        print(f"starting Label Studio on http://{args.host}:{args.port} (data in {data_dir}) ...", flush=True)
        with running_server(data_dir, out, creds, port=args.port, host=args.host) as server:
            ls = LabelStudio(server.url, token=creds.token)
            return _run(ls, out, args, out, server=server, creds=creds)
    except LabelStudioError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def _kept(data_dir: Path) -> dict:
    path = data_dir / CREDENTIALS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _run(ls: LabelStudio, out: Path, args, document_root, *, server: RunningServer | None, creds: Credentials | None = None) -> int:
    if args.export:
        dest = ls.export(project_of(ls, out), args.export)
        print(f"exported {dest}\nnext: python jobs/form_pairs.py --out {out} --verdicts {dest}")
        return 0
    project = set_up_project(ls, out, document_root)
    export = out / "review" / "label_studio_export.json"
    print(f"project {project.title!r}: {project.total} tasks ({project.imported} new)")
    print(f"open {project.url(ls.url)}")
    if creds is not None:
        print(f"log in as {creds.username} (password in {Path(args.data_dir or out / DATA_DIR) / CREDENTIALS_FILE})")
    print(f"other annotators sign up at {ls.url}{ls.invite_url()}")
    url_arg = f" --url {ls.url}" if server is not None else f" --url {args.url}"
    print(f"when done: python -m reid_ray.review.serve --out {out}{url_arg} --export {export}   "
          f"(or Export > JSON in the project)\n      then: python jobs/form_pairs.py --out {out} --verdicts {export}")
    if server is None:
        return 0
    print("serving; Ctrl-C stops the server", flush=True)
    try:
        while server.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    print(f"error: label-studio exited with {server.process.returncode}: {_tail(server.log_path)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
