#!/usr/bin/env python3
"""Time TPM signatures: hwsigner's way (one primary, key kept loaded) against one-shot opens.

    python scripts/bench_tpm.py --tpm-tcti swtpm:host=127.0.0.1,port=2321 --private-key k.tss2
    python scripts/bench_tpm.py --private-key handle:0x81000010 --no-tpm-key-password -n 200

"kept open" opens the key once and signs N times (what credential-process, serve and update do
inside one process); "open per signature" opens, signs and closes each time, which costs what
AWS's helper pays on every signature (it re-creates the primary and re-loads the key). The
counters show how many storage primaries were created for how many signatures.
"""

from __future__ import annotations

import argparse
import statistics
import time

from hwsigner.keys import KeyOptions
from hwsigner.keys.tpm import TpmKey


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--private-key", required=True, help="TSS2 key file or handle:0x81...")
    parser.add_argument("--tpm-tcti", help="default: $TPM2TOOLS_TCTI, else device:/dev/tpmrm0")
    parser.add_argument("--tpm-key-password")
    parser.add_argument("--no-tpm-key-password", action="store_true")
    parser.add_argument("-n", type=int, default=100, help="signatures per mode (default 100)")
    args = parser.parse_args()
    options = KeyOptions(
        tpm_tcti=args.tpm_tcti,
        tpm_key_password=args.tpm_key_password,
        no_tpm_key_password=args.no_tpm_key_password,
    )
    message = b"AWS4-X509-ECDSA-SHA256\n20240101T000000Z\nscope\n" + bytes(64)

    started = time.perf_counter()
    key = TpmKey.open(args.private_key, options)
    with key:
        opened = time.perf_counter()
        times = []
        for _ in range(args.n):
            t0 = time.perf_counter()
            key.sign(message)
            times.append(time.perf_counter() - t0)
        counters = key.counters
    print(f"key: {key.description}")
    print(f"kept open:          open {ms(opened - started)}, then per signature {summary(times)}")
    print(f"                    counters: {counters}")

    one_shot = []
    for _ in range(args.n):
        t0 = time.perf_counter()
        with TpmKey.open(args.private_key, options) as one:
            one.sign(message)
        one_shot.append(time.perf_counter() - t0)
    print(f"open per signature: {summary(one_shot)}")


def ms(seconds: float) -> str:
    return f"{1000 * seconds:7.2f} ms"


def summary(times: list[float]) -> str:
    return f"median {ms(statistics.median(times))}, mean {ms(statistics.mean(times))}"


if __name__ == "__main__":
    main()
