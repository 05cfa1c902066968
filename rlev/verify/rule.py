"""Rule-based correctness verifier: does a response's final answer match the reference?

The verifier is the ``1[y correct]`` of the RLEV reward ``r(x, y) = s(x) * 1[y correct]``
(the paper). The paper uses an LLM judge (:mod:`rlev.verify.judge`); this module is the
rule-based stand-in for answers that rules can check: option letters, numbers, short
strings and LaTeX maths.

Two steps, each one documented ladder:

1. :func:`extract_final_answer` takes the final answer out of a free-form response.
2. :func:`verify` compares it with the reference, gold first (the comparison is not
   symmetric: the gold decides which kind of answer is expected).

Like Math-Verify, :func:`verify` never raises and returns ``False`` for anything it cannot
parse, so a reward function built on it cannot crash a training step. Maths goes through
``math_verify`` with a time limit that also works off the main thread (see
:func:`_math_equal`).

>>> verify("17", "3+5=8 8+2=10 10+7=17 #### 17")
True
>>> verify("B; C; A", "所以答案是BCA。")
True
>>> verify(r"\\frac{1}{2}", r"The answer is $\\boxed{0.5}$")
True
"""

from __future__ import annotations

import functools
import logging
import math
import re
import signal
import threading
import time
import unicodedata
from collections.abc import Sequence
from fractions import Fraction

logger = logging.getLogger(__name__)

__all__ = ["extract_final_answer", "verify", "RuleVerifier"]

# ---------------------------------------------------------------------------------------
# Final-answer extraction
# ---------------------------------------------------------------------------------------

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
# "The (final) answer is X", "Answer: X", "答案是X", "【答案】X", "故选C"... The answer runs
# to the end of its line; a sentence end (". " or "。") closes it earlier so that
# "The answer is C. had done" gives "C" and "答案是17。因为..." gives "17".
_ANSWER_PHRASE = re.compile(
    r"(?:(?:answer|option|choice)\s+is\s*:?|answer\s*[:：]|【答案】|\[答案\]"
    r"|答案\s*(?:是|为|应为|應為|选)\s*[:：]?|答案\s*[:：]|故选|应选|所以选|因此选)\s*"
    r"(?P<ans>[^\n]*)",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"。|\.(?=\s|$)")


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` in *text*, braces balanced, or None.

    >>> _last_boxed(r"so $\\boxed{\\frac{1}{2}}$ and not \\boxed{3")
    '\\\\frac{1}{2}'
    """
    starts = [m.end() for m in _BOXED.finditer(text)]
    for start in reversed(starts):
        depth = 1
        for i in range(start, len(text)):
            ch = text[i]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i].strip()
        # Unbalanced (truncated generation): try the previous \boxed.
    return None


def extract_final_answer(response: str) -> str | None:
    """Extract the final answer from a free-form *response*; None if there is nothing.

    The ladder, first hit wins:

    1. the content of the last ``\\boxed{...}`` (braces balanced);
    2. the text after the last GSM8K marker ``#### X`` (the synthetic exams' format),
       to the end of its line; None when nothing follows the marker;
    3. the text after the last "answer is X" / "Answer: X" / "答案是X" / "故选X",
       up to the end of its sentence;
    4. the last non-empty line.

    >>> extract_final_answer("3+5=8 8+2=10 10+7=17 #### 17")
    '17'
    >>> extract_final_answer(r"Thus $x = \\boxed{\\frac{3}{4}}$.")
    '\\\\frac{3}{4}'
    >>> extract_final_answer("解析略。故答案是C。")
    'C'
    >>> extract_final_answer("The answer is 42. Let me check again.")
    '42'
    >>> extract_final_answer("work\\n\\n  Paris  \\n")
    'Paris'
    >>> extract_final_answer("   ") is None
    True
    """
    if not isinstance(response, str) or not response.strip():
        return None
    boxed = _last_boxed(response)
    if boxed is not None:
        return boxed
    mark = response.rfind("####")
    if mark >= 0:
        # The rest of the marker's line (or the next line when the marker ends one);
        # a marker with nothing after it is a response that gave no answer.
        after = response[mark + 4 :].lstrip()
        return after.split("\n", 1)[0].strip() or None
    phrases = list(_ANSWER_PHRASE.finditer(response))
    for match in reversed(phrases):
        ans = match.group("ans")
        end = _SENTENCE_END.search(ans)
        ans = (ans[: end.start()] if end else ans).strip()
        if ans:
            return ans
    lines = [line.strip() for line in response.splitlines() if line.strip()]
    return lines[-1] if lines else None


# ---------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------

# Punctuation NFKC leaves alone but that is only typography in an answer.
_CJK_PUNCT = str.maketrans(
    {
        "。": ".",
        "、": ",",
        "「": '"',
        "」": '"',
        "『": '"',
        "』": '"',
        "“": '"',
        "”": '"',
        "‘": "'",
        "’": "'",
        "−": "-",
        "–": "-",
    }
)
_TRAILING = ".!?;:,"
_QUOTES = "\"'`"


