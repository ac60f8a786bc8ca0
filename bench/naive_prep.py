"""The preparation a team would write without lockgate: pandas + scikit-learn, the usual way.

Usage: python bench/naive_prep.py SRC.csv OUT_DIR NUMERIC,COLS CATEGORICAL,COLS
Same outputs as `lockgate data prep`: stratified 70/15/15 split, median imputation and
scaling, one-hot with infrequent grouping, float32 safetensors per split, pickled transformer.
"""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pandas as pd
from safetensors.numpy import save_file
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def main() -> None:
    src, out = sys.argv[1], sys.argv[2]
    numeric, categorical = sys.argv[3].split(","), sys.argv[4].split(",")
    frame = pd.read_csv(src).dropna(subset=["target"])
    y = frame.pop("target").to_numpy()
    rest, test, y_rest, y_test = train_test_split(
        frame, y, test_size=0.15, stratify=y, random_state=42
    )
    train, val, y_train, y_val = train_test_split(
        rest, y_rest, test_size=0.15 / 0.85, stratify=y_rest, random_state=42
    )
    transformer = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "cat",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist", min_frequency=0.001, sparse_output=False
                ),
                categorical,
            ),
        ]
    )
    transformer.fit(train)
    for name, part, labels in (
        ("train", train, y_train),
        ("validation", val, y_val),
        ("test", test, y_test),
    ):
        tensors = {
            "X": transformer.transform(part).astype(np.float32),
            "y": labels.astype(np.int64),
        }
        save_file(tensors, f"{out}/{name}.safetensors")
    with open(f"{out}/transformer.pkl", "wb") as handle:
        pickle.dump(transformer, handle)


if __name__ == "__main__":
    main()
