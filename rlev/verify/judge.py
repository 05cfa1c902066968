"""LLM-judge verifier: ask an OpenAI-compatible chat endpoint whether a final answer is right.

The paper's verifier is an LLM judge (Qwen2.5-72B-Instruct) deciding whether the final
answer of a response is semantically equivalent to the reference (the paper). Serve one
with e.g. ``vllm serve Qwen/Qwen2.5-72B-Instruct`` and point :class:`JudgeVerifier` at it::

    judge = JudgeVerifier(base_url="http://judge-host:8000/v1",
                          model="Qwen/Qwen2.5-72B-Instruct",
                          cache_path="results/judge_cache.sqlite")
    verdicts = judge(golds, responses, questions)       # list[bool | None]
    judge.last_stats.as_dict()  # {'verified': ..., 'unverified': ..., 'cache_hits': ..., ...}

How a sample is judged
- The final answer is taken from the response by
  :func:`rlev.verify.rule.extract_final_answer`; only it, the question and the reference
  are sent (``JUDGE_SYSTEM_PROMPT`` / ``JUDGE_USER_TEMPLATE`` below). A response with no
  answer at all is wrong (False) without a request.
- One ``POST {base_url}/chat/completions`` with temperature 0. Only a clear verdict
  counts: the whole reply, after a complete ``<think>...</think>`` block and surrounding
  punctuation are stripped, must be YES or NO (any case). Anything else ("Yes, but...",
  "I cannot say yes or no.", a ``<think>`` cut off by ``max_tokens``, a body that is not
  UTF-8 JSON) is malformed: retried like a failed request, never cached. ``max_tokens``
  (default 512, verl's judge budget) leaves a reasoning judge room to close its
  ``<think>``; a reply that hits it is named as such in the log, so the fix (a larger
  ``max_tokens``) is visible.

Failures are never a silent 0
- Timeouts, connection errors, HTTP 5xx/408/429 and malformed replies are retried up to
  ``max_retries`` times, waiting ``backoff_s * 2**k`` seconds (x0.5-1.5 jitter, capped at
  ``max_backoff_s``, at least the server's ``Retry-After``). Other HTTP 4xx (a wrong
  model name, a bad key) are not retried.
- A sample still undecided after that is ``None`` ("unverified") and counted in
  :class:`JudgeStats`; with ``on_failure="stop"`` the call raises :class:`JudgeError`
  naming the sample index and the last error instead.
- The API key never reaches a log record, an exception or the cache: every error text
  (server bodies included, which may echo the request's headers) has the key replaced by
  ``***`` before it is cut, logged or raised.

Cost
- ``concurrency`` bounds requests in flight per event loop (an ``asyncio.Semaphore``).
- Decided verdicts go to an sqlite cache keyed by
  ``sha256(model, prompt version, question, reference, extracted answer)``, so verifying
  the same answers again makes no request. Failures are never cached.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import os
import random
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from rlev.verify.rule import extract_final_answer

logger = logging.getLogger(__name__)

__all__ = [
    "JUDGE_SYSTEM_PROMPT",
    "JUDGE_USER_TEMPLATE",
    "JudgeBatch",
    "JudgeError",
    "JudgeStats",
    "JudgeVerifier",
    "parse_verdict",
]

# Bump when the prompt changes: it is part of the cache key, so old verdicts are not reused.
PROMPT_VERSION = "rlev-judge-v1"

JUDGE_SYSTEM_PROMPT = (
    "You are a careful grader of exam answers. You compare a student's final answer with "
    "the reference answer and decide whether they mean the same thing. "
    "Reply with exactly one word: YES or NO."
)

# The fields are wrapped in tags so that text inside a response cannot pose as the
# instructions; the judge sees the extracted final answer, not the whole reasoning.
JUDGE_USER_TEMPLATE = """\
Decide whether the student's final answer is equivalent to the reference answer.
- Judge only the final answer, not any reasoning.
- Equivalent means the same meaning: different wording or formatting, equivalent \
mathematical forms (0.5 and 1/2), units written differently, or an option letter with or \
without its option text all count as equivalent.
- For an answer with several parts, every part must match, in the same order.
- A missing answer, an answer that hedges between options, or one that differs in any \
part is not equivalent.

