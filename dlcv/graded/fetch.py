"""The checkpoints the graded scripts use: where they live and how hw1_download_ckpt.sh gets them.

Standard library only (plus dlcv.io / dlcv.errors): this runs on the grader's machine, where gdown
may be missing, so share links of the usual hosts are rewritten to their direct-download form and
fetched with urllib. A download is streamed into a temporary file beside the destination, resumed
once if the connection drops, checked (size, optional sha256, safe-loading dlcv checkpoint) and
only then renamed into place: a failure never leaves a partial or foreign file at the destination.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

from dlcv.errors import CheckpointError
from dlcv.io import atomic_path, load_model_file

CHECKOUT = Path(__file__).resolve().parents[2]


def project_root() -> Path:
    """The checkout hw1_*.sh run from (it holds hw1_1.sh); for an installed package, the current folder."""
    return CHECKOUT if (CHECKOUT / "hw1_1.sh").is_file() else Path.cwd()


SOURCES_NAME = "hw1_checkpoints.txt"


def sources_file() -> Path:
    return project_root() / SOURCES_NAME


def read_sources(path: Path) -> dict[str, tuple[str, str]]:
    """{problem: (url or path, sha256 or "")} of the lines of a hw1_checkpoints.txt that name a
    source: `<problem> <url or path> [sha256]`, `-` = none, `#` starts a comment; the first wins."""
    sources: dict[str, tuple[str, str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 2 and parts[1] != "-":
            sources.setdefault(parts[0], (parts[1], parts[2] if len(parts) > 2 else ""))
    return sources


def normal_sha256(digest: str) -> str:
    """A listed digest as hexdigest() writes it (`sha256:` prefix and upper case accepted)."""
    return digest.strip().lower().removeprefix("sha256:")

TIMEOUT = 60  # seconds for connecting and for each read: a stalled server fails (and is retried), never hangs
CHUNK = 1 << 20
MAX_PAGE = 2 << 20  # how much of a web page is read to look for Drive's download form
PROGRESS_MIN_BYTES = 20 << 20  # smaller files download in a moment: no progress line
USER_AGENT = "dlcv-fetch/1 (python urllib)"  # some hosts refuse urllib's default agent
# a dropped or stalled connection (IncompleteRead is an HTTPException); not OSError as a whole,
# which would also retry a full disk
DROPPED = (http.client.HTTPException, ConnectionError, TimeoutError)

DRIVE_HOSTS = ("drive.google.com", "docs.google.com", "drive.usercontent.google.com")
DROPBOX_HOSTS = ("dropbox.com", "www.dropbox.com")
GITHUB_HOSTS = ("github.com", "www.github.com")


def checkpoint_path(problem: str) -> Path:
    """$DLCV_P<n>_CKPT, else checkpoints/p<n>_model.pt in the repo."""
    env = os.environ.get(f"DLCV_{problem.upper()}_CKPT")
    return Path(env) if env else project_root() / "checkpoints" / f"{problem}_model.pt"


def checkpoint_source(problem: str) -> tuple[str, str]:
    """(url or path, sha256 or "") from $DLCV_P<n>_URL or hw1_checkpoints.txt."""
    env = os.environ.get(f"DLCV_{problem.upper()}_URL")
    if env:
        return env, ""
    path = sources_file()
    if path.is_file() and problem in (sources := read_sources(path)):
        return sources[problem]
    raise CheckpointError(
        f"no source for the {problem} checkpoint: set DLCV_{problem.upper()}_URL or put its URL in "
        f"hw1_checkpoints.txt (upload runs/<name>/model.pt of your trained run)")


def direct_url(url: str) -> str:
    """The direct-download form of a share link (Google Drive, Dropbox, GitHub / Hugging Face
    `blob` pages); any other URL, release assets and raw links included, unchanged."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    query = urllib.parse.parse_qs(parts.query)
    if host in DRIVE_HOSTS:
        # .../file/d/<ID>/view, open?id=<ID>, uc?id=<ID>: all the same file; confirm=t skips the
        # "can't scan for viruses" page of files over ~100 MB
        match = re.match(r"/file/d/([\w-]+)", parts.path)
        file_id = match.group(1) if match else query.get("id", [""])[0]
        if not file_id:
            return url  # a folder or some other page: the web-page check explains
        direct = f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t"
        if "resourcekey" in query:  # older shared files need it
            direct += "&resourcekey=" + urllib.parse.quote(query["resourcekey"][0])
        return direct
    if host in DROPBOX_HOSTS and "raw" not in query:
        # dl=0 (or none) is the preview page, dl=1 the file; rlkey and the rest must stay
        pairs = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k != "dl"]
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(pairs + [("dl", "1")])))
    if host in GITHUB_HOSTS or host == "huggingface.co":
        # the `blob` page shows the file; `raw` (GitHub) / `resolve` (Hugging Face) serves it
        match = re.fullmatch(r"(/[^/]+/[^/]+)/blob/(.+)", parts.path)
        if match:
            serve = "raw" if host in GITHUB_HOSTS else "resolve"
            return urllib.parse.urlunsplit(parts._replace(path=f"{match[1]}/{serve}/{match[2]}"))
    return url


