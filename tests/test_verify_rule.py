"""Rule verifier: (gold, response, expected) tables, one comment per failure mode."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from rlev.verify import RuleVerifier, extract_final_answer, rule, verify

# ---------------------------------------------------------------------------------------
# extract_final_answer: the ladder boxed -> #### -> "answer is" -> last line
# ---------------------------------------------------------------------------------------
EXTRACT_CASES = [
    # the synthetic exams' worked and direct formats
    ("3+5=8 8+2=10 10+7=17 #### 17", "17"),
    ("#### 17", "17"),
    # the LAST marker wins (a model that restates an intermediate result)
    ("#### 3\nwait\n#### 4", "4"),
    ("#### 5 #### 6", "6"),
    ("#####  7", "7"),  # an extra '#' is still the marker
    ("####\n8", "8"),  # the answer on the next line
    # a marker with nothing after it: the model gave no answer (not the line before)
    ("3+5=8 8+2=10 #### ", None),
    ("#### 17 ####", None),
    # boxed beats every other marker, and nested braces stay balanced
    (r"#### 9 but really $\boxed{\frac{1}{2}}$", r"\frac{1}{2}"),
    (r"\boxed{1} then \boxed{\sqrt{x^{2}}}", r"\sqrt{x^{2}}"),
    # a truncated last \boxed falls back to the previous complete one
    (r"\boxed{2} and \boxed{3", "2"),
    # answer phrases, English and Chinese, closed at the sentence end
    ("The answer is 42. Let me double-check.", "42"),
    ("Final Answer: B", "B"),
    ("解析：……所以答案是C。", "C"),
    ("答案为：北京。", "北京"),
    ("综上，故选D", "D"),
    ("【答案】B\n【解析】略", "B"),
    ("The correct option is (C), since it fits", "(C), since it fits"),
    # decimals are not sentence ends
    ("the answer is 3.5", "3.5"),
    # nothing marked: the last non-empty line
    ("step one\nstep two\n\n  Paris \n\n", "Paris"),
    # nothing at all
    ("", None),
    ("  \n\t", None),
]


@pytest.mark.parametrize(("response", "expected"), EXTRACT_CASES)
def test_extract_final_answer(response, expected):
    assert extract_final_answer(response) == expected


def test_extract_final_answer_rejects_non_strings():
    # A None or number response (broken generation record) is "no answer", not a crash.
    assert extract_final_answer(None) is None  # type: ignore[arg-type]
    assert extract_final_answer(17) is None  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# verify: (gold, response, expected)
# ---------------------------------------------------------------------------------------
VERIFY_CASES = [
    # --- single-letter multiple choice
    ("A", "答案是A", True),
    ("A", "The answer is (A).", True),
    ("A", "The answer is C. had done", False),
    ("C", "The answer is C. had done", True),  # letter followed by its option text
    ("D", r"\boxed{D}", True),
    ("D", r"\boxed{d}", True),  # lowercase accepted when the answer is only the letter
    ("B", "答案是A", False),  # wrong letter
    ("B", "答案是AB", False),  # hedging with two letters is wrong
    ("C", "选项C", True),
    ("C", "The correct option is (C), since the passage says so", True),
    ("B", "【答案】B", True),
    ("C", "options C", True),
    # --- multi-part answers: one letter per sub-question, order matters
    ("B; C; A", "答案是B; C; A", True),
    ("B; C; A", "答案是BCA", True),
    ("B; C; A", "答案是B,C,A", True),
    ("B; C; A", "答案是B C A", True),
    ("B; C; A", "答案是B、C、A。", True),
    ("B; C; A", "(1) B (2) C (3) A", True),  # numbered parts on the last line
    ("B; C; A", "答案是14.B15.C16.A", True),  # GAOKAO's run-together numbering
    ("B; C; A", "答案是A; B; C", False),  # same letters, wrong order
    ("B; C; A", "答案是B; C", False),  # a part missing
    ("B; C; A", "答案是B; C; A; D", False),  # an extra part
    # --- multi-select (letters run together): a set
    ("AD", "AD", True),
    ("AD", "The answer is A, D", True),
    ("AD", "The answer is D and A", True),
    ("AD", "The answer is A", False),  # incomplete selection
    ("AD", "The answer is ABD", False),  # over-selection
    # --- numbers and tolerance
    ("17", "3+5=8 8+2=10 10+7=17 #### 17", True),
    ("17", "3+5=8 8+2=10 10+7=16 #### 16", False),
    ("17", "#### 17.0", True),
    ("17", "#### 17.00001", True),  # 5.9e-7 relative: inside the default 1e-6
    ("17", "#### 17.0001", False),  # 5.9e-6 relative: outside it
    ("1000", "#### 1,000", True),  # thousands separator
    ("1,000", "The answer is 1000.", True),
    ("1000", "#### 1,00", False),  # not a thousands separator: no number, no match
    ("0.3333", "#### 1/3", False),  # 3e-5 away: outside the 1e-6 tolerances
    ("0.3333333", "#### 1/3", True),
    ("-5", "#### -5", True),  # negatives
    ("-5", "#### 5", False),  # sign matters
    ("-5", "#### −5", True),  # unicode minus
    ("3", "#### 3 apples", True),  # a unit after the number
    ("90", "The answer is 90°", True),
    ("5", "答案是5个", True),
    ("3", "x = 3", True),  # a variable before it
    ("3", "#### 3pi", False),  # not a unit: maths
    ("2", "#### 2i", False),
    ("17", r"#### \frac{34}{2}", True),  # LaTeX still reaches math_verify
    ("17", r"#### $\sqrt{289}$", True),
    # truncated or malformed synthetic generations are wrong (and cheap: no sympy)
    ("17", "3+5=8 8+2=1", False),
    ("17", "3+5=8 8+", False),
    ("17", "3+5=8 8+2=10 10+7=17", False),  # no marker: the last line is not a number
    ("17", "#### 17 18", False),  # two numbers
    ("17", "#### 1#7", False),
    # --- percents
    ("50%", "The answer is 50%", True),
    ("50%", "The answer is 50", True),  # unit omitted
    ("50%", "The answer is 0.5", True),  # as a share
    ("0.5", r"The answer is 50\%", True),
    ("50%", "The answer is 5", False),
    # --- fractions
    ("3/4", "#### 0.75", True),
    ("0.75", r"\boxed{\frac{3}{4}}", True),
    ("3/4", r"\boxed{\dfrac{3}{4}}", True),
    ("-3/4", r"\boxed{-\frac{3}{4}}", True),
    ("3/4", "#### 4/3", False),
    ("1/0", "#### 1/0", True),  # undefined numbers still match as identical text
    # --- LaTeX maths through math_verify
    (r"\frac{1}{2}", "0.5", True),
    (r"\frac{\sqrt{2}}{2}", r"\boxed{\frac{1}{\sqrt{2}}}", True),
    (r"x^2+2x+1", r"\boxed{(x+1)^2}", True),
    (r"x^2+2x+1", r"\boxed{(x-1)^2}", False),
    (r"\{1,2\}", r"\boxed{\{2,1\}}", True),  # sets are unordered
    (r"[1,2)", r"\boxed{[1,2]}", False),  # interval ends matter
    (r"\pi", r"\boxed{3.14159265358979}", True),
    (r"\boxed{5}", "#### 5", True),  # a boxed gold is reduced like a response
    # --- normalised exact match: Chinese, full-width, case, punctuation
    ("北京", "所以答案是：北京。", True),
    ("北京", "答案是南京", False),
    ("ＡＢＣ公司", "答案是ABC公司", True),  # full-width letters
    ("Paris", "the answer is  paris.", True),  # case and trailing period
    ("New York", "answer: newyork", True),  # whitespace ignored
    ("Paris", "the answer is London", False),
    ("光合作用", "答案是“光合作用”", True),  # Chinese quotes
    # --- no answer / unparsable never raises and is False
    ("17", "", False),
    ("17", "I do not know", False),
    ("", "#### 17", False),  # empty gold verifies nothing
]


@pytest.mark.parametrize(("gold", "response", "expected"), VERIFY_CASES)
def test_verify(gold, response, expected):
    assert verify(gold, response) is expected


def test_tolerance_is_configurable():
    # 17.001 is 5.9e-5 relative away: wrong at the default, right at rel_tol=1e-4.
    assert verify("17", "#### 17.001") is False
    assert verify("17", "#### 17.001", rel_tol=1e-4) is True
    assert RuleVerifier(rel_tol=1e-4)(["17"], ["#### 17.001"]) == [True]


@pytest.mark.parametrize("bad", [None, 3, b"17", ["17"]])
def test_verify_never_raises_on_bad_input(bad):
    assert verify("17", bad) is False  # type: ignore[arg-type]
    assert verify(bad, "#### 17") is False  # type: ignore[arg-type]


def test_verify_maths_off_the_main_thread():
    # math_verify's own timeout uses signal.alarm, which raises in a worker thread;
    # the verifier must take the non-signal path there and still decide correctly.
    results: dict[str, bool] = {}

    def run() -> None:
        results["right"] = verify(r"x^2+2x+1", r"\boxed{(x+1)^2}")
        results["wrong"] = verify(r"x^2+2x+1", r"\boxed{(x-1)^2}")

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(60)
    assert results == {"right": True, "wrong": False}


def _stuck(gold, pred):
    time.sleep(5)
    return True


def test_verify_maths_timeout_off_the_main_thread(monkeypatch):
    # A comparison that never finishes must come back False within the time limit.
    monkeypatch.setattr(rule, "_math_verify_call", _stuck)
    results: list[bool] = []
    worker = threading.Thread(
        target=lambda: results.append(verify(r"\frac{1}{3}", r"\boxed{\sqrt{y}}", math_timeout_s=0.2))
    )
    start = time.monotonic()
    worker.start()
    worker.join(10)
    assert results == [False]
    assert time.monotonic() - start < 2


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs POSIX interval timers")
def test_verify_maths_timeout_on_the_main_thread_keeps_outer_alarm(monkeypatch):
    # On the main thread the stuck call is interrupted (not abandoned), the timeout is
    # not memoised, and a caller's own pending alarm survives.
    monkeypatch.setattr(rule, "_math_verify_call", _stuck)
    fired: list[int] = []
    old = signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
    signal.setitimer(signal.ITIMER_REAL, 3.0)
    try:
        start = time.monotonic()
        assert verify(r"\frac{1}{7}", r"\boxed{\sqrt{z}}", math_timeout_s=0.2) is False
        assert time.monotonic() - start < 1.5
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < remaining < 3.0
        monkeypatch.setattr(rule, "_math_verify_call", lambda g, p: True)
        assert verify(r"\frac{1}{7}", r"\boxed{\sqrt{z}}", math_timeout_s=0.2) is True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert fired == []


def test_rule_verifier_batch_and_signature():
    verifier = RuleVerifier()
    golds = ["17", "B; C; A", r"\frac{1}{2}", "北京"]
    responses = ["#### 17", "答案是BAC", r"\boxed{0.5}", "答案是北京"]
    assert verifier(golds, responses) == [True, False, True, True]
    # questions are accepted (shared signature with the judge) and do not change results
    assert verifier(golds, responses, questions=["q"] * 4) == [True, False, True, True]
    with pytest.raises(ValueError, match="2 golds but 1 responses"):
        verifier(["1", "2"], ["#### 1"])
    with pytest.raises(ValueError, match="math_timeout_s"):
        RuleVerifier(math_timeout_s=0)
