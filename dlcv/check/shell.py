"""The course's rules for hw1_*.sh, checked on the shell words (not on substrings of the text).

Forbidden: `rm`, `cp`, `mv`, `mkdir`, `cd`, `pip`, `sudo`, `CUDA_VISIBLE_DEVICES`, and anything else
that changes the environment (`conda`, `apt`, `chmod`, `source` of an activate script, an `export`
or `VAR=` prefix of a CUDA_* variable or of PATH); Python only as `python3`, by name.

How: a small scanner drops comments, joins continued lines, splits the text into logical lines and
takes every command substitution (`$(...)`, backticks, also inside double quotes) out as a script
of its own; `shlex` (posix, punctuation_chars) splits each line into words, and only the words in
command position are commands: the first word, and the first after `;`, `&&`, `||`, `|`, `&`, `(`,
`then`, `do`, `else`, ..., after `VAR=value` prefixes and after wrappers such as `env` or `exec`.
So `python3 x.py /data/farm/rm_cache` and `# rm in a comment` are fine, `$(rm -r x)` is not.
Known blind spots: here-document bodies are read as commands; a fully quoted `";"` reads as `;`.
"""
from __future__ import annotations

import posixpath
import re
import shlex
from typing import NamedTuple

FORBIDDEN = {
    **dict.fromkeys(("rm", "cp", "mv", "mkdir", "rmdir", "ln", "touch"), "changes files"),
    "cd": "changes the working directory",
    **dict.fromkeys(("pip", "pip3", "conda", "mamba", "apt", "apt-get", "sudo", "chmod", "chown", "source", ".",
                     "module"), "changes the environment"),
}
PYTHON = re.compile(r"python[\d.]*")
KEYWORDS = frozenset({"if", "then", "else", "elif", "do", "while", "until", "!", "{", "time"})
WRAPPERS = frozenset({"env", "exec", "command", "builtin", "nohup", "nice"})  # the next word is a command
DECLARERS = frozenset({"export", "declare", "typeset", "readonly", "local", "unset"})
REDIRECTS = frozenset({">", ">>", "<", "<<", "<<<", ">&", "&>", "&>>", "<&", ">|", "<>"})
ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\+?=")
PLACEHOLDER = "__substitution__"
PUNCTUATION = set("();<>|&")


class Violation(NamedTuple):
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def check_script(text: str) -> list[Violation]:
    """Every rule the script breaks, in line order (empty list: it follows the rules)."""
    found: list[Violation] = []
    for line, code in _logical_lines(text, 1):
        found += _check_line(line, code)
    return sorted(found)


# -- the scanner: comments, continued lines, substitutions -----------------------------------------

def _matching_paren(text: str, i: int) -> int:
    """Index just past the `)` closing the `(` at text[i] (quotes and nesting respected)."""
    depth, quote = 0, None
    while i < len(text):
        c = text[i]
        if c == "\\" and quote != "'":
            i += 2
            continue
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(text)  # unterminated: the rest is the body


def _substitution(text: str, i: int) -> tuple[str, int]:
    """(body, end) of the `$(...)` or backtick substitution starting at text[i]."""
    if text[i] == "`":
        j = i + 1
        while j < len(text) and text[j] != "`":
            j += 2 if text[j] == "\\" else 1
        return text[i + 1:j].replace("\\`", "`"), min(j + 1, len(text))
    end = _matching_paren(text, i + 1)
    return text[i + 2:end - 1], end