def _normalise_text(text: str) -> str:
    """Canonical form for exact matching: NFKC (full-width -> ASCII), Chinese punctuation
    mapped to ASCII, case folded, all whitespace removed, trailing punctuation, wrapping
    quotes and ``$...$`` stripped.

    >>> _normalise_text("  Ｎｅｗ  York。 ")
    'newyork'
    """
    s = unicodedata.normalize("NFKC", text).translate(_CJK_PUNCT).casefold()
    s = re.sub(r"\s+", "", s)
    prev = None
    while s != prev:  # strip layers such as '"$x$".' one at a time
        prev = s
        s = s.rstrip(_TRAILING)
        if len(s) >= 2 and s[0] == s[-1] and s[0] in _QUOTES + "$":
            s = s[1:-1]
        s = re.sub(r"^\\\((.*)\\\)$", r"\1", s)
        s = re.sub(r"^\\text\{(.*)\}$", r"\1", s)
    return s


# ---------------------------------------------------------------------------------------
# Multiple-choice letters
# ---------------------------------------------------------------------------------------

_LETTERS = "ABCDEFG"
# Gold forms: "C", "AD" (multi-select), "B; C; A" / "B,C,A" / "B C A" (one per part).
_GOLD_LETTERS = re.compile(rf"^[{_LETTERS}](?:\s*[;,，；、\s]\s*[{_LETTERS}])*$|^[{_LETTERS}]+$")
# Part numbers a response may put before each letter: "(1) B (2) C", "1. B 2. C", "14.C15.D".
_ENUMERATOR = re.compile(r"[(（]\s*\d+\s*[)）]|\d+\s*[.．、:：)）]")
_SEPARATORS = re.compile(r"[\s;,，；、/|&]+|\band\b|和|与")


def _gold_letters(gold: str) -> tuple[list[str], bool] | None:
    """Option letters of a multiple-choice gold and whether their order matters.

    ``"B; C; A"`` (separated: one letter per sub-question) is ordered; ``"AD"`` (run
    together: one multi-select question) is a set. None if *gold* is not letters.

    >>> _gold_letters("B; C; A")
    (['B', 'C', 'A'], True)
    >>> _gold_letters("AD")
    (['A', 'D'], False)
    >>> _gold_letters("Paris") is None
    True
    """
    g = unicodedata.normalize("NFKC", gold).strip().rstrip(".。")
    if not _GOLD_LETTERS.match(g):
        return None
    letters = re.findall(rf"[{_LETTERS}]", g)
    ordered = len(letters) == 1 or bool(re.search(r"[^A-G]", g))
    return letters, ordered


