"""Run anjana's k-anonymity on UCI Adult; runs inside anjana's own venv (bench/.peers/anjana).

Usage: python anjana_adult.py DATA_DIR K SUPPRESSION_PERCENT ROWS OUT_CSV
Prints one JSON line: seconds (the anonymization call only), levels, rows out.
"""

import json
import sys
import time
from pathlib import Path

import pandas as pd
from anjana.anonymity import _k_anonymity as kanon

QIS = [
    "sex",
    "age",
    "race",
    "marital-status",
    "education",
    "native-country",
    "workclass",
    "occupation",
]


def main() -> None:
    folder, k, supp, rows, out = (
        Path(sys.argv[1]),
        int(sys.argv[2]),
        float(sys.argv[3]),
        int(sys.argv[4]),
        Path(sys.argv[5]),
    )
    data = pd.read_csv(folder / "adult.csv", sep=";", dtype=str).head(rows)
    hierarchies = {
        q: dict(pd.read_csv(folder / f"adult_hierarchy_{q}.csv", sep=";", header=None, dtype=str))
        for q in QIS
    }
    started = time.perf_counter()
    released, suppressed, levels = kanon.k_anonymity_inner(data, [], QIS, k, supp, hierarchies)
    seconds = time.perf_counter() - started
    released.to_csv(out, sep=";", index=False)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "levels": {q: int(v) for q, v in levels.items()},
                "suppressed": int(suppressed),
                "rows_out": len(released),
            }
        )
    )


if __name__ == "__main__":
    main()
