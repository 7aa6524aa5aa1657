"""One-off extraction of the UCI digits from scikit-learn's bundled copy into data/digits.csv.

Run once (needs scikit-learn, which the benchmark venv does not install):

    python3 -m venv /tmp/skv && /tmp/skv/bin/pip install scikit-learn==1.9.1
    /tmp/skv/bin/python bench/python/extract_digits.py data/digits.csv

Output: a header `p0,...,p63,label`, then 1,797 rows of 64 integer pixels (row-major 8x8, values 0..16)
and the digit label. See data/README.md for source and licence.
"""
import sys

import numpy as np
from sklearn.datasets import load_digits


def main(path: str) -> None:
    d = load_digits()
    x = d.data.astype(np.int64)
    y = d.target.astype(np.int64)
    assert x.shape == (1797, 64) and x.min() == 0 and x.max() == 16
    assert np.array_equal(x, d.data)  # the values are exact integers
    with open(path, "w", newline="\n") as f:
        f.write(",".join([f"p{i}" for i in range(64)] + ["label"]) + "\n")
        for row, label in zip(x, y):
            f.write(",".join(str(v) for v in row) + f",{label}\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/digits.csv")