class _FormParser(HTMLParser):
    """Each <form>'s action, method and hidden fields."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action") or "", "method": (a.get("method") or "get").lower(),
                               "id": a.get("id") or "", "fields": []})
        elif tag == "input" and self.forms and (a.get("type") or "").lower() == "hidden" and a.get("name"):
            self.forms[-1]["fields"].append((a["name"], a.get("value") or ""))


def download_form_url(page: bytes, base_url: str) -> str | None:
    """The URL behind Google Drive's "can't scan this file for viruses" page (a GET form with
    hidden id / export / confirm / uuid fields), or None when the page has no such form."""
    parser = _FormParser()
    parser.feed(page.decode("utf-8", "replace"))
    for form in parser.forms:
        names = {name for name, _ in form["fields"]}
        if form["method"] == "get" and (form["id"] == "download-form" or "confirm" in names):
            action = urllib.parse.urljoin(base_url, form["action"])
            if urllib.parse.urlsplit(action).scheme not in ("http", "https"):
                continue
            return action + ("&" if "?" in action else "?") + urllib.parse.urlencode(form["fields"])
    return None


def _share_advice(url: str) -> str:
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if host in DRIVE_HOSTS or host.endswith(".google.com"):
        return ("share the file (not its folder) as 'Anyone with the link' - a private file answers with a "
                "sign-in page - and use https://drive.google.com/file/d/<ID>/view or "
                "https://drive.usercontent.google.com/download?id=<ID>&export=download&confirm=t")
    if host.endswith("dropbox.com"):
        return "use the file's share link with dl=1 at the end (https://www.dropbox.com/scl/fi/...?rlkey=...&dl=1)"
    if host in GITHUB_HOSTS or host.endswith("githubusercontent.com"):
        return ("use a release asset (https://github.com/<owner>/<repo>/releases/download/<tag>/model.pt); "
                "a private repository's files need a sign-in")
    return ("copy the address of the download button itself; `curl -L -o model.pt <url>` must save the "
            "checkpoint, not a web page")


def _web_page_error(problem: str, source: str) -> CheckpointError:
    return CheckpointError(f"{problem}: {source} returned a web page, not a file (a share page?); "
                           f"use the direct-download link: {_share_advice(source)}")


def _looks_like_html(content_type: str, head: bytes) -> bool:
    start = head[:256].lstrip().lower()
    if start.startswith((b"<!doctype", b"<html")):
        return True
    # a checkpoint served as text/html by a misconfigured server is still a checkpoint (zip / pickle)
    return content_type == "text/html" and not head.startswith((b"PK\x03\x04", b"\x80"))


def _open(url: str, problem: str, source: str, start: int = 0):
    """urlopen (redirects followed) with a timeout; HTTP and connection errors name problem and source."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        exc.close()
        hint = " (is the file shared publicly, and the link complete?)" if exc.code in (401, 403, 404) else ""
        raise CheckpointError(f"{problem}: {source}: the server answered HTTP {exc.code} {exc.reason}{hint}") from None
    except urllib.error.URLError as exc:
        raise CheckpointError(f"{problem}: {source}: cannot connect ({exc.reason})") from None
    except (http.client.HTTPException, OSError) as exc:
        raise CheckpointError(f"{problem}: {source}: cannot connect ({exc or type(exc).__name__})") from None


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class _Progress:
    """One stderr line for big downloads: bytes done / total, percent, MB/s; redrawn in place on a
    terminal (at most every 0.5 s), a new line every 5 s in a log; always ended by a newline."""

    def __init__(self, problem: str):
        self.problem, self.total, self.started = problem, None, time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last, self.shown = 0.0, False

    def update(self, done: int, final: bool = False) -> None:
        if max(done, self.total or 0) < PROGRESS_MIN_BYTES:
            return
        now = time.monotonic()
        if not final and now - self.last < (0.5 if self.tty else 5.0):
            return
        self.last, self.shown = now, True
        rate = done / max(now - self.started, 1e-6) / 1e6
        total = f" / {_mb(self.total)} ({100 * done // self.total}%)" if self.total else ""
        line = f"{self.problem}: {_mb(done)}{total}  {rate:.1f} MB/s"
        print(f"\r{line:<60}" if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def close(self, done: int) -> None:
        self.update(done, final=True)
        if self.shown and self.tty:
            print(file=sys.stderr, flush=True)


def download(source: str, dest: Path, problem: str) -> None:
    """Stream `source` (a share link or direct URL) into `dest`, following redirects and Drive's
    download form once, resuming once (HTTP Range) after a dropped connection."""
    url = direct_url(source)
    done, total, retried, followed_form = 0, None, False, False
    progress = _Progress(problem)
    with open(dest, "wb") as out:
        while True:
            response = _open(url, problem, source, start=done)
            with response:
                if done:
                    resumed = re.match(rf"bytes {done}-\d+/(\d+)", response.headers.get("Content-Range", ""))
                    if response.status == 206 and resumed:
                        total = int(resumed.group(1))
                    elif response.status == 200:  # the server ignores Range: start over
                        out.seek(0)
                        out.truncate()
                        done = 0
                    else:
                        raise CheckpointError(f"{problem}: {source}: cannot resume the download "
                                              f"(HTTP {response.status}, {response.headers.get('Content-Range')})")
                if not done:
                    length = response.headers.get("Content-Length", "")
                    total = int(length) if length.isdigit() else None
                progress.total = total
                try:
                    chunk = response.read(CHUNK)
                    if not done and _looks_like_html(response.headers.get_content_type(), chunk):
                        form_url = None if followed_form else download_form_url(chunk + response.read(MAX_PAGE),
                                                                                response.geturl())
                        if form_url is None:
                            raise _web_page_error(problem, source)
                        url, followed_form = form_url, True
                        continue
                    while chunk:
                        out.write(chunk)
                        done += len(chunk)
                        progress.update(done)
                        chunk = response.read(CHUNK)
                    # http.client returns b"" (no error) when the server closes early: check the length
                    if total is not None and done < total:
                        raise ConnectionError(f"the server closed the connection at {done} of {total} bytes")
                    break
                except DROPPED as exc:
                    reason = str(exc) or type(exc).__name__
                    if retried:
                        raise CheckpointError(
                            f"{problem}: {source}: the download broke off again at {done} of "
                            f"{total if total is not None else '?'} bytes ({reason}); run it again, or check "
                            f"the link and the network") from None
                    retried = True
                    print(f"{problem}: connection dropped at {_mb(done)} ({reason}); resuming", file=sys.stderr)
                    url = response.geturl()  # the final address: no second trip through the redirects
    progress.close(done)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(problem: str) -> Path:
    """Download (or copy) the problem's checkpoint to checkpoint_path(problem) and return that path;
    the destination is replaced only by a complete file that passes every check."""
    source, sha256 = checkpoint_source(problem)
    dest = checkpoint_path(problem)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        if source.startswith(("http://", "https://")):
            print(f"{problem}: downloading {source}", file=sys.stderr)
            try:
                download(source, tmp, problem)
            except OSError as exc:  # a TLS error mid-file, a full disk: say which download
                raise CheckpointError(f"{problem}: {source}: {exc}") from None
        else:
            local = source.removeprefix("file://")
            if not Path(local).is_file():
                raise CheckpointError(f"{problem}: {source}: no such file")
            shutil.copyfile(local, tmp)
        expected = normal_sha256(sha256)
        if expected:
            digest = sha256_of(tmp)
            if digest != expected:
                raise CheckpointError(f"{problem}: {source}: sha256 {digest} does not match the expected "
                                      f"{expected} (another or a damaged file; upload again or fix the digest "
                                      f"in hw1_checkpoints.txt)")
        try:
            load_model_file(tmp)  # refuse anything that is not a safe-loading dlcv checkpoint
        except CheckpointError as exc:  # name the source, not the temporary file
            raise CheckpointError(f"{problem}: {source}: {str(exc).replace(f'{tmp}: ', '')}") from None
    print(f"{problem}: {dest}", file=sys.stderr)
    return dest


def fetch_checkpoints(problems) -> int:
    """fetch() each problem; report each failure on stderr; exit status 1 if any failed."""
    failed = 0
    for problem in problems:
        try:
            fetch(problem)
        except (CheckpointError, OSError) as exc:
            message = str(exc)
            print(f"error: {message if message.startswith(f'{problem}: ') else f'{problem}: {message}'}",
                  file=sys.stderr)
            failed += 1
    return 1 if failed else 0
