"""Cost of reading one number: normalization, billing prefix and masked form, per written form.

Run it as `python bench/bench_numbers.py [--numbers N] [--runs N]`. It draws
numbers from a carrier-like mix of number blocks (as bench_radius does), writes
each in the forms switches send (plain digits, "+", "00", a SIP URI, spaced,
national with a trunk prefix in Germany, national without one in the United
States, and plain digits read by a plan for the United States, where most of
them are no national number), warms the prefix caches once, then times
`NumberPlan.normalize` alone and with `destination` and `mask`, and a whole
`Redactor.redact` of a record, on one core. Prints microseconds per number
(the best of the runs). It is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.config import PrivacyConfig
from collector.model import CallRecord, Protocol, RecordKind
from collector.pipeline.numbers import Number, NumberPlan, Unusable, preload_metadata
from collector.pipeline.redact import Redactor
from collector.traffic import make_calls

#: distinct number blocks the numbers come from (bench_radius uses the same)
BLOCKS = 5000

Reader = Callable[[str], Number | Unusable | None]

FORMS: dict[str, Callable[[str], str]] = {
    "digits": lambda n: n[1:],
    "plus": lambda n: n,
    "00": lambda n: "00" + n[1:],
    "sip uri": lambda n: f"sip:{n}@192.0.2.1;user=phone",
    "spaced": lambda n: f"{n[:3]} {n[3:5]} {n[5:9]} {n[9:]}",
}


def best_of(runs: int, work: Callable[[], None], count: int) -> float:
    """Microseconds per item of the fastest of `runs` runs of `work` over `count` items."""
    best = float("inf")
    for _ in range(runs):
        began = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - began)
    return best / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=20000, help="numbers per form")
    parser.add_argument(
        "--runs", type=int, default=5, help="runs per measurement; the best is shown"
    )
    args = parser.parse_args()
    preload_metadata()
    calls = make_calls(args.numbers, seed=1, blocks=BLOCKS)
    numbers = [c.called for c in calls]
    germans = ["0" + n[3:] for n in numbers if n.startswith("+49")]
    americans = [n[2:] for n in numbers if n.startswith("+1")]
    plan = NumberPlan(default_region="DE")
    american = NumberPlan(default_region="US")
    privacy = PrivacyConfig(keys=(("k1", b"k" * 32),), record_secret=b"r" * 32, default_region="DE")
    redactor = Redactor(privacy)
    print(f"{len(numbers)} numbers from {BLOCKS} blocks, best of {args.runs} runs, µs per number")
    rows = [(name, plan, [form(n) for n in numbers]) for name, form in FORMS.items()]
    rows.append(("national (DE)", plan, germans))
    rows.append(("national (US)", american, americans))
    rows.append(("digits (US)", american, [n[1:] for n in numbers]))
    destination, mask = plan.destination, plan.mask
    for name, reader, texts in rows:
        normalize = reader.normalize

        def normalize_only(texts: list[str] = texts, normalize: Reader = normalize) -> None:
            for text in texts:
                normalize(text)

        def whole(texts: list[str] = texts, normalize: Reader = normalize) -> None:
            for text in texts:
                number = normalize(text)
                if isinstance(number, Number):
                    destination(number)
                    mask(number)

        whole()  # warm the prefix cache: real traffic hits it
        print(
            f"  {name:14} normalize {best_of(args.runs, normalize_only, len(texts)):6.2f}"
            f"   + prefix and mask {best_of(args.runs, whole, len(texts)):6.2f}"
        )
    when = datetime(2024, 5, 1, tzinfo=UTC)
    template = CallRecord(
        kind=RecordKind.STOP,
        source="sbc-1",
        protocol=Protocol.RADIUS,
        session_id="s",
        event_time=when,
        duration_ms=1000,
    )
    records = [
        template.replace(session_id=str(i), called=c.called[1:], calling="00" + c.calling[1:])
        for i, c in enumerate(calls)
    ]
    redact = redactor.redact

    def redact_all() -> None:
        for record in records:
            redact(record, when)

    redact_all()
    print(
        f"  redact (2 numbers, digits and 00) {best_of(args.runs, redact_all, len(records)):6.2f}"
    )


if __name__ == "__main__":
    main()
