"""Tests of the result lines' machine description (standard library only):

    python3 -m unittest discover -s bench/python -p 'test_*.py'
"""
from __future__ import annotations

import unittest

from common import cpu_and_isa_from

ZEN4 = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
        "model name\t: AMD EPYC\nflags\t\t: fpu avx2 fma avx512f\n\n"
        "processor\t: 1\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n")


class CpuAndIsa(unittest.TestCase):
    def test_names_family_and_model_as_ebm_does(self):
        # the same string as ebm_core::cpu_model on this text (peak.rs's test)
        self.assertEqual(cpu_and_isa_from(ZEN4, "x86_64"),
                         ("AMD EPYC (family 25, model 17)", "avx512"))

    def test_widest_fma_set(self):
        avx2 = ZEN4.replace(" avx512f", "")
        self.assertEqual(cpu_and_isa_from(avx2, "x86_64")[1], "avx2")
        no_fma = ZEN4.replace(" fma avx512f", "")
        self.assertEqual(cpu_and_isa_from(no_fma, "x86_64")[1], "x86_64")

    def test_what_cpuinfo_does_not_say(self):
        # aarch64's cpuinfo has neither line; no file at all reads as empty text
        self.assertEqual(cpu_and_isa_from("processor\t: 0\nBogoMIPS\t: 50.00\n", "aarch64"),
                         ("aarch64", "aarch64"))
        self.assertEqual(cpu_and_isa_from("", "aarch64"), ("aarch64", "aarch64"))
        # a name without the numbers stays as it is
        self.assertEqual(cpu_and_isa_from("model name\t: Some CPU\n", "x86_64")[0], "Some CPU")


if __name__ == "__main__":
    unittest.main()
