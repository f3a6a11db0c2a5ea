"""Data contracts between steps: file layouts and column names.

Landing (raw, as the shop drops it; CSV, UTF-8, header row), one folder per day::

    data/landing/<dataset>/date=YYYY-MM-DD/part-000.csv

An utterances partition has exactly UTTERANCE_COLUMNS, or those plus the optional
UTTERANCE_OPTIONAL_COLUMNS: ``split`` is a data set's official split of a row (``train``,
``val``, ``test``, or empty = not assigned), written by ``ingest`` for an intent_file with
``test_file``/``val_file``/``split_column``; preprocessing keeps it instead of re-splitting the
row. The synthetic shop and ``directory`` deliveries carry no split column.

Validated partitions are copied to ``data/validated/<dataset>/date=.../`` with the report
beside them; failed ones are moved to ``data/quarantine/<dataset>/date=.../`` with theirs.

Processed (Parquet), written by ``python -m ml preprocess``::

    data/processed/intent/{train,val,test}.parquet   INTENT_PROCESSED_COLUMNS + first_seen
    data/processed/intent/label_map.json             {"labels": [...]}  (index = class id)
    data/processed/recsys/items.parquet              ITEM_PROCESSED_COLUMNS (row i has item_idx i)
    data/processed/recsys/users.parquet              user_idx, user_id
    data/processed/recsys/train.parquet              user_idx, items (list[int], time order)
    data/processed/recsys/{val,test}.parquet         user_idx, history (list[int]), target (int)

Evaluation outputs that the offline A/B gate pairs between champion and challenger::

    intent:       example_id, label, predicted, raw_predicted, confidence, correct, raw_correct,
                  first_seen                                             (one row per test text)
    recommender:  user_idx, target, rank, recall@k, ndcg@k, mrr, n_candidates, top, + slices
"""

from __future__ import annotations

DATASETS = ("catalog", "events", "utterances")

CATALOG_COLUMNS = ("item_id", "title", "category", "brand", "price", "description", "first_seen")
EVENT_COLUMNS = ("event_id", "user_id", "session_id", "item_id", "event_type", "timestamp")
EVENT_TYPES = ("view", "add_to_cart", "purchase")
UTTERANCE_COLUMNS = ("utterance_id", "text", "intent", "timestamp")
UTTERANCE_SPLIT = "split"
UTTERANCE_OPTIONAL_COLUMNS = (UTTERANCE_SPLIT,)
# Values of the optional split column; empty (null) means no official split for the row.
OFFICIAL_SPLITS = ("train", "val", "test")

INTENT_PROCESSED_COLUMNS = ("example_id", "text", "label")
# Written by preprocessing, optional for readers (data made by hand may lack it): the date of
# the partition a text first arrived in, so the gate can show how models do on new data.
INTENT_FIRST_SEEN = "first_seen"
ITEM_PROCESSED_COLUMNS = (
    "item_idx",
    "item_id",
    "title",
    "category",
    "brand",
    "price",
    "description",
    "text",
)

OUT_OF_SCOPE = "out_of_scope"

# The shop's intents (the synthetic generator produces these, plus out_of_scope).
SHOP_INTENTS = (
    "search_product",
    "compare_price",
    "track_order",
    "cancel_order",
    "return_item",
    "get_refund",
    "delivery_options",
    "payment_issue",
    "apply_coupon",
    "product_availability",
    "change_shipping_address",
    "complaint",
    "contact_human_agent",
    "account_help",
    "product_question",
    "recommend_product",
)


def partition_name(date: str) -> str:
    """Folder name of a daily partition: ``date=YYYY-MM-DD``."""
    return f"date={date}"


# Registered-model (MLflow pyfunc) contracts, so the gate can re-score any version alike.
# intent-classifier: input DataFrame with column "text"; output DataFrame with columns
#   "label" (str, out_of_scope below the threshold), "confidence" (float), "raw_label" (argmax).
# recommender: input DataFrame with column "history" (list of item_id strings, oldest first);
#   params {"k": int}; output DataFrame with columns "items" (list of item_id) and "scores".
# A registered recommender's python model also offers
#   score_items(histories: list[list[item_id]], items: DataFrame[item_id, text columns]) -> ndarray
# dense (len(histories), len(items)) scores over a whole catalogue, items it was not trained on
# scored from their text: evaluation and both sides of the gate rank the full catalogue with it.
RECOMMENDER_SCORE_ITEMS = "score_items"
INTENT_PYFUNC_INPUT = ("text",)
INTENT_PYFUNC_OUTPUT = ("label", "confidence", "raw_label")
RECOMMENDER_PYFUNC_INPUT = ("history",)
RECOMMENDER_PYFUNC_OUTPUT = ("items", "scores")
