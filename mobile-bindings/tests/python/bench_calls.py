"""How long binding calls block the caller's thread, measured two ways in one run:

- inside Rust: every FFI function of the library is wrapped with a timer, so each crossing of the
  boundary (starting a call, polling its future, completing it, freeing it) is timed exactly. Its
  maximum is the longest the caller's thread was ever held by the library.
- as the app feels it: a heartbeat task on the same event loop (standing in for the UI thread)
  wakes every millisecond; how late it wakes includes Python's own work (converting results) and,
  on this 2-core machine, the CPU the node's threads take. The baseline is the same heartbeat
  with the loop idle.

Also each call's latency (start to result): async, and it may be long without blocking anyone.

Run with scripts/bench-mobile.sh (release build). Prints a table and, with --json, JSON.
"""

import asyncio
import json
import statistics
import sys
import time

from harness import om, today
from test_bindings import Scenario

TICK = 0.001

# Time spent inside the library per FFI crossing, collected for the call being measured.
crossings: list = []


def time_ffi_crossings():
    lib = om._UniffiLib
    for name in dir(lib):
        if not (name.startswith("uniffi_omsyn_mobile_fn_") or name.startswith("ffi_omsyn_mobile_rust_future_")):
            continue
        original = getattr(lib, name)

        def timed(*args, _original=original):
            started = time.perf_counter()
            try:
                return _original(*args)
            finally:
                crossings.append(time.perf_counter() - started)

        setattr(lib, name, timed)


async def heartbeat(lateness: list, stop: asyncio.Event):
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(TICK)
        lateness.append(time.perf_counter() - before - TICK)


async def measure(name: str, make_call, count: int) -> dict:
    lateness, latencies = [], []
    per_call_ffi = []
    stop = asyncio.Event()
    beat = asyncio.ensure_future(heartbeat(lateness, stop))
    await asyncio.sleep(0.01)
    lateness.clear()
    all_crossings = []
    for _ in range(count):
        crossings.clear()
        started = time.perf_counter()
        result = make_call()
        if asyncio.iscoroutine(result):
            await result
        latencies.append(time.perf_counter() - started)
        per_call_ffi.append(sum(crossings))
        all_crossings.extend(crossings)
        await asyncio.sleep(0)
    stop.set()
    await beat
    ms = lambda x: round(x * 1000, 3)  # noqa: E731
    lateness.sort()
    return {
        "call": name,
        "count": count,
        "ffi_max_ms": ms(max(all_crossings, default=0.0)),
        "ffi_per_call_median_ms": ms(statistics.median(per_call_ffi)),
        "blocked_p50_ms": ms(lateness[len(lateness) // 2]) if lateness else 0.0,
        "blocked_p99_ms": ms(lateness[int(len(lateness) * 0.99)]) if lateness else 0.0,
        "blocked_max_ms": ms(lateness[-1]) if lateness else 0.0,
        "latency_median_ms": ms(statistics.median(latencies)),
    }


async def main(as_json: bool):
    s = await Scenario().setup()
    time_ffi_crossings()
    try:
        n = s.nurse
        rows = []

        async def idle():
            await asyncio.sleep(0.001)

        rows.append(await measure("(idle loop: baseline)", idle, 300))
        rows.append(await measure("id (sync)", n.id, 300))
        rows.append(await measure("enrollment_request (sync)", n.enrollment_request, 300))
        rows.append(await measure("add_note (fsync'd write)", lambda: n.add_note(s.patient, None, "Notat fra målingen", None), 200))
        rows.append(await measure("medication_given", lambda: n.medication_given(s.patient, s.medication, "08:00", None, None), 50))
        rows.append(await measure("patient_record (logged read)", lambda: n.patient_record(s.patient), 200))
        rows.append(await measure("work_list", lambda: n.work_list(today()), 100))
        rows.append(await measure("sync_status", n.sync_status, 50))
        rows.append(await measure("sync_now (QUIC session with the base)", lambda: n.sync_now(s.base_ticket), 20))

        async def start_stop():
            await n.start_sync(om.SyncOptions(listen="127.0.0.1:0", relay=None, peers=[], local_discovery=False))
            await n.stop_sync()

        rows.append(await measure("start_sync + stop_sync", start_stop, 10))
        if as_json:
            print(json.dumps(rows, indent=2))
        else:
            print(f"{'call':40} {'n':>4} | {'in Rust: max':>12} {'per call':>9} | "
                  f"{'heartbeat p50':>13} {'p99':>8} {'max':>8} | {'latency':>9}")
            for r in rows:
                print(f"{r['call']:40} {r['count']:>4} | {r['ffi_max_ms']:>10.3f}ms {r['ffi_per_call_median_ms']:>7.3f}ms | "
                      f"{r['blocked_p50_ms']:>11.3f}ms {r['blocked_p99_ms']:>6.3f}ms {r['blocked_max_ms']:>6.3f}ms | "
                      f"{r['latency_median_ms']:>7.2f}ms")
    finally:
        await s.teardown()


if __name__ == "__main__":
    asyncio.run(main("--json" in sys.argv))
