"""The Great Expectations machinery every task type's data contract runs on, and its reports."""
