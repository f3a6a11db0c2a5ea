"""shopflow: keeps an online shop's intent classifier and recommender fresh."""

__version__ = "0.1.0"
