"""Know-your-customer checks and fraud rules: pure decisions, no I/O of their own."""
