"""Rows about the checkpoints: a source in hw1_checkpoints.txt for each problem, and the file itself.

hw1_checkpoints.txt lines are `<problem> <url or path> [sha256]`, `-` meaning none (the format
dlcv.graded.fetch reads); it is read here from the checked repo, not from dlcv's own checkout, and
without $DLCV_P<n>_URL, which the graders do not set. Nothing is downloaded.
"""
from __future__ import annotations

from pathlib import Path

from dlcv.check.rows import FAIL, PASS, WARN, Row
from dlcv.graded.fetch import SOURCES_NAME, normal_sha256, read_sources, sha256_of


def _digest_note(sha256: str, checkpoint: Path) -> tuple[bool, str]:
    """(matches, note) comparing the listed sha256 with the checkpoint being tested."""
    if not sha256:
        return True, "no sha256 listed (optional third column)"
    if not checkpoint.is_file():
        return True, "sha256 listed"
    if sha256_of(checkpoint) == normal_sha256(sha256):
        return True, f"sha256 matches {checkpoint.name}"
    return False, f"the listed sha256 is not that of the checkpoint tested here ({checkpoint})"


def source_row(problem: str, sources: dict[str, tuple[str, str]], repo: Path, checkpoint: Path,
               demo: bool) -> Row:
    check = f"{problem} source in {SOURCES_NAME}"
    if problem not in sources:
        note = (f"no source for {problem}: upload the model.pt of your run (e.g. as a GitHub release asset) "
                f"and put its URL on the `{problem}` line")
        if demo:
            return Row(check, WARN, "none", "a URL", f"demo: {note} (this check used {checkpoint})")
        return Row(check, FAIL, "none", "a URL", note)
    source, sha256 = sources[problem]
    matches, digest = _digest_note(sha256, checkpoint)
    if source.startswith(("http://", "https://")):
        shown = source if len(source) <= 48 else source[:45] + "..."
        return Row(check, PASS if matches else WARN, shown, "a URL", f"not fetched by the check; {digest}")
    local = Path(source.removeprefix("file://"))
    local = local if local.is_absolute() else repo / local
    if not local.is_file():
        return Row(check, FAIL, source, "a URL", f"the local file {local} does not exist")
    return Row(check, WARN, source, "a URL", f"a local file: the graders' clone has it only if it is committed; "
                                             f"prefer a URL; {digest}")


def source_rows(repo: Path, problems, checkpoints: dict[str, Path], demo: bool) -> list[Row]:
    path = repo / SOURCES_NAME
    if not path.is_file():
        return [Row(SOURCES_NAME, FAIL, "missing", "one line per problem",
                    f"{path} not found: hw1_download_ckpt.sh reads it (`<problem> <url> [sha256]`)")]
    sources = read_sources(path)
    return [source_row(p, sources, repo, checkpoints[p], demo) for p in problems]


def checkpoint_row(problem: str, checkpoint: Path, option: str) -> Row:
    check = f"{problem} checkpoint"
    if not checkpoint.is_file():
        return Row(check, FAIL, "missing", "a model.pt",
                   f"{checkpoint} not found: run `bash hw1_download_ckpt.sh` first (or name the file with {option})")
    size = checkpoint.stat().st_size / 2**20
    return Row(check, PASS, f"{checkpoint.parent.name}/{checkpoint.name} ({size:.1f} MiB)", "a model.pt", str(checkpoint))
