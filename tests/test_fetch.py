"""hw1_download_ckpt.sh's downloads (dlcv.graded.fetch) against a local HTTP server on 127.0.0.1:
direct files, redirect chains, share pages, Drive's virus-scan form, dropped and stalled
connections, a wrong sha256. Nothing here reaches the network."""
from __future__ import annotations

import hashlib
import http.server
import re
import socket
import threading
from pathlib import Path

import pytest
import torch

from dlcv.errors import CheckpointError
from dlcv.graded import fetch as fetch_mod
from dlcv.graded.fetch import direct_url, download_form_url, fetch, fetch_checkpoints
from dlcv.io import export_model, load_model_file
from tests.helpers import run_graded

SHARE_PAGE = b"<!DOCTYPE html><html><head><title>model.pt - Google Drive</title></head><body>Sign in</body></html>"
# the shape of Google Drive's "can't scan this file for viruses" page
DRIVE_FORM = """<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>
<p>Google Drive can't scan this file for viruses.</p>
<form id="download-form" action="{action}" method="get">
<input type="submit" id="uc-download-link" class="jfk-button" value="Download anyway"/>
<input type="hidden" name="id" value="1AbC-dEf_123"><input type="hidden" name="export" value="download">
<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="0b1e-42"></form>
</body></html>"""


