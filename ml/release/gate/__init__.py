"""The champion/challenger gate: rules (pure decision on paired scores), run (loading both
models from the registry and scoring them on the same frozen data), behavioural checks, reports."""
