// Keeps ntk_test_support non-empty.