def _response_letters(answer: str) -> list[str] | None:
    """Option letters a final answer commits to, or None if it is not a letter answer.

    Accepts "BCA", "B, C, A", "B C A", "(1) B (2) C (3) A", "(C)", "选项C", and a
    leading letter followed by its option text ("C. had done", "D项").

    >>> _response_letters("(1) B (2) C (3) A")
    ['B', 'C', 'A']
    >>> _response_letters("C. had done")
    ['C']
    >>> _response_letters("Paris") is None
    True
    """
    s = unicodedata.normalize("NFKC", answer).strip()
    s = re.sub(r"^(?:选项|options|option|choice)\s*", "", s, flags=re.IGNORECASE)
    s = s.rstrip(".。!！")
    body = _ENUMERATOR.sub(" ", s)
    body = re.sub(r"[()\[\]{}*$\"']", " ", body)
    tokens = [t for t in _SEPARATORS.split(body) if t]
    if tokens and all(re.fullmatch(rf"[{_LETTERS}]+", t, re.IGNORECASE) for t in tokens):
        joined = "".join(tokens)
        # Lowercase only counts when the answer is nothing but letters in one short
        # token ("b", "\\boxed{c}"); otherwise "a" is more likely the English article.
        if joined.isupper() or len(tokens) == 1 and len(joined) <= 4:
            return list(joined.upper())
    # A leading letter followed by its option text: "C. had done", "(B) because", "D项".
    lead = re.match(rf"^[(\[]?([{_LETTERS}])(?:[)\].:：、\s]|项|選項|选项|$)", s)
    if lead:
        return [lead.group(1)]
    return None


def _letters_match(gold: str, answer: str) -> bool | None:
    """Compare option letters; None when *gold* is not a letter answer."""
    parsed = _gold_letters(gold)
    if parsed is None:
        return None
    want, ordered = parsed
    got = _response_letters(answer)
    if got is None:
        return False
    return got == want if ordered else sorted(got) == sorted(want)


# ---------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------

_NUM = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+"
_FRAC_LATEX = re.compile(r"^([-+]?)\\[dt]?frac\{\s*(" + _NUM + r")\s*\}\{\s*(" + _NUM + r")\s*\}$")
_FRAC_PLAIN = re.compile(r"^(" + _NUM + r")\s*/\s*(" + _NUM + r")$")
_PLAIN = re.compile(r"^(" + _NUM + r")$")


def _parse_number(text: str) -> tuple[float, bool] | None:
    """Parse a plain number: ``(value, is_percent)`` or None.

    Handles thousands separators ("1,000"), percents ("50%", "50\\\\%"), plain and LaTeX
    fractions ("3/4", "\\\\frac{3}{4}"), signs, unicode minus, ``$...$`` wrappers and
    a trailing period. Anything else (units, words, expressions) is None.

    >>> _parse_number("1,000")
    (1000.0, False)
    >>> _parse_number("-\\\\frac{3}{4}")
    (-0.75, False)
    >>> _parse_number("50\\\\%")
    (50.0, True)
    >>> _parse_number("17 apples") is None
    True
    """
    s = unicodedata.normalize("NFKC", text).translate(_CJK_PUNCT).strip()
    s = s.strip("$").strip()
    s = re.sub(r"^\\\((.*)\\\)$", r"\1", s).strip()
    if re.search(r"\d\s+\d", s):  # "17 18" is two numbers, not one
        return None
    s = re.sub(r"\s+", "", s).rstrip(".")
    percent = False
    for suffix in ("\\%", "%"):
        if s.endswith(suffix):
            s, percent = s[: -len(suffix)], True
            break
    s = s.replace("{,}", ",")  # LaTeX thousands separator "1{,}000"

    def num(token: str) -> Fraction:
        return Fraction(token.replace(",", ""))

    try:
        if m := _PLAIN.match(s):
            return float(num(m.group(1))), percent
        if m := _FRAC_PLAIN.match(s):
            value = num(m.group(1)) / num(m.group(2))
            return float(value), percent
        if m := _FRAC_LATEX.match(s):
            value = num(m.group(2)) / num(m.group(3))
            return float(-value if m.group(1) == "-" else value), percent
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return None