def _logical_lines(text: str, first_line: int) -> list[tuple[int, str]]:
    """[(line number, code)] with comments dropped and substitutions replaced by a placeholder
    word; each substitution's body comes as lines of its own (numbered where it starts)."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    line = start = first_line
    quote, i = None, 0
    while i < len(text):
        c = text[i]
        if quote == "'":
            quote = None if c == "'" else quote
        elif c == "\\" and text.startswith("\\\n", i):  # continued line
            line, i = line + 1, i + 2
            continue
        elif c == "\\":
            buf.append(text[i:i + 2])
            i += 2
            continue
        elif c == "`" or text.startswith("$(", i):
            body, end = _substitution(text, i)
            out += _logical_lines(body, line)
            line += text.count("\n", i, end)
            buf.append(PLACEHOLDER)
            i = end
            continue
        elif c == '"':
            quote = None if quote == '"' else '"'
        elif quote is None and c == "'":
            quote = "'"
        elif quote is None and c == "#" and (i == 0 or text[i - 1] in " \t\n;&|()"):
            i = text.find("\n", i) if "\n" in text[i:] else len(text)
            continue
        elif quote is None and c == "\n":
            out.append((start, "".join(buf)))
            buf, line, i = [], line + 1, i + 1
            start = line
            continue
        line += c == "\n"
        buf.append(c)
        i += 1
    out.append((start, "".join(buf)))
    return [(n, code) for n, code in out if code.strip()]


# -- the words -------------------------------------------------------------------------------------

def _words(code: str) -> list[str]:
    lex = shlex.shlex(code, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    lex.commenters = ""
    return list(lex)


def _is_operator(word: str) -> bool:
    return bool(word) and set(word) <= PUNCTUATION


def _check_variable(name: str, how: str) -> str | None:
    if name.startswith("CUDA_"):
        return f"{how} {name}: the graders choose the GPU (CUDA_* is forbidden)"
    if name == "PATH":
        return f"{how} PATH: changes which python3 runs (the graders' environment is the one on the PATH)"
    return None


def _check_command(name: str, args: list[str]) -> list[str]:
    """Messages for the command `name` with its arguments (up to the next operator)."""
    base = posixpath.basename(name)
    if name in FORBIDDEN or base in FORBIDDEN:
        return [f"`{name}` is forbidden in hw1_*.sh ({FORBIDDEN.get(name) or FORBIDDEN[base]})"]
    if PYTHON.fullmatch(base):
        if base != "python3":
            return [f"`{name}`: the graders run `python3` only"]
        if name != base:
            return [f"`{name}`: call python3 by name (the graders' environment is the python3 on the PATH)"]
        if any(a == "-m" and b.split(".")[0] in {"pip", "ensurepip", "conda"} for a, b in zip(args, args[1:])):
            return [f"`{name} -m pip`: installs packages (pip is forbidden)"]
    if base in DECLARERS:  # export NAME=value, unset NAME, ...
        names = [m.group(1) if (m := ASSIGNMENT.match(a)) else a for a in args]
        return [m for m in (_check_variable(n, f"`{base}`") for n in names) if m]
    if base == "eval" or (base in {"bash", "sh"} and args[:1] == ["-c"]):
        body = " ".join(args) if base == "eval" else (args[1] if len(args) > 1 else "")
        return [f"in `{base}`: {v.message}" for v in check_script(body)]
    return []


def _check_line(line: int, code: str) -> list[Violation]:
    try:
        words = _words(code)
    except ValueError as exc:
        return [Violation(line, f"cannot be parsed as shell words ({exc})")]
    found: list[str] = []
    at_command, i = True, 0
    while i < len(words):
        word = words[i]
        if word in REDIRECTS:
            i += 2  # the file name after it is no command
            continue
        if _is_operator(word):
            at_command = True
        elif at_command:
            assignment = ASSIGNMENT.match(word)
            if assignment:
                found += filter(None, [_check_variable(assignment.group(1), "sets")])
            elif word not in KEYWORDS and not (word.startswith("-") and i and words[i - 1] in WRAPPERS):
                end = next((j for j in range(i + 1, len(words)) if _is_operator(words[j])), len(words))
                found += _check_command(word, words[i + 1:end])
                at_command = word in WRAPPERS
        i += 1
    return [Violation(line, m) for m in found]
