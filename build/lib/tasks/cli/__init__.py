"""The `refinery` command line: run, promote, rollback, models, predict, explain, reproduce."""