<question>
{question}
</question>
<reference_answer>
{reference}
</reference_answer>
<student_final_answer>
{answer}
</student_final_answer>

Is the student's final answer equivalent to the reference answer? Reply YES or NO."""

_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
# What may surround the verdict word: whitespace, punctuation, markdown emphasis (any non-word character).
_AROUND_VERDICT = re.compile(r"^[\W_]+|[\W_]+$")
# HTTP statuses worth retrying: request timeout, rate limit, and every server error.
_RETRY_STATUS = {408, 429}
_FAILURE_MODES = ("unverified", "stop")


def parse_verdict(reply: str) -> bool | None:
    """The judge's verdict: True for YES, False for NO, None for anything else (malformed).

    The verdict must be the whole answer. A leading ``<think>...</think>`` block is
    dropped first (also a lone ``...</think>`` prefix: reasoning models served with the
    opening tag in their chat template reply without it); an unterminated ``<think>`` is
    malformed, since the verdict it would have led to is unknown. Then whitespace,
    punctuation and markdown emphasis around the word are stripped and case is ignored.

    >>> parse_verdict("YES")
    True
    >>> parse_verdict(" no. ")
    False
    >>> parse_verdict("<think>is yes right? no...</think>**Yes**")
    True
    >>> [parse_verdict(r) for r in ("I cannot say yes or no.", "<think>so the answer is yes", "No doubt, YES.")]
    [None, None, None]
    """
    if not isinstance(reply, str):
        return None
    text = reply.strip()
    lowered = text.lower()
    if lowered.startswith(_THINK_OPEN) or (_THINK_CLOSE in lowered and _THINK_OPEN not in lowered):
        end = lowered.find(_THINK_CLOSE)
        if end < 0:
            return None  # cut off (max_tokens) before the reasoning ended
        text = text[end + len(_THINK_CLOSE) :]
    word = _AROUND_VERDICT.sub("", text).lower()
    return {"yes": True, "no": False}.get(word)


class JudgeError(RuntimeError):
    """A sample the judge could not decide, raised when ``on_failure="stop"``."""

    def __init__(self, index: int, last_error: str):
        super().__init__(f"judge failed on sample {index} after retries: {last_error}")
        self.index = index
        self.last_error = last_error


@dataclasses.dataclass
class JudgeStats:
    """Counts for one call (``last_stats``) or a verifier's lifetime (``stats``).

    ``verified`` counts decided samples (cache hits and answer-less responses included),
    ``unverified`` the samples left ``None``; ``requests`` counts HTTP attempts and
    ``retries`` the attempts after a sample's first.
    """

    verified: int = 0
    unverified: int = 0
    cache_hits: int = 0
    retries: int = 0
    requests: int = 0
    no_answer: int = 0

    def add(self, other: JudgeStats) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class JudgeBatch:
    """Verdicts (True / False / None = unverified) and the counts of one batch."""

    verdicts: list[bool | None]
    stats: JudgeStats


class _RetryableError(Exception):
    def __init__(self, message: str, retry_after_s: float = 0.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class _FatalError(Exception):
    pass


class _VerdictCache:
    """Decided verdicts on disk (sqlite, WAL so several processes can share one file)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        with self._lock, self._conn:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, verdict INTEGER "
                "NOT NULL, model TEXT NOT NULL, reply TEXT, created REAL NOT NULL)"
            )

    def get(self, key: str) -> bool | None:
        with self._lock:
            row = self._conn.execute("SELECT verdict FROM verdicts WHERE key = ?", (key,)).fetchone()
        return None if row is None else bool(row[0])

    def put(self, key: str, verdict: bool, model: str, reply: str) -> None:
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?)",
                (key, int(verdict), model, reply[:500], time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _run_sync(coro_factory):
    """Run a coroutine from synchronous code, also when the caller is inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_factory())
    # Inside a running loop (a notebook, an async framework): asyncio.run would refuse,
    # so run a fresh loop on a helper thread and wait for it.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rlev-judge") as pool:
        return pool.submit(asyncio.run, coro_factory()).result()


