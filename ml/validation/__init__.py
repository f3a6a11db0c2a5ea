"""The data validation gate: Great Expectations suites, run on each landing partition."""
