"""How often § 193 BGB moves a period's end: for every receipt day of a year, the completeness, decision and
extended ends on a tenant's working calendar (the rules file's [holidays], no database needed), counted by how many
days they moved, with the largest moves and their reasons.

    python bench/deadline_moves.py --rules data/tenants/he.toml --year 2027 [--place AGS]

The same functions compute the clocks of real cases and answer ``breitband deadlines compute`` (spot-check any day
with it: ``breitband deadlines compute --tenant he --received 2027-09-25``).
"""

from __future__ import annotations

import argparse
import tomllib
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

from breitband.dates import parse_instant
from geo.rules import parse_rules
from permits import deadlines, workdays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=Path, default=Path("data/tenants/he.toml"))
    parser.add_argument("--year", type=int, default=2027)
    parser.add_argument("--place", default=None, help="AGS of the authority's seat (a place entry of the rules)")
    args = parser.parse_args()
    with args.rules.open("rb") as fh:
        rules = parse_rules(tomllib.load(fh))
    cal = workdays.calendar_for(rules.holidays, args.place)
    days = [date(args.year, 1, 1) + timedelta(days=i) for i in range((date(args.year + 1, 1, 1)
                                                                       - date(args.year, 1, 1)).days)]
    print(f"tenant {rules.key}, calendar {cal.describe()}, {len(days)} receipt days in {args.year}")
    for name in ("completeness", "decision", "extended"):
        moves: Counter[int] = Counter()
        worst: list[tuple[int, date, deadlines.Due]] = []
        for day in days:
            received = parse_instant(day.isoformat())
            if name == "completeness":
                due = deadlines.completeness(received, cal)
            elif name == "decision":
                due = deadlines.decision(received, cal)
            else:
                due = deadlines.extension(deadlines.decision(received, cal).end, cal)
            moves[due.moved_days] += 1
            worst.append((due.moved_days, day, due))
        moved = sum(n for k, n in moves.items() if k)
        top = max(moves)
        print(f"{name:>12}: {moved} of {len(days)} moved ({100 * moved / len(days):.1f} %), by at most {top} days; "
              f"by days moved: {dict(sorted(moves.items()))}")
        for _, day, due in sorted(worst, key=lambda w: (-w[0], w[1]))[:3]:
            if due.moved_days:
                print(f"{'':>14}received {day}: {due.label()}")


if __name__ == "__main__":
    main()
