"""Tests of the benchmark table's statistics (standard library only):

    python3 -m unittest discover -s bench/python -p 'test_*.py'
"""
from __future__ import annotations

import json
import os
import tempfile
import unittest

import table


def line(fw, rate, run=None, rnd=None, workload="dsm"):
    d = {"framework": fw, "workload": workload, "model": "M2", "threads": 1,
         "steps_per_s": rate, "median_step_s": 1.0 / rate}
    if run is not None:
        d["run_id"], d["round"] = run, rnd
    return d


def load(lines):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for d in lines:
            f.write(json.dumps(d) + "\n")
    try:
        return table.load([f.name])[0]
    finally:
        os.unlink(f.name)


class Rounds(unittest.TestCase):
    def test_ratio_is_the_median_of_per_round_ratios(self):
        # per-round ratios 100/90, 110/100, 90/88: median 1.10; the ratio of the median rates
        # (100/90 = 1.11) would differ, so this tells the pairing from the plain ratio
        r = load([line(fw, v, "A", k) for k, (e, j) in enumerate([(100, 90), (110, 100), (90, 88)], 1)
                  for fw, v in (("ebm", e), ("jax", j))])
        self.assertEqual(table.rate(r[("ebm", "dsm", "M2", 1)]), 100)
        self.assertEqual(table.rate(r[("jax", "dsm", "M2", 1)]), 90)
        self.assertEqual(table.paired_ratio(r[("ebm", "dsm", "M2", 1)], r[("jax", "dsm", "M2", 1)]),
                         "1.10 (1.02-1.11)")

    def test_a_later_run_replaces_a_cells_lines(self):
        r = load([line("ebm", 50, "A", 1), line("ebm", 70, "A", 2), line("ebm", 100, "B", 1)])
        self.assertEqual(table.rate(r[("ebm", "dsm", "M2", 1)]), 100)
        self.assertEqual(len(r[("ebm", "dsm", "M2", 1)]["_rounds"]), 1)

    def test_lines_without_run_id_keep_the_last(self):
        r = load([line("ebm", 50), line("ebm", 70), line("jax", 35)])
        self.assertEqual(table.rate(r[("ebm", "dsm", "M2", 1)]), 70)
        self.assertEqual(table.paired_ratio(r[("ebm", "dsm", "M2", 1)], r[("jax", "dsm", "M2", 1)]), "2.00")

    def test_a_failed_round_is_left_out(self):
        bad = line("ebm", 1, "A", 2)
        bad["error"], bad["steps_per_s"] = "exit code 1", None
        r = load([line("ebm", 40, "A", 1), bad, line("ebm", 60, "A", 3)])
        self.assertEqual(table.rate(r[("ebm", "dsm", "M2", 1)]), 50)

    def test_the_footnote_counts_rounds_per_thread_count(self):
        one = [line(fw, 10 + k, "A", k) for k in (1, 2, 3) for fw in ("ebm", "jax")]
        self.assertEqual(table.rounds_note(load(one)), "3 rounds")
        two = [dict(d, threads=2) for d in one[:4]]
        self.assertEqual(table.rounds_note(load(one + two)),
                         "rounds: 3 at 1 thread, 2 at 2 threads")
        self.assertEqual(table.rounds_note(load([line("ebm", 10)])), "")

    def test_median_of_even_and_odd_counts(self):
        self.assertEqual(table.median([3, 1, 2]), 2)
        self.assertEqual(table.median([4, 1, 2, 3]), 2.5)


if __name__ == "__main__":
    unittest.main()
