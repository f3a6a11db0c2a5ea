"""Release decisions: the champion/challenger gate and the registry aliases it moves
(promote, rollback, history)."""