class JudgeVerifier:
    """Batched LLM-judge verifier over an OpenAI-compatible chat endpoint.

    Call signature shared with :class:`rlev.verify.rule.RuleVerifier`:
    ``judge(golds, responses, questions=None) -> list[bool | None]`` (None = the judge
    could not decide). Async code uses :meth:`averify_batch` or, one sample at a time
    (verl's async ``compute_score``), :meth:`averify`.

    Args:
        base_url: endpoint root, e.g. ``http://localhost:8000/v1`` (``/chat/completions``
            is appended).
        model: model name the server serves, e.g. ``Qwen/Qwen2.5-72B-Instruct``.
        api_key_env: name of an environment variable holding the API key (sent as a
            Bearer token, never logged); None sends no key (a local ``vllm serve``).
        concurrency: requests in flight at most, per event loop.
        timeout_s: per-request time limit in seconds.
        max_retries: retries after the first attempt (timeouts, connection errors,
            HTTP 5xx/408/429, malformed replies).
        backoff_s: first retry delay; doubles per retry, x0.5-1.5 jitter.
        max_backoff_s: cap on one retry delay.
        cache_path: sqlite file for decided verdicts; None disables the cache.
        on_failure: ``"unverified"`` (undecided samples are None and counted) or
            ``"stop"`` (raise :class:`JudgeError`).
        temperature: sampling temperature (0: the same question gets the same verdict).
        max_tokens: reply budget. YES/NO needs a few tokens and a server stops at the
            end of the reply, so the budget costs nothing for a plain judge; it is there
            for a reasoning judge, whose ``<think>`` block must close within it (a reply
            cut off inside it is malformed).
        max_question_chars: questions longer than this are cut (head kept) to bound the
            prompt; exam passages can run to thousands of characters.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        concurrency: int = 16,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        cache_path: str | os.PathLike | None = None,
        on_failure: str = "unverified",
        temperature: float = 0.0,
        max_tokens: int = 512,
        max_question_chars: int = 8000,
    ):
        if not base_url or not model:
            raise ValueError("JudgeVerifier needs base_url and model")
        if on_failure not in _FAILURE_MODES:
            raise ValueError(f"on_failure must be one of {_FAILURE_MODES}, got {on_failure!r}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if max_retries < 0 or backoff_s < 0 or max_backoff_s < 0:
            raise ValueError("max_retries, backoff_s and max_backoff_s must be >= 0")
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self._api_key: str | None = None
        if api_key_env:
            self._api_key = os.environ.get(api_key_env)
            if not self._api_key:
                raise ValueError(
                    f"api_key_env names the environment variable {api_key_env!r}, which is "
                    "not set; export it or set api_key_env to null for a server without keys"
                )
        self.concurrency = concurrency
        self.timeout_s = float(timeout_s)
        self.max_retries = max_retries
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.on_failure = on_failure
        self.temperature = float(temperature)
        self.max_tokens = max_tokens
        self.max_question_chars = max_question_chars
        self.cache_path = None if cache_path is None else Path(cache_path)
        self._cache = None if cache_path is None else _VerdictCache(cache_path)
        self._semaphores: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self.stats = JudgeStats()
        self.last_stats = JudgeStats()

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> JudgeVerifier:
        """Build from a config mapping (the ``verifier`` block minus ``kind``).

        Unknown keys are an error, so a misspelt option is not silently ignored.
        """
        import inspect

        allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        unknown = sorted(set(cfg) - set(allowed))
        if unknown:
            raise ValueError(f"unknown judge option(s) {unknown}; allowed: {allowed}")
        return cls(**cfg)

    def __repr__(self) -> str:  # the key itself never appears
        return (
            f"JudgeVerifier(base_url={self.base_url!r}, model={self.model!r}, "
            f"api_key_env={self.api_key_env!r}, concurrency={self.concurrency}, "
            f"timeout_s={self.timeout_s}, max_retries={self.max_retries}, "
            f"on_failure={self.on_failure!r}, cache_path={self.cache_path!r})"
        )

    # -- pieces ----------------------------------------------------------------------

    def cache_key(self, question: str, reference: str, answer: str) -> str:
        """sha256 over (model, prompt version, question, reference, extracted answer)."""
        blob = json.dumps([self.model, PROMPT_VERSION, question, reference, answer], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def messages(self, question: str, reference: str, answer: str) -> list[dict[str, str]]:
        """The chat messages sent for one sample."""
        q = question if len(question) <= self.max_question_chars else (question[: self.max_question_chars] + " [...]")
        user = JUDGE_USER_TEMPLATE.format(question=q or "(not given)", reference=reference, answer=answer)
        return [{"role": "system", "content": JUDGE_SYSTEM_PROMPT}, {"role": "user", "content": user}]

    def _semaphore(self) -> asyncio.Semaphore:
        # One semaphore per event loop: asyncio primitives cannot cross loops, and the
        # sync wrapper runs a fresh loop per call.
        loop = asyncio.get_running_loop()
        with self._lock:
            sem = self._semaphores.get(loop)
            if sem is None:
                sem = self._semaphores[loop] = asyncio.Semaphore(self.concurrency)
        return sem

    def _delay(self, retry: int, retry_after_s: float) -> float:
        base = min(self.backoff_s * 2 ** (retry - 1), self.max_backoff_s)
        return max(base * random.uniform(0.5, 1.5), min(retry_after_s, self.max_backoff_s))

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced by ``***`` (a server may echo request headers)."""
        return text.replace(self._api_key, "***") if self._api_key else text

    async def _request(self, session: aiohttp.ClientSession, messages) -> tuple[bool, str]:
        payload = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        try:
            async with session.post(
                self.url, json=payload, headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            ) as resp:
                raw = await resp.read()
                if resp.status in _RETRY_STATUS or resp.status >= 500:
                    retry_after = resp.headers.get("Retry-After", "")
                    raise _RetryableError(
                        f"HTTP {resp.status}: {self._excerpt(raw)}",
                        float(retry_after) if retry_after.replace(".", "", 1).isdigit() else 0.0,
                    )
                if resp.status >= 400:
                    raise _FatalError(f"HTTP {resp.status}: {self._excerpt(raw)}")
        except asyncio.TimeoutError as e:
            raise _RetryableError(f"timeout after {self.timeout_s:g} s") from e
        except aiohttp.ClientError as e:
            raise _RetryableError(f"connection error: {type(e).__name__}: {e}") from e
        try:
            choice = json.loads(raw.decode("utf-8"))["choices"][0]
            content = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as e:  # UnicodeDecodeError is a ValueError
            raise _RetryableError(
                f"malformed reply (not UTF-8 JSON with choices[0].message.content): {self._excerpt(raw)}"
            ) from e
        verdict = parse_verdict(content)
        if verdict is None:
            cut = choice.get("finish_reason") == "length"
            why = "cut off at max_tokens; raise the judge's max_tokens" if cut else "not a clear YES or NO"
            raise _RetryableError(f"malformed verdict ({why}): {self._excerpt(content)}")
        return verdict, content

    def _excerpt(self, body: bytes | str, chars: int = 200) -> str:
        """The start of a reply for a message: key redacted before the cut, so no piece of it survives."""
        text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else str(body)
        return repr(self.redact(text)[:chars])

    async def _judge_one(
        self, session, sem, index: int, question: str, reference: str, response: str, stats: JudgeStats
    ) -> bool | None:
        answer = extract_final_answer(response)
        if answer is None:
            stats.no_answer += 1
            stats.verified += 1
            return False
        key = self.cache_key(question, reference, answer)
        if self._cache is not None:
            cached = self._cache.get(key)
            if cached is not None:
                stats.cache_hits += 1
                stats.verified += 1
                return cached
        messages = self.messages(question, reference, answer)
        last_error = "no attempt made"
        retry_after = 0.0
        for attempt in range(self.max_retries + 1):
            if attempt:
                stats.retries += 1
                # Back off outside the semaphore so that waiting samples free their slot.
                await asyncio.sleep(self._delay(attempt, retry_after))
            try:
                async with sem:
                    stats.requests += 1
                    verdict, reply = await self._request(session, messages)
            except _RetryableError as e:
                last_error, retry_after = self.redact(str(e)), e.retry_after_s
                logger.info("judge sample %d attempt %d failed: %s", index, attempt + 1, last_error)
                continue
            except _FatalError as e:
                last_error = self.redact(str(e))
                logger.warning("judge sample %d failed without retry: %s", index, last_error)
                break
            if self._cache is not None:
                self._cache.put(key, verdict, self.model, self.redact(reply))
            stats.verified += 1
            return verdict
        if self.on_failure == "stop":
            raise JudgeError(index, last_error)
        stats.unverified += 1
        return None

    # -- public API ------------------------------------------------------------------

    async def averify_batch(
        self,
        golds: Sequence[str],
        responses: Sequence[str],
        questions: Sequence[str] | None = None,
    ) -> JudgeBatch:
        """Judge a batch concurrently; verdicts in input order plus this batch's counts."""
        if len(golds) != len(responses):
            raise ValueError(f"{len(golds)} golds but {len(responses)} responses")
        if questions is None:
            questions = [""] * len(golds)
        elif len(questions) != len(golds):
            raise ValueError(f"{len(golds)} golds but {len(questions)} questions")
        stats = JudgeStats()
        sem = self._semaphore()
        # limit=0: the semaphore, not the connector, bounds concurrency.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            tasks = [
                asyncio.ensure_future(self._judge_one(session, sem, i, q or "", str(g), r, stats))
                for i, (g, r, q) in enumerate(zip(golds, responses, questions))
            ]
            try:
                verdicts = list(await asyncio.gather(*tasks))
            except BaseException:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                with self._lock:
                    self.stats.add(stats)
                    self.last_stats = stats
                raise
        with self._lock:
            self.stats.add(stats)
            self.last_stats = stats
        if stats.unverified:
            logger.warning(
                "judge left %d of %d samples unverified (%d retries)", stats.unverified, len(golds), stats.retries
            )
        return JudgeBatch(verdicts, stats)

    async def averify(self, gold: str, response: str, question: str | None = None) -> bool | None:
        """Judge one sample (for verl's async ``compute_score``); None = undecided."""
        batch = await self.averify_batch([gold], [response], [question or ""])
        return batch.verdicts[0]

    def verify_batch(
        self,
        golds: Sequence[str],
        responses: Sequence[str],
        questions: Sequence[str] | None = None,
    ) -> JudgeBatch:
        """Synchronous :meth:`averify_batch` (verdicts and counts)."""
        return _run_sync(lambda: self.averify_batch(golds, responses, questions))

    def __call__(
        self,
        golds: Sequence[str],
        responses: Sequence[str],
        questions: Sequence[str] | None = None,
    ) -> list[bool | None]:
        """Verdicts for a batch from synchronous code; counts are in ``last_stats``."""
        return self.verify_batch(golds, responses, questions).verdicts

    def __getstate__(self) -> dict[str, Any]:
        # Picklable for Ray / multiprocessing workers: the sqlite connection, lock and
        # per-loop semaphores are rebuilt on the other side; the API key is re-read there
        # from api_key_env, never carried in the pickle.
        state = self.__dict__.copy()
        for name in ("_cache", "_lock", "_semaphores", "_api_key"):
            state.pop(name)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._semaphores = weakref.WeakKeyDictionary()
        self._api_key = os.environ.get(self.api_key_env) if self.api_key_env else None
        self._cache = None if self.cache_path is None else _VerdictCache(self.cache_path)

    def close(self) -> None:
        """Close the cache file (the verifier cannot use the cache afterwards)."""
        if self._cache is not None:
            self._cache.close()
            self._cache = None
