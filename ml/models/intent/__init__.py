"""The user-intent classifier: fine-tuning, evaluation, prediction."""
