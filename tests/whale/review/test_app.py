"""The review app's HTTP routes (Starlette's TestClient) over a tiny trained run: pages, answers, images, decisions,
the decisions file and the catalogue index afterwards, bad input, a restart."""

from __future__ import annotations

import io
import json
import socket
import sys
import types

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from spotter.cli import main
from spotter.metrics import NEW_INDIVIDUAL
from spotter.whale.index import load_index, remove_photos
from spotter.whale.matcher import Matcher
from spotter.whale.review.app import create_app
from spotter.whale.review.decisions import DecisionLog
from spotter.whale.review.session import open_review


@pytest.fixture()
def review(tiny_run, index_copy, queue):
    session = open_review(tiny_run.run, index_copy, [queue], "ana")
    return session, TestClient(create_app(session))


def _records(session) -> list[dict]:
    return [json.loads(line) for line in session.log.path.read_text().splitlines()]


def _index_ids(session) -> dict[str, str]:
    photos = load_index(session.index.folder).photos
    return dict(zip(photos["path"], photos["individual_id"]))


def _best_known(client, number: int) -> dict:
    return next(c for c in client.get(f"/api/photos/{number}").json()["candidates"] if c["probability"] is not None)


def test_the_page_shows_each_photo_beside_its_answers_in_the_runs_probabilities(review, tiny_run, queue):
    session, client = review
    redirect = client.get("/", follow_redirects=False)
    assert redirect.status_code == 303 and redirect.headers["location"] == "/review/1"

    queued = client.get("/api/queue").json()
    assert [p["name"] for p in queued["photos"]] == sorted(p.name for p in queue.iterdir())
    assert {p["status"] for p in queued["photos"]} == {"open"} and queued["counts"]["open"] == len(session.items)

    data = client.get("/api/photos/1").json()
    answers = data["candidates"]
    assert [c["rank"] for c in answers] == [1, 2, 3, 4, 5]
    assert [c["individual_id"] for c in answers].count(NEW_INDIVIDUAL) <= 1
    # the same answers as `whale match` gives: the run's calibrated probabilities, new_individual at its rank
    matcher = Matcher.load(tiny_run.run)
    expected = matcher.match(load_index(session.index.folder), pd.DataFrame({"path": [data["photo"]]}))[0]
    assert [(c["individual_id"], c["probability"]) for c in answers] == [
        (c.individual_id, c.probability) for c in expected.candidates
    ]
    assert data["new_threshold"] == pytest.approx(expected.new_threshold)
    known = [c for c in answers if c["probability"] is not None]
    assert all(0 <= c["probability"] <= 1 for c in known)
    assert [c["probability"] for c in known] == sorted((c["probability"] for c in known), reverse=True)
    catalogue = set(session.index.photos["path"])
    assert all(c["catalogue_photo"] in catalogue and c["image"] for c in known)

    page = client.get("/review/1")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert data["name"] in html and f"{data['new_threshold']:.3f}" in html
    for c in known:
        assert c["individual_id"] in html and f"p {c['probability']:.3f}" in html
    for shortcut in ("1–5", "<kbd>N</kbd>", "<kbd>S</kbd>", "<kbd>U</kbd>", "← →"):
        assert shortcut in html
    assert "http://" not in html and "https://" not in html  # nothing fetched from elsewhere: works offline
    for asset in ("/static/review.js", "/static/review.css"):
        served = client.get(asset)
        assert served.status_code == 200 and "http://" not in served.text and "https://" not in served.text


def test_image_routes(review, monkeypatch):
    session, client = review
    query = client.get("/images/query/1")
    assert query.status_code == 200 and query.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(query.content)).size) <= 720
    assert max(Image.open(io.BytesIO(client.get("/images/query/1?side=16").content)).size) == 16
    answer = _best_known(client, 1)
    photo = client.get(answer["image"])
    assert photo.status_code == 200 and Image.open(io.BytesIO(photo.content)).format == "JPEG"

    assert client.get("/images/query/99").status_code == 404
    assert client.get("/images/query/0").status_code == 404
    assert client.get("/images/catalogue/0123456789abcdef").status_code == 404  # only index photos are served
    assert client.get("/images/query/1?side=100000").status_code == 422

    # local-feature drawing: a short 404 while the module is absent ...
    monkeypatch.setitem(sys.modules, "spotter.whale.local_features", None)
    missing = client.get(answer["pair"])
    assert missing.status_code == 404 and "local-feature matching is not available" in missing.text

    # ... and the drawing of the query and that candidate's catalogue photo once it is there
    calls = []

    def draw_correspondences(photo_a, box_a, photo_b, box_b):
        calls.append((str(photo_a), box_a, str(photo_b), box_b))
        return Image.new("RGB", (40, 20), "white")

    monkeypatch.setitem(
        sys.modules, "spotter.whale.local_features", types.SimpleNamespace(draw_correspondences=draw_correspondences)
    )
    drawn = client.get(answer["pair"])
    assert drawn.status_code == 200 and drawn.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(drawn.content)).size == (40, 20)
    assert calls == [(str(session.items[0].photo), None, answer["catalogue_photo"], None)]
    new_rank = next((c["rank"] for c in client.get("/api/photos/1").json()["candidates"] if not c["pair"]), 6)
    assert client.get(f"/images/pair/1/{new_rank}").status_code == 404  # new_individual has no photo


