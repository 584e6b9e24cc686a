"""A real Label Studio round trip on loopback: the pair job's review output (its packet renderer on real CAVIAR
frames, its review writer) -> a project made by reid_ray.review.serve -> the packets served over HTTP -> verdicts of
two annotators through the API -> Label Studio's JSON export -> jobs/form_pairs.py; then one task opened in the real
labelling page in headless Chromium.

Label Studio runs from its own environment (scripts/install_label_studio.sh; .ci/run installs it and Chromium)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import requests
from _paths import require_shared

from reid_ray.config import load_config
from reid_ray.names import packet_file_name
from reid_ray.review.serve import Credentials, LabelStudio, LabelStudioError, label_studio_exe, set_up_project, start_server
from reid_ray.schemas import PAIR, table_from_rows

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[1]
VIDEO = "video/caviar/OneLeaveShopReenter1front.mpg"
# The same person leaving the shop (frame 200) and coming back (frame 320), as in test_review.py.
BOX_A, BOX_B = [223.0, 102.0, 244.0, 161.0], [227.0, 95.0, 247.0, 153.0]
ADMIN = Credentials("admin@localhost", "admin-password-1", "0123456789abcdef0123456789abcdef01234567")
SECOND = ("annotator2@localhost", "annotator-password-2")
# pair -> (admin's verdict, second annotator's verdict); "p4" gets none and is the one opened in the browser.
VERDICTS = {"caviar-p1": ("Same", "Same"), "caviar-p2": ("Different", "Different"), "caviar-p3": ("Same", "Different")}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def missing(why: str) -> None:
    """Skipped on a machine set up without Label Studio or Chromium; a failure where .ci/run set them up, so that a
    broken install cannot pass as a skip."""
    if os.environ.get("REID_RAY_REQUIRE_REVIEW_SERVERS") == "1":
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(scope="session")
def ls_root(tmp_path_factory) -> Path:
    """LOCAL_FILES_DOCUMENT_ROOT of the session's server: the runs under review live below it."""
    return tmp_path_factory.mktemp("ls_root").resolve()


@pytest.fixture(scope="session")
def label_studio(ls_root, tmp_path_factory):
    """One real Label Studio for the session: SQLite in a temp dir, local files served from ls_root, a free port."""
    try:
        label_studio_exe()
    except LabelStudioError as err:
        missing(str(err))
    t0 = time.perf_counter()
    server = start_server(tmp_path_factory.mktemp("ls_data"), ls_root, ADMIN)
    print(f"\nLabel Studio answered /health after {time.perf_counter() - t0:.1f} s")
    try:
        yield server
    finally:
        server.stop()


def pair_row(pid: str, label: str = "pending_review", confidence: float = 0.62) -> dict:
    def side(s: str, frame: int, box: list[float]) -> dict:
        return {f"{s}_video_id": "caviar", f"{s}_frame": frame, f"{s}_t_s": frame / 25, f"{s}_bbox": box,
                f"{s}_candidate_id": f"{pid}-{s}", f"{s}_track_id": 1, f"{s}_score": 0.9}

    return {"pair_id": pid, "label": label, "confidence": confidence,
            "verified_by": None if label == "pending_review" else "auto", "gap_s": 4.8,
            "category": "person", "license": "CAVIAR-research", "clip_pair_id": "cp0", "similarity": 0.8,
            "kind": "match", **side("a", 200, BOX_A), **side("b", 320, BOX_B)}


