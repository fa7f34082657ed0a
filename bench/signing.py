"""Time to sign one decision PDF (PAdES, pyHanko) with the tenant's key, with the fixed signature reservation of
``permits.documents.keys.sign_pdf`` against pyHanko's own size estimate (a dry-run signature first), interleaved in
the same run.

    .venv/bin/python bench/signing.py [--runs 20]

A self-signed development key (RSA-3072) is made under a temporary data directory; the PDF is a one-page document
rendered by WeasyPrint. Prints p50/p95 per variant, the ratio and the size of the signed file.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    os.environ["BREITBAND_DATA_DIR"] = tempfile.mkdtemp(prefix="breitband-bench-signing-")
    from weasyprint import HTML

    from permits.documents import keys

    pdf = HTML(string="<h1>Zustimmung nach § 127 TKG</h1><p>Bescheid</p>").write_pdf()
    tenant = keys.ensure_key("xz", "Benchland")
    fixed = keys.SIGNATURE_BYTES_RESERVED
    times: dict[str, list[float]] = {"fixed reservation": [], "pyHanko estimate": []}
    sizes: dict[str, int] = {}
    for i in range(args.runs + 1):
        for name, reserved in (("fixed reservation", fixed), ("pyHanko estimate", None)):
            keys.SIGNATURE_BYTES_RESERVED = reserved
            started = time.perf_counter()
            out = keys.sign_pdf(pdf, tenant, field_name=f"Sig{i}", reason="Zustimmung", location="Bench")
            if i:                                   # the first round warms up
                times[name].append(time.perf_counter() - started)
            sizes[name] = len(out)
    keys.SIGNATURE_BYTES_RESERVED = fixed
    for name, values in times.items():
        values.sort()
        p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
        print(f"{name:18s} p50 {statistics.median(values) * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms  "
              f"signed PDF {sizes[name]:,} bytes")
    ratio = statistics.median(times["fixed reservation"]) / statistics.median(times["pyHanko estimate"])
    print(f"ratio fixed/estimate (p50): {ratio:.2f}   runs: {args.runs}, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