def test_the_local_feature_drawing_of_a_query_and_a_candidate(review):
    _, client = review
    answer = _best_known(client, 1)
    drawn = client.get(answer["pair"])
    assert drawn.status_code == 200 and drawn.headers["content-type"] == "image/png"
    width, height = Image.open(io.BytesIO(drawn.content)).size
    assert width > height  # two square photos side by side
    assert client.get("/images/pair/1/99").status_code == 404


def test_inlier_counts_show_when_the_run_reranks_by_local_features(review, monkeypatch):
    session, client = review
    plain = session.matcher.match

    def reranked(*args, **kwargs):
        matches = plain(*args, **kwargs)
        for m in matches:
            for c in m.known:
                c.inliers = 7
        return matches

    monkeypatch.setattr(session.matcher, "match", reranked)
    assert {c["inliers"] for c in client.get("/api/photos/1").json()["candidates"] if c["probability"]} == {7}
    assert "7 local-feature inliers" in client.get("/review/1").text


def test_confirm_new_skip_undo_write_the_log_and_keep_the_index_current(review, tiny_run):
    session, client = review
    catalogue_size = len(load_index(session.index.folder).photos)
    twin = len(session.items)  # zz-twin.jpg: the same bytes as photo 1

    answer = _best_known(client, 1)
    done = client.post("/api/photos/1/confirm", json={"individual_id": answer["individual_id"]})
    assert done.status_code == 200 and done.json()["next"] == "/review/2"
    record = _records(session)[-1]
    assert record["action"] == "confirm" and record["user"] == "ana" and record["run"] == session.run
    assert record["photo"] == str(session.items[0].photo) and record["individual_id"] == answer["individual_id"]
    assert record["probability"] == answer["probability"] and record["rank"] == answer["rank"]
    assert _index_ids(session)[str(session.items[0].photo)] == answer["individual_id"]

    # a confirmed photo is a candidate for the next query at once: its twin finds it first, with its id
    top = _best_known(client, twin)
    assert top["catalogue_photo"] == str(session.items[0].photo) and top["individual_id"] == answer["individual_id"]

    # confirming twice is refused and writes nothing
    again = client.post("/api/photos/1/confirm", json={"individual_id": answer["individual_id"]})
    assert again.status_code == 409 and "decided already" in again.json()["error"] and len(_records(session)) == 1

    # a new individual with a suggested id, then one typed by the user
    suggested = client.get("/api/photos/2").json()["suggested_new_id"]
    assert suggested.startswith("new-") and suggested not in set(session.index.ids)
    assert client.post("/api/photos/2/new", json={}).json()["decision"]["individual_id"] == suggested
    assert client.post("/api/photos/3/new", json={"individual_id": "  Moby 7 "}).status_code == 200
    assert _index_ids(session)[str(session.items[2].photo)] == "Moby 7"
    assert client.get("/api/photos/4").json()["suggested_new_id"] != suggested  # ids are never offered twice

    # skip: marked, still open for a later confirm
    assert client.post("/api/photos/4/skip").json()["next"] == "/review/5"
    assert client.get("/api/photos/4").json()["decision"]["action"] == "skip"

    # undo takes back the most recent decision (the skip), then photo 3's new individual on request
    undone = client.post("/api/undo", json={"photo": None}).json()
    assert undone["decision"]["action"] == "undo" and undone["next"] == "/review/4"
    assert client.get("/api/photos/4").json()["decision"] is None
    assert client.post("/api/undo", json={"photo": 3}).status_code == 200
    assert str(session.items[2].photo) not in _index_ids(session)  # it left the catalogue again
    assert len(load_index(session.index.folder).photos) == catalogue_size + 2

    records = _records(session)
    assert [r["action"] for r in records] == ["confirm", "new", "new", "skip", "undo", "undo"]
    assert records[4]["undoes"] == records[3]["id"] and records[5]["undoes"] == records[2]["id"]
    assert records[5]["individual_id"] == "Moby 7"
    statuses = {p["number"]: p["status"] for p in client.get("/api/queue").json()["photos"]}
    assert statuses[1] == "confirm" and statuses[2] == "new" and statuses[3] == "open" and statuses[4] == "open"