@pytest.fixture(scope="module")
def review_out(ls_root) -> Path:
    """A pair-job --out with four pairs sent to humans (one with the NaN confidence of an unfitted calibration) and
    one auto-decided: packets drawn by the job's own renderer from the real clip, review files by the job's own
    write_review (default image URLs: local files relative to --out)."""
    from reid_ray.pairs_job import write_review
    from reid_ray.stages.finalize import render_review_packets

    video = require_shared(VIDEO)
    cfg = load_config(str(ROOT / "configs/local.yaml"))
    out = ls_root / "run"
    (out / "pairs").mkdir(parents=True)
    rows = [pair_row(pid) for pid in (*VERDICTS, "caviar-p4")] + [pair_row("caviar-auto", "identical", 0.995)]
    rows[3]["confidence"] = float("nan")
    pq.write_table(table_from_rows(rows, PAIR), out / "pairs" / "caviar.parquet")
    pending = [r for r in rows if r["label"] == "pending_review"]
    render_review_packets(pending, {}, str(video), cfg, out / "review")
    assert write_review(out, cfg, "2026-01-01T00:00:00+00:00") == len(pending)
    return out


@pytest.fixture(scope="module")
def project(label_studio, review_out, ls_root):
    admin = LabelStudio(label_studio.url, token=ADMIN.token)
    return admin, set_up_project(admin, review_out, ls_root)


def test_task_images_point_where_label_studio_finds_the_packets(tmp_path):
    """No server: the pair job's default image URLs (local files relative to --out; s3:// on S3; a configured
    prefix as it is), and serve's rewriting for a server rooted elsewhere (bare names of older runs included)."""
    from reid_ray.pairs_job import review_image_prefix
    from reid_ray.review.serve import task_image
    from reid_ray.storage import S3Path

    cfg = load_config(str(ROOT / "configs/local.yaml"))
    assert review_image_prefix(tmp_path, cfg) == "/data/local-files/?d=review/"
    assert review_image_prefix(S3Path(None, "bucket/runs/a"), cfg) == "s3://bucket/runs/a/review/"
    hosted = load_config(str(ROOT / "configs/local.yaml"), ["review.image_url_prefix=https://cdn.example.org/a/"])
    assert review_image_prefix(tmp_path, hosted) == "https://cdn.example.org/a/"
    assert hosted.fingerprint() == cfg.fingerprint()  # where images are shown changes no mined result
    review = tmp_path / "runs" / "a" / "review"
    for image in ("p1.png", "/data/local-files/?d=review/p1.png"):
        assert task_image(image, review, tmp_path) == "/data/local-files/?d=runs/a/review/p1.png"
    for image in ("s3://bucket/runs/a/review/p1.png", "https://cdn.example.org/a/p1.png"):
        assert task_image(image, review, tmp_path) == image


