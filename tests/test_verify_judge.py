"""LLM-judge client against a loopback OpenAI-compatible server that can misbehave.

The server (aiohttp.web on 127.0.0.1, a free port, its own thread) answers YES when the
reference and the student's final answer in the prompt are equal after trimming and
case folding, NO otherwise. Per question it can be told to fail the first k attempts
(hang past the client timeout, HTTP 500/429, a body that is not JSON or not UTF-8, a
reply that is not a clear YES/NO, a 500 or 400 whose body echoes the request's headers)
or every attempt. It records attempts per question and the most requests it had
in flight at once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections import Counter

import aiohttp.web
import pytest

from rlev.verify import JudgeError, JudgeVerifier, build_verifier
from rlev.verify.judge import JUDGE_USER_TEMPLATE, parse_verdict

HANG_S = 3.0  # a "timeout" reply sleeps this long; clients here wait 1 s (a busy 2-core machine may take 0.3 s)


def _tag(text: str, name: str) -> str:
    match = re.search(rf"<{name}>\n(.*?)\n</{name}>", text, re.DOTALL)
    assert match, f"prompt lacks <{name}>"
    return match.group(1)


class FakeJudgeServer:
    """A loopback chat-completions server with scripted faults; see the module docstring."""

    def __init__(self, latency_s: float = 0.0):
        self.latency_s = latency_s
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True, name="fake-judge")
        self.reset()

    def reset(self) -> None:
        self.faults: dict[str, list[str]] = {}  # question -> faults for its first attempts
        self.always: dict[str, str] = {}  # question -> fault on every attempt
        self.attempts: Counter[str] = Counter()
        self.auth_headers: list[str | None] = []
        self.in_flight = getattr(self, "in_flight", 0)  # live handlers, never zeroed
        self.max_in_flight = 0
        self.requests = 0

    # -- server side (runs on self.loop) --
    async def _handle(self, request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        self.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            body = await request.json()
            self.auth_headers.append(request.headers.get("Authorization"))
            if body["model"] != "judge-model":
                return aiohttp.web.json_response({"error": "model not found"}, status=404)
            user = body["messages"][-1]["content"]
            question = _tag(user, "question")
            attempt = self.attempts[question]
            self.attempts[question] += 1
            planned = self.faults.get(question, [])
            fault = self.always.get(question) or (planned[attempt] if attempt < len(planned) else None)
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            if fault == "timeout":
                await asyncio.sleep(HANG_S)
            elif fault == "500":
                return aiohttp.web.Response(status=500, text="internal error")
            elif fault == "429":
                return aiohttp.web.Response(status=429, text="slow down")
            elif fault == "not_json":
                return aiohttp.web.Response(status=200, text="<html>proxy error</html>")
            elif fault == "no_verdict":
                return self._reply("I cannot tell.")
            elif fault == "hedge":
                return self._reply("I cannot say yes or no.")
            elif fault == "think_cut":  # a reasoning judge stopped by max_tokens
                return self._reply("<think>The reference is 7 and the answer is 7, so yes", "length")
            elif fault == "no_doubt":
                return self._reply("No doubt, YES.")
            elif fault == "bad_utf8":
                return aiohttp.web.Response(
                    status=200,
                    body=b'{"choices": [{"message": {"content": "YES\xff\xfe"}}]}',
                    content_type="application/json",
                )
            elif fault in ("echo_500", "echo_400"):
                headers = sorted(request.headers.items(), key=lambda kv: kv[0] != "Authorization")  # it first
                echoed = "\n".join(f"{k}: {v}" for k, v in headers)
                return aiohttp.web.Response(status=int(fault[-3:]), text=f"bad request; you sent:\n{echoed}")
            same = (
                _tag(user, "reference_answer").strip().casefold()
                == _tag(user, "student_final_answer").strip().casefold()
            )
            return self._reply("YES" if same else "NO")
        finally:
            self.in_flight -= 1

    @staticmethod
    def _reply(content: str, finish_reason: str = "stop") -> aiohttp.web.Response:
        return aiohttp.web.json_response(
            {
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
                ]
            }
        )

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = aiohttp.web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self.runner = aiohttp.web.AppRunner(app, shutdown_timeout=0.5)
        self.loop.run_until_complete(self.runner.setup())
        site = aiohttp.web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()

    # -- test side --
    def start(self) -> FakeJudgeServer:
        self.thread.start()
        assert self.ready.wait(10), "fake judge server did not start"
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@pytest.fixture(scope="module")
def server():
    srv = FakeJudgeServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def judge_server(server):
    # A "timeout" reply from an earlier test may still be sleeping on the server; let it
    # finish so that it does not count as in flight here.
    deadline = time.monotonic() + HANG_S + 2
    while server.in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    server.reset()
    server.latency_s = 0.0
    return server


def make_judge(server: FakeJudgeServer, **kw) -> JudgeVerifier:
    args = dict(
        base_url=server.base_url, model="judge-model", timeout_s=1.0, max_retries=3, backoff_s=0.01, max_backoff_s=0.05
    )
    args.update(kw)
    return JudgeVerifier(**args)


# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("YES", True),
        ("yes.", True),
        ("No", False),
        ("  **NO**\n", False),
        ("<think>no idea... yes</think> NO", False),  # a complete reasoning block is skipped
        ("the answers match, so yes</think>\nYes", True),  # opening tag in the chat template
        # only a clear verdict counts: anything else is malformed
        (" NO, they differ", None),
        ("Yes, because no other option fits", None),
        ("I cannot say yes or no.", None),
        ("No doubt, YES.", None),
        ("<think>the answer is 7, so yes", None),  # cut off by max_tokens
        ("YES <think>wait</think> NO", None),
        ("Nope", None),
        ("I cannot tell.", None),
        ("", None),
        ("Not equivalent", None),
        (None, None),
    ],
)
def test_parse_verdict(reply, expected):
    assert parse_verdict(reply) is expected


def test_verdicts_follow_the_judge(judge_server):
    judge = make_judge(judge_server)
    golds = ["17", "Paris", "B; C; A", "北京"]
    responses = ["3+5=8 #### 17", "The answer is London.", "答案是B; C; A", "答案是北京。"]
    verdicts = judge(golds, responses, ["q1", "q2", "q3", "q4"])
    assert verdicts == [True, False, True, True]
    assert judge.last_stats.as_dict() == {
        "verified": 4,
        "unverified": 0,
        "cache_hits": 0,
        "retries": 0,
        "requests": 4,
        "no_answer": 0,
    }
    assert judge_server.requests == 4


def test_prompt_carries_question_reference_and_extracted_answer(judge_server):
    judge = make_judge(judge_server)
    messages = judge.messages("What is 2+2?", "4", "four")
    assert messages[0]["role"] == "system" and "YES or NO" in messages[0]["content"]
    assert messages[1]["content"] == JUDGE_USER_TEMPLATE.format(question="What is 2+2?", reference="4", answer="four")
    long = judge.messages("x" * 20000, "4", "4")[1]["content"]
    assert len(long) < 9000  # an over-long exam passage is cut


def test_retries_recover_from_transient_faults(judge_server):
    judge_server.faults = {
        "q-timeout": ["timeout", "timeout"],
        "q-500": ["500"],
        "q-429": ["429"],
        "q-malformed": ["not_json", "no_verdict"],
    }
    judge = make_judge(judge_server)
    questions = ["q-timeout", "q-500", "q-429", "q-malformed", "q-fine"]
    verdicts = judge(["1", "2", "3", "4", "5"], ["#### 1", "#### 2", "#### 0", "#### 4", "#### 5"], questions)
    assert verdicts == [True, True, False, True, True]
    stats = judge.last_stats
    assert stats.retries == 2 + 1 + 1 + 2
    assert stats.requests == 5 + 6
    assert stats.unverified == 0 and stats.verified == 5
    assert dict(judge_server.attempts) == {"q-timeout": 3, "q-500": 2, "q-429": 2, "q-malformed": 3, "q-fine": 1}


def test_persistent_failure_is_unverified_not_false(judge_server):
    judge_server.always = {"q-dead": "500", "q-hung": "timeout"}
    judge = make_judge(judge_server, max_retries=2)
    verdicts = judge(["7", "7", "7"], ["#### 7", "#### 7", "#### 8"], ["q-dead", "q-hung", "q-ok"])
    assert verdicts == [None, None, False]  # None, never a silent False (reward 0)
    stats = judge.last_stats
    assert (stats.unverified, stats.verified, stats.retries) == (2, 1, 4)
    assert judge_server.attempts["q-dead"] == 3  # 1 attempt + max_retries
    assert judge_server.attempts["q-hung"] == 3
    # lifetime counts accumulate across calls
    judge(["7"], ["#### 7"], ["q-ok"])
    assert judge.stats.verified == 2 and judge.stats.unverified == 2


def test_client_errors_are_not_retried(judge_server):
    judge = make_judge(judge_server, model="no-such-model")  # the server answers 404
    assert judge(["1"], ["#### 1"], ["q"]) == [None]
    assert judge_server.requests == 1 and judge.last_stats.retries == 0


def test_connection_refused_is_retried_then_unverified():
    judge = JudgeVerifier(
        base_url="http://127.0.0.1:9/v1", model="judge-model", timeout_s=0.3, max_retries=2, backoff_s=0.01
    )
    assert judge(["1"], ["#### 1"]) == [None]
    assert judge.last_stats.requests == 3 and judge.last_stats.retries == 2


def test_on_failure_stop_raises_naming_the_sample(judge_server):
    judge_server.always = {"q-dead": "500"}
    judge = make_judge(judge_server, on_failure="stop", max_retries=1)
    with pytest.raises(JudgeError, match=r"sample 2 .*HTTP 500") as err:
        judge(["1", "2", "3"], ["#### 1", "#### 2", "#### 3"], ["q-a", "q-b", "q-dead"])
    assert err.value.index == 2
    assert "HTTP 500" in err.value.last_error


def test_concurrency_limit_is_respected(judge_server):
    judge_server.latency_s = 0.05
    judge = make_judge(judge_server, concurrency=4)
    n = 24
    verdicts = judge([str(i) for i in range(n)], [f"#### {i}" for i in range(n)], [f"q{i}" for i in range(n)])
    assert verdicts == [True] * n
    assert judge_server.max_in_flight == 4  # reached, never exceeded


def test_cache_makes_a_second_call_free(judge_server, tmp_path):
    cache = tmp_path / "judge.sqlite"
    golds, responses, questions = ["1", "2", "3"], ["#### 1", "#### 5", "#### 3"], ["a", "b", "c"]
    first = make_judge(judge_server, cache_path=cache)
    assert first(golds, responses, questions) == [True, False, True]
    assert judge_server.requests == 3
    first.close()

    second = make_judge(judge_server, cache_path=cache)  # a new process would do the same
    assert second(golds, responses, questions) == [True, False, True]
    assert judge_server.requests == 3  # no new request
    assert second.last_stats.cache_hits == 3 and second.last_stats.requests == 0

    # a different extracted answer, question or judge model is a different key
    assert second(["1"], ["#### 2"], ["a"]) == [False]
    assert judge_server.requests == 4
    assert second.cache_key("a", "1", "1") != make_judge(judge_server, cache_path=None).cache_key("a", "1", "2")


def test_failures_are_not_cached(judge_server, tmp_path):
    cache = tmp_path / "judge.sqlite"
    judge_server.always = {"q": "500"}
    judge = make_judge(judge_server, cache_path=cache, max_retries=0)
    assert judge(["1"], ["#### 1"], ["q"]) == [None]
    judge_server.always = {}
    assert judge(["1"], ["#### 1"], ["q"]) == [True]  # asked again, now decided


def test_response_without_answer_is_false_without_a_request(judge_server):
    judge = make_judge(judge_server)
    assert judge(["1"], ["   "], ["q"]) == [False]
    assert judge_server.requests == 0 and judge.last_stats.no_answer == 1


def test_api_key_from_named_env_var(judge_server, monkeypatch):
    monkeypatch.setenv("RLEV_TEST_JUDGE_KEY", "sk-secret-123")
    judge = make_judge(judge_server, api_key_env="RLEV_TEST_JUDGE_KEY")
    assert judge(["1"], ["#### 1"], ["q"]) == [True]
    assert judge_server.auth_headers == ["Bearer sk-secret-123"]
    assert "sk-secret-123" not in repr(judge)
    monkeypatch.delenv("RLEV_TEST_JUDGE_KEY")
    with pytest.raises(ValueError, match="RLEV_TEST_JUDGE_KEY"):
        make_judge(judge_server, api_key_env="RLEV_TEST_JUDGE_KEY")


def test_async_single_sample_and_sync_call_inside_a_loop(judge_server):
    judge = make_judge(judge_server)

    async def main():
        # verl's async compute_score judges one sample at a time, concurrently
        one = await asyncio.gather(judge.averify("1", "#### 1", "qa"), judge.averify("1", "#### 2", "qb"))
        # the sync call also works from inside a running event loop
        two = judge(["3"], ["#### 3"], ["qc"])
        return one, two

    assert asyncio.run(main()) == ([True, False], [True])


def test_build_verifier_from_config(judge_server):
    judge = build_verifier(
        {"kind": "judge", "base_url": judge_server.base_url, "model": "judge-model", "concurrency": 2, "timeout_s": 5}
    )
    assert isinstance(judge, JudgeVerifier) and judge.concurrency == 2
    assert judge(["x"], ["answer: X"]) == [True]
    with pytest.raises(ValueError, match=r"unknown judge option\(s\) \['concurency'\]"):
        build_verifier({"kind": "judge", "base_url": "http://h/v1", "model": "m", "concurency": 2})
    with pytest.raises(ValueError, match="choose one of .*'rule'.*'judge'"):
        build_verifier({"kind": "oracle"})
    with pytest.raises(ValueError, match="on_failure"):
        build_verifier({"kind": "judge", "base_url": "http://h/v1", "model": "m", "on_failure": "zero"})
    assert build_verifier({"kind": "rule", "rel_tol": 1e-3})(["1"], ["#### 1.0001"]) == [True]


def test_judge_pickles_for_worker_processes(judge_server, tmp_path, monkeypatch):
    import pickle

    monkeypatch.setenv("RLEV_TEST_JUDGE_KEY", "sk-secret-456")
    judge = make_judge(judge_server, cache_path=tmp_path / "c.sqlite", api_key_env="RLEV_TEST_JUDGE_KEY")
    assert judge(["1"], ["#### 1"], ["q"]) == [True]
    blob = pickle.dumps(judge)
    assert b"sk-secret-456" not in blob  # the key travels by env var name only
    clone = pickle.loads(blob)
    assert clone(["1"], ["#### 1"], ["q"]) == [True]
    assert clone.last_stats.cache_hits == 1  # same cache file, reopened


def test_fake_server_says_no_to_a_mismatch(judge_server):
    # Guard the fixture itself: a YES for a match and a NO for a mismatch, so the
    # assertions above are not passing against a server that always says YES.
    judge = make_judge(judge_server)
    assert judge(["a", "a"], ["answer: a", "answer: b"], ["q1", "q2"]) == [True, False]
    assert dict(judge_server.attempts) == {"q1": 1, "q2": 1}


def test_unclear_replies_are_retried_then_unverified_and_never_cached(judge_server, tmp_path):
    judge_server.always = {"q-hedge": "hedge", "q-cut": "think_cut", "q-doubt": "no_doubt"}
    cache = tmp_path / "judge.sqlite"
    judge = make_judge(judge_server, cache_path=cache, max_retries=1)
    verdicts = judge(["7", "7", "7", "7"], ["#### 7"] * 4, ["q-hedge", "q-cut", "q-doubt", "q-ok"])
    assert verdicts == [None, None, None, True]
    assert dict(judge_server.attempts) == {"q-hedge": 2, "q-cut": 2, "q-doubt": 2, "q-ok": 1}
    assert len(judge._cache) == 1  # only the clear verdict
    judge_server.always = {}
    assert judge(["7"] * 3, ["#### 7"] * 3, ["q-hedge", "q-cut", "q-doubt"]) == [True] * 3  # asked again


def test_a_reply_cut_by_max_tokens_says_so(judge_server, caplog):
    judge_server.always = {"q": "think_cut"}
    judge = make_judge(judge_server, max_retries=0)
    with caplog.at_level(logging.INFO, logger="rlev.verify.judge"):
        assert judge(["7"], ["#### 7"], ["q"]) == [None]
    assert "raise the judge's max_tokens" in caplog.text
    assert JudgeVerifier(base_url="http://h/v1", model="m").max_tokens >= 256  # room for a reasoning block


def test_invalid_utf8_in_a_reply_is_retried_not_raised(judge_server):
    judge_server.faults = {"q-bytes": ["bad_utf8", "bad_utf8"]}
    judge = make_judge(judge_server, max_retries=2)
    assert judge(["1", "2"], ["#### 1", "#### 2"], ["q-bytes", "q-ok"]) == [True, True]
    assert judge_server.attempts["q-bytes"] == 3 and judge.last_stats.retries == 2
    judge_server.always = {"q-bytes": "bad_utf8"}
    assert judge(["1"], ["#### 1"], ["q-bytes"]) == [None]


@pytest.mark.parametrize("fault", ["echo_500", "echo_400"])
def test_the_api_key_reaches_no_log_record_nor_error(judge_server, monkeypatch, caplog, tmp_path, fault):
    key = "sk-live-0123456789abcdef"
    monkeypatch.setenv("RLEV_TEST_JUDGE_KEY", key)
    judge_server.always = {"q-echo": fault}
    judge = make_judge(judge_server, api_key_env="RLEV_TEST_JUDGE_KEY", max_retries=2, cache_path=tmp_path / "c.sqlite")
    with caplog.at_level(logging.DEBUG):
        assert judge(["1", "2"], ["#### 1", "#### 2"], ["q-echo", "q-ok"]) == [None, True]
        with pytest.raises(JudgeError) as err:
            make_judge(judge_server, api_key_env="RLEV_TEST_JUDGE_KEY", max_retries=0, on_failure="stop")(
                ["1"], ["#### 1"], ["q-echo"]
            )
    assert judge_server.auth_headers[0] == f"Bearer {key}"  # the server did see (and echo) it
    failures = [r for r in caplog.records if "q" in r.getMessage() and "HTTP" in r.getMessage()]
    assert failures and all("Bearer ***" in r.getMessage() for r in failures)  # the echo was logged, redacted
    for record in caplog.records:
        assert key not in record.getMessage() and key not in str(record.args), record.getMessage()
    assert key not in str(err.value) and key not in err.value.last_error
    judge.close()
    for path in tmp_path.iterdir():
        assert key.encode() not in path.read_bytes(), path