# "x = 17", "17 apples", "90°", "5个": a number with a variable before it or a unit after.
_VAR_PREFIX = re.compile(r"^[A-Za-z]\w{0,10}\s*=\s*")
_UNIT_SUFFIX = re.compile(r"(?<=[\d%])\s*([A-Za-z]{2,20}|[\u4e00-\u9fff]{1,4}|[°mgsLhVWJN])\.?$")
# Letters after a number that make it maths, not a unit: "3pi", "2i", "4x".
_NOT_UNITS = {"pi", "sqrt", "inf", "infty", "ln", "log", "sin", "cos", "tan", "deg"}


def _parse_number_loose(text: str) -> tuple[float, bool] | None:
    """:func:`_parse_number` after dropping a leading ``x =`` and a trailing unit word.

    >>> _parse_number_loose("x = 17 apples")
    (17.0, False)
    >>> _parse_number_loose("50 percent")
    (50.0, False)
    >>> _parse_number_loose("3pi") is None
    True
    """
    s = unicodedata.normalize("NFKC", text).strip().rstrip(".。")
    s = _VAR_PREFIX.sub("", s)
    unit = _UNIT_SUFFIX.search(s)
    if unit:
        if unit.group(1).lower() in _NOT_UNITS:
            return None
        s = s[: unit.start()]
    return _parse_number(s)


def _numbers_match(gold: tuple[float, bool], pred: tuple[float, bool], rel_tol: float, abs_tol: float) -> bool:
    """Numbers equal within tolerance; a percent on either side may be read as a share.

    Gold "50%" accepts 50% or 50 or 0.5; gold 0.5 accepts 50%.
    """
    (g, g_pct), (p, p_pct) = gold, pred
    golds, preds = {g}, {p}
    if g_pct:
        golds.add(g / 100)
    if p_pct:
        preds.add(p / 100)
    return any(math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol) for a in golds for b in preds)


# ---------------------------------------------------------------------------------------
# Maths via math_verify
# ---------------------------------------------------------------------------------------

_LATEX_MARK = re.compile(r"[\\$]")
_MATHY = re.compile(r"[\d\\^_=<>+*/()\[\]{}$]|\bpi\b|sqrt|infty")
# Longer inputs are not short final answers; sympy can take minutes on them.
_MATH_MAX_CHARS = 400


def _looks_mathematical(gold: str) -> bool:
    """Whether *gold* is worth handing to math_verify (digits, LaTeX or operators)."""
    return bool(_MATHY.search(gold)) and len(gold) <= _MATH_MAX_CHARS


def _as_latex(text: str) -> str:
    """Wrap a bare answer in ``$...$`` so math_verify's LaTeX extractor sees all of it."""
    t = text.strip()
    if "$" in t or "\\(" in t or "\\[" in t or "\\boxed" in t:
        return t
    return f"${t}$"


class _MathTimeout(BaseException):
    """Raised inside a math_verify call past its time limit.

    A BaseException, like math_verify's own TimeoutException, so that math_verify's
    ``except Exception`` handlers let it through instead of turning it into False.
    """


class _DropTimeoutDisabledWarning(logging.Filter):
    # math_verify warns once that its timeout is disabled; here the limit is ours.
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutDisabledWarning())


def _math_verify_call(gold: str, pred: str) -> bool:
    # Imported here: math_verify pulls in sympy (~0.5 s), which letter and number
    # answers never need. Its own timeouts are off (None): we bound the whole call.
    from math_verify import parse
    from math_verify import verify as mv_verify

    gold_parsed = parse(_as_latex(gold), parsing_timeout=None)
    pred_parsed = parse(_as_latex(pred), parsing_timeout=None)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(mv_verify(gold_parsed, pred_parsed, timeout_seconds=None))