def test_round_trip_two_annotators_export_form_pairs(label_studio, review_out, project, tmp_path):
    admin, proj = project
    assert (proj.imported, proj.total) == (4, 4)
    assert set_up_project(admin, review_out, review_out.parent).imported == 0  # a rerun adds only new pairs
    tasks = {t["data"]["pair_id"]: t for t in admin.project_tasks(proj.id)}
    assert set(tasks) == {*VERDICTS, "caviar-p4"}
    assert "confidence" not in tasks["caviar-p4"]["data"]  # blind review (and its NaN would break the page's JSON.parse)

    # The image URL of an imported task returns the packet's bytes, to a logged-in user only.
    image = admin.task(tasks["caviar-p1"]["id"])["data"]["image"]
    assert image == f"/data/local-files/?d=run/review/{packet_file_name('caviar-p1')}"
    served = admin.session.get(f"{label_studio.url}{image}", timeout=30)
    assert served.status_code == 200 and served.headers["Content-Type"] == "image/png"
    assert served.content == (review_out / "review" / packet_file_name("caviar-p1")).read_bytes()
    assert requests.get(f"{label_studio.url}{image}", timeout=30, allow_redirects=False).status_code != 200

    # Two annotators: the admin (legacy API token) and a second user who signs up through the invite link.
    second = LabelStudio(label_studio.url)
    second.signup(admin.invite_url(), *SECOND)
    assert second.whoami()["email"] == SECOND[0]
    for i, (pid, (first_verdict, second_verdict)) in enumerate(VERDICTS.items()):
        admin.annotate(tasks[pid]["id"], first_verdict, lead_time=4.0 + i)
        second.annotate(tasks[pid]["id"], second_verdict, lead_time=40.0 + i)

    export = admin.export(proj.id, tmp_path / "export.json")
    exported = json.loads(export.read_text())
    assert {t["data"]["pair_id"]: len(t["annotations"]) for t in exported} == {pid: 2 for pid in VERDICTS}

    final = review_out / "final_pairs"
    proc = subprocess.run([sys.executable, str(ROOT / "jobs/form_pairs.py"), "--out", str(review_out), "--verdicts", str(export)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    labels = {r["pair_id"]: (r["label"], r["verified_by"]) for r in pq.read_table(final / "pairs.parquet").to_pylist()}
    assert labels["caviar-p1"] == ("identical", "human")
    assert labels["caviar-p2"] == ("same_category_different_instance", "human")
    assert labels["caviar-p3"][0] == labels["caviar-p4"][0] == "pending_review"  # a tie; no verdict
    assert labels["caviar-auto"] == ("identical", "auto")
    conflicts = [json.loads(line) for line in (final / "conflicts.jsonl").read_text().splitlines()]
    assert [c["pair_id"] for c in conflicts] == ["caviar-p3"]

    # Adjudication: the tie comes back as a task of its own; the adjudicator's verdict wins.
    assert set_up_project(admin, review_out, review_out.parent).imported == 1
    assert set_up_project(admin, review_out, review_out.parent).imported == 0
    adj = [t for t in admin.project_tasks(proj.id) if t["data"].get("adjudication")]
    assert [t["data"]["pair_id"] for t in adj] == ["caviar-p3"] and adj[0]["data"]["image"] == image.replace("p1", "p3")
    admin.annotate(adj[0]["id"], "Same", lead_time=9.0)
    export2 = admin.export(proj.id, tmp_path / "export2.json")
    proc = subprocess.run([sys.executable, str(ROOT / "jobs/form_pairs.py"), "--out", str(review_out), "--verdicts", str(export2)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    labels = {r["pair_id"]: (r["label"], r["verified_by"]) for r in pq.read_table(final / "pairs.parquet").to_pylist()}
    assert labels["caviar-p3"] == ("identical", "human") and "(1 by adjudication)" in proc.stdout
    assert json.loads((final / "adjudication_tasks.json").read_text()) == []
    records = {r["pair_id"]: r for r in map(json.loads, (review_out / "review/records.jsonl").read_text().splitlines())}
    assert {pid: r["segment1_image_1"] for pid, r in records.items() if r["status"] == "completed"} == {
        "caviar-p1": "yes", "caviar-p2": "no", "caviar-p3": "yes"}
    # QA from Label Studio's own export: lead_time per annotator (the export names them by user id).
    qa = json.loads((final / "qa.json").read_text())["annotators"]
    first, other = qa[str(admin.whoami()["id"])], qa[str(second.whoami()["id"])]
    assert (first["median_s"], first["within_target"], first["adjudications"]) == (5.5, 1.0, 1)
    assert (other["median_s"], other["within_target"]) == (41.0, 0.0)


def test_personal_access_token_and_session_login(label_studio, project):
    """Label Studio 1.23's personal access tokens (JWT refresh tokens, exchanged for Bearer access tokens) and a
    login with the admin's email and password both reach the API."""
    by_session = LabelStudio(label_studio.url, username=ADMIN.username, password=ADMIN.password)
    pat = by_session.request("POST", "/api/token/", "create a personal access token").json()["token"]
    assert LabelStudio(label_studio.url, token=pat).whoami()["email"] == ADMIN.username
    with pytest.raises(LabelStudioError, match="login"):
        LabelStudio(label_studio.url, username=ADMIN.username, password="wrong")


def test_labelling_page_shows_the_packet_and_the_choices(label_studio, review_out, project, tmp_path):
    """The real labelling page in headless Chromium, logged in through the login form: the task's packet (both
    thumbnails, as the PNG holds them) is drawn and Same / Different / Unsure are there."""
    if not Path(CHROMIUM).is_file():
        missing(f"{CHROMIUM} is missing (apt-get install chromium; .ci/run does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (pip install -e '.[test]')")
    admin, proj = project
    task_id = next(t["id"] for t in admin.project_tasks(proj.id) if t["data"]["pair_id"] == "caviar-p4")
    packet = cv2.imread(str(review_out / "review" / packet_file_name("caviar-p4")))
    height, width = packet.shape[:2]
    shot = tmp_path / "ls_task.png"
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=CHROMIUM_FLAGS,
                                                        headless=True, viewport={"width": 1400, "height": 1000})
        try:
            page = browser.new_page()
            page.goto(f"{label_studio.url}/user/login/")
            page.fill("input[name=email]", ADMIN.username)
            page.fill("input[name=password]", ADMIN.password)
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: "/user/login" not in url)
            page.goto(f"{proj.url(label_studio.url)}?task={task_id}")
            choices = [page.get_by_role("radio", name=name) for name in ("Same", "Different", "Unsure")]
            choices[0].wait_for(timeout=120_000)
            # The labelling view draws the packet it fetched from /data/local-files/ at its natural size, scaled to fit.
            page.wait_for_function(
                """([w, h]) => { const img = Array.from(document.images).find(i => i.naturalWidth === w
                       && i.naturalHeight === h && i.getBoundingClientRect().width > 300);
                     return img && img.complete; }""", arg=[width, height], timeout=120_000)
            page.wait_for_timeout(500)  # the canvas paints after the image loads
            assert all(c.is_visible() for c in choices)
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    print(f"\nscreenshot: {shot}")
    # The packet is drawn on the page, scaled to fit (the view may clip its edges): the band of the two thumbnails
    # (below the 56 px header, thumb_height tall, as test_review.py reads it) is found in the screenshot, and each
    # half (thumbnail A, thumbnail B) matches on its own.
    screen = cv2.cvtColor(cv2.imread(str(shot)), cv2.COLOR_BGR2GRAY)
    band = cv2.cvtColor(packet, cv2.COLOR_BGR2GRAY)[56:56 + 256, width // 20:width - width // 20]
    score, (x, y), scale = find_scaled(screen, band)
    assert score > 0.9 and width * scale > 300, (score, scale)
    drawn = screen[y:y + round(band.shape[0] * scale), x:x + round(band.shape[1] * scale)]
    expected = cv2.resize(band, (drawn.shape[1], drawn.shape[0]), interpolation=cv2.INTER_AREA)
    half = drawn.shape[1] // 2
    for side in (slice(0, half), slice(half, None)):
        a, b = drawn[:, side].astype(float).ravel(), expected[:, side].astype(float).ravel()
        assert a.std() > 20 and np.corrcoef(a, b)[0, 1] > 0.9


def find_scaled(screen: np.ndarray, template: np.ndarray) -> tuple[float, tuple[int, int], float]:
    """Where ``template`` appears in ``screen`` at some scale: (normalised correlation, top-left, scale), searched at
    half resolution over scales 0.5-2.5 in steps of 0.05, then around the best in steps of 0.01."""
    small = cv2.resize(screen, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)

    def at(scale: float) -> tuple[float, tuple[int, int], float]:
        t = cv2.resize(template, None, fx=scale / 2, fy=scale / 2, interpolation=cv2.INTER_AREA)
        if t.shape[0] > small.shape[0] or t.shape[1] > small.shape[1]:
            return -1.0, (0, 0), scale
        _, score, _, loc = cv2.minMaxLoc(cv2.matchTemplate(small, t, cv2.TM_CCOEFF_NORMED))
        return float(score), (2 * loc[0], 2 * loc[1]), scale

    coarse = max((at(s) for s in np.arange(0.5, 2.5, 0.05)), key=lambda r: r[0])
    return max((at(s) for s in np.arange(coarse[2] - 0.05, coarse[2] + 0.05, 0.01)), key=lambda r: r[0])
