"""The text-aware sequential recommender: training, full-catalog evaluation, batch scoring."""