def _call_with_alarm(gold: str, pred: str, timeout_s: float) -> bool:
    """Main thread: interrupt the call with SIGALRM after *timeout_s* (float seconds).

    An outer ITIMER_REAL timer (pytest-timeout, a caller's own alarm) is re-armed with
    its remaining time afterwards.
    """

    def on_alarm(signum, frame):
        raise _MathTimeout

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, timeout_s)
    start = time.monotonic()
    try:
        return _math_verify_call(gold, pred)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay > 0:
            remaining = max(old_delay - (time.monotonic() - start), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, remaining, old_interval)


def _call_with_watcher(gold: str, pred: str, timeout_s: float) -> bool:
    """Other threads: signals are main-thread only, so wait on a daemon worker thread.

    Past the limit the computation cannot be interrupted: it is abandoned and runs to
    its end in the background (the input-length cap keeps this rare).
    """
    result: list[bool] = []

    def run() -> None:
        try:
            result.append(_math_verify_call(gold, pred))
        except Exception:  # noqa: BLE001 - any failure is "not equal"
            logger.debug("math_verify failed on %r vs %r", gold, pred, exc_info=True)
            result.append(False)

    worker = threading.Thread(target=run, daemon=True, name="rlev-math-verify")
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise _MathTimeout
    return result[0]


@functools.lru_cache(maxsize=65536)
def _math_equal_cached(gold: str, pred: str, timeout_s: float) -> bool:
    # RL samples repeat final answers (n samples per prompt), and sympy is slow, so
    # decided comparisons are memoised. A timeout raises and lru_cache does not store it.
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        return _call_with_alarm(gold, pred, timeout_s)
    return _call_with_watcher(gold, pred, timeout_s)


def _math_equal(gold: str, pred: str, timeout_s: float) -> bool:
    """math_verify equivalence of two final answers, bounded by *timeout_s*; never raises.

    math_verify 0.9's own timeout (``parsing_timeout``/``timeout_seconds``) uses
    ``signal.alarm``: whole seconds, per sub-step, and a ValueError off the main thread.
    So we call it with both set to None (its non-signal path) and bound the whole
    comparison ourselves: a SIGALRM timer on the main thread (interrupts the work), a
    watcher thread elsewhere (verl reward workers, thread pools). A timeout counts as
    not equal (False) and is not memoised.
    """
    if len(gold) > _MATH_MAX_CHARS or len(pred) > _MATH_MAX_CHARS:
        return False
    try:
        return _math_equal_cached(gold, pred, float(timeout_s))
    except _MathTimeout:
        logger.warning("math_verify timed out after %.1f s on %r vs %r", timeout_s, gold, pred)
        return False
    except Exception:  # noqa: BLE001 - the verifier must never raise
        logger.debug("math_verify failed on %r vs %r", gold, pred, exc_info=True)
        return False


# ---------------------------------------------------------------------------------------
# The verifier
# ---------------------------------------------------------------------------------------


