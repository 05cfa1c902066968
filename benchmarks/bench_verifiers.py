"""Throughput of the verifiers: how many answers per second each can check.

    python -m benchmarks.bench_verifiers            # from the repository root, ~1 min
    python -m benchmarks.bench_verifiers --quick    # fewer items, for a smoke check

Rule verifier: a few thousand mixed answers, by kind, then all mixed:
- synthetic: the project's exam format ("3+5=8 8+2=10 #### 10"), right and wrong, and
  the same cut at a random character (what a length cap leaves);
- gaokao: option letters of a GAOKAO multiple-choice test split in rlev's canonical JSONL
  (`--gaokao PATH`, e.g. a `gaokao_rlev` test.jsonl; skipped when not given), right and wrong;
- latex: answers that need math_verify (surds, polynomials, sets, intervals): distinct
  pairs (sympy every time) and a few pairs repeated (the memo answers).

Judge client: requests against a loopback OpenAI-compatible server answering after a
fixed latency (20 ms by default), at concurrency 1, 8 and 64, no cache. The ideal is
concurrency / latency; the gap is client and server overhead on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import threading
import time
from pathlib import Path

import aiohttp.web

from rlev.verify import JudgeVerifier, RuleVerifier, rule


def synthetic_items(n: int, rng: random.Random) -> list[tuple[str, str]]:
    items = []
    for _ in range(n):
        terms = [rng.randint(1, 20) for _ in range(rng.randint(1, 4))]
        total, steps = terms[0], []
        for t in terms[1:]:
            steps.append(f"{total}+{t}={total + t}")
            total += t
        answer = total if rng.random() < 0.5 else total + rng.choice([-1, 1])
        items.append((str(total), " ".join(steps + [f"#### {answer}"])))
    return items


def truncated_items(n: int, rng: random.Random) -> list[tuple[str, str]]:
    """Synthetic responses cut at a random character, as a length cap leaves them."""
    items = []
    for gold, response in synthetic_items(n, rng):
        items.append((gold, response[: rng.randint(1, len(response))]))
    return items


def gaokao_items(path: Path | None, n: int, rng: random.Random) -> list[tuple[str, str]]:
    if path is None or not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    refs = [r["reference_answer"] for r in rows if r["question_type"] == "multiple_choice"]
    items = []
    for _ in range(n):
        ref = rng.choice(refs)
        said = (
            ref if rng.random() < 0.5 else re.sub(r"[A-D]$", lambda m: "ABCD"[("ABCD".index(m.group()) + 1) % 4], ref)
        )
        items.append((ref, f"解析：逐项分析。答案是{said}"))
    return items


LATEX = [
    (r"\frac{1}{2}", r"The answer is $\boxed{0.5}$"),
    (r"\frac{\sqrt{2}}{2}", r"$\boxed{\frac{1}{\sqrt{2}}}$"),
    (r"x^2+2x+1", r"$\boxed{(x+1)^2}$"),
    (r"x^2+2x+1", r"$\boxed{(x-1)^2}$"),
    (r"\{1,2\}", r"$\boxed{\{2,1\}}$"),
    (r"2\pi", r"$\boxed{6.28318530717959}$"),
    (r"\sqrt{8}", r"$\boxed{2\sqrt{2}}$"),
    (r"[1,2)", r"$\boxed{[1,2]}$"),
]


def latex_unique_items(n: int, rng: random.Random) -> list[tuple[str, str]]:
    """Distinct LaTeX pairs (no memo hits): squares of binomials and surds, half wrong."""
    items = []
    for i in range(n):
        a, b = 1 + i, rng.choice([2, 3, 5, 6, 7])
        off = 0 if rng.random() < 0.5 else 1
        if i % 2:
            items.append((f"x^2+{2 * a}x+{a * a}", rf"$\boxed{{(x+{a + off})^2}}$"))
        else:
            items.append((rf"\sqrt{{{a * a * b}}}", rf"$\boxed{{{a + off}\sqrt{{{b}}}}}$"))
    return items


def latex_repeated_items(n: int, rng: random.Random) -> list[tuple[str, str]]:
    """The 8 pairs of LATEX over and over, as n samples of one prompt repeat answers."""
    return [rng.choice(LATEX) for _ in range(n)]


def bench_rule(items: list[tuple[str, str]]) -> tuple[float, float]:
    rule._math_equal_cached.cache_clear()  # each workload starts with an empty memo
    verifier = RuleVerifier()
    golds, responses = zip(*items)
    start = time.perf_counter()
    verdicts = verifier(list(golds), list(responses))
    elapsed = time.perf_counter() - start
    return len(items) / elapsed, sum(verdicts) / len(verdicts)


class LatencyJudgeServer:
    """A loopback chat-completions server that says YES after a fixed latency."""

    def __init__(self, latency_s: float):
        self.latency_s = latency_s
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    async def _handle(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        await request.read()
        await asyncio.sleep(self.latency_s)
        return aiohttp.web.json_response({"choices": [{"message": {"content": "YES"}}]})

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = aiohttp.web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        runner = aiohttp.web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        self.loop.run_until_complete(runner.setup())
        site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> LatencyJudgeServer:
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def bench_judge(base_url: str, concurrency: int, n: int) -> tuple[float, float]:
    judge = JudgeVerifier(
        base_url=base_url, model="bench", concurrency=concurrency, timeout_s=30, max_retries=0, cache_path=None
    )
    golds = [str(i) for i in range(n)]
    responses = [f"#### {i}" for i in range(n)]
    start = time.perf_counter()
    verdicts = judge(golds, responses, [f"q{i}" for i in range(n)])
    elapsed = time.perf_counter() - start
    assert all(v is True for v in verdicts), judge.last_stats
    return n / elapsed, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer items (smoke check)")
    parser.add_argument("--gaokao", type=Path, help="a canonical GAOKAO test.jsonl (multiple-choice rows)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="judge server latency")
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    rng = random.Random(0)

    print("| verifier | workload | items | answers/s | note |")
    print("|---|---|---|---|---|")
    sets = {
        "synthetic ####": synthetic_items(int(2000 * scale), rng),
        "synthetic, truncated": truncated_items(int(2000 * scale), rng),
        "gaokao letters": gaokao_items(args.gaokao, int(2000 * scale), rng),
        "LaTeX, distinct (math_verify)": latex_unique_items(int(200 * scale), rng),
        "LaTeX, repeated (memoised)": latex_repeated_items(int(2000 * scale), rng),
    }
    # Warm math_verify/sympy once so the first LaTeX item does not carry the import.
    RuleVerifier()([r"\frac{1}{2}"], [r"\boxed{0.5}"])
    mixed: list[tuple[str, str]] = []
    for name, items in sets.items():
        if not items:
            print(f"| rule | {name} | 0 | (skipped: no --gaokao file) | |")
            continue
        rate, share = bench_rule(items)
        mixed += items
        print(f"| rule | {name} | {len(items)} | {rate:,.0f} | {share:.0%} judged correct |")
    rng.shuffle(mixed)
    rate, share = bench_rule(mixed)
    print(f"| rule | all mixed | {len(mixed)} | {rate:,.0f} | {share:.0%} judged correct |")

    latency_s = args.latency_ms / 1000
    with LatencyJudgeServer(latency_s) as server:
        base_url = f"http://127.0.0.1:{server.port}/v1"
        bench_judge(base_url, 8, 16)  # warm-up: imports, first connections
        for concurrency in (1, 8, 64):
            n = max(16, int((100 if concurrency == 1 else 40 * concurrency) * scale))
            rate, elapsed = bench_judge(base_url, concurrency, n)
            ideal = concurrency / latency_s
            print(
                f"| judge (loopback, {args.latency_ms:g} ms) | concurrency {concurrency} | {n} | "
                f"{rate:,.0f} | ideal {ideal:,.0f}/s, {elapsed:.1f} s |"
            )


if __name__ == "__main__":
    main()