def test_bad_decisions_are_refused_with_their_reason(review):
    session, client = review
    known = _best_known(client, 1)["individual_id"]
    cases = [
        ("/api/photos/99/confirm", {"individual_id": known}, 404, "no photo 99"),
        ("/api/photos/0/skip", None, 404, "no photo 0"),
        ("/api/photos/1/confirm", {"individual_id": "nobody"}, 422, "not in the catalogue"),
        ("/api/photos/1/confirm", {"individual_id": ""}, 422, "an individual id is needed"),
        ("/api/photos/1/new", {"individual_id": NEW_INDIVIDUAL}, 422, "name of the answer"),
        ("/api/photos/1/new", {"individual_id": "a\nb"}, 422, "one line"),
        ("/api/photos/1/new", {"individual_id": known}, 409, "already in the catalogue"),
        ("/api/undo", {"photo": None}, 409, "nothing to undo"),
        ("/api/undo", {"photo": 2}, 409, "no decision to undo"),
    ]
    for url, body, status, reason in cases:
        answer = client.post(url, json=body)
        assert answer.status_code == status, url
        assert reason in answer.json()["error"], (url, answer.json())
    assert client.post("/api/photos/1/confirm", json={"individual_id": 5}).status_code == 422  # not a text
    assert client.post("/api/photos/1/frobnicate", json={}).status_code in (404, 405)
    assert not session.log.path.exists()  # nothing was decided


def test_a_restart_marks_decided_photos_and_brings_the_index_in_line_with_the_log(tiny_run, index_copy, queue):
    session = open_review(tiny_run.run, index_copy, [queue], "ana")
    client = TestClient(create_app(session))
    known = _best_known(client, 1)["individual_id"]
    client.post("/api/photos/1/confirm", json={"individual_id": known})
    client.post("/api/photos/2/new", json={"individual_id": "fresh"})
    client.post("/api/photos/3/skip")
    photo_1, photo_2 = str(session.items[0].photo), str(session.items[1].photo)

    # the index loses a confirmed photo (rebuilt from catalogue.csv, say), then the server starts again
    remove_photos(load_index(index_copy), [photo_1])
    again = open_review(tiny_run.run, index_copy, [queue], "bo")
    assert again.sync.added == [photo_1] and again.sync.removed == []
    assert _index_ids(again)[photo_1] == known
    statuses = {
        p["number"]: (p["status"], p["individual_id"], p["user"])
        for p in TestClient(create_app(again)).get("/api/queue").json()["photos"]
    }
    assert statuses[1] == ("confirm", known, "ana") and statuses[2] == ("new", "fresh", "ana")
    assert statuses[3] == ("skip", None, "ana") and statuses[4] == ("open", None, None)
    assert TestClient(create_app(again)).get("/", follow_redirects=False).headers["location"] == "/review/4"

    # an undo that reached the log while its photo stayed in the index (a stop between the two writes)
    log = DecisionLog(index_copy / "decisions.jsonl")
    from spotter.whale.review.decisions import UNDO, Decision

    target = [d for d in log.read().decisions if d.photo == photo_2][-1]
    log.append(Decision.make("bo", again.run, UNDO, photo_2, individual_id="fresh", undoes=target.id))
    third = open_review(tiny_run.run, index_copy, [queue], "bo")
    assert third.sync.removed == [photo_2] and photo_2 not in _index_ids(third)
    assert third.decision(2) is None


def test_review_cli_refuses_bad_input_before_serving(tiny_run, index_copy, queue, tmp_path, capsys):
    args = ["--quiet", "whale", "review", str(tiny_run.run), str(queue), "--no-browser", "--port", "0"]
    assert main([*args, "--index", str(tmp_path / "none")]) == 2
    assert "index folder not found" in capsys.readouterr().err
    assert main([*args, "--index", str(index_copy), "--decisions", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main([*args[:4], str(tmp_path / "missing.jpg"), "--index", str(index_copy), "--no-browser"]) == 2
    assert "photo not found" in capsys.readouterr().err
    assert main([*args, "--index", str(index_copy), "--top", "0"]) == 2
    assert "--top must be at least 1" in capsys.readouterr().err
    assert main([*args, "--index", str(index_copy), "--port", "70000"]) == 2
    assert "--port must be within" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        assert main([*args[:-1], port, "--index", str(index_copy)]) == 2
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
    assert not (index_copy / "decisions.jsonl").exists()