def verify(
    gold: str,
    response: str,
    *,
    rel_tol: float = 1e-6,
    abs_tol: float = 1e-6,
    math_timeout_s: float = 5.0,
) -> bool:
    """Whether *response*'s final answer matches the reference *gold* (gold first).

    Never raises; returns False when the response has no answer or nothing parses.
    The final answer is taken by :func:`extract_final_answer`; then, in order:

    1. **option letters** when *gold* is letters: ``"B; C; A"`` (one per sub-question)
       must match in order ("BCA", "B,C,A", "B C A", "(1)B(2)C(3)A" all do); ``"AD"``
       (multi-select) must match as a set ("AD", "A, D", "DA"). The result is final.
    2. **numbers** when both sides parse as numbers ("1,000", "50%", "3/4",
       ``\\frac{3}{4}``; the response may add ``x =`` before or a unit after): equal
       within ``rel_tol``/``abs_tol``. The result is final. A number gold with a
       plain-text answer that is no number is False without step 4.
    3. **normalised exact match**: whitespace, case, trailing period, full-width
       characters and Chinese punctuation ignored.
    4. **maths** when *gold* looks mathematical: ``math_verify.parse`` + ``verify``,
       each bounded by *math_timeout_s* (also off the main thread).

    >>> verify("B; C; A", "答案是 B C A")
    True
    >>> verify("B; C; A", "答案是 A B C")
    False
    >>> verify("AD", "The answer is D, A.")
    True
    >>> verify("1000", "#### 1,000")
    True
    >>> verify("50%", "The answer is 0.5")
    True
    >>> verify("北京", "所以答案是：北京。")
    True
    >>> verify(r"x^2+2x+1", r"\\boxed{(x+1)^2}")
    True
    >>> verify("17", "no answer here at all")
    False
    """
    try:
        if not isinstance(gold, str) or not gold.strip():
            return False
        answer = extract_final_answer(response)
        if answer is None:
            return False
        # A boxed/marked gold ("\\boxed{5}", "#### 5") is reduced like a response.
        gold_answer = extract_final_answer(gold) if ("\\boxed" in gold or "####" in gold) else gold
        gold_answer = (gold_answer or gold).strip()

        letters = _letters_match(gold_answer, answer)
        if letters is not None:
            return letters

        gold_num = _parse_number(gold_answer)
        if gold_num is not None:
            pred_num = _parse_number(answer) or _parse_number_loose(answer)
            if pred_num is not None:
                return _numbers_match(gold_num, pred_num, rel_tol, abs_tol)

        if _normalise_text(gold_answer) == _normalise_text(answer):
            return True

        # A plain-number gold only needs sympy when the answer is written in LaTeX
        # ("\\frac{34}{2}"); plain text that is not a number (a truncated "3+5=8 8+")
        # is wrong, and skipping sympy keeps such answers ~1000x cheaper during RL.
        if gold_num is not None and not _LATEX_MARK.search(answer):
            return False
        if _looks_mathematical(gold_answer):
            return _math_equal(gold_answer, answer, math_timeout_s)
        return False
    except Exception:  # noqa: BLE001 - a reward must not crash training
        logger.debug("verify failed on gold=%r", gold, exc_info=True)
        return False


class RuleVerifier:
    """Batched rule-based verifier with the verifiers' shared call signature.

    ``RuleVerifier()(golds, responses, questions=None) -> list[bool | None]``; the rule
    verifier always decides, so every entry is a bool. *questions* is accepted (and
    ignored) so that rule and judge verifiers are interchangeable.

    >>> RuleVerifier()(["17", "C"], ["#### 17", "答案是D"])
    [True, False]
    """

    def __init__(self, rel_tol: float = 1e-6, abs_tol: float = 1e-6, math_timeout_s: float = 5.0):
        if rel_tol < 0 or abs_tol < 0:
            raise ValueError(f"tolerances must be >= 0, got rel_tol={rel_tol}, abs_tol={abs_tol}")
        if math_timeout_s <= 0:
            raise ValueError(f"math_timeout_s must be > 0, got {math_timeout_s}")
        self.rel_tol = rel_tol
        self.abs_tol = abs_tol
        self.math_timeout_s = math_timeout_s

    def __call__(
        self,
        golds: Sequence[str],
        responses: Sequence[str],
        questions: Sequence[str] | None = None,
    ) -> list[bool | None]:
        if len(golds) != len(responses):
            raise ValueError(f"{len(golds)} golds but {len(responses)} responses")
        if questions is not None and len(questions) != len(golds):
            raise ValueError(f"{len(golds)} golds but {len(questions)} questions")
        return [
            verify(g, r, rel_tol=self.rel_tol, abs_tol=self.abs_tol, math_timeout_s=self.math_timeout_s)
            for g, r in zip(golds, responses)
        ]

    def __repr__(self) -> str:
        return f"RuleVerifier(rel_tol={self.rel_tol}, abs_tol={self.abs_tol}, math_timeout_s={self.math_timeout_s})"