class Handler(http.server.BaseHTTPRequestHandler):
    """Routes by path; `self.server.blob` is the checkpoint's bytes, `self.server.hits` counts requests."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest's output clean
        pass

    def send_blob(self, data: bytes, honour_range: bool = True, cut: int | None = None, stall: bool = False):
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if match and honour_range:
            start = int(match.group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:cut] if cut is not None else data[start:]
        self.wfile.write(body)
        self.wfile.flush()
        if stall:  # hold the connection open without sending more
            self.server.stop.wait(5)
        if cut is not None:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    def redirect(self, where: str):
        self.send_response(302)
        self.send_header("Location", where)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def send_page(self, page: bytes, content_type: str = "text/html; charset=utf-8"):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def do_GET(self):
        path, _, query = self.path.partition("?")
        hits = self.server.hits[path] = self.server.hits.get(path, 0) + 1
        blob, half = self.server.blob, len(self.server.blob) // 2
        if path == "/model.pt":
            self.send_blob(blob)
        elif path == "/r1":
            self.redirect("/r2")
        elif path == "/r2":
            self.redirect(f"http://127.0.0.1:{self.server.server_port}/model.pt")
        elif path == "/share":
            self.send_page(SHARE_PAGE)
        elif path == "/share-untyped":  # a web page served as a binary: the body gives it away
            self.send_page(b"\n  <html><body>Dropbox - model.pt</body></html>", "application/octet-stream")
        elif path == "/drive":
            self.send_page(DRIVE_FORM.format(action="/download").encode())
        elif path == "/download":
            fields = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            ok = fields.get("confirm") == "t" and fields.get("uuid") == "0b1e-42" and fields.get("id") == "1AbC-dEf_123"
            self.send_blob(blob) if ok else self.send_page(SHARE_PAGE)
        elif path == "/drive-loop":  # the form leads to another form: give up after one
            self.send_page(DRIVE_FORM.format(action="/drive-loop").encode())
        elif path == "/drop":  # half the file, connection closed; Range honoured on the retry
            self.send_blob(blob, cut=half if hits == 1 else None)
        elif path == "/drop-no-range":  # the retry ignores Range: 200 with the whole file
            self.send_blob(blob, honour_range=False, cut=half if hits == 1 else None)
        elif path == "/drop-always":
            self.send_blob(blob, cut=half)
        elif path == "/stall":
            self.send_blob(blob, cut=half if hits == 1 else None, stall=hits == 1)
        else:
            self.send_error(404)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> bytes:
    run = tmp_path_factory.mktemp("run")
    path = export_model(run, {"task": "classify", "dataset": "p1", "model": {"name": "resnet18"}},
                        {"fc.weight": torch.arange(3000, dtype=torch.float32).reshape(3, 1000)})
    return path.read_bytes()


@pytest.fixture()
def server(checkpoint):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.blob, srv.hits, srv.stop = checkpoint, {}, threading.Event()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.stop.set()
    srv.shutdown()
    srv.server_close()


@pytest.fixture()
def p1(server, tmp_path, monkeypatch):
    """Point p1 at a path on the local server; returns (set_source, destination)."""
    dest = tmp_path / "ckpt" / "p1_model.pt"
    monkeypatch.setenv("DLCV_P1_CKPT", str(dest))
    monkeypatch.setenv("no_proxy", "127.0.0.1")

    def set_source(path: str) -> str:
        url = f"http://127.0.0.1:{server.server_port}{path}"
        monkeypatch.setenv("DLCV_P1_URL", url)
        return url

    return set_source, dest


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp")) if folder.exists() else []


@pytest.mark.parametrize("url, expected", [
    ("https://drive.google.com/file/d/1AbC-dEf_123/view?usp=sharing",
     "https://drive.usercontent.google.com/download?id=1AbC-dEf_123&export=download&confirm=t"),
    ("https://drive.google.com/open?id=1AbC-dEf_123",
     "https://drive.usercontent.google.com/download?id=1AbC-dEf_123&export=download&confirm=t"),
    ("https://drive.google.com/uc?id=1AbC-dEf_123&export=download",
     "https://drive.usercontent.google.com/download?id=1AbC-dEf_123&export=download&confirm=t"),
    ("https://drive.google.com/file/d/XYZ/view?usp=sharing&resourcekey=0-abc",
     "https://drive.usercontent.google.com/download?id=XYZ&export=download&confirm=t&resourcekey=0-abc"),
    ("https://drive.google.com/drive/folders/XYZ", "https://drive.google.com/drive/folders/XYZ"),
    ("https://www.dropbox.com/scl/fi/abc123/model.pt?rlkey=k9&dl=0",
     "https://www.dropbox.com/scl/fi/abc123/model.pt?rlkey=k9&dl=1"),
    ("https://www.dropbox.com/s/abc123/model.pt", "https://www.dropbox.com/s/abc123/model.pt?dl=1"),
    ("https://www.dropbox.com/s/abc123/model.pt?raw=1", "https://www.dropbox.com/s/abc123/model.pt?raw=1"),
    ("https://github.com/me/hw1/blob/main/ckpt/p1_model.pt", "https://github.com/me/hw1/raw/main/ckpt/p1_model.pt"),
    ("https://github.com/me/hw1/releases/download/v1/p1_model.pt",
     "https://github.com/me/hw1/releases/download/v1/p1_model.pt"),
    ("https://huggingface.co/me/hw1/blob/main/p1_model.pt", "https://huggingface.co/me/hw1/resolve/main/p1_model.pt"),
    ("https://example.org/files/p1_model.pt?x=1", "https://example.org/files/p1_model.pt?x=1"),
    ("http://127.0.0.1:8000/blob/file/d/x/view?dl=0&id=3", "http://127.0.0.1:8000/blob/file/d/x/view?dl=0&id=3"),
])
def test_direct_url(url, expected):
    assert direct_url(url) == expected


def test_download_form_url_reads_drives_virus_scan_form():
    page = DRIVE_FORM.format(action="https://drive.usercontent.google.com/download").encode()
    assert download_form_url(page, "https://drive.google.com/uc?id=x") == (
        "https://drive.usercontent.google.com/download?id=1AbC-dEf_123&export=download&confirm=t&uuid=0b1e-42")
    assert download_form_url(SHARE_PAGE, "https://drive.google.com/") is None
    search = b'<form action="/search" method="get"><input type="hidden" name="q" value="x"></form>'
    assert download_form_url(search, "https://example.org/") is None


def test_direct_file(p1, checkpoint):
    set_source, dest = p1
    set_source("/model.pt")
    assert fetch("p1") == dest
    assert dest.read_bytes() == checkpoint
    assert load_model_file(dest)[0]["dataset"] == "p1"
    assert leftovers(dest.parent) == []


def test_redirect_chain(p1, server, checkpoint):
    set_source, dest = p1
    set_source("/r1")
    fetch("p1")
    assert dest.read_bytes() == checkpoint
    assert server.hits == {"/r1": 1, "/r2": 1, "/model.pt": 1}


@pytest.mark.parametrize("path", ["/share", "/share-untyped"])
def test_share_page_is_a_clear_error(p1, path, capsys):
    set_source, dest = p1
    url = set_source(path)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"the previous checkpoint")
    with pytest.raises(CheckpointError, match=re.escape(f"p1: {url} returned a web page, not a file (a share page?); "
                                                        "use the direct-download link")):
        fetch("p1")
    assert dest.read_bytes() == b"the previous checkpoint"
    assert leftovers(dest.parent) == []
    assert fetch_checkpoints(["p1"]) == 1
    err = capsys.readouterr().err
    assert f"error: p1: {url} returned a web page" in err and "error: p1: p1:" not in err


def test_drive_virus_scan_form_is_followed(p1, server, checkpoint):
    set_source, dest = p1
    set_source("/drive")
    fetch("p1")
    assert dest.read_bytes() == checkpoint
    assert server.hits == {"/drive": 1, "/download": 1}


def test_drive_form_is_followed_only_once(p1, server):
    set_source, _ = p1
    set_source("/drive-loop")
    with pytest.raises(CheckpointError, match="returned a web page"):
        fetch("p1")
    assert server.hits == {"/drive-loop": 2}


def test_dropped_connection_resumes_with_range(p1, server, checkpoint, capsys):
    set_source, dest = p1
    set_source("/drop")
    fetch("p1")
    assert dest.read_bytes() == checkpoint
    assert server.hits == {"/drop": 2}
    assert "connection dropped at" in capsys.readouterr().err


def test_dropped_connection_restarts_when_range_is_ignored(p1, server, checkpoint):
    set_source, dest = p1
    set_source("/drop-no-range")
    fetch("p1")
    assert dest.read_bytes() == checkpoint
    assert server.hits == {"/drop-no-range": 2}


def test_stalled_connection_times_out_and_resumes(p1, server, checkpoint, monkeypatch):
    monkeypatch.setattr(fetch_mod, "TIMEOUT", 0.3)
    set_source, dest = p1
    set_source("/stall")
    fetch("p1")
    assert dest.read_bytes() == checkpoint
    assert server.hits == {"/stall": 2}


def test_no_partial_destination_after_repeated_drops(p1, server, checkpoint):
    set_source, dest = p1
    url = set_source("/drop-always")
    with pytest.raises(CheckpointError, match=re.escape(f"p1: {url}: the download broke off again at "
                                                        f"{len(checkpoint) // 2} of {len(checkpoint)} bytes")):
        fetch("p1")
    assert not dest.exists()
    assert leftovers(dest.parent) == []
    assert server.hits == {"/drop-always": 2}


def test_wrong_sha256_leaves_destination_untouched(p1, server, checkpoint, tmp_path, monkeypatch):
    _, dest = p1
    url = f"http://127.0.0.1:{server.server_port}/model.pt"
    monkeypatch.delenv("DLCV_P1_URL", raising=False)
    sources = tmp_path / "hw1_checkpoints.txt"
    monkeypatch.setattr(fetch_mod, "project_root", lambda: tmp_path)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"the previous checkpoint")
    wrong = "0" * 64
    sources.write_text(f"p1 {url} {wrong}  # a stale digest\n")
    actual = hashlib.sha256(checkpoint).hexdigest()
    mismatch = f"p1: {re.escape(url)}: sha256 {actual} does not match the expected {wrong}"
    with pytest.raises(CheckpointError, match=mismatch):
        fetch("p1")
    assert dest.read_bytes() == b"the previous checkpoint"
    assert leftovers(dest.parent) == []
    sources.write_text(f"p1 {url} {actual.upper()}\n")
    fetch("p1")
    assert dest.read_bytes() == checkpoint


def test_http_error_and_local_path_messages(p1, tmp_path, monkeypatch):
    set_source, _ = p1
    url = set_source("/nothing-here")
    with pytest.raises(CheckpointError, match=re.escape(f"p1: {url}: the server answered HTTP 404")):
        fetch("p1")
    monkeypatch.setenv("DLCV_P1_URL", str(tmp_path / "missing.pt"))
    with pytest.raises(CheckpointError, match="p1: .*missing.pt: no such file"):
        fetch("p1")
    not_a_checkpoint = tmp_path / "notes.pt"
    not_a_checkpoint.write_bytes(b"just text")
    monkeypatch.setenv("DLCV_P1_URL", str(not_a_checkpoint))
    with pytest.raises(CheckpointError, match=f"p1: {re.escape(str(not_a_checkpoint))}: not a readable torch"):
        fetch("p1")


def test_progress_line_for_big_downloads(p1, checkpoint, monkeypatch, capsys):
    monkeypatch.setattr(fetch_mod, "PROGRESS_MIN_BYTES", 1000)  # the test file counts as big
    set_source, _ = p1
    set_source("/model.pt")
    fetch("p1")
    err = capsys.readouterr().err
    assert re.search(r"p1: 0\.0 MB / 0\.0 MB \(100%\)  [\d.]+ MB/s\n", err), err
    monkeypatch.setattr(fetch_mod, "PROGRESS_MIN_BYTES", 10 * len(checkpoint))
    fetch("p1")
    assert "MB/s" not in capsys.readouterr().err


def test_hw1_download_ckpt_sh(server, checkpoint, tmp_path):
    """End to end as a grader runs it: bash hw1_download_ckpt.sh p1, the venv's python3 on the PATH,
    the course-environment import guard active."""
    from dlcv.graded.guard import sitecustomize_source

    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(sitecustomize_source())
    dest = tmp_path / "ckpt" / "p1_model.pt"
    proc = run_graded("hw1_download_ckpt.sh", "p1", home=tmp_path / "home", timeout=60, extra_env={
        "DLCV_P1_URL": f"http://127.0.0.1:{server.server_port}/r1", "DLCV_P1_CKPT": str(dest),
        "PYTHONPATH": str(guard), "no_proxy": "127.0.0.1"})
    assert proc.returncode == 0, proc.stderr
    assert dest.read_bytes() == checkpoint
    assert server.hits == {"/r1": 1, "/r2": 1, "/model.pt": 1}
