"""Tokenizer for the KQL subset: one compiled regular expression, literals decoded here."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any, Final

from .model import KqlError

# Token kinds.
NAME: Final = "NAME"
STRING: Final = "STRING"
LONG: Final = "LONG"
REAL: Final = "REAL"
TIMESPAN: Final = "TIMESPAN"
RAW: Final = "RAW"  # the raw text of datetime(...), timespan(...), guid(...)
DYNAMIC: Final = "DYNAMIC"  # a decoded dynamic(...) literal
OP: Final = "OP"
EOF: Final = "EOF"


class Token:
    """One token: its kind, source text, decoded value and offset in the query text."""

    __slots__ = ("kind", "pos", "text", "value")

    def __init__(self, kind: str, text: str, value: Any, pos: int) -> None:
        self.kind = kind
        self.text = text
        self.value = value
        self.pos = pos

    def __repr__(self) -> str:
        return f"Token({self.kind}, {self.text!r}, {self.pos})"


# Timespan units as KQL spells them, longest first so the alternation picks the whole word.
_UNITS: Final[dict[str, float]] = {}
for _names, _seconds in (
    (("days", "day", "d"), 86400.0),
    (("hours", "hour", "hrs", "hr", "h"), 3600.0),
    (("minutes", "minute", "mins", "min", "m"), 60.0),
    (("seconds", "second", "secs", "sec", "s"), 1.0),
    (("milliseconds", "millisecond", "millis", "milli", "ms"), 1e-3),
    (("microseconds", "microsecond"), 1e-6),
    (("ticks", "tick"), 1e-7),
):
    for _name in _names:
        _UNITS[_name] = _seconds
_UNIT_RE = "|".join(sorted(_UNITS, key=len, reverse=True))

# Multi-word operators the lexer keeps whole, so `project-away` is one name, not a subtraction.
_DASHED = (
    "project-away|project-rename|project-keep|project-reorder|mv-expand|mv-apply|make-series|"
    "parse-where|parse-kv|top-nested|top-hitters"
)

_TOKEN_RE: Final = re.compile(
    r"""
    (?P<ws>(?:\s+|//[^\n]*)+)
  | (?P<verbatim>[hH]?@(?:'(?:[^']|'')*'|"(?:[^"]|"")*"))
  | (?P<multiline>```.*?```)
  | (?P<string>[hH]?(?:'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"))
  | (?P<timespan>(?:\d+(?:\.\d+)?)(?:"""
    + _UNIT_RE
    + r""")(?![A-Za-z0-9_]))
  | (?P<hex>0[xX][0-9a-fA-F]+(?![A-Za-z0-9_]))
  | (?P<real>(?:\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)(?![A-Za-z0-9_]))
  | (?P<long>\d+(?![A-Za-z0-9_.]|\.\d))
  | (?P<dashed>(?:"""
    + _DASHED
    + r""")(?![A-Za-z0-9_]))
  | (?P<negated>!(?:in~|[A-Za-z_]+))
  | (?P<name>in~|[A-Za-z_$][A-Za-z0-9_]*)
  | (?P<op>==|!=|<>|<=|>=|=~|!~|\.\.|[=<>+\-*/%()\[\]{},;|.:!])
    """,
    re.VERBOSE | re.DOTALL,
)

_ESCAPES: Final = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "0": "\0",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
}
_ESCAPE_RE: Final = re.compile(r"\\(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)", re.DOTALL)
_RAW_LITERALS: Final = frozenset({"datetime", "timespan", "time", "guid"})
_JSON: Final = json.JSONDecoder()


def line_and_column(text: str, pos: int) -> tuple[int, int]:
    """1-based line and 0-based column of offset ``pos``, as the service reports positions."""
    line = text.count("\n", 0, pos) + 1
    start = text.rfind("\n", 0, pos) + 1
    return line, pos - start


def syntax_error(text: str, pos: int, token: str) -> KqlError:
    """The service's parse error for the token at ``pos``."""
    line, column = line_and_column(text, pos)
    shown = token if token else "<EOF>"
    return KqlError(
        "SyntaxError",
        f"Query could not be parsed at '{shown}' on line [{line},{column}]",
        line=line,
        pos=column,
        token=shown,
    )


def _unescape(body: str, text: str, pos: int) -> str:
    def replace(match: re.Match[str]) -> str:
        code = match.group(1)
        if code[0] in "ux" and len(code) > 1:
            return chr(int(code[1:], 16))
        if code in _ESCAPES:
            return _ESCAPES[code]
        raise syntax_error(text, pos, "\\" + code)

    return _ESCAPE_RE.sub(replace, body) if "\\" in body else body


def _timespan(literal: str) -> timedelta:
    match = re.match(r"(\d+(?:\.\d+)?)(.*)", literal)
    assert match is not None  # the token regex guarantees the shape
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens; raise KqlError(SyntaxError) on characters KQL cannot start."""
    tokens: list[Token] = []
    pos = 0
    end = len(text)
    match_at = _TOKEN_RE.match
    while pos < end:
        m = match_at(text, pos)
        if m is None:
            raise syntax_error(text, pos, text[pos])
        kind = m.lastgroup
        lexeme = m.group()
        if kind == "ws":
            pass
        elif (kind == "name" and lexeme in _RAW_LITERALS) or lexeme == "dynamic":
            pos = _typed_literal(text, m.end(), lexeme, pos, tokens)
            continue
        elif kind == "name" or kind == "dashed" or kind == "negated":
            tokens.append(Token(NAME, lexeme, lexeme, pos))
        elif kind == "string":
            body = lexeme[2:-1] if lexeme[0] in "hH" else lexeme[1:-1]
            tokens.append(Token(STRING, lexeme, _unescape(body, text, pos), pos))
        elif kind == "verbatim":
            body = lexeme[lexeme.index("@") + 2 : -1]
            quote = lexeme[-1]
            tokens.append(Token(STRING, lexeme, body.replace(quote * 2, quote), pos))
        elif kind == "multiline":
            tokens.append(Token(STRING, lexeme, lexeme[3:-3], pos))
        elif kind == "long":
            tokens.append(Token(LONG, lexeme, int(lexeme), pos))
        elif kind == "hex":
            tokens.append(Token(LONG, lexeme, int(lexeme, 16), pos))
        elif kind == "real":
            tokens.append(Token(REAL, lexeme, float(lexeme), pos))
        elif kind == "timespan":
            tokens.append(Token(TIMESPAN, lexeme, _timespan(lexeme), pos))
        else:
            tokens.append(Token(OP, lexeme, lexeme, pos))
        pos = m.end()
    tokens.append(Token(EOF, "", None, end))
    return tokens


def _typed_literal(text: str, after: int, word: str, start: int, tokens: list[Token]) -> int:
    """Lex ``datetime(...)``/``timespan(...)``/``guid(...)`` as RAW and ``dynamic(...)`` as JSON.

    Their bodies are not KQL tokens (``2024-01-01 10:00`` would not lex), so they are cut here.
    A bare word not followed by ``(`` is an ordinary name (a column may be called ``time``).
    """
    i = after
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text) or text[i] != "(":
        tokens.append(Token(NAME, word, word, start))
        return after
    if word == "dynamic":
        j = i + 1
        while j < len(text) and text[j].isspace():
            j += 1
        try:
            value, j = _JSON.raw_decode(text, j)
        except ValueError:
            raise syntax_error(text, j, text[j : j + 1]) from None
        while j < len(text) and text[j].isspace():
            j += 1
        if j >= len(text) or text[j] != ")":
            raise syntax_error(text, j, text[j : j + 1])
        tokens.append(Token(DYNAMIC, text[start : j + 1], value, start))
        return j + 1
    close = text.find(")", i)
    if close < 0:
        raise syntax_error(text, len(text), "")
    tokens.append(Token(RAW, word, text[i + 1 : close].strip(), start))
    return close + 1
