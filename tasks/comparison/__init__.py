"""Champion vs challenger on one test set: paired statistics, guard rails and the comparison record."""
