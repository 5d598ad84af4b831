"""Rebuild the demo data from ../shared/data (run from the repo root): banking77_demo.csv (the intent project) and
customer_support_demo.csv (the instruction -> response project).

The demo keeps 12 card- and transfer-related intents (classes that are easy to confuse, so the quality pages
have something real to show), at most 100 training queries each, with the original labels. Column
`second_opinion` simulates a second annotator on 150 of the first 600 rows (the ones `make up` imports as
already annotated): 85% agree with the original label, the rest pick another demo class. It is labeled as
simulated everywhere it appears.
"""

from pathlib import Path

import numpy as np
import pandas as pd

CLASSES = ["card_arrival", "card_delivery_estimate", "card_not_working", "card_payment_not_recognised",
           "lost_or_stolen_card", "compromised_card", "pending_transfer", "transfer_not_received_by_recipient",
           "cancel_transfer", "declined_transfer", "exchange_rate", "wrong_exchange_rate_for_cash_withdrawal"]


def main() -> None:
    source = Path("..") / "shared" / "data" / "banking77" / "train.csv"
    frame = pd.read_csv(source)
    frame = frame[frame["category"].isin(CLASSES)]
    frame = frame.groupby("category").head(100)
    frame = frame.sample(frac=1.0, random_state=7).reset_index(drop=True)
    rng = np.random.default_rng(7)
    second = pd.Series([""] * len(frame), dtype=object)
    for i in range(150):
        true = frame.loc[i, "category"]
        second[i] = true if rng.random() < 0.85 else rng.choice([c for c in CLASSES if c != true])
    frame["second_opinion"] = second
    frame.to_csv(Path("data") / "demo" / "banking77_demo.csv", index=False)
    print(len(frame), "rows", frame["category"].value_counts().to_dict())


def support() -> None:
    """20 training requests per intent of the Bitext customer-support set (27 intents, 540 rows), shuffled so the
    150 that `make up` imports as answered cover every intent. Columns prompt, response (unchanged text, with its
    {{placeholder}} slots), intent, category. CDLA-Sharing-1.0: the subset is published under the same licence."""
    source = Path("..") / "shared" / "data" / "customer_support_sft" / "customer_support_sft.csv.gz"
    frame = pd.read_csv(source, keep_default_na=False)
    frame = frame[frame["split"] == "train"]
    frame = frame.groupby("intent").sample(20, random_state=0).sample(frac=1.0, random_state=0)
    out = pd.DataFrame({"prompt": frame["instruction"], "response": frame["response"], "intent": frame["intent"],
                        "category": frame["category"]}).reset_index(drop=True)
    out.to_csv(Path("data") / "demo" / "customer_support_demo.csv", index=False)
    print(len(out), "rows", out["intent"].nunique(), "intents")


if __name__ == "__main__":
    main()
    support()
